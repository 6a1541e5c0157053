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
from liveshop.text import check_name, text_problem

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
MAX_USER_ID_CHARS = 64
MAX_NAME_CHARS = 64


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

    @property
    def is_service(self) -> bool:
        """A service acting for the platform: the service role on every room ('*')."""
        return Role.SERVICE in self.grants.get(ANY_ROOM, frozenset())

    def badges_in(self, room_id: str) -> frozenset[str]:
        return self.badges.get(room_id, frozenset()) | self.badges.get(ANY_ROOM, frozenset())


def _user_problem(user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID_CHARS:
        return f"a user id is a string of 1-{MAX_USER_ID_CHARS} characters"
    problem = text_problem(user_id)
    if problem is None and user_id != user_id.strip():
        problem = "a user id has no outer whitespace"
    return problem


def _parse_roles(raw: Any) -> dict[str, frozenset[Role]]:
    if not isinstance(raw, dict):
        raise TokenInvalid("token claim 'rooms' must map room ids to role lists")
    grants: dict[str, frozenset[Role]] = {}
    for room_id, roles in raw.items():
        if not isinstance(room_id, str) or not isinstance(roles, list) or text_problem(room_id):
            raise TokenInvalid("token claim 'rooms' must map room ids to role lists")
        try:
            grants[room_id] = frozenset(Role(r) for r in roles)
        except ValueError as exc:
            raise TokenInvalid(f"token names an unknown role: {exc}") from None
    return grants


def _parse_badges(raw: Any) -> dict[str, frozenset[str]]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str)
        and not text_problem(k)
        and isinstance(v, list)
        and all(
            isinstance(b, str) and 0 < len(b) <= MAX_BADGE_CHARS and not text_problem(b) for b in v
        )
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
    problem = _user_problem(user_id)
    if problem is not None:
        raise InvalidRequest(problem)
    try:
        name = check_name(name)[:MAX_NAME_CHARS]
    except ValueError as exc:
        raise InvalidRequest(f"name: {exc}") from None
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
    problem = _user_problem(user_id)
    if problem is not None or not isinstance(user_id, str):
        raise TokenInvalid(f"token 'sub': {problem}")
    name = claims.get("name", user_id)
    if not isinstance(name, str):
        raise TokenInvalid("token 'name' must be a string")
    try:
        # Names reach every viewer and PostgreSQL: the text rules hold even for a token
        # minted elsewhere with the same secret.
        name = check_name(name)[:MAX_NAME_CHARS] or user_id
    except ValueError as exc:
        raise TokenInvalid(f"token 'name': {exc}") from None
    return Identity(
        user_id=user_id,
        name=name,
        grants=_parse_roles(claims.get("rooms", {})),
        expires_at=float(exp),
        badges=_parse_badges(claims.get("badges", {})),
    )
