"""Submit: a job and its items from a tenant's request, checked before anything costs, and its
maximum cost held (billing.services.job_hold_place)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import Account, Plan
from billing.services import job_hold_place, prices_of
from jobs import dispatch
from jobs.models import Job, JobItem, JobStatus
from jobs.selectors import schema_columns
from project.exceptions import Conflict, InvalidInput, PayloadTooLarge, TooManyRequests
from sessions import proxies as session_proxies
from sessions.location import CHROMIUM
from sessions.saved_state import saved_state_require_readable
from sessions.services import browser_flavour_check
from sessions.url_policy import Resolved, lookup_needed, navigation_url, resolve_hosts


@dataclass(frozen=True)
class JobSpec:
    items: list[dict[str, Any]]  # {"url", "key"?, "metadata"?}
    scrape: dict[str, Any]
    screenshot: bool = False
    wait_for: dict[str, Any] | None = None
    page_timeout_seconds: int = 30
    max_concurrency: int = 2
    per_domain_concurrency: int = 2
    max_retries: int = 2
    max_credits: int | None = None
    ignore_invalid_urls: bool = False
    webhook: dict[str, Any] | None = None
    environment_id: str = ""  # a saved browser state the job's browsers start with, read-only
    # Upstream proxies (docs/proxies.md): the pool, or the tenant's own rules (checked, with their
    # credentials: sealed onto the job, never stored in the clear).
    use_advanced_proxy: bool = False
    proxy_country: str = ""
    proxies: list[dict[str, str]] | None = None
    browser: str = ""  # the browsers' flavour (sessions/location.py); blank: JOB_BROWSER_FLAVOUR


def job_browser_flavour(asked: str) -> str:
    """The flavour of a job's browsers: what it asked for, else JOB_BROWSER_FLAVOUR (full Chromium
    on the Grid backend, whose nodes run nothing else); 400 for a flavour this service cannot run."""
    if not asked:
        asked = settings.JOB_BROWSER_FLAVOUR if settings.BROWSER_BACKEND == "local" else CHROMIUM
    browser_flavour_check(asked)
    return asked


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# What a job keeps of the URLs it skipped (invalid or duplicate): the first 100 of each, as an
# index, a reason and the start of the URL, so what a tenant sends is never stored whole.
LISTED_PROBLEMS_MAX = 100
LISTED_URL_CHARS = 200
LISTED_REASON_CHARS = 300

MAX_URL_CHARS = 4096  # JobItem.url
MAX_KEY_CHARS = 2048  # JobItem.key


def item_key(url: str) -> str:
    """An item's default key: its normalised URL, or a digest of it when that is too long."""
    key = normalise_url(url)
    if len(key) > MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def normalise_url(url: str) -> str:
    """The de-duplication key of a URL: scheme and host lower-cased, default port and fragment
    dropped, an empty path as "/"."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if parts.username:
        userinfo = parts.username + (f":{parts.password}" if parts.password else "")
        host = f"{userinfo}@{host}"
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))


def _checked_url(url: Any, resolved: Resolved) -> tuple[str, str | None]:
    """(the URL the browser will load, None) or ("", why it cannot be visited).

    The same policy as `navigate` (sessions/url_policy.py): the WHATWG serialisation is what the
    browser loads; each host is resolved once per submit.
    """
    if not isinstance(url, str) or not url.strip():
        return "", "not a URL."
    if len(url) > MAX_URL_CHARS:
        return "", f"The URL is longer than {MAX_URL_CHARS} characters."
    try:
        href = navigation_url(url, resolved=resolved)
    except InvalidInput as exc:
        return "", exc.detail
    if len(href) > MAX_URL_CHARS:  # percent-encoding made it longer
        return "", f"The URL is longer than {MAX_URL_CHARS} characters once encoded."
    return href, None


def page_price(*, screenshot: bool) -> int:
    return sum(prices_of(["scrape", "screenshot"] if screenshot else ["scrape"]))


# Most bytes one item may take in a submit body: url, key and metadata at their caps, plus JSON.
ITEM_MAX_BODY_BYTES = 4096 + 2048 + 4096 + 256
# The rest of the body (scrape schema, webhook, options).
SPEC_MAX_BODY_BYTES = 256 * 1024


def job_submit_plan(*, account: Account, body_bytes: int) -> Plan:
    """The account's plan, once a submit of `body_bytes` (its Content-Length, unread) could fit it.

    Runs before the body is parsed: a body larger than the plan's `max_job_urls` items could take
    is refused (413) without reading it, so a free plan's 100,000-URL body costs one query.
    """
    plan = Plan.objects.only("name", "max_job_urls").get(pk=account.plan_id)
    limit = min(settings.JOB_MAX_BODY_BYTES, plan.max_job_urls * ITEM_MAX_BODY_BYTES + SPEC_MAX_BODY_BYTES)
    if body_bytes > limit:
        raise PayloadTooLarge(
            f"The request body is larger than {limit} bytes, the most a job of the {plan.name} "
            f"plan's {plan.max_job_urls} URLs may take.",
            extra={"limit": limit},
        )
    return plan


def job_submit_count_check(*, plan: Plan, body: Any) -> None:
    """400 `job_too_large` when the body lists more URLs than the plan allows; before any URL is
    parsed or looked up."""
    if not isinstance(body, dict):
        return
    for name in ("urls", "items"):
        given = body.get(name)
        if isinstance(given, list) and len(given) > plan.max_job_urls:
            raise _too_large(plan, len(given))


def _too_large(plan: Plan, urls: int) -> InvalidInput:
    return InvalidInput(
        f"The {plan.name} plan allows {plan.max_job_urls} URLs per job and this job has {urls}.",
        code="job_too_large",
        extra={"limit": plan.max_job_urls, "urls": urls},
    )


def job_submit(
    *,
    account: Account,
    spec: JobSpec,
    idempotency_key: str = "",
    request_hash: str = "",
    api_key_id: int | None = None,
) -> tuple[Job, bool]:
    """Create a job and its items and hold its maximum cost; (job, created).

    The same Idempotency-Key with the same body returns the job it created (created False); with
    another body, 409. 402 (nothing created) when the balance does not cover the maximum cost.
    """
    if idempotency_key:
        existing = _job_for_key(account, idempotency_key, request_hash)
        if existing is not None:
            return existing, False
    # Read afresh: the account that authentication builds carries only the plan's hot fields.
    plan = Plan.objects.get(pk=account.plan_id)
    if len(spec.items) > plan.max_job_urls:
        raise _too_large(plan, len(spec.items))
    items, invalid, duplicates = _prepare_items(spec)
    if not items:
        raise InvalidInput(
            "The job has no valid URL to visit.", code="no_valid_urls", extra={"invalid_urls": invalid}
        )
    if spec.environment_id:
        saved_state_require_readable(account=account, environment_id=spec.environment_id)
    flavour = job_browser_flavour(spec.browser)
    price = page_price(screenshot=spec.screenshot)
    # Each try is charged (OUR_FAILURES aside): the hold covers every try of every page.
    hold = len(items) * price * (spec.max_retries + 1)
    if spec.max_credits is not None:
        if spec.max_credits < price:
            raise InvalidInput(
                f"max_credits {spec.max_credits} does not cover one page ({price} credits).",
                code="budget_too_small",
                extra={"page_price": price},
            )
        hold = min(hold, spec.max_credits)
    max_concurrency = spec.max_concurrency
    if plan.max_concurrent_sessions is not None:
        max_concurrency = min(max_concurrency, plan.max_concurrent_sessions)
    job = Job(
        account=account,
        api_key_id=api_key_id,
        spec={
            "scrape": spec.scrape,
            # jsonb does not keep key order: the export's columns are fixed here, in schema order.
            "columns": schema_columns(spec.scrape),
            "screenshot": spec.screenshot,
            "wait_for": spec.wait_for,
            "page_timeout_seconds": spec.page_timeout_seconds,
            "browser": flavour,
            **({"environment_id": spec.environment_id} if spec.environment_id else {}),
        },
        max_concurrency=max_concurrency,
        per_domain_concurrency=spec.per_domain_concurrency,
        max_retries=spec.max_retries,
        max_credits=spec.max_credits,
        total=len(items),
        invalid_urls=invalid,
        duplicate_urls=duplicates,
        page_price=price,
        credits_held=hold,
        webhook=spec.webhook,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    _proxy_config_set(job, spec)
    try:
        with transaction.atomic():
            _queued_jobs_check(account.pk, plan)
            job.save(force_insert=True)
            JobItem.objects.bulk_create(
                [
                    JobItem(
                        job=job,
                        seq=seq,
                        key=item["key"],
                        url=item["url"],
                        domain=item["domain"],
                        metadata=item.get("metadata"),
                    )
                    for seq, item in enumerate(items)
                ],
                batch_size=2000,
            )
            job_hold_place(account_id=account.pk, job_id=job.pk, amount=hold, api_key_id=job.api_key_id)
            dispatch.jobs_dispatch()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer with its job.
        if idempotency_key:
            existing = _job_for_key(account, idempotency_key, request_hash)
            if existing is not None:
                return existing, False
        raise
    return job, True


def _proxy_config_set(job: Job, spec: JobSpec) -> None:
    """Seal the job's proxies onto it, as a session's (sessions/proxies.py): a pool member chosen
    for the job (every browser of it keeps that member), or the tenant's rules. ProxyUnavailable
    (4xx, nothing created) when this server cannot honour them: a job never silently goes direct.
    The job's `spec` keeps the public echo only (servers and patterns, never credentials)."""
    if spec.use_advanced_proxy:
        session_proxies.proxies_available()
        member = session_proxies.pool_choose(session_id=job.pk, country=spec.proxy_country)
        config: dict[str, Any] = {"pool": member.name, "country": spec.proxy_country}
        job.spec["use_advanced_proxy"] = True
        if spec.proxy_country:
            job.spec["proxy_country"] = spec.proxy_country
    elif spec.proxies:
        session_proxies.proxies_available()
        config = {"rules": spec.proxies}
        job.spec["proxies"] = session_proxies.proxies_public(spec.proxies)
    else:
        return
    job.proxy_config = session_proxies.proxy_config_seal(session_id=job.pk, config=config)


