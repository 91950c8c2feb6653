from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import LedgerEntry
from project.fields import iso
from project.pagination import paginate


class LedgerView(APIView):
    """The account's ledger lines, newest first: ?limit= (1-200, default 50) &offset=."""

    def get(self, request: Request) -> Response:
        page = paginate(
            request,
            LedgerEntry.objects.filter(account=request.user)
            .select_related("action")
            .order_by("-created_at", "-id"),
        )
        return Response(
            {
                "results": [
                    {
                        "id": entry.pk,
                        "kind": entry.kind,
                        "amount": entry.amount,
                        "balance_after": entry.balance_after,
                        "reason": entry.reason,
                        "session_id": entry.session_id,
                        "action_id": entry.action.public_id if entry.action else None,
                        "created_at": iso(entry.created_at),
                    }
                    for entry in page.pop("items")
                ],
                **page,
            }
        )
