-- Commerce, part 2: the order lifecycle (status log, split shipments), cancellations that
-- give stock back (an outbox the SKU actors apply exactly once), saved payment methods,
-- payments, and the built-in test payment provider's own records.
CREATE TABLE order_status_log (
    id        bigserial PRIMARY KEY,
    order_id  text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    status    text NOT NULL,
    by_user   text NOT NULL,
    note      text NOT NULL DEFAULT '',
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_log_order ON order_status_log (order_id, id);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE INDEX orders_room ON orders (room_id, created_at);

CREATE TABLE shipments (
    id          bigserial PRIMARY KEY,
    order_id    text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    carrier     text NOT NULL,
    tracking    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE shipment_lines (
    shipment_id  bigint NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    line         smallint NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, line)
);

-- Units owed back to a SKU (a cancelled order, later an approved return). The SKU actor adds
-- them to stock and sets applied_at in the same transaction: each is applied exactly once.
CREATE TABLE stock_returns (
    ref         text NOT NULL,
    sku         text NOT NULL REFERENCES skus (id) ON DELETE CASCADE,
    order_id    text NOT NULL,
    buyer_id    text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    deal_id     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    applied_at  timestamptz,
    PRIMARY KEY (ref, sku)
);
CREATE INDEX stock_returns_due ON stock_returns (sku) WHERE applied_at IS NULL;

-- A saved card is the provider's token; liveshop never stores card numbers.
CREATE TABLE payment_methods (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    provider    text NOT NULL,
    token       text NOT NULL,
    brand       text NOT NULL,
    last4       char(4) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, token)
);
CREATE INDEX payment_methods_user ON payment_methods (user_id, created_at DESC);

CREATE TABLE payments (
    id            text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES orders (id),
    buyer_id      text NOT NULL,
    method_id     text NOT NULL REFERENCES payment_methods (id),
    amount_minor  bigint NOT NULL CHECK (amount_minor >= 0),
    currency      char(3) NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'requires_action', 'succeeded', 'failed',
                                    'refunded')),
    failure       text,
    idem_key      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, idem_key)
);
-- At most one payment of an order may be in flight or succeed: no double charge.
CREATE UNIQUE INDEX payments_one_live ON payments (order_id)
    WHERE status IN ('pending', 'requires_action', 'succeeded');
CREATE INDEX payments_unsettled ON payments (updated_at) WHERE status = 'pending';

-- The test provider's side of the world (a real provider keeps this in its own systems).
CREATE TABLE test_provider_charges (
    key           text PRIMARY KEY,
    token         text NOT NULL,
    amount_minor  bigint NOT NULL,
    currency      char(3) NOT NULL,
    status        text NOT NULL,
    refunded      bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);
