"""The payment provider interface, with the guarantees every provider must give.

- ``charge`` is idempotent per ``key``: charging the same key again never charges twice; it
  returns the first charge's outcome (or completes it).
- ``retrieve`` tells what happened to a key, also when the ``charge`` call itself timed out:
  ``None`` means the provider never received it, and it is safe to treat as not charged.
- ``refund`` is idempotent per key and never refunds more than was charged.
- Card numbers go to ``tokenize`` only; liveshop stores the token, brand and last four digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from liveshop.errors import InvalidRequest

#: What a charge can come to.
SUCCEEDED = "succeeded"
DECLINED = "declined"
REQUIRES_ACTION = "requires_action"  # a challenge (3-D Secure): the buyer must confirm


@dataclass(frozen=True)
class Card:
    token: str
    brand: str
    last4: str


@dataclass(frozen=True)
class Charge:
    key: str
    status: str
    reason: str = ""


class PaymentProvider(Protocol):
    name: str

    async def tokenize(self, number: str, exp_month: int, exp_year: int) -> Card: ...

    async def charge(self, key: str, token: str, amount_minor: int, currency: str) -> Charge: ...

    async def confirm(self, key: str, code: str) -> Charge: ...

    async def retrieve(self, key: str) -> Charge | None: ...

    async def refund(self, key: str, charge_key: str, amount_minor: int) -> int:
        """Refund up to ``amount_minor`` of a charge; returns the total refunded so far."""
        ...


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def check_card(number: str, exp_month: int, exp_year: int, this_year: int) -> str:
    """The digits of a plausible card number, or ``invalid_request``."""
    digits = number.replace(" ", "").replace("-", "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        raise InvalidRequest("not a valid card number")
    if not 1 <= exp_month <= 12 or exp_year < this_year:
        raise InvalidRequest("the card has expired or its expiry is invalid")
    return digits


def brand_of(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or digits[:2] == "22":
        return "mastercard"
    if digits[:2] in {"34", "37"}:
        return "amex"
    return "card"
