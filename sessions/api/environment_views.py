"""Saved browser states (docs/saved-state.md): save one now, show, list and forget them.

`POST /computers/{id}/state` is served at the root too (beside the Computer API); the
`/v1/environments` routes only under /v1. Every answer is EnvironmentOutput, declared once.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account
from project.exceptions import InvalidInput
from project.fields import iso
from project.openapi import errors
from sessions import saved_state, selectors, services
from sessions.api.schema import SESSION_ID
from sessions.api.views import client_wait_budget
from sessions.models import SavedState

ENVIRONMENTS = "environments"
ENVIRONMENT_ID = OpenApiParameter(
    "environment_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The id of the persistent session that saved it (`comp_...`).",
)


class EnvironmentOutput(serializers.Serializer[SavedState]):
    """A saved browser state. Its contents are never shown: only their size and origins."""

    id = serializers.CharField(help_text="The id of the persistent session that saved it.")
    status = serializers.ChoiceField(
        choices=["saving", "ready", "failed"],
        help_text="Of the last save; `failed` keeps the previous save's data (see `saved_at`).",
    )
    failure_reason = serializers.SerializerMethodField()
    restorable = serializers.BooleanField(source="has_data", help_text="Holds a state to restore.")
    restored_from = serializers.SerializerMethodField()
    size_bytes = serializers.IntegerField(help_text="Of the saved state's JSON, before encryption.")
    origins = serializers.ListField(child=serializers.CharField())
    cookie_count = serializers.IntegerField()
    created_at = serializers.SerializerMethodField()
    saved_at = serializers.SerializerMethodField()
    last_used_at = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField()

    def get_failure_reason(self, obj: SavedState) -> str | None:
        return obj.failure_reason or None

    def get_restored_from(self, obj: SavedState) -> str | None:
        return obj.restored_from or None

    def get_created_at(self, obj: SavedState) -> str | None:
        return iso(obj.created_at)

    def get_saved_at(self, obj: SavedState) -> str | None:
        return iso(obj.saved_at)

    def get_last_used_at(self, obj: SavedState) -> str | None:
        return iso(obj.last_used_at)

    def get_expires_at(self, obj: SavedState) -> str | None:
        return iso(obj.expires_at)


class ComputerStateView(APIView):
    @extend_schema(
        tags=["computers"],
        summary="Save a persistent session's browser state now",
        description=(
            "Saves cookies and storage under the session's id, as its end would. Idempotent. 409 "
            "`session_not_persistent` if the session was not created with `persistent: true`."
        ),
        parameters=[SESSION_ID],
        request=None,
        responses={200: EnvironmentOutput, **errors(404, 409, 410)},
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        session = services.session_require_active(session=session)
        budget = client_wait_budget(request, float(settings.SAVED_STATE_TIMEOUT_SECONDS + 5))
        state = saved_state.saved_state_save_now(session=session, timeout=budget)
        return Response(EnvironmentOutput(state).data)


class EnvironmentListView(APIView):
    @extend_schema(
        tags=[ENVIRONMENTS],
        summary="Saved browser states of the account, most recently used first",
        parameters=[OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 100.")],
        responses={200: EnvironmentOutput(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            raise InvalidInput("limit must be an integer.") from None
        if not 1 <= limit <= 500:
            raise InvalidInput("limit must be between 1 and 500.")
        states = saved_state.saved_state_list(account=request_account(request), limit=limit)
        return Response(EnvironmentOutput(states, many=True).data)  # type: ignore[arg-type]  # many=True takes a list


class EnvironmentDetailView(APIView):
    @extend_schema(
        tags=[ENVIRONMENTS],
        summary="A saved browser state: size, origins, status, when saved, used and expiring",
        parameters=[ENVIRONMENT_ID],
        responses={200: EnvironmentOutput, **errors(404)},
    )
    def get(self, request: Request, environment_id: str) -> Response:
        state = saved_state.saved_state_get(account=request_account(request), environment_id=environment_id)
        return Response(EnvironmentOutput(state).data)

    @extend_schema(
        tags=[ENVIRONMENTS],
        summary="Forget a saved browser state",
        parameters=[ENVIRONMENT_ID],
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, environment_id: str) -> Response:
        saved_state.saved_state_delete(account=request_account(request), environment_id=environment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
