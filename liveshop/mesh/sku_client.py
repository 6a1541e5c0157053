"""How gateways and the API reach SKU actors: buys and holds batched per SKU."""

from __future__ import annotations

from typing import Any

from liveshop.commerce.inventory import SkuCommand
from liveshop.config import Settings
from liveshop.errors import SkuNotFound
from liveshop.mesh.client import ActorClient
from liveshop.storage.skus import SkuStore


class SkuClient(ActorClient):
    kind = "SKU"
    entity = "sku"

    def __init__(self, settings: Settings, store: SkuStore) -> None:
        super().__init__(
            settings,
            store.pool,
            exists=store.exists,
            missing=lambda sku: SkuNotFound(f"no SKU {sku!r}"),
            max_batch=settings.sku_max_batch,
        )

    async def send(self, sku: str, command: SkuCommand) -> dict[str, Any]:
        """One decision, batched with the others bound for the SKU (group commit)."""
        result: dict[str, Any] = await self.submit(sku, "handle", command)
        return result

    async def batch(self, sku: str, commands: list[SkuCommand]) -> list[Any]:
        """Several commands decided together, in order, in one commit (e.g. give a hold
        back and take a new one with no moment in between): results or errors, per command."""
        results: list[Any] = await self.call(sku, "handle", commands)
        return results

    async def view(self, sku: str) -> dict[str, Any]:
        # Reads are batched like writes: a room asking at once is one actor call.
        result: dict[str, Any] = await self.submit(sku, "views", None)
        return result
