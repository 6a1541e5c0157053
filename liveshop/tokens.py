"""Signed access tokens (HMAC JWT, HS256) and the identity they carry.

Claims: ``sub`` (user id), ``name`` (display name), ``rooms`` (room id, or ``"*"`` for every
room, to a list of roles) and ``exp``. Verification takes ``now`` so that it never reads a
clock itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt

from liveshop.errors import InvalidRequest, TokenExpired, TokenInvalid

ALGORITHM = "HS256"
ANY_ROOM = "*"
MAX_TOKEN_BYTES = 4096


class Role(StrEnum):
    HOST = "host"
    COHOST = "cohost"
    MODERATOR = "moderator"
    GUEST = "guest"
    VIEWER = "viewer"
    SERVICE = "service"


#: Roles allowed to change what a room shows (pins, system messages).
STAFF_ROLES = frozenset({Role.HOST, Role.COHOST, Role.MODERATOR, Role.SERVICE})


@dataclass(frozen=True)
class Identity:
    user_id: str
    name: str
    grants: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    expires_at: float = 0.0

    def roles_in(self, room_id: str) -> frozenset[Role]:
        """Roles this identity holds in ``room_id``: the room's own grants plus the wildcard's."""
        return self.grants.get(room_id, frozenset()) | self.grants.get(ANY_ROOM, frozenset())


def _parse_roles(raw: Any) -> dict[str, frozenset[Role]]:
    if not isinstance(raw, dict):
        raise TokenInvalid("token claim 'rooms' must map room ids to role lists")
    grants: dict[str, frozenset[Role]] = {}
    for room_id, roles in raw.items():
        if not isinstance(room_id, str) or not isinstance(roles, list):
            raise TokenInvalid("token claim 'rooms' must map room ids to role lists")
        try:
            grants[room_id] = frozenset(Role(r) for r in roles)
        except ValueError as exc:
            raise TokenInvalid(f"token names an unknown role: {exc}") from None
    return grants


def issue_token(
    secret: str,
    *,
    user_id: str,
    name: str,
    rooms: Mapping[str, Iterable[Role | str]],
    now: float,
    ttl: float,
) -> str:
    """Mint a token valid from ``now`` for ``ttl`` seconds."""
    if ttl <= 0:
        raise InvalidRequest("token ttl must be positive")
    claims = {
        "sub": user_id,
        "name": name,
        "rooms": {room: sorted(Role(r).value for r in roles) for room, roles in rooms.items()},
        "iat": int(now),
        "exp": int(now + ttl),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, now: float) -> Identity:
    """Check the signature and expiry of ``token``; raise a typed error when either fails."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise TokenInvalid("token missing or too long")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "require": ["sub", "exp"]},
        )
    except jwt.PyJWTError:
        raise TokenInvalid("token signature or format is invalid") from None
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise TokenInvalid("token 'exp' must be a number")
    if exp <= now:
        raise TokenExpired("token has expired")
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id:
        raise TokenInvalid("token 'sub' must be a non-empty string")
    name = claims.get("name", user_id)
    if not isinstance(name, str):
        raise TokenInvalid("token 'name' must be a string")
    return Identity(
        user_id=user_id,
        name=name[:64],
        grants=_parse_roles(claims.get("rooms", {})),
        expires_at=float(exp),
    )
