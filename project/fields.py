"""Strict JSON field types: a string is not a number and 1 is not a boolean.

DRF's own fields coerce ("5" -> 5, "yes" -> True); an API whose clients send JSON should say
which value was wrong instead of guessing.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """JSON integers, and floats with no fractional part (the SDK may send either)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and (not math.isfinite(data) or not data.is_integer()):
            self.fail("invalid")
        return int(super().to_internal_value(int(data)))


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


def iso(value: datetime | None) -> str | None:
    """A date-time as the API writes it: ISO 8601, UTC as Z."""
    return value.isoformat().replace("+00:00", "Z") if value else None


@extend_schema_field(OpenApiTypes.STR)
class IsoDateTimeField(serializers.Field):  # type: ignore[type-arg]  # drf-stubs: Field is generic in 4 params
    """Output only: a date-time as the API writes it (`iso`), documented as a string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: datetime) -> str | None:
        return iso(value)
