"""/favicon.ico for every page (the admin's too): browsers ask for it whatever the page says."""

from __future__ import annotations

import functools
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

_ICON = Path(__file__).resolve().parent.parent / "static" / "console" / "favicon.ico"


@functools.cache
def _icon_bytes() -> bytes:
    return _ICON.read_bytes()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_icon_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
