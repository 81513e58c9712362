"""Map event names from any vocabulary onto Tailor's canonical names.

Segment's e-commerce spec (v2 "Product Viewed" and v1 "Viewed Product"), RudderStack (same names) and
the Taobao user-behavior codes (``pv`` / ``cart`` / ``fav`` / ``buy``) all land on the same canonical
snake_case names; names without an alias are kept, normalized to snake_case.

>>> canonical_name("Product Viewed"), canonical_name("pv"), canonical_name("Viewed Product")
('product_viewed', 'product_viewed', 'product_viewed')
>>> canonical_name("  Newsletter Signed-Up ")
'newsletter_signed_up'
"""

from __future__ import annotations

import re
from functools import lru_cache

from state_schemas import events as ev

# Keys are already normalized (snake_case); see ``_snake``.
ALIASES: dict[str, str] = {
    # Segment e-commerce v2 / RudderStack
    "product_viewed": ev.PRODUCT_VIEWED,
    "product_clicked": ev.PRODUCT_VIEWED,
    "product_added": ev.PRODUCT_ADDED,
    "wishlist_product_added_to_cart": ev.PRODUCT_ADDED,
    "product_removed": ev.PRODUCT_REMOVED,
    "product_added_to_wishlist": ev.PRODUCT_FAVORITED,
    "checkout_started": ev.CHECKOUT_STARTED,
    "order_completed": ev.ORDER_COMPLETED,
    # Segment e-commerce v1
    "viewed_product": ev.PRODUCT_VIEWED,
    "clicked_product": ev.PRODUCT_VIEWED,
    "added_product": ev.PRODUCT_ADDED,
    "removed_product": ev.PRODUCT_REMOVED,
    "started_checkout": ev.CHECKOUT_STARTED,
    "completed_order": ev.ORDER_COMPLETED,
    # Taobao UserBehavior
    "pv": ev.PRODUCT_VIEWED,
    "cart": ev.PRODUCT_ADDED,
    "fav": ev.PRODUCT_FAVORITED,
    "buy": ev.ORDER_COMPLETED,
}

_NON_WORD = re.compile(r"[^0-9a-z]+")


def _snake(name: str) -> str:
    return _NON_WORD.sub("_", name.strip().lower()).strip("_")


@lru_cache(maxsize=4096)
def canonical_name(raw: str) -> str:
    """The canonical name for a track event name (cached: producers reuse a small vocabulary)."""
    snake = _snake(raw)
    return ALIASES.get(snake, snake)
