"""Who owns what is sold, and where it may be sold: the ownership rules, without I/O.

A product belongs to its seller (``Product.seller_id``, a user id; ``liveshop`` is the
platform's own catalog). Buying at the seller's price is open to viewers in any room. What
promotes a product in a room — pinning or queueing it, a flash deal (which sets a price) or
an auction (which holds a unit) — needs the room to be one the seller allows: a room the
seller hosts, or one the seller (or a service acting for the platform) listed the product in.
Roles still count on top: only a room's host, co-hosts (or a service) run its deals. A deal
belongs to the room that started it: only buys in that room get its price, and only that
room ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from liveshop.errors import Forbidden
from liveshop.tokens import Identity

#: Operations on a SKU that promote it in a room, and what the refusal calls them.
PROMOTIONS = {"start_deal": "flash deals", "start_auction": "auctions"}


@dataclass(frozen=True)
class Listing:
    """A product as seen from one room: its seller, the room's host, and whether the seller
    listed the product there."""

    product_id: str
    seller_id: str
    room_id: str
    room_host_id: str | None
    listed: bool

    @property
    def allowed(self) -> bool:
        return self.listed or (
            self.room_host_id is not None and self.room_host_id == self.seller_id
        )

    def require(self, what: str) -> None:
        """Refuse ``what`` (pin, deal, auction...) unless the seller allows this room."""
        if not self.allowed:
            raise Forbidden(
                f"{what}: seller {self.seller_id!r} does not sell {self.product_id!r} in room "
                f"{self.room_id!r} (the seller lists products in rooms: PUT "
                f"/products/{self.product_id}/rooms/{self.room_id})",
                details={"product_id": self.product_id, "seller_id": self.seller_id},
            )


def acts_for_seller(who: Identity, seller_id: str) -> bool:
    """The seller themself, or a service (the platform acts for every seller)."""
    return who.is_service or who.user_id == seller_id


def require_seller(who: Identity, seller_id: str, what: str) -> None:
    if not acts_for_seller(who, seller_id):
        raise Forbidden(f"{what}: only the seller ({seller_id!r}) or a service")
