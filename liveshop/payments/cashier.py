"""The cashier: charges an order through the provider without ever leaving a half-order.

1. Record the attempt (``pending``) in PostgreSQL, keyed by order and the client's key.
2. Ask the provider to charge, with the payment id as the provider's idempotency key.
3. Record the outcome; a success marks the order ``paid`` in the same transaction.

If step 2 times out, the payment and the order stay ``pending`` and the buyer hears so;
:meth:`Cashier.reconcile` later asks the provider what happened to that key and records it.
A charge is never made twice: one attempt per order may be in flight (a unique index), and
the provider deduplicates by key.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from liveshop.config import Settings
from liveshop.errors import InvalidTransition, PaymentDeclined
from liveshop.payments.provider import DECLINED, REQUIRES_ACTION, SUCCEEDED, Charge, PaymentProvider
from liveshop.payments.providers import make_provider
from liveshop.storage.orders import OrderStore
from liveshop.storage.payments import PaymentStore

log = logging.getLogger(__name__)


class Cashier:
    def __init__(
        self, provider: PaymentProvider, payments: PaymentStore, orders: OrderStore, *,
        timeout: float,
    ) -> None:  # fmt: skip
        self.provider = provider
        self.payments = payments
        self.orders = orders
        self.timeout = timeout

    @classmethod
    def using(cls, settings: Settings, pool: asyncpg.Pool) -> Cashier:
        """The cashier of a process: the configured provider over this pool."""
        return cls(
            make_provider(settings.payment_provider, pool),
            PaymentStore(pool),
            OrderStore(pool),
            timeout=settings.payment_timeout,
        )

    async def pay(
        self, order_id: str, buyer_id: str, method_id: str | None, key: str
    ) -> dict[str, Any]:
        """Charge the order with a saved method (1-tap: the newest one when None). The
        answer's ``status`` is succeeded, requires_action (confirm with the challenge code)
        or pending (the provider did not answer in time; it is reconciled)."""
        await self.orders.check_buyer(order_id, buyer_id)
        method_id, token = await self.payments.token(buyer_id, method_id)
        payment, created = await self.payments.start(order_id, buyer_id, method_id, key)
        if not created and payment["status"] != "pending":
            return self._answer(payment)  # a retry of a settled attempt: the same answer
        try:
            charge = await asyncio.wait_for(
                self.provider.charge(
                    payment["payment"], token, payment["amount_minor"], payment["currency"]
                ),
                self.timeout,
            )
        except TimeoutError:
            log.warning("payment %s: the provider did not answer in time", payment["payment"])
            return {**self._answer(payment), "status": "pending"}
        return await self._record(payment["payment"], charge)

    async def confirm(self, payment_id: str, buyer_id: str, code: str) -> dict[str, Any]:
        """Complete a challenge (3-D Secure) with the code the buyer was given."""
        payment = await self.payments.get(payment_id)
        if payment["buyer_id"] != buyer_id:
            raise PaymentDeclined("not your payment")
        if payment["status"] != REQUIRES_ACTION:
            if payment["status"] in (SUCCEEDED, "failed"):
                return self._answer(payment)
            raise InvalidTransition(f"the payment is {payment['status']}")
        return await self._record(payment_id, await self.provider.confirm(payment_id, code))

    async def reconcile(self, older_than: float) -> int:
        """Settle payments left pending (timeouts, crashes) from the provider's records."""
        settled = 0
        for payment_id in await self.payments.unsettled(older_than):
            charge = await self.provider.retrieve(payment_id)
            if charge is None:  # the provider never saw it: nothing was charged
                charge = Charge(payment_id, DECLINED, "not received by the provider")
            elif charge.status == REQUIRES_ACTION:
                continue
            await self._record(payment_id, charge, raise_declined=False)
            settled += 1
        return settled

    async def refund(
        self, order_id: str, *, amount_minor: int | None = None, key: str | None = None
    ) -> int:
        """Refund an order's payment, in full (a cancellation) or in part (a return);
        idempotent per ``key``. Returns the total refunded so far."""
        payment = await self.payments.captured_of(order_id)
        if payment is None:
            return 0
        amount = payment["amount_minor"] if amount_minor is None else amount_minor
        refunded = await self.provider.refund(
            key or f"refund:{payment['payment']}", payment["payment"], amount
        )
        if refunded >= payment["amount_minor"]:
            await self.payments.mark_refunded(payment["payment"])
        return refunded

    async def _record(
        self, payment_id: str, charge: Charge, *, raise_declined: bool = True
    ) -> dict[str, Any]:
        status = {SUCCEEDED: "succeeded", REQUIRES_ACTION: REQUIRES_ACTION}.get(
            charge.status, "failed"
        )
        if status == REQUIRES_ACTION:
            payment, order_status = await self.payments.require_action(payment_id), "pending"
        else:
            payment, order_status = await self.payments.settle(payment_id, status, charge.reason)
        if payment["status"] == SUCCEEDED and order_status == "cancelled":
            # Cancelled while the charge was under way: give the money back at once.
            await self.refund(payment["order"])
            payment = await self.payments.get(payment_id)
        if payment["status"] == "failed" and raise_declined:
            raise PaymentDeclined(
                f"the payment was declined ({payment['failure'] or 'declined'})",
                details={"payment": payment_id},
            )
        return {**self._answer(payment), "order_status": order_status}

    @staticmethod
    def _answer(payment: dict[str, Any]) -> dict[str, Any]:
        return {
            "payment": payment["payment"],
            "order": payment["order"],
            "status": payment["status"],
            "amount_minor": payment["amount_minor"],
            "currency": payment["currency"],
        }
