"""How gateways and the API reach auction actors: bids batched per auction."""

from __future__ import annotations

from typing import Any

from liveshop.config import Settings
from liveshop.errors import AuctionNotFound
from liveshop.mesh.client import ActorClient
from liveshop.storage.auctions import AuctionStore


class AuctionClient(ActorClient):
    kind = "auction"
    entity = "auction"

    def __init__(self, settings: Settings, store: AuctionStore) -> None:
        super().__init__(
            settings,
            store.pool,
            exists=store.exists,
            missing=lambda auction_id: AuctionNotFound(f"no auction {auction_id!r}"),
        )

    async def bid(
        self,
        auction_id: str,
        bidder: str,
        amount: int,
        max_amount: int | None,
        key: str,
        room_id: str | None = None,
    ) -> dict[str, Any]:
        """A bid, made in ``room_id`` (which must be the auction's room; None: a service)."""
        result: dict[str, Any] = await self.submit(
            auction_id, "handle", (bidder, amount, max_amount, key, room_id)
        )
        return result

    async def view(self, auction_id: str) -> dict[str, Any]:
        # Reads are batched like writes: a room asking at once is one actor call.
        result: dict[str, Any] = await self.submit(auction_id, "views", None)
        return result
