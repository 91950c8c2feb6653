"""Who may see a console page, and of which account.

Every console view is written `view(request, member, ...)` and wrapped by `member_view`: the
signed-in user's membership is resolved once, here, and every query of the view starts from
`member.account`. An object of another account is then simply not found (404), as in the API.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from accounts.models import Membership
from accounts.selectors import memberships_of
from project.redis import get_redis

P = ParamSpec("P")
MemberView = Callable[Concatenate[HttpRequest, Membership, P], HttpResponseBase]

# The session key of the account a member of several accounts chose (console/views/account.py).
ACCOUNT_SESSION_KEY = "console_account_id"


def console_rate_limited(request: HttpRequest, subject: str) -> int | None:
    """A fixed one-minute window per signed-in user (or per address before login), in Redis.
    Returns the seconds to wait when over CONSOLE_REQUESTS_PER_MINUTE, else None."""
    now = time.time()
    key = f"bf:console:rate:{subject}:{int(now // 60)}"
    pipe = get_redis().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 61)
    count = int(pipe.execute()[0])
    if count > settings.CONSOLE_REQUESTS_PER_MINUTE:
        return max(1, int(60 - now % 60) + 1)
    return None


def rate_limited_response(request: HttpRequest, retry_after: int) -> HttpResponse:
    response = TemplateResponse(
        request, "console/rate_limited.html", {"retry_after": retry_after}, status=429
    ).render()
    response["Retry-After"] = str(retry_after)
    return response


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership the console shows: the account chosen in this login, else the oldest."""
    user_id = request.user.pk
    if user_id is None:
        return None
    memberships = memberships_of(user_id=user_id)
    chosen = request.session.get(ACCOUNT_SESSION_KEY)
    for membership in memberships:
        if membership.account_id == chosen:
            return membership
    return memberships[0] if memberships else None


def _wrap(
    inner: MemberView[P], *, owner_only: bool
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    def wrapped(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        retry_after = console_rate_limited(request, f"user:{request.user.pk}")
        if retry_after is not None:
            return rate_limited_response(request, retry_after)
        membership = current_membership(request)
        if membership is None:
            response: HttpResponseBase = TemplateResponse(request, "console/no_account.html", status=403)
        else:
            try:
                if owner_only and membership.role != Membership.Role.OWNER:
                    raise Http404
                response = inner(request, membership, *args, **kwargs)
            except Http404:
                response = TemplateResponse(
                    request, "console/404.html", page_context(membership, nav=""), status=404
                )
        if isinstance(response, TemplateResponse):
            response.render()
        add_never_cache_headers(response)
        return response

    functools.update_wrapper(wrapped, inner)
    return wrapped


def member_view(inner: MemberView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """Wrap a console view: signed in (else to the login page), a member of an active account
    (else a page saying so), within the console's rate limit, never cached; a Http404 raised
    inside renders the console's 404 page."""
    return _wrap(inner, owner_only=False)


def owner_view(inner: MemberView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """As member_view, for owners only: a member who is not an owner gets 404."""
    return _wrap(inner, owner_only=True)


# The navigation, in order: (key, label, URL name). "billing" and "keys" are the billing pages'
# (console/views/billing.py, console/views/keys.py).
NAV: list[tuple[str, str, str]] = [
    ("overview", "Overview", "console:overview"),
    ("usage", "Usage", "console:usage"),
    ("sessions", "Sessions", "console:sessions"),
    ("jobs", "Jobs", "console:jobs"),
    ("billing", "Billing", "console:billing"),
    ("keys", "API keys", "console:keys"),
    ("members", "Members", "console:members"),
]


def page_context(member: Membership, *, nav: str, **extra: Any) -> dict[str, Any]:
    """What the base template needs: the member, their account, the navigation."""
    return {
        "member": member,
        "account": member.account,
        "is_owner": member.role == Membership.Role.OWNER,
        "nav": NAV,
        "nav_current": nav,
        **extra,
    }


def render_page(
    request: HttpRequest, member: Membership, template: str, *, nav: str, http_status: int = 200, **extra: Any
) -> TemplateResponse:
    return TemplateResponse(request, template, page_context(member, nav=nav, **extra), status=http_status)


PAGE_SIZE = 50
MAX_OFFSET = 100_000


def list_offset(request: HttpRequest) -> int:
    """`?offset=`, clamped to [0, MAX_OFFSET]; anything unreadable is the first page."""
    try:
        return max(0, min(int(request.GET.get("offset", "0")), MAX_OFFSET))
    except ValueError:
        return 0


def render_filtered_list(
    request: HttpRequest,
    member: Membership,
    template: str,
    *,
    nav: str,
    filters: tuple[str, ...],
    fetch: Callable[[str, int, int], list[Any]],
    **extra: Any,
) -> TemplateResponse:
    """A list page with a status filter (`?status=`, unknown is "all") and Newer/Older links
    (`?offset=`, PAGE_SIZE rows a page): `fetch(status, limit, offset)` reads one row more than a
    page to tell whether there is an older one. The template gets `rows`, `status`, `filters`,
    `offset`, `next_offset` and `previous_offset` (console/_pager.html draws the links)."""
    status = request.GET.get("status", "all")
    if status not in filters:
        status = "all"
    offset = list_offset(request)
    rows = fetch(status, PAGE_SIZE + 1, offset)
    return render_page(
        request,
        member,
        template,
        nav=nav,
        rows=rows[:PAGE_SIZE],
        status=status,
        filters=filters,
        offset=offset,
        next_offset=offset + PAGE_SIZE if len(rows) > PAGE_SIZE else None,
        previous_offset=max(0, offset - PAGE_SIZE) if offset else None,
        **extra,
    )
