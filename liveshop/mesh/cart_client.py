"""How gateways and the API reach cart actors: one per user, created on first use."""

from __future__ import annotations

from typing import Any

import asyncpg

from liveshop.config import Settings
from liveshop.errors import NotFound
from liveshop.mesh.client import ActorClient


async def _any_user(_: str) -> bool:
    return True  # every user may have a cart; the caller's token names the user


class CartClient(ActorClient):
    kind = "cart"
    entity = "cart"
    #: A shopper's cart changes are quick and alike: a host takes many carts' in one call.
    #: Checkout and quotes (payments, several SKUs) go alone.
    host_batched = frozenset({"view", "add", "remove", "set_quantity", "report_abandoned"})

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        super().__init__(
            settings,
            pool,
            exists=_any_user,
            missing=lambda user_id: NotFound(f"no cart for {user_id!r}"),
        )

    async def run(self, user_id: str, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A cart operation (CartActor's method) for the user."""
        result: dict[str, Any] = await self.call(user_id, method, *args, **kwargs)
        return result
