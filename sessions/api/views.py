from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponseBase
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account, request_key
from accounts.inflight import (
    inflight_limit,
    inflight_slot_accepting,
    inflight_slot_release,
    inflight_slot_take,
)
from project.awaiting import awaited_response
from project.exceptions import InvalidInput, ServiceUnavailable
from sessions import saved_state, selectors, services
from sessions.api import schema
from sessions.api.serializers import (
    ECHOED_OPTIONS,
    SessionCreateInput,
    SessionOutput,
    SessionStatusOutput,
)
from sessions.models import BrowserSession, EndedReason, SessionStatus


def client_wait_budget(request: Request, configured: float, *, floor: float = 0.1) -> float:
    """How long we may block: our own bound, and never past the client's read timeout.

    The SDK resends a request that times out, so answering after it gave up duplicates work.
    `floor` is the least we wait whatever the client says (never more than `configured`).
    """
    raw = request.headers.get("x-stainless-read-timeout")
    try:
        client = float(raw) if raw else None
    except ValueError:
        client = None
    if client is None or client <= 0:
        return configured
    # Answer 2 s before the client gives up, but not sooner than `floor`.
    return min(configured, max(floor, 0.1, client - 2.0))


class ComputerListCreateView(APIView):
    @schema.computer_list_schema
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("type")
        if kind not in (None, "", "live", "persistent"):
            raise InvalidInput("type must be 'live' or 'persistent'.")
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            raise InvalidInput("limit must be an integer.") from None
        if not 1 <= limit <= 500:
            raise InvalidInput("limit must be between 1 and 500.")
        sessions = selectors.session_list(
            account=request_account(request),
            # type=persistent: sessions whose state is saved, which have mostly ended.
            status=request.query_params.get("status", "all" if kind == "persistent" else "live"),
            persistent=True if kind == "persistent" else None,
            limit=limit,
        )
        return Response(SessionOutput(sessions, many=True).data)  # type: ignore[arg-type]  # many=True takes a list

    @schema.computer_create_schema
    def post(self, request: Request) -> HttpResponseBase:
        serializer = SessionCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        display = data.get("display") or {}
        spec = services.SessionSpec(
            kind=data["kind"],
            max_lifetime_seconds=data["max_lifetime_seconds"],
            inactivity_timeout_seconds=data["inactivity_timeout_seconds"],
            idle_timeout_enabled=data["idle_timeout_enabled"],
            display_width=display.get("width", 1024),
            display_height=display.get("height", 768),
            display_scale=display.get("scale", 1.0),
            options={name: data[name] for name in ECHOED_OPTIONS if name in data},
            proxies=data.get("proxies"),
            browser=data["browser"],
        )
        account = request_account(request)
        budget = client_wait_budget(
            request, settings.SESSION_CREATE_WAIT_SECONDS, floor=settings.SESSION_CREATE_MIN_WAIT_SECONDS
        )
        environment_id = str(data.get("environment_id") or "")
        # Taken before the create: a 429 means no session and no charge.
        with inflight_slot_accepting(account=account, wait_seconds=budget) as slot:
            if environment_id:
                # A create right after the DELETE of the session it restores gets what it saved.
                saved_state.saved_state_wait_saved(
                    account=account, environment_id=environment_id, timeout=budget / 2
                )
            api_key = request_key(request)
            session = services.session_create(
                account=account, spec=spec, api_key_id=api_key.id if api_key is not None else None
            )
        # The wait for the browser holds no web thread (project/awaiting.py).
        return awaited_response(
            self,
            request,
            event=services.started_event(session.pk),
            timeout=budget,
            then=lambda _: _created(session=session, environment_id=environment_id),
            slot=slot,
        )


def _created(*, session: BrowserSession, environment_id: str) -> Response:
    """The create's answer once its browser started, or the error of a start that failed."""
    try:
        session = services.session_start_waited(session=session)
    except ServiceUnavailable:
        session.refresh_from_db()
        if session.error.startswith(saved_state.RESTORE_FAILED):
            raise saved_state.EnvironmentRestoreFailed(
                f"The saved state of environment {environment_id!r} could not be restored "
                f"({session.error.split(': ', 1)[-1]}); no session is running and nothing was "
                "charged."
            ) from None
        if session.ended_reason != EndedReason.MAX_LIFETIME:
            raise
        # A lifetime shorter than the browser's start ran out first (found by schemathesis): the
        # request was valid and sending it again ends the same way, so not a 503 but the session
        # as it is, terminated.
    return Response(SessionOutput(session).data, status=status.HTTP_201_CREATED)


class ComputerDetailView(APIView):
    @schema.computer_retrieve_schema
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        session = services.session_enforce_expiry(session=session)
        return Response(SessionOutput(session).data)

    @schema.computer_delete_schema
    def delete(self, request: Request, session_id: str) -> Response:
        """Idempotent: ending an ended session is a success that changes nothing."""
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        session = services.session_enforce_expiry(session=session)
        if session.status != SessionStatus.TERMINATED:
            services.session_terminate(session_id=session.pk, reason=EndedReason.USER)
            session.refresh_from_db()
        account = request_account(request)
        account_id = account.pk
        budget = client_wait_budget(request, settings.SESSION_STOP_WAIT_SECONDS)
        # The end is recorded already: an account with every wait slot held gets it without waiting.
        slot = inflight_slot_take(account_id=account_id, limit=inflight_limit(account), slot_ttl=budget + 30)
        if slot is not None:
            try:
                session = services.session_wait_released(session=session, timeout=budget)
            finally:
                inflight_slot_release(account_id=account_id, token=slot)
        return Response(SessionOutput(session).data)


class ComputerStatusView(APIView):
    @schema.computer_status_schema
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        session = services.session_enforce_expiry(session=session)
        return Response(SessionStatusOutput(session).data)


class ComputerKeepaliveView(APIView):
    @schema.computer_keepalive_schema
    def post(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        session = services.session_touch(session=session)
        return Response(SessionOutput(session).data)
