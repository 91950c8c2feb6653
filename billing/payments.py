"""Adding credits: a payment provider adapter, Stripe Checkout its first implementation.

A provider does two things: start a payment (`checkout_create`: the customer is sent to the
provider's page) and turn the provider's signed notification into a confirmed purchase
(`event_parse`). Crediting is ours, once: `topup_credit` posts the credits to the ledger keyed
by the provider's payment (its checkout session), and records the notification's event id
(TopupPayment, unique), so a replayed or repeated notification credits nothing more.

The console (console/views/billing.py) starts payments; the provider's webhook
(billing/payment_views.py, /billing/stripe/webhook) confirms them. Nothing here reaches the
network in tests: Stripe's API address is a setting (STRIPE_API_BASE) and the HTTP client is
injectable, and webhook tests sign their own event bodies with Stripe's documented scheme.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from billing.ledger import ledger_post
from billing.models import LedgerEntry, TopupPayment
from project.exceptions import ApplicationError, InvalidInput

logger = logging.getLogger(__name__)

CREDITS_STEP = 1000  # credits are sold in packs of 1,000
MAX_CREDITS = 10_000_000


class PaymentRejected(ApplicationError):
    """A notification that is not a valid, signed one of the provider's (400, nothing credited)."""

    status_code = 400
    code = "invalid_signature"
    default_detail = "The notification's signature does not verify."


class PaymentUnavailable(ApplicationError):
    status_code = 503
    code = "payment_provider_unavailable"
    default_detail = "The payment provider could not be reached; nothing was charged. Try again."


@dataclass(frozen=True)
class Checkout:
    url: str  # where to send the customer
    reference: str  # the provider's id of the payment (Stripe: the checkout session id)


@dataclass(frozen=True)
class Purchase:
    """A payment the provider confirmed: credit `credits` to `account_id`, once."""

    event_id: str
    reference: str
    account_id: int
    credits: int


class PaymentProvider(Protocol):
    name: str

    def checkout_create(
        self, *, account_id: int, credits: int, success_url: str, cancel_url: str, email: str
    ) -> Checkout: ...

    def event_parse(self, *, payload: bytes, headers: dict[str, str]) -> Purchase | None:
        """The purchase a signed notification confirms; None for a valid notification that
        confirms none (another event type, an unpaid session). PaymentRejected if unsigned."""
        ...


def price_of(credits: int) -> int:
    """What `credits` cost, in the currency's smallest unit."""
    return credits // CREDITS_STEP * settings.STRIPE_PRICE_PER_1000_CREDITS


def credits_check(credits: int) -> int:
    if not CREDITS_STEP <= credits <= MAX_CREDITS or credits % CREDITS_STEP:
        raise InvalidInput(
            f"Credits are sold in multiples of {CREDITS_STEP:,}, up to {MAX_CREDITS:,}.",
            code="credits_invalid",
        )
    return credits


class StripeCheckout:
    """Stripe Checkout (hosted payment page) with the `stripe` library.

    The checkout session carries the account and the credits in its metadata; the
    `checkout.session.completed` event (and `checkout.session.async_payment_succeeded` for
    delayed methods) with `payment_status` `paid` confirms it.
    """

    name = "stripe"
    PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")

    def __init__(self, *, secret_key: str, webhook_secret: str, http_client: Any = None) -> None:
        self._webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": settings.STRIPE_API_BASE},
            http_client=http_client,
            max_network_retries=1,
        )

    def checkout_create(
        self, *, account_id: int, credits: int, success_url: str, cancel_url: str, email: str
    ) -> Checkout:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": credits // CREDITS_STEP,
                    "price_data": {
                        "currency": settings.STRIPE_CURRENCY,
                        "unit_amount": settings.STRIPE_PRICE_PER_1000_CREDITS,
                        "product_data": {"name": f"{CREDITS_STEP:,} Browserfleet credits"},
                    },
                }
            ],
            "client_reference_id": str(account_id),
            "metadata": {"account_id": str(account_id), "credits": str(credits)},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if email:
            params["customer_email"] = email
        try:
            session = self._client.v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]  # a plain dict of the documented params
        except stripe.StripeError as exc:
            logger.warning("stripe checkout for account %s failed: %r", account_id, exc)
            raise PaymentUnavailable() from exc
        return Checkout(url=str(session.url), reference=str(session.id))

    def event_parse(self, *, payload: bytes, headers: dict[str, str]) -> Purchase | None:
        signature = headers.get("stripe-signature", "")
        try:
            # Stripe's scheme: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">`,
            # within 5 minutes of now.
            event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise PaymentRejected() from exc
        if event.type not in self.PAID_EVENTS:
            return None
        session: dict[str, Any] = event.to_dict()["data"]["object"]
        if session.get("payment_status") != "paid":
            return None  # completed, but paid later (async_payment_succeeded confirms it)
        metadata = session.get("metadata") or {}
        try:
            account_id = int(metadata["account_id"])
            credits = int(metadata["credits"])
        except (KeyError, TypeError, ValueError):
            logger.error("stripe event %s: a paid checkout session without our metadata", event.id)
            return None
        return Purchase(
            event_id=str(event.id), reference=str(session["id"]), account_id=account_id, credits=credits
        )


def payment_provider(*, http_client: Any = None) -> PaymentProvider | None:
    """The configured provider, or None (the Billing page then says whom to ask)."""
    if settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET:
        return StripeCheckout(
            secret_key=settings.STRIPE_SECRET_KEY,
            webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
            http_client=http_client,
        )
    return None


def topup_credit(*, provider: str, purchase: Purchase) -> bool:
    """Credit a confirmed purchase once; False when this event or this payment was credited
    before (a replay, a second event for the same payment)."""
    try:
        with transaction.atomic():
            payment = TopupPayment.objects.create(
                account_id=purchase.account_id,
                provider=provider,
                provider_event_id=purchase.event_id,
                provider_reference=purchase.reference,
                credits=purchase.credits,
            )
            posted = ledger_post(
                account_id=purchase.account_id,
                amount=purchase.credits,
                kind=LedgerEntry.Kind.TOPUP,
                idempotency_key=f"topup:{provider}:{purchase.reference}",
                reason=f"{provider} payment {purchase.reference}",
            )
            if not posted.created:
                return False  # the payment was credited through another event: keep the record
            TopupPayment.objects.filter(pk=payment.pk).update(ledger_entry_id=posted.entry_id)
    except IntegrityError:
        return False  # this event was handled before (or is being handled right now)
    logger.info(
        "account %s: %s credits bought (%s %s)",
        purchase.account_id,
        purchase.credits,
        provider,
        purchase.reference,
    )
    return True
