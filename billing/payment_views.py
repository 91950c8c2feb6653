"""The payment provider's webhook: /billing/stripe/webhook (outside /v1: Stripe calls it, no key).

A notification whose signature does not verify is a 400 that changes nothing; a verified one
that confirms a payment credits the account once (billing.payments.topup_credit); any other
verified event is acknowledged with 200 so that the provider stops sending it.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.payments import PaymentRejected, payment_provider, topup_credit
from project.exceptions import error_body

# Far above any Stripe event; a bigger body is not read.
_MAX_BODY = 256 * 1024


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    provider = payment_provider()
    if provider is None or provider.name != "stripe":
        return JsonResponse(
            error_body(status_code=404, code="not_found", detail="No Stripe account is configured."),
            status=404,
        )
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > _MAX_BODY:
        return JsonResponse(
            error_body(status_code=413, code="payload_too_large", detail="Too large."), status=413
        )
    try:
        purchase = provider.event_parse(
            payload=request.body, headers={k.lower(): v for k, v in request.headers.items()}
        )
    except PaymentRejected as exc:
        return JsonResponse(error_body(status_code=400, code=exc.code, detail=exc.detail), status=400)
    if purchase is None:
        return JsonResponse({"received": True, "credited": False})
    credited = topup_credit(provider=provider.name, purchase=purchase)
    return JsonResponse({"received": True, "credited": credited})


urlpatterns = [path("billing/stripe/webhook", stripe_webhook, name="stripe-webhook")]
