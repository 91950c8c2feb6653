from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from billing.selectors import session_cost
from project.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField, iso
from sessions.input_limits import check_pixel_budget
from sessions.location import BROWSER_FLAVOURS, CHROMIUM
from sessions.models import ActionStatus, BrowserSession
from sessions.proxies import InvalidProxy, proxies_check

_MONTH = 30 * 24 * 3600

# Tzafon create fields that we keep in the session's options and echo back. `persistent` and
# `environment_id` are acted on (sessions/saved_state.py); the others are not (yet).
# `use_advanced_proxy` and `proxy_country` are acted on too (sessions/proxies.py).
ECHOED_OPTIONS = (
    "persistent",
    "environment_id",
    "context_id",
    "stealth",
    "use_advanced_proxy",
    "proxy_country",
    "record",
)


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
    proxy_country = StrictCharField(
        required=False,
        max_length=32,
        help_text="Extension: with use_advanced_proxy, a pool member tagged with this (e.g. `de`).",
    )
    proxies = serializers.JSONField(
        required=False,
        help_text=(
            "Extension: bring-your-own upstream proxies, `[{server, username?, password?, "
            'domain_pattern?}]`; `server` is `http://host:port` or `"direct"`; the first rule whose '
            "`domain_pattern` (`*.example.com`) matches wins, a rule without one matches every host. "
            "Credentials are stored encrypted and never echoed. A proxy on a private or internal "
            "address is 400 `blocked_address`."
        ),
    )

    def validate_proxies(self, value: Any) -> list[dict[str, str]]:
        return proxies_check(value)

    # An extension: record the screen (docs/logs-and-recordings.md); absent: the plan's default.
    record = StrictBooleanField(required=False)
    # An extension: the browser's flavour (docs/operations.md "Browser flavours").
    browser = serializers.ChoiceField(
        choices=list(BROWSER_FLAVOURS),
        required=False,
        default=CHROMIUM,
        help_text=(
            "Extension: `chromium` (full Chromium, the default) or `headless_shell` (Chromium's "
            "headless shell: starts in a fifth of the CPU, but pages open no windows and failed "
            "loads carry no net error code)."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("proxies") and attrs.get("use_advanced_proxy"):
            raise InvalidProxy("Give either use_advanced_proxy or proxies, not both.")
        if attrs.get("proxy_country") and not attrs.get("use_advanced_proxy"):
            raise InvalidProxy("proxy_country picks an advanced proxy: it needs use_advanced_proxy: true.")
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


@extend_schema_serializer(component_name="ComputerStatus")
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


class ProxyRuleOutput(serializers.Serializer[Any]):
    server = serializers.CharField()
    domain_pattern = serializers.CharField(allow_null=True)


# The one declaration of a session's answer: it renders every session response and
# drf-spectacular documents it (as `Computer`). A new session field is one more field here.
@extend_schema_serializer(component_name="Computer")
class SessionOutput(SessionStatusOutput):
    """ComputerResponse, plus what the session cost so far and the echoed create options."""

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

    credits_spent = serializers.SerializerMethodField()
    # ECHOED_OPTIONS, as given at create (null when not given).
    persistent = serializers.BooleanField(source="options.persistent", allow_null=True)
    environment_id = serializers.CharField(source="options.environment_id", allow_null=True)
    context_id = serializers.CharField(source="options.context_id", allow_null=True)
    stealth = serializers.JSONField(source="options.stealth", allow_null=True)
    use_advanced_proxy = serializers.BooleanField(source="options.use_advanced_proxy", allow_null=True)
    record = serializers.BooleanField(
        source="options.record",
        allow_null=True,
        help_text="Whether the session is recorded (GET /v1/computers/{id}/recording); the plan's default "
        "when the create did not say.",
    )
    proxy_country = serializers.CharField(source="options.proxy_country", allow_null=True)
    browser = serializers.ChoiceField(
        choices=list(BROWSER_FLAVOURS),
        help_text="Extension: the browser's flavour, `chromium` or `headless_shell` (as asked at create).",
    )
    proxies = ProxyRuleOutput(
        source="options.proxies",
        many=True,
        allow_null=True,
        help_text="The session's own proxy rules as given (servers and patterns; never credentials).",
    )
    proxy_bytes = serializers.IntegerField(
        help_text="Bytes through the operator's proxy pool charged so far (proxy_mb)."
    )

    def get_credits_spent(self, obj: BrowserSession) -> int:
        annotated = getattr(obj, "ledger_total", None)  # a list annotates it (one query for all)
        return -annotated if annotated is not None else session_cost(session_id=obj.pk)


# Action results. The one declaration of each; the answers themselves are built by
# action_views.action_payload, a plain function: a DRF serializer costs about 0.4 ms per action
# where the function costs 0.01 ms (docs/benchmarks.md), and every action goes through it.
# tests/api/test_action_payloads.py renders every action type through action_payload and
# validates it against these (as served in /v1/openapi.json).


class PageContext(serializers.Serializer[Any]):
    url = serializers.CharField(required=False, allow_null=True)
    title = serializers.CharField(required=False, allow_null=True)
    tab_id = serializers.CharField(required=False, allow_null=True)
    is_main_tab = serializers.BooleanField(required=False, allow_null=True)
    viewport_width = serializers.FloatField(required=False, allow_null=True)
    viewport_height = serializers.FloatField(required=False, allow_null=True)
    page_width = serializers.FloatField(required=False, allow_null=True)
    page_height = serializers.FloatField(required=False, allow_null=True)
    scroll_x = serializers.FloatField(required=False, allow_null=True)
    scroll_y = serializers.FloatField(required=False, allow_null=True)
    device_scale_factor = serializers.FloatField(required=False, allow_null=True)


_CODE_HELP = "A failed action's machine-readable reason, when it has one (e.g. `blocked_address`)."
_RESULT_HELP = (
    "Action-specific: `screenshot_url` (screenshot), `html_content` (html), `tabs` (list_tabs), "
    "`elements` (observe), `data`/`markdown` (scrape)... Empty while the action is pending."
)


class ActionResult(serializers.Serializer[Any]):
    """The Tzafon ActionResult. A failure on the page is HTTP 200 with `status: "error"`."""

    status = serializers.ChoiceField(choices=["success", "error", "pending"])
    result = serializers.DictField(help_text=_RESULT_HELP)
    error_message = serializers.CharField(allow_null=True)
    code = serializers.CharField(required=False, help_text=_CODE_HELP)
    timestamp = serializers.CharField()
    request_id = serializers.CharField()
    action_id = serializers.CharField()
    action_status = serializers.ChoiceField(choices=ActionStatus.values)
    executed_tab_id = serializers.CharField(allow_null=True)
    page_context = PageContext(allow_null=True, help_text="With `include_context: true`.")
    poll_url = serializers.CharField(required=False, help_text="202 only: GET it until finished.")


class BatchStep(serializers.Serializer[Any]):
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=["success", "error"])
    result = serializers.DictField()
    error_message = serializers.CharField(allow_null=True)
    code = serializers.CharField(required=False, help_text=_CODE_HELP)
    executed_tab_id = serializers.CharField(allow_null=True)
    page_context = PageContext(allow_null=True)


class BatchResult(serializers.Serializer[Any]):
    """A batch runs its steps in order and stops at the first error."""

    status = serializers.ChoiceField(choices=["success", "error", "pending"])
    error_message = serializers.CharField(allow_null=True)
    timestamp = serializers.CharField()
    request_id = serializers.CharField()
    action_id = serializers.CharField()
    action_status = serializers.ChoiceField(choices=ActionStatus.values)
    results = BatchStep(many=True)
    completed = serializers.IntegerField()
    success = serializers.BooleanField()
    poll_url = serializers.CharField(required=False)


class ActionDetail(serializers.Serializer[Any]):
    """An action (or a batch: then `results`, `completed` and `success` instead of `result`)."""

    status = serializers.ChoiceField(choices=["success", "error", "pending"])
    error_message = serializers.CharField(allow_null=True)
    timestamp = serializers.CharField()
    request_id = serializers.CharField()
    action_id = serializers.CharField()
    action_status = serializers.ChoiceField(choices=ActionStatus.values)
    result = serializers.DictField(required=False)
    code = serializers.CharField(required=False, help_text=_CODE_HELP)
    executed_tab_id = serializers.CharField(required=False, allow_null=True)
    page_context = PageContext(required=False, allow_null=True)
    results = BatchStep(many=True, required=False)
    completed = serializers.IntegerField(required=False)
    success = serializers.BooleanField(required=False)
    session_id = serializers.CharField()
    type = serializers.CharField()
    params = serializers.DictField()
    created_at = serializers.CharField()
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