def _queued_jobs_check(account_id: int, plan: Plan) -> None:
    """429 when the account already has its plan's `max_queued_jobs` waiting; under the account
    row lock (the first lock of the order), so two submits cannot both take the last place."""
    if plan.max_queued_jobs is None:
        return
    Account.objects.select_for_update(no_key=True).only("pk").get(pk=account_id)
    queued = Job.objects.filter(account_id=account_id, status=JobStatus.QUEUED).count()
    if queued >= plan.max_queued_jobs:
        raise TooManyRequests(
            f"The {plan.name} plan allows {plan.max_queued_jobs} queued jobs and {queued} are waiting; "
            "wait for one to start or cancel one.",
            code="too_many_queued_jobs",
            retry_after=settings.JOB_TICK_INTERVAL_SECONDS,
            extra={"limit": plan.max_queued_jobs},
        )


def _job_for_key(account: Account, key: str, request_hash: str) -> Job | None:
    existing = Job.objects.filter(account=account, idempotency_key=key).first()
    if existing is not None and existing.request_hash != request_hash:
        raise Conflict(
            "This Idempotency-Key was used for a different job request; use a new key.",
            code="idempotency_key_reused",
            extra={"job_id": existing.pk},
        )
    return existing


def _prepare_items(spec: JobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    # Every host first, looked up at once with a deadline, then each URL judged from the answers:
    # a submit never waits on DNS longer than JOB_SUBMIT_RESOLVE_SECONDS (issue 19, item 2).
    resolved = resolve_hosts(
        {
            host
            for raw in spec.items
            if isinstance(raw.get("url"), str) and (host := lookup_needed(raw["url"]))
        },
        concurrency=settings.JOB_SUBMIT_RESOLVE_CONCURRENCY,
        deadline_seconds=settings.JOB_SUBMIT_RESOLVE_SECONDS,
    )
    items: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(spec.items):
        given = raw.get("url")
        url, problem = _checked_url(given, resolved)
        if problem is not None:
            if not spec.ignore_invalid_urls:
                raise InvalidInput(
                    f"URL {index} ({str(given)[:200]!r}) cannot be visited: {problem} "
                    "Set ignore_invalid_urls to skip such URLs.",
                    code="invalid_url",
                    extra={"url": str(given)[:200], "index": index},
                )
            if len(invalid) < LISTED_PROBLEMS_MAX:
                invalid.append(
                    {
                        "url": str(given)[:LISTED_URL_CHARS],
                        "index": index,
                        "reason": problem[:LISTED_REASON_CHARS],
                    }
                )
            continue
        key = raw.get("key") or item_key(url)
        if key in seen:
            if len(duplicates) < LISTED_PROBLEMS_MAX:
                duplicates.append(str(given)[:LISTED_URL_CHARS])
            continue
        seen.add(key)
        items.append(
            {
                "url": url,
                "key": key,
                "domain": (urlsplit(url).hostname or "").lower(),
                "metadata": raw.get("metadata"),
            }
        )
    return items, invalid, duplicates
