"""Bounds on what one action may ask of a browser, beyond each field's own range.

Each field already has a range; these are the sums and shapes that a field range cannot see: the
pixels a viewport costs in memory and screenshot size, how big a scrape schema may grow, how long
a batch may spend waiting on purpose. Over the limit is a 400 that runs nothing.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# Device pixels (CSS width x height x scale^2): 16.8 Mpx is 2560x1600 at scale 2, or 4K at 1.4.
# Without it 3840x2160 at scale 4 asked for 133 Mpx (a 530 MB frame buffer per screenshot).
MAX_DEVICE_PIXELS = 4096 * 4096
MAX_DRAG_POINTS = 1000
MAX_SCHEMA_FIELDS = 200  # in the whole schema, nested ones included
MAX_SCHEMA_FIELDS_PER_OBJECT = 100
MAX_SCHEMA_STRING = 1000  # a selector, an attribute or a field name
MAX_SCHEMA_KEY = 100
# The deliberate waiting one batch may ask for (`wait` actions' ms and every `settle_ms`).
MAX_BATCH_WAIT_MS = 60_000


def check_pixel_budget(*, width: int, height: int, scale: float) -> None:
    pixels = width * height * scale * scale
    if pixels > MAX_DEVICE_PIXELS:
        raise serializers.ValidationError(
            f"{width}x{height} at scale {scale:g} is {pixels / 1e6:.1f} million device pixels; "
            f"at most {MAX_DEVICE_PIXELS / 1e6:.1f} million (lower the size or the scale)."
        )


def check_schema_size(schema: dict[str, Any]) -> None:
    """Breadth and string sizes of a scrape schema (its depth and shape are checked elsewhere)."""
    total = 0
    pending = [schema]
    while pending:
        node = pending.pop()
        for key in ("selector", "attr"):
            if isinstance(node.get(key), str) and len(node[key]) > MAX_SCHEMA_STRING:
                raise serializers.ValidationError(
                    f"schema `{key}` is longer than {MAX_SCHEMA_STRING} characters."
                )
        fields = node.get("fields")
        if not isinstance(fields, dict):
            continue
        if len(fields) > MAX_SCHEMA_FIELDS_PER_OBJECT:
            raise serializers.ValidationError(
                f"schema has an object with {len(fields)} fields; at most {MAX_SCHEMA_FIELDS_PER_OBJECT}."
            )
        total += len(fields)
        if total > MAX_SCHEMA_FIELDS:
            raise serializers.ValidationError(f"schema has more than {MAX_SCHEMA_FIELDS} fields in all.")
        for name, spec in fields.items():
            if len(name) > MAX_SCHEMA_KEY:
                raise serializers.ValidationError(
                    f"schema field names are at most {MAX_SCHEMA_KEY} characters."
                )
            if isinstance(spec, str) and len(spec) > MAX_SCHEMA_STRING:
                raise serializers.ValidationError(
                    f"field {name[:40]!r}: a selector is at most {MAX_SCHEMA_STRING} characters."
                )
            if isinstance(spec, dict):
                pending.append(spec)


def check_batch_waits(actions: list[dict[str, Any]]) -> None:
    waited = sum(int(a.get("ms", 0)) for a in actions if a["type"] == "wait")
    waited += sum(int(a.get("settle_ms", 0)) for a in actions)
    if waited > MAX_BATCH_WAIT_MS:
        raise serializers.ValidationError(
            {"actions": f"The batch asks to wait {waited} ms in all; at most {MAX_BATCH_WAIT_MS} ms."}
        )
