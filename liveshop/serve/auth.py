"""Who is calling an HTTP endpoint: the bearer token of the API and the media endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from liveshop import clock
from liveshop.errors import Forbidden, Unauthenticated
from liveshop.tokens import ANY_ROOM, Identity, Role, verify_token

#: The ``Authorization`` header of a route (``Bearer <token>``; checked by the route).
Authorization = Annotated[str | None, Header()]


def bearer_identity(secret: str, authorization: str | None) -> Identity:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("send 'Authorization: Bearer <token>'")
    return verify_token(secret, authorization[7:].strip(), now=clock.now())


def is_service(identity: Identity) -> bool:
    return Role.SERVICE in identity.grants.get(ANY_ROOM, frozenset())


def require_service(identity: Identity) -> Identity:
    if not is_service(identity):
        raise Forbidden("needs the service role on all rooms ('*')")
    return identity


def require_self_or_service(identity: Identity, user_id: str) -> Identity:
    if identity.user_id != user_id and not is_service(identity):
        raise Forbidden("only the user themself or a service may do this")
    return identity
