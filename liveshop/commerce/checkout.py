"""Checkout rules without I/O: addresses per country, tax per region, shipping per seller and
region, return windows, and the server-side quote that prices an order.

Prices are net of tax, in integer minor units; tax is added per line and rounded half up to
the minor unit. Rates are basis points (1/100 of a percent) so no float ever touches money.
The tables below are samples a platform replaces with its own (``Rules``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import InvalidRequest
from liveshop.text import check_line


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    postcode: str = ""
    region: str = ""  # state / province / county code where the country has them
    line2: str = ""
    phone: str = ""

    def to_wire(self) -> dict[str, str]:
        return {
            "name": self.name, "line1": self.line1, "line2": self.line2, "city": self.city,
            "region": self.region, "postcode": self.postcode, "country": self.country,
            "phone": self.phone,
        }  # fmt: skip


@dataclass(frozen=True)
class AddressRule:
    postcode: str | None  # a regular expression; None: the country has no postcodes
    region_required: bool = False
    regions: frozenset[str] = frozenset()


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


US_STATES = _codes(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
)
CA_PROVINCES = _codes("AB BC MB NB NL NS NT NU ON PE QC SK YT")
AU_STATES = _codes("ACT NSW NT QLD SA TAS VIC WA")

ADDRESS_RULES: dict[str, AddressRule] = {
    "US": AddressRule(r"\d{5}(-\d{4})?", True, US_STATES),
    "CA": AddressRule(r"[A-Z]\d[A-Z] ?\d[A-Z]\d", True, CA_PROVINCES),
    "GB": AddressRule(r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"),
    "DE": AddressRule(r"\d{5}"),
    "FR": AddressRule(r"\d{5}"),
    "NL": AddressRule(r"\d{4} ?[A-Z]{2}"),
    "ES": AddressRule(r"\d{5}"),
    "IT": AddressRule(r"\d{5}"),
    "IE": AddressRule(r"[A-Z]\d{2} ?[A-Z\d]{4}"),
    "AU": AddressRule(r"\d{4}", True, AU_STATES),
    "NZ": AddressRule(r"\d{4}"),
    "IN": AddressRule(r"\d{6}"),
    "JP": AddressRule(r"\d{3}-?\d{4}"),
    "SG": AddressRule(r"\d{6}"),
    "HK": AddressRule(None),
    "AE": AddressRule(None),
}


def validate_address(raw: Mapping[str, Any]) -> Address:
    """An :class:`Address`, or ``invalid_request`` naming every field that is wrong."""
    problems: list[dict[str, str]] = []

    def text(name: str, required: bool, limit: int = 200) -> str:
        raw_value: Any = raw.get(name, "")
        if not isinstance(raw_value, str):
            problems.append({"field": name, "message": "must be text"})
            return ""
        try:
            value = check_line(raw_value)
        except ValueError as exc:
            problems.append({"field": name, "message": str(exc)})
            return ""
        if required and not value:
            problems.append({"field": name, "message": "is required"})
        elif len(value) > limit:
            problems.append({"field": name, "message": f"at most {limit} characters"})
        return value

    country = text("country", True, 2).upper()
    rule = ADDRESS_RULES.get(country)
    if country and rule is None:
        problems.append({"field": "country", "message": f"we do not ship to {country!r}"})
    fields = {
        "name": text("name", True), "line1": text("line1", True), "line2": text("line2", False),
        "city": text("city", True), "phone": text("phone", False, 32),
        "postcode": text("postcode", bool(rule and rule.postcode), 16).upper(),
        "region": text("region", bool(rule and rule.region_required), 8).upper(),
    }  # fmt: skip
    if rule is not None:
        postcode = fields["postcode"]
        if rule.postcode and postcode and not re.fullmatch(rule.postcode, postcode):
            problems.append({"field": "postcode", "message": f"not a {country} postcode"})
        if rule.regions and fields["region"] and fields["region"] not in rule.regions:
            problems.append({"field": "region", "message": f"not a {country} region code"})
    if problems:
        raise InvalidRequest("the address is not valid", details=problems)
    return Address(country=country, **fields)


# -- tax ------------------------------------------------------------------------------------

#: (country, region or "") -> basis points. Samples: EU and UK VAT, GST, US state sales tax
#: (state level only; counties and cities add their own in real life).
TAX_RATES: dict[tuple[str, str], int] = {
    ("DE", ""): 1900, ("FR", ""): 2000, ("NL", ""): 2100, ("ES", ""): 2100, ("IT", ""): 2200,
    ("IE", ""): 2300, ("GB", ""): 2000, ("AU", ""): 1000, ("NZ", ""): 1500, ("IN", ""): 1800,
    ("SG", ""): 900, ("JP", ""): 1000, ("CA", ""): 500, ("CA", "ON"): 1300, ("CA", "NS"): 1500,
    ("CA", "QC"): 1498, ("US", "CA"): 725, ("US", "NY"): 400, ("US", "TX"): 625,
    ("US", "WA"): 650, ("US", "FL"): 600, ("US", "OR"): 0, ("US", "DE"): 0, ("US", "MT"): 0,
    ("US", "NH"): 0, ("HK", ""): 0, ("AE", ""): 500,
}  # fmt: skip


def tax_rate(address: Address, rates: Mapping[tuple[str, str], int] = TAX_RATES) -> int:
    """The rate for the address: its region's if listed, else the country's, else none
    (the US has no federal sales tax: an unlisted state is 0)."""
    return rates.get((address.country, address.region), rates.get((address.country, ""), 0))


def tax_on(amount_minor: int, basis_points: int) -> int:
    """Tax on a net amount, rounded half up to the minor unit (integers only)."""
    return (amount_minor * basis_points + 5000) // 10000


# -- shipping -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippingRule:
    seller_id: str  # "*": any seller without rules of its own
    country: str  # "*": anywhere the seller has no rule for
    base_minor: int
    per_item_minor: int = 0
    free_over_minor: int | None = None  # a seller's subtotal at or above this ships free

    def cost(self, items: int, subtotal_minor: int) -> int:
        if self.free_over_minor is not None and subtotal_minor >= self.free_over_minor:
            return 0
        return self.base_minor + self.per_item_minor * max(0, items - 1)


DEFAULT_SHIPPING = (
    ShippingRule("*", "*", base_minor=1500, per_item_minor=300),
    ShippingRule("*", "US", base_minor=599, per_item_minor=100, free_over_minor=5000),
    ShippingRule("*", "GB", base_minor=399, per_item_minor=100, free_over_minor=4000),
    ShippingRule("*", "DE", base_minor=490, per_item_minor=100, free_over_minor=4000),
)


def shipping_rule(rules: Sequence[ShippingRule], seller_id: str, country: str) -> ShippingRule:
    """The most specific rule: seller and country, seller anywhere, any seller and country,
    any seller anywhere."""
    for seller, where in ((seller_id, country), (seller_id, "*"), ("*", country), ("*", "*")):
        for rule in rules:
            if rule.seller_id == seller and rule.country == where:
                return rule
    raise InvalidRequest(f"no shipping rule for seller {seller_id!r} to {country}")


# -- returns --------------------------------------------------------------------------------

#: Days to ask for a return after delivery, per country (EU law: at least 14), else default.
RETURN_DAYS: dict[str, int] = {"DE": 14, "FR": 14, "NL": 14, "ES": 14, "IT": 14, "IE": 14}
DEFAULT_RETURN_DAYS = 30


def return_window_days(country: str, seller_days: int | None = None) -> int:
    """A seller may offer more than the law of the buyer's country, never less."""
    legal = RETURN_DAYS.get(country, 0)
    return max(legal, seller_days if seller_days is not None else DEFAULT_RETURN_DAYS)


