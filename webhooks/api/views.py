"""/v1/webhooks: an account's endpoints, their delivery log, tests and redeliveries.

Thin views: input serializer, one service call, output serializer. The account is the request's
principal (DRF's request.user); this app sits below accounts and names no account class.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.exceptions import InvalidInput
from project.openapi import errors
from webhooks import selectors, services
from webhooks.api.serializers import (
    DeliveryOutput,
    DeliveryPageOutput,
    EndpointInput,
    EndpointListOutput,
    EndpointOutput,
    EndpointPatchInput,
    EndpointSecretOutput,
    TestOutput,
)

TAG = "webhooks"


def _account(request: Request) -> Any:
    return request.user


def _id(request: Request) -> int:
    return int(_account(request).pk)


def _max_endpoints(request: Request) -> int:
    # Read afresh: the account that authentication builds carries only the plan's hot fields.
    # By model label: accounts sit above this app.
    plan_model = apps.get_model("accounts", "Plan")
    limit = (
        plan_model.objects.filter(pk=_account(request).plan_id)
        .values_list("max_webhook_endpoints", flat=True)
        .first()
    )
    return int(limit or 0)


class EndpointListView(APIView):
    @extend_schema(tags=[TAG], operation_id="webhooks_list", responses={200: EndpointListOutput, **errors()})
    def get(self, request: Request) -> Response:
        endpoints = selectors.endpoints_of(account_id=_id(request))
        return Response(EndpointListOutput({"results": endpoints}).data)

    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_create",
        request=EndpointInput,
        responses={201: EndpointSecretOutput, **errors()},
        description="A new endpoint. The signing secret is in this answer only.",
    )
    def post(self, request: Request) -> Response:
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.endpoint_create(
            account_id=_id(request),
            max_endpoints=_max_endpoints(request),
            **data.validated_data,
        )
        body = EndpointSecretOutput(endpoint, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


ENDPOINT_ID = OpenApiParameter(
    "endpoint_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="`whe_...`"
)


class EndpointDetailView(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_retrieve",
        parameters=[ENDPOINT_ID],
        responses={200: EndpointOutput, **errors(404)},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(
            EndpointOutput(services.endpoint_get(account_id=_id(request), endpoint_id=endpoint_id)).data
        )

    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_update",
        parameters=[ENDPOINT_ID],
        request=EndpointPatchInput,
        responses={200: EndpointOutput, **errors(404)},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        data = EndpointPatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(
            account_id=_id(request), endpoint_id=endpoint_id, changes=dict(data.validated_data)
        )
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_destroy",
        parameters=[ENDPOINT_ID],
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        services.endpoint_delete(account_id=_id(request), endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateView(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_rotate",
        parameters=[ENDPOINT_ID],
        request=None,
        responses={200: EndpointSecretOutput, **errors(404)},
        description="A new signing secret, in this answer only; the old one signs alongside for 24 h.",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint, secret = services.endpoint_rotate(account_id=_id(request), endpoint_id=endpoint_id)
        return Response(EndpointSecretOutput(endpoint, context={"secret": secret}).data)


class EndpointTestView(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_test",
        parameters=[ENDPOINT_ID],
        request=None,
        responses={202: TestOutput, **errors(404)},
        description="Send a `webhook.test` event to this endpoint; it shows in its delivery log.",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        event_id = services.endpoint_test(account_id=_id(request), endpoint_id=endpoint_id)
        return Response(TestOutput({"event_id": event_id}).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListView(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_deliveries",
        parameters=[
            ENDPOINT_ID,
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-100, default 50."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="`next_cursor` of the previous page."),
        ],
        responses={200: DeliveryPageOutput, **errors(404)},
        description="The endpoint's deliveries of the last 7 days, newest first.",
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = services.endpoint_get(account_id=_id(request), endpoint_id=endpoint_id)
        try:
            limit = int(request.query_params.get("limit", "50"))
            cursor = request.query_params.get("cursor")
            before = int(cursor) if cursor else None
        except ValueError:
            raise InvalidInput("limit and cursor must be integers.") from None
        if not 1 <= limit <= 100 or (before is not None and not 0 < before < 2**63):
            raise InvalidInput("limit must be 1-100; cursor a next_cursor.")
        deliveries = selectors.deliveries_of(endpoint_id=endpoint.pk)
        if before is not None:
            deliveries = deliveries.filter(pk__lt=before)
        rows = list(deliveries[: limit + 1])
        page = rows[:limit]
        next_cursor = str(page[-1].pk) if len(rows) > limit else None
        return Response(DeliveryPageOutput({"results": page, "next_cursor": next_cursor}).data)


DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.INT, OpenApiParameter.PATH)


class DeliveryRedeliverView(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="webhooks_redeliver",
        parameters=[DELIVERY_ID],
        request=None,
        responses={202: DeliveryOutput, **errors(404)},
        description="Send a delivery again (same event id), from its first attempt.",
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = services.delivery_redeliver(account_id=_id(request), delivery_id=delivery_id)
        delivery = selectors.deliveries_of(endpoint_id=delivery.endpoint_id).get(pk=delivery.pk)
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)
