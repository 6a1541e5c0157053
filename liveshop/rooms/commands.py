"""Commands a room accepts. Gateways and the HTTP API build them; the room decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshop.commerce.product import Product
from liveshop.tokens import Role


@dataclass(frozen=True)
class Actor:
    """Who sends a command, with the roles their token grants in this room."""

    user_id: str
    name: str
    roles: frozenset[Role] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Chat:
    by: Actor
    text: str


@dataclass(frozen=True)
class React:
    by: Actor
    kind: str
    count: int = 1


@dataclass(frozen=True)
class Pin:
    by: Actor
    product: Product


@dataclass(frozen=True)
class Unpin:
    by: Actor


@dataclass(frozen=True)
class SystemMessage:
    by: Actor
    text: str


@dataclass(frozen=True)
class ReportViewers:
    """A gateway's count of its local sockets subscribed to this room."""

    gateway_id: str
    count: int


Command = Chat | React | Pin | Unpin | SystemMessage | ReportViewers

Reply = dict[str, Any]