# -- the quote ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuoteLine:
    sku: str
    product_id: str
    seller_id: str
    quantity: int
    price_minor: int  # net, per unit, as the server priced it
    currency: str
    deal_id: str | None = None


@dataclass
class Quote:
    lines: list[QuoteLine]
    currency: str
    subtotal_minor: int
    shipping_minor: int
    tax_minor: int
    total_minor: int
    tax_basis_points: int
    shipping_by_seller: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "lines": [
                {"sku": ln.sku, "product_id": ln.product_id, "seller_id": ln.seller_id,
                 "quantity": ln.quantity, "price_minor": ln.price_minor, "deal_id": ln.deal_id}
                for ln in self.lines
            ],
            "currency": self.currency, "subtotal_minor": self.subtotal_minor,
            "shipping_minor": self.shipping_minor, "tax_minor": self.tax_minor,
            "total_minor": self.total_minor, "tax_basis_points": self.tax_basis_points,
            "shipping_by_seller": dict(self.shipping_by_seller),
        }  # fmt: skip


def quote(
    lines: Sequence[QuoteLine],
    address: Address,
    *,
    shipping: Sequence[ShippingRule] = DEFAULT_SHIPPING,
    rates: Mapping[tuple[str, str], int] = TAX_RATES,
) -> Quote:
    """Price an order: subtotal, shipping per seller, tax on goods and shipping."""
    if not lines:
        raise InvalidRequest("nothing to check out")
    currencies = {ln.currency for ln in lines}
    if len(currencies) != 1:
        raise InvalidRequest(f"one currency per checkout, not {sorted(currencies)}")
    rate = tax_rate(address, rates)
    by_seller: dict[str, list[QuoteLine]] = {}
    for ln in lines:
        by_seller.setdefault(ln.seller_id, []).append(ln)
    shipping_by_seller: dict[str, int] = {}
    for seller, mine in sorted(by_seller.items()):
        rule = shipping_rule(shipping, seller, address.country)
        items = sum(ln.quantity for ln in mine)
        shipping_by_seller[seller] = rule.cost(
            items, sum(ln.quantity * ln.price_minor for ln in mine)
        )
    subtotal = sum(ln.quantity * ln.price_minor for ln in lines)
    shipping_total = sum(shipping_by_seller.values())
    tax = sum(tax_on(ln.quantity * ln.price_minor, rate) for ln in lines) + sum(
        tax_on(cost, rate) for cost in shipping_by_seller.values()
    )
    return Quote(
        list(lines), currencies.pop(), subtotal, shipping_total, tax,
        subtotal + shipping_total + tax, rate, shipping_by_seller,
    )  # fmt: skip
