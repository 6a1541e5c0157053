"""Signed access tokens (HMAC JWT, HS256) and the identity they carry.

Claims: ``sub`` (user id), ``name`` (display name), ``rooms`` (room id, or ``"*"`` for every
room, to a list of roles), optional ``badges`` (room id or ``"*"`` to facts about the
user that rooms use for eligibility, such as ``follower`` or ``subscriber``) and ``exp``.
Verification takes ``now`` so that it never reads a clock itself.
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
    #: Watch and react only.
    ANONYMOUS = "anonymous"
    SERVICE = "service"


#: Roles allowed to change what a room shows (pins, system messages).
STAFF_ROLES = frozenset({Role.HOST, Role.COHOST, Role.MODERATOR, Role.SERVICE})
#: Roles that may speak (chat, ask, vote, enter giveaways); anonymous viewers only watch and react.
SPEAKING_ROLES = frozenset(Role) - {Role.ANONYMOUS}
MAX_BADGE_CHARS = 32


@dataclass(frozen=True)
class Identity:
    user_id: str
    name: str
    grants: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    expires_at: float = 0.0
    badges: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def roles_in(self, room_id: str) -> frozenset[Role]:
        """Roles this identity holds in ``room_id``: the room's own grants plus the wildcard's."""
        return self.grants.get(room_id, frozenset()) | self.grants.get(ANY_ROOM, frozenset())

    def badges_in(self, room_id: str) -> frozenset[str]:
        return self.badges.get(room_id, frozenset()) | self.badges.get(ANY_ROOM, frozenset())


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


def _parse_badges(raw: Any) -> dict[str, frozenset[str]]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(b, str) and 0 < len(b) <= MAX_BADGE_CHARS for b in v)
        for k, v in raw.items()
    ):
        raise TokenInvalid("token claim 'badges' must map room ids to lists of short strings")
    return {room: frozenset(badges) for room, badges in raw.items()}


def issue_token(
    secret: str,
    *,
    user_id: str,
    name: str,
    rooms: Mapping[str, Iterable[Role | str]],
    now: float,
    ttl: float,
    badges: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """Mint a token valid from ``now`` for ``ttl`` seconds."""
    if ttl <= 0:
        raise InvalidRequest("token ttl must be positive")
    claims: dict[str, Any] = {
        "sub": user_id,
        "name": name,
        "rooms": {room: sorted(Role(r).value for r in roles) for room, roles in rooms.items()},
        "iat": int(now),
        "exp": int(now + ttl),
    }
    if badges:
        claims["badges"] = {room: sorted(set(b)) for room, b in badges.items()}
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
        badges=_parse_badges(claims.get("badges", {})),
    )
