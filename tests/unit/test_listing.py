"""Ownership: a room promotes a product only where its seller allows it."""

from __future__ import annotations

import pytest

from liveshop.commerce.listing import Listing, acts_for_seller, require_seller
from liveshop.errors import Forbidden
from liveshop.tokens import ANY_ROOM, Identity, Role


def test_a_seller_allows_its_own_rooms_and_the_rooms_it_listed() -> None:
    own = Listing("mug", "acme", "acme-live", room_host_id="acme", listed=False)
    listed = Listing("mug", "acme", "partner", room_host_id="creator", listed=True)
    other = Listing("mug", "acme", "rival", room_host_id="rival", listed=False)
    hostless = Listing("mug", "acme", "lobby", room_host_id=None, listed=False)
    assert own.allowed and listed.allowed
    assert not other.allowed and not hostless.allowed
    own.require("flash deals")
    with pytest.raises(Forbidden, match="does not sell 'mug' in room 'rival'") as refused:
        other.require("flash deals")
    assert refused.value.details == {"product_id": "mug", "seller_id": "acme"}


def test_only_the_seller_or_a_service_acts_for_a_seller() -> None:
    seller = Identity("acme", "Acme")
    service = Identity("svc", "Svc", {ANY_ROOM: frozenset({Role.SERVICE})})
    room_service = Identity("svc2", "Svc", {"r1": frozenset({Role.SERVICE})})
    host = Identity("rival", "Rival", {ANY_ROOM: frozenset({Role.HOST})})
    assert acts_for_seller(seller, "acme") and acts_for_seller(service, "acme")
    assert not acts_for_seller(room_service, "acme") and not acts_for_seller(host, "acme")
    with pytest.raises(Forbidden):
        require_seller(host, "acme", "listing")
