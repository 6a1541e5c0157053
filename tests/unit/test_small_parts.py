"""Products, the rate limiter, settings, error pickling and the batcher."""

from __future__ import annotations

import asyncio
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveshop.commerce.product import Product
from liveshop.config import Settings
from liveshop.errors import InvalidRequest, RoomNotFound, Unavailable
from liveshop.mesh.batcher import Batcher
from liveshop.ratelimit import PerUser, TokenBucket


@pytest.mark.parametrize(
    "price", [-1, 1.5, True, "100", 10**13], ids=["negative", "float", "bool", "str", "huge"]
)
def test_prices_are_integer_minor_units(price: object) -> None:
    with pytest.raises(InvalidRequest):
        Product("p", "Thing", price, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", ""])
def test_currency_is_iso_4217(currency: str) -> None:
    with pytest.raises(InvalidRequest):
        Product("p", "Thing", 100, currency)


def test_product_card_round_trip() -> None:
    product = Product("p", "Thing", 100, "EUR", "https://img/x.jpg")
    assert Product.from_card(product.card()) == product


def test_token_bucket_allows_bursts_then_the_sustained_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)  # one token back after half a second at 2/s
    assert not bucket.take(0.5)
    assert bucket.take(100.0)
    assert bucket.tokens <= 3


def test_a_clock_stepping_back_does_not_refill_the_bucket_twice() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=100.0)
    assert bucket.take(100.0)
    assert not bucket.take(90.0)  # the clock went back ten seconds
    assert not bucket.take(100.0)  # the same second again: still empty
    assert bucket.take(101.0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["open", "close", "take"]), st.sampled_from("ab")), max_size=200
    )
)
def test_a_user_shares_one_bucket_and_a_bounded_number_of_sockets(
    steps: list[tuple[str, str]],
) -> None:
    """More sockets buy a user no more requests: whatever they open and close, they hold at
    most ``max_connections`` and get at most ``burst`` requests at one instant."""
    users = PerUser(max_connections=3, rate=1.0, burst=5)
    held = {"a": 0, "b": 0}
    taken = {"a": 0, "b": 0}
    for step, user in steps:
        if step == "open":
            held[user] += users.open(user, 0.0)
        elif step == "close" and held[user]:
            users.close(user)
            held[user] -= 1
        elif step == "take" and held[user]:
            taken[user] += users.take(user, 0.0)
        assert users.connections(user) == held[user] <= 3
    # The bucket lives as long as the user keeps a socket: at most the burst at time 0
    # while connected (closing every socket forgets the user, a fresh bucket next time).
    assert all(n <= 5 * (1 + steps.count(("open", u))) for u, n in taken.items())


def test_per_user_limits_examples() -> None:
    users = PerUser(max_connections=2, rate=1.0, burst=2)
    assert users.open("u", 0.0) and users.open("u", 0.0) and not users.open("u", 0.0)
    assert [users.take("u", 0.0) for _ in range(3)] == [True, True, False]
    assert users.open("v", 0.0) and users.take("v", 0.0)  # others have their own share
    users.close("u")
    assert users.open("u", 0.0)
    assert not users.take("u", 0.0)  # the shared bucket survives while a socket is open
    assert users.take("u", 1.0)


def test_keys_are_created_once_and_private(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).with_keys()
    second = Settings(data_dir=tmp_path).with_keys()
    assert first.secret and first.secret == second.secret
    assert first.admin_key != first.secret
    assert os.stat(tmp_path / "secret.key").st_mode & 0o077 == 0


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVESHOP_DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("LIVESHOP_ALLOWED_ORIGINS", "https://shop.example, https://m.example")
    monkeypatch.setenv("LIVESHOP_DEV_TOKENS", "off")
    monkeypatch.setenv("LIVESHOP_MAX_BODY_BYTES", "65536")
    settings = Settings.from_env(data_dir=tmp_path, http_port=9000, ws_port=None)
    assert settings.max_body_bytes == 65536
    assert settings.database_url == "postgresql://x/y"
    assert settings.http_port == 9000
    assert settings.ws_port == 8765
    assert settings.dev_tokens is False
    assert settings.origins() == [None, "https://shop.example", "https://m.example"]
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_errors_survive_pickling_with_their_code() -> None:
    error = pickle.loads(pickle.dumps(InvalidRequest("bad", details=[{"field": "x"}])))
    assert isinstance(error, InvalidRequest)
    assert error.to_dict()["details"] == [{"field": "x"}]
    assert Unavailable("x").temporary and not RoomNotFound("x").temporary
    assert RoomNotFound("x").status == 404


async def test_batcher_gathers_a_window_into_one_call() -> None:
    calls: list[list[int]] = []

    async def send(items: list[int]) -> list[object]:
        calls.append(items)
        return [InvalidRequest("odd") if i % 2 else i * 10 for i in items]

    batcher: Batcher[int] = Batcher(send, window=0.01, max_batch=100)
    futures = [batcher.submit(i) for i in range(4)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert calls == [[0, 1, 2, 3]]
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], InvalidRequest)


async def test_batcher_flushes_at_max_batch_and_fails_all_when_send_fails() -> None:
    calls: list[list[int]] = []

    async def send(items: list[int]) -> list[object]:
        calls.append(items)
        if len(calls) == 2:
            raise Unavailable("actor gone")
        return list(items)

    batcher: Batcher[int] = Batcher(send, window=10.0, max_batch=2)
    assert await asyncio.gather(batcher.submit(1), batcher.submit(2)) == [1, 2]
    failing = [batcher.submit(3), batcher.submit(4)]
    for fut in failing:
        with pytest.raises(Unavailable):
            await fut
    await batcher.close()


async def test_batches_grow_while_calls_are_out_instead_of_the_calls() -> None:
    """At most ``max_in_flight`` calls out: what arrives meanwhile leaves together when one
    returns, so a slow actor gets fewer, larger calls."""
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def send(items: list[int]) -> list[object]:
        calls.append(items)
        await release.wait()
        return list(items)

    batcher: Batcher[int] = Batcher(send, window=0.001, max_batch=100, max_in_flight=1)
    futures = [batcher.submit(0)]
    await asyncio.sleep(0.01)  # the first call is out and waits
    futures += [batcher.submit(i) for i in range(1, 50)]
    await asyncio.sleep(0.01)
    assert calls == [[0]]  # the others gather behind it
    release.set()
    assert await asyncio.gather(*futures) == list(range(50))
    assert calls == [[0], list(range(1, 50))]


async def test_an_overloaded_batcher_refuses_at_once_and_sends_nothing_for_it() -> None:
    sent: list[int] = []
    release = asyncio.Event()

    async def send(items: list[int]) -> list[object]:
        sent.extend(items)
        await release.wait()
        return list(items)

    batcher: Batcher[int] = Batcher(send, window=0.001, max_batch=2, max_in_flight=1, max_pending=3)
    accepted = [batcher.submit(i) for i in range(5)]  # 2 leave at once, 3 may wait
    refused = batcher.submit(99)
    with pytest.raises(Unavailable):
        await refused
    release.set()
    assert await asyncio.gather(*accepted) == [0, 1, 2, 3, 4]
    assert 99 not in sent  # refused means not applied
    await batcher.close()


def test_big_rooms_publish_less_often(tmp_path: Path) -> None:
    from liveshop.actors.room_actor import tick_interval

    settings = Settings(data_dir=tmp_path)
    assert tick_interval(settings, 10) == settings.tick_interval
    assert tick_interval(settings, 4000) == pytest.approx(2 * settings.tick_interval)
    assert tick_interval(settings, 1_000_000) == settings.max_tick
