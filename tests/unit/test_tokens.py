from __future__ import annotations

import jwt
import pytest

from liveshop.errors import TokenExpired, TokenInvalid
from liveshop.tokens import ANY_ROOM, Role, issue_token, verify_token

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
NOW = 1_800_000_000.0


def _token(**overrides: object) -> str:
    args: dict[str, object] = {
        "user_id": "u1",
        "name": "Ann",
        "rooms": {"r1": [Role.VIEWER], ANY_ROOM: ["service"]},
        "now": NOW,
        "ttl": 60,
    }
    args.update(overrides)
    return issue_token(SECRET, **args)  # type: ignore[arg-type]


def test_round_trip_carries_user_name_roles_and_expiry() -> None:
    identity = verify_token(SECRET, _token(), now=NOW + 1)
    assert identity.user_id == "u1"
    assert identity.name == "Ann"
    assert identity.expires_at == NOW + 60
    assert identity.roles_in("r1") == {Role.VIEWER, Role.SERVICE}
    assert identity.roles_in("other") == {Role.SERVICE}


def test_no_grant_means_no_roles() -> None:
    identity = verify_token(SECRET, _token(rooms={"r1": ["host"]}), now=NOW)
    assert identity.roles_in("r2") == frozenset()
    assert identity.roles_in("r1") == {Role.HOST}


def test_expired_token_is_refused() -> None:
    with pytest.raises(TokenExpired) as info:
        verify_token(SECRET, _token(), now=NOW + 60)
    assert info.value.code == "token_expired"


def test_forged_signature_is_refused() -> None:
    forged = issue_token(
        "another-secret-that-is-long-enough-for-hs256!",
        user_id="u1",
        name="x",
        rooms={"*": ["host"]},
        now=NOW,
        ttl=60,
    )
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, forged, now=NOW)


def test_tampered_payload_is_refused() -> None:
    header, _payload, signature = _token().split(".")
    evil = jwt.encode({"sub": "admin", "exp": NOW + 99, "rooms": {"*": ["host"]}}, "x" * 32)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, f"{header}.{evil.split('.')[1]}.{signature}", now=NOW)


def test_unsigned_alg_none_is_refused() -> None:
    unsigned = jwt.encode({"sub": "u", "exp": NOW + 60}, None, algorithm="none")
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, unsigned, now=NOW)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, garbage, now=NOW)


def test_unknown_role_and_missing_claims_are_refused() -> None:
    bad_role = jwt.encode({"sub": "u", "exp": NOW + 60, "rooms": {"r": ["king"]}}, SECRET)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, bad_role, now=NOW)
    no_exp = jwt.encode({"sub": "u"}, SECRET)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, no_exp, now=NOW)
    empty_sub = jwt.encode({"sub": "", "exp": NOW + 60}, SECRET)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, empty_sub, now=NOW)
    bad_rooms = jwt.encode({"sub": "u", "exp": NOW + 60, "rooms": ["r"]}, SECRET)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, bad_rooms, now=NOW)
