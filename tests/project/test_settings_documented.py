"""Every variable project/settings.py reads is documented: in docs/configuration.md and, with its
default, in .env.example."""

from __future__ import annotations

import ast
import re

from tests.support.processes import REPO


def _names_read() -> set[str]:
    """The first argument of every env_* call (project/env.py) and os.environ/os.getenv read."""
    names = set()
    for node in ast.walk(ast.parse((REPO / "project" / "settings.py").read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        if isinstance(func, ast.Name):  # env_int(...), getenv(...)
            reads = func.id.startswith("env_") or func.id == "getenv"
        elif isinstance(func, ast.Attribute):  # os.getenv(...), os.environ.get(...)
            reads = func.attr == "getenv" or (
                func.attr == "get" and ast.unparse(func.value).endswith("environ")
            )
        else:
            reads = False
        first = node.args[0]
        if reads:
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), ast.unparse(node)
            names.add(first.value)
    return names


def test_the_settings_module_is_read_as_expected() -> None:
    # The parse finds them all (about 80 today), so the test below cannot pass by finding none.
    names = _names_read()
    assert len(names) > 60 and {"DJANGO_SECRET_KEY", "REDIS_URL", "TRUST_X_FORWARDED_FOR"} <= names


def test_every_setting_is_in_the_configuration_doc_and_the_env_example() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    example = (REPO / ".env.example").read_text()
    names = _names_read()
    undocumented = sorted(name for name in names if f"`{name}`" not in doc)
    assert not undocumented, f"read in settings.py, missing from docs/configuration.md: {undocumented}"
    not_in_example = sorted(
        name for name in names if not re.search(rf"^(# ?)?{re.escape(name)}=", example, re.MULTILINE)
    )
    assert not not_in_example, f"read in settings.py, missing from .env.example: {not_in_example}"
