"""Per-plan request rate: a fixed one-minute window per account, counted in Redis."""

from __future__ import annotations

import time
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from project.exceptions import TooManyRequests
from project.redis import get_redis


class PlanRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        account = request.user
        plan = getattr(account, "plan", None)
        if plan is None or plan.requests_per_minute is None:
            return True
        now = time.time()
        window = int(now // 60)
        key = f"bf:rate:{account.pk}:{window}"
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 61)
        count = pipe.execute()[0]
        if count > plan.requests_per_minute:
            raise TooManyRequests(
                f"The {plan.name} plan allows {plan.requests_per_minute} requests per minute.",
                code="rate_limited",
                retry_after=max(1, int(60 - now % 60) + 1),
                extra={"limit": plan.requests_per_minute},
            )
        return True
