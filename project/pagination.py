"""Offset pagination for list endpoints: ?limit=&offset=, answered with `has_more`."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.request import Request

from project.exceptions import InvalidInput


def paginate(
    request: Request, queryset: QuerySet[Any], *, default: int = 50, maximum: int = 200
) -> dict[str, Any]:
    """The requested page of `queryset` as {"items", "limit", "offset", "has_more"}."""
    try:
        limit = int(request.query_params.get("limit", str(default)))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise InvalidInput("limit and offset must be integers.") from None
    if not 1 <= limit <= maximum or offset < 0:
        raise InvalidInput(f"limit must be 1-{maximum} and offset >= 0.")
    rows = list(queryset[offset : offset + limit + 1])  # one extra row tells whether more follow
    return {"items": rows[:limit], "limit": limit, "offset": offset, "has_more": len(rows) > limit}
