"""Who is calling an HTTP endpoint: the bearer token of the API and the media endpoints.

Both are OpenAPI security schemes (``bearer``, and ``admin_key`` for the development token
endpoint), so the document says which operations take a token and tools send it.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from liveshop import clock
from liveshop.errors import Forbidden, Unauthenticated
from liveshop.tokens import ANY_ROOM, Identity, Role, verify_token

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A liveshop token (docs/protocol.md, Tokens): `Authorization: Bearer <token>`.",
)
_admin_key = APIKeyHeader(
    name="X-Admin-Key",
    auto_error=False,
    scheme_name="admin_key",
    description="The admin key (development token endpoint only).",
)


async def _authorization(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str | None:
    return f"Bearer {credentials.credentials}" if credentials is not None else None


#: The ``Authorization`` header of a route (``Bearer <token>``; checked by the route).
Authorization = Annotated[str | None, Depends(_authorization)]
#: The ``X-Admin-Key`` header (checked by the route).
AdminKey = Annotated[str | None, Security(_admin_key)]


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
