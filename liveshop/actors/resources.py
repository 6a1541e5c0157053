"""What the entities of one host share: the settings, one bounded PostgreSQL pool, one Redis
publisher and the clients entities push to each other with. Never one pool per entity: a
thousand rooms would need thousands of connections."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from liveshop.config import Settings
from liveshop.mesh.batcher import Batcher
from liveshop.mesh.room_client import RoomClient
from liveshop.mesh.sku_client import SkuClient
from liveshop.payments.cashier import Cashier
from liveshop.storage.broker import RedisPublisher
from liveshop.storage.carts import CartSave, CartStore

#: Cart saves one host's group commit takes at most in one statement.
CART_SAVES_PER_COMMIT = 256


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
    #: The host's group commit of cart saves: the carts saving while one statement commits
    #: go together in the next (one round trip and one commit for a hundred shoppers, where
    #: one each made PostgreSQL the tail of every cart change at 1,000 changes a second).
    cart_saves: Batcher[CartSave] = field(init=False)

    def __post_init__(self) -> None:
        self.cart_saves = Batcher(
            CartStore(self.pool).save_many,
            window=0.0,
            max_batch=CART_SAVES_PER_COMMIT,
            max_in_flight=2,
        )
