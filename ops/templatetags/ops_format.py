from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: int | float | None) -> str:
    """Seconds as '1h 02m 03s' ('-' when unknown; negative means overdue)."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    total = abs(int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


@register.filter
def get_index(items: list, index: int):  # type: ignore[no-untyped-def,type-arg]
    return items[index]
