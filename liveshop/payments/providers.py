"""The payment providers liveshop can use, by name (``Settings.payment_provider``)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from liveshop.errors import InvalidRequest
from liveshop.payments.provider import PaymentProvider
from liveshop.payments.test_provider import TestProvider

PROVIDERS: dict[str, Callable[[asyncpg.Pool], PaymentProvider]] = {"test": TestProvider}


def make_provider(name: str, pool: asyncpg.Pool) -> PaymentProvider:
    factory = PROVIDERS.get(name)
    if factory is None:
        raise InvalidRequest(f"unknown payment provider {name!r}; known: {sorted(PROVIDERS)}")
    return factory(pool)
