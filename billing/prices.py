"""Default prices: credits grow with what an action costs us to run.

Used by the seeding data migration (historical model) and by tests after a table flush.
"""

from __future__ import annotations

from typing import Any

DEFAULT_PRICES: dict[str, int] = {
    # cheap: one input event or a pause
    "click": 1,
    "double_click": 1,
    "right_click": 1,
    "move": 1,
    "drag": 1,
    "mouse_down": 1,
    "mouse_up": 1,
    "type": 1,
    "point_and_type": 1,
    "hotkey": 1,
    "key_down": 1,
    "key_up": 1,
    "scroll": 1,
    "wait": 1,
    "list_tabs": 1,
    "switch_tab": 1,
    "close_tab": 1,
    "viewport": 1,
    "change_proxy": 1,
    # more: page loads and page-sized payloads
    "navigate": 2,
    "new_tab": 2,
    "screenshot": 2,
    "html": 2,
    # more still: page analysis
    "observe": 5,
    "step": 5,
    # most: structured extraction
    "scrape": 10,
    # time: per started minute of a session, idle time included
    "session_minute": 1,
    # bytes: per started MB (10**6 bytes, both ways) through the operator's proxy pool
    # (use_advanced_proxy); a tenant's own proxies are not charged for bytes
    "proxy_mb": 2,
}


def seed_prices(price_model: Any) -> None:
    """Create missing prices; never overwrite an operator's edits."""
    for item, credits in DEFAULT_PRICES.items():
        price_model.objects.get_or_create(item=item, defaults={"credits": credits})
