"""How the API and gateways reach channel actors: one per channel, always running."""

from __future__ import annotations

from typing import Any

from liveshop.config import Settings
from liveshop.mesh.client import ActorClient
from liveshop.storage.channels import ChannelNotFound, ChannelStore


class ChannelClient(ActorClient):
    kind = "channel"
    entity = "channel"

    def __init__(self, settings: Settings, store: ChannelStore) -> None:
        super().__init__(
            settings,
            store.pool,
            exists=store.channel_exists,
            missing=lambda channel_id: ChannelNotFound(f"no channel {channel_id!r}"),
        )

    async def run(self, channel_id: str, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A ChannelActor method for the channel (its actor is created if it is missing)."""
        result: dict[str, Any] = await self.call(channel_id, method, *args, **kwargs)
        return result
