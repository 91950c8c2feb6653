from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.selectors import session_cost
from project.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField, iso
from sessions.input_limits import check_pixel_budget
from sessions.models import BrowserSession

_MONTH = 30 * 24 * 3600

# Tzafon create fields that we keep in the session's options and echo back. `persistent` and
# `environment_id` are acted on (sessions/saved_state.py); the others are not (yet).
ECHOED_OPTIONS = ("persistent", "environment_id", "context_id", "stealth", "use_advanced_proxy")


class DisplayInput(serializers.Serializer[Any]):
    width = StrictIntegerField(min_value=200, max_value=3840, required=False, default=1024)
    height = StrictIntegerField(min_value=200, max_value=2160, required=False, default=768)
    scale = StrictFloatField(min_value=0.5, max_value=4.0, required=False, default=1.0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        check_pixel_budget(width=attrs["width"], height=attrs["height"], scale=attrs["scale"])
        return attrs


class SessionCreateInput(serializers.Serializer[Any]):
    kind = StrictCharField(required=False, default="browser")
    max_lifetime_seconds = StrictIntegerField(min_value=1, max_value=_MONTH, required=False)
    timeout_seconds = StrictIntegerField(min_value=1, max_value=_MONTH, required=False)  # deprecated alias
    inactivity_timeout_seconds = StrictIntegerField(min_value=1, max_value=_MONTH, required=False)
    session_timeout = StrictIntegerField(min_value=1, max_value=_MONTH, required=False)  # NotexAI alias
    idle_timeout_enabled = StrictBooleanField(required=False)
    auto_kill = StrictBooleanField(required=False)  # deprecated alias
    keep_alive = StrictBooleanField(required=False)  # NotexAI: true disables the idle timeout
    display = DisplayInput(required=False)
    persistent = StrictBooleanField(required=False)
    environment_id = StrictCharField(required=False, max_length=100, allow_blank=True)
    context_id = StrictCharField(required=False, max_length=200, allow_blank=True)
    stealth = serializers.JSONField(required=False)
    use_advanced_proxy = StrictBooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["max_lifetime_seconds"] = _one_of(attrs, "max_lifetime_seconds", "timeout_seconds")
        attrs["inactivity_timeout_seconds"] = _one_of(attrs, "inactivity_timeout_seconds", "session_timeout")
        if "keep_alive" in attrs:
            attrs["keep_alive"] = not attrs["keep_alive"]  # the same switch, inverted
        enabled = _one_of(attrs, "idle_timeout_enabled", "auto_kill", "keep_alive")
        attrs["idle_timeout_enabled"] = True if enabled is None else enabled
        return attrs


def _one_of(attrs: dict[str, Any], *names: str) -> Any:
    """The value given under any of the alias `names`; they must agree when several are given."""
    given = {name: attrs.pop(name) for name in names if name in attrs}
    if len(set(map(repr, given.values()))) > 1:
        raise serializers.ValidationError(
            {names[0]: f"{' and '.join(given)} are aliases and were given different values."}
        )
    return next(iter(given.values()), None)


class SessionStatusOutput(serializers.Serializer[BrowserSession]):
    """ComputerRetrieveStatusResponse: current TTLs and last activity."""

    id = serializers.CharField()
    status = serializers.CharField()
    ended_reason = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField()
    idle_expires_at = serializers.SerializerMethodField()
    last_activity_at = serializers.SerializerMethodField()
    max_lifetime_seconds = serializers.IntegerField()
    inactivity_timeout_seconds = serializers.IntegerField()
    idle_timeout_enabled = serializers.BooleanField()
    auto_kill = serializers.BooleanField(source="idle_timeout_enabled")

    def get_ended_reason(self, obj: BrowserSession) -> str | None:
        return obj.ended_reason or None

    def get_created_at(self, obj: BrowserSession) -> str | None:
        return iso(obj.created_at)

    def get_expires_at(self, obj: BrowserSession) -> str | None:
        return iso(obj.expires_at)

    def get_idle_expires_at(self, obj: BrowserSession) -> str | None:
        return iso(obj.idle_expires_at) if obj.idle_timeout_enabled else None

    def get_last_activity_at(self, obj: BrowserSession) -> str | None:
        return iso(obj.last_activity_at)


class SessionOutput(SessionStatusOutput):
    """ComputerResponse."""

    kind = serializers.CharField()
    started_at = serializers.SerializerMethodField()
    ended_at = serializers.SerializerMethodField()
    display = serializers.SerializerMethodField()
    endpoints = serializers.SerializerMethodField()

    def get_started_at(self, obj: BrowserSession) -> str | None:
        return iso(obj.started_at)

    def get_ended_at(self, obj: BrowserSession) -> str | None:
        return iso(obj.ended_at)

    def get_display(self, obj: BrowserSession) -> dict[str, Any]:
        return {"width": obj.display_width, "height": obj.display_height, "scale": obj.display_scale}

    def get_endpoints(self, obj: BrowserSession) -> dict[str, str]:
        return {}

    def to_representation(self, instance: BrowserSession) -> dict[str, Any]:
        data = dict(super().to_representation(instance))
        annotated = getattr(instance, "ledger_total", None)
        data["credits_spent"] = -annotated if annotated is not None else session_cost(session_id=instance.pk)
        for name in ECHOED_OPTIONS:
            data[name] = instance.options.get(name)
        return data
