from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SECRET_MARKER = "bf-secret-marker-7f3a9c"


@pytest.fixture
def host_file() -> Iterator[str]:
    # Readable by anyone, the browser's own uid included: the fill path, not file permissions,
    # must keep it out of the page.
    folder = Path(tempfile.mkdtemp(prefix="bf-host-file-"))
    folder.chmod(0o755)
    path = folder / "host-secret.txt"
    path.write_text(f"{SECRET_MARKER}\n")
    path.chmod(0o644)
    yield str(path)
    shutil.rmtree(folder)
