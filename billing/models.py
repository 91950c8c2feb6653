"""Credits: a balance per account and the append-only ledger that explains it."""

from __future__ import annotations

from django.db import models


class Balance(models.Model):
    """The account's spendable credits. Written only by billing.ledger, with a ledger row."""

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, primary_key=True, related_name="balance"
    )
    credits = models.BigIntegerField(default=0)
    # A charge that takes the balance from this or above to below it sends `credits.low` to the
    # account's webhooks (0: never).
    # The threshold in force: set directly (absolute credits), or recomputed from
    # `low_threshold_percent` at every top-up (billing.alerts).
    low_threshold = models.BigIntegerField(default=1000)
    # When set, the threshold is this percent of the last top-up (`last_topup`).
    low_threshold_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    last_topup = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(credits__gte=0), name="balance_never_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.credits}"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        GRANT = "grant"
        TOPUP = "topup"
        ACTION = "action"
        SESSION_TIME = "session_time"
        REFUND = "refund"
        ADJUSTMENT = "adjustment"
        # Batch jobs: credits held at submit, given back page by page as each page is charged
        # (job_page) and at the end for what was not used. Held credits are out of the balance.
        JOB_HOLD = "job_hold"
        JOB_RELEASE = "job_release"
        JOB_PAGE = "job_page"
        # Bytes through the operator's proxy pool (use_advanced_proxy), per started MB.
        PROXY = "proxy"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed: grants and refunds are positive, charges negative.
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    reason = models.CharField(max_length=255, blank=True, default="")
    session = models.ForeignKey(
        "browser_sessions.BrowserSession",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    action = models.ForeignKey(
        "browser_sessions.Action",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    # The API key the charge was made with (null: none, e.g. grants, or made before keys were
    # recorded). By model label: billing sits below accounts.
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    # One charge per key, forever: retries and redeliveries find the key taken and charge nothing.
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        # Being staff is not enough to mint credits: the admin's top-up and adjustment need this.
        permissions = [("add_credits", "Can top up or adjust an account's credits")]
        indexes = [models.Index(fields=["account", "-created_at"], name="ledger_account_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} ({self.idempotency_key})"


class Price(models.Model):
    """Credits per action type (and per started session minute), edited by operators."""

    SESSION_MINUTE = "session_minute"
    PROXY_MB = "proxy_mb"

    item = models.CharField(max_length=32, unique=True, help_text="an action type, or session_minute")
    credits = models.PositiveIntegerField()
    description = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["credits", "item"]

    def __str__(self) -> str:
        return f"{self.item}: {self.credits}"


class KeySpend(models.Model):
    """An API key's monthly spend cap and what the key spent in the current month (UTC).

    A row exists once a cap was set on the key (null cap: removed). The accept of an action
    checks and moves `spent` in its statement, under the balance row's lock (billing.ledger), so
    concurrent accepts cannot pass the cap together; other charges made with the key move it in
    ledger_post. `spent` belongs to `period_start`'s month; a charge in a later month starts it
    again from zero.
    """

    api_key = models.OneToOneField(
        "accounts.ApiKey", on_delete=models.CASCADE, primary_key=True, related_name="spend"
    )
    monthly_cap = models.BigIntegerField(null=True, blank=True)
    period_start = models.DateField()
    spent = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(monthly_cap__isnull=True) | models.Q(monthly_cap__gte=0),
                name="key_spend_cap_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"key {self.api_key_id}: {self.spent}/{self.monthly_cap}"


class TopupPayment(models.Model):
    """A payment provider's confirmation that credits were bought, credited once.

    `provider_event_id` is unique: a replayed or redelivered confirmation finds it taken and
    credits nothing (the ledger line's idempotency key is derived from it as well).
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="topups")
    provider = models.CharField(max_length=32)
    provider_event_id = models.CharField(max_length=255, unique=True)
    provider_reference = models.CharField(max_length=255, blank=True, default="")
    credits = models.BigIntegerField()
    ledger_entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.provider} {self.provider_event_id}: {self.credits}"
