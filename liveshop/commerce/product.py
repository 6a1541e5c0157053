"""Products as rooms show them. Prices are integers in minor units (cents), never floats."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from liveshop.errors import InvalidRequest

CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_PRICE_MINOR = 10**12


@dataclass(frozen=True)
class Product:
    product_id: str
    title: str
    price_minor: int
    currency: str
    image_url: str | None = None
    #: Who sells it: shipping rules and return windows are per seller.
    seller_id: str = "liveshop"

    def __post_init__(self) -> None:
        # bool is an int subclass; a price of True is a bug, not one cent.
        if isinstance(self.price_minor, bool) or not isinstance(self.price_minor, int):
            raise InvalidRequest("price_minor must be an integer number of minor units")
        if not 0 <= self.price_minor <= MAX_PRICE_MINOR:
            raise InvalidRequest("price_minor out of range")
        if not CURRENCY.match(self.currency):
            raise InvalidRequest("currency must be a three-letter ISO 4217 code")
        if not self.title.strip():
            raise InvalidRequest("title must not be empty")

    def card(self) -> dict[str, Any]:
        """What a room shows viewers when this product is pinned."""
        return asdict(self)

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> Product:
        return cls(**card)
