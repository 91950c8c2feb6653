"""Celery's configuration: the CELERY_* settings, read once.

Celery looks several settings up on every message it sends (serializer, routes, protocol,
queues...). Read straight from `django.conf.settings`, each lookup went through Django's lazy
settings object and, for the many keys left at Celery's defaults, an AttributeError: ~20 such
lookups and ~90 us of CPU per `send_task` (docs/benchmarks.md, "The broker hop"). This module
copies the CELERY_* names into a plain object when Celery first reads its configuration (after
Django's settings are loaded), so a lookup is an attribute read. The settings are not meant to
change while a process runs; nothing here overrides them at runtime.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.conf import settings

config = SimpleNamespace(
    **{name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}
)
