"""Answers /healthz, /readyz and /metrics before the rest of the middleware stack.

Kubernetes probes and Prometheus send the pod's or target's address as Host, which is rarely in
DJANGO_ALLOWED_HOSTS: CommonMiddleware would answer 400. These views build no URLs from the
Host header (the reason to check it), need no session, CSRF or messages, and do their own
access control (/metrics), so they skip all of that and stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ops import metrics, probes
from project.exceptions import error_body

_VIEWS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": probes.healthz,
    "/readyz": probes.readyz,
    "/metrics": metrics.metrics,
}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = _VIEWS.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            body = error_body(status_code=405, code="method_not_allowed", detail="Use GET.")
            return JsonResponse(body, status=405, headers={"Allow": "GET, HEAD"})
        return view(request)
