"""What the entities of one host share: the settings, one bounded PostgreSQL pool, one Redis
publisher and the clients entities push to each other with. Never one pool per entity: a
thousand rooms would need thousands of connections."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from liveshop.config import Settings
from liveshop.mesh.room_client import RoomClient
from liveshop.mesh.sku_client import SkuClient
from liveshop.payments.cashier import Cashier
from liveshop.storage.broker import RedisPublisher


@dataclass
class Resources:
    #: The host's name (``host:0``, ``host:sku:FLASH-1``).
    host: str
    settings: Settings
    pool: asyncpg.Pool
    publisher: RedisPublisher
    rooms: RoomClient
    skus: SkuClient
    cashier: Cashier
