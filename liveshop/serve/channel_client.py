"""How the API and gateways reach channel actors: one per channel, always running."""

from __future__ import annotations

from typing import Any

from liveshop.actors import wiring
from liveshop.config import Settings
from liveshop.serve.actor_client import ActorClient
from liveshop.storage.channels import ChannelNotFound, ChannelStore


class ChannelClient(ActorClient):
    kind = "channel"

    def __init__(self, settings: Settings, store: ChannelStore) -> None:
        super().__init__(
            settings,
            get=wiring.get_channel_actor,
            create=wiring.create_channel_actor,
            exists=store.channel_exists,
            missing=lambda channel_id: ChannelNotFound(f"no channel {channel_id!r}"),
        )

    async def run(self, channel_id: str, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A ChannelActor method for the channel (its actor is created if it is missing)."""
        result: dict[str, Any] = await self.call(channel_id, method, *args, **kwargs)
        return result
