-- Commerce, part 3: carts, checkout and returns. Products name their seller (shipping rules
-- and return windows are per seller); orders keep where they ship and the tax applied.
ALTER TABLE products ADD COLUMN seller_id text NOT NULL DEFAULT 'liveshop';

ALTER TABLE orders
    ADD COLUMN shipping_address  jsonb,
    ADD COLUMN email             text,
    ADD COLUMN tax_basis_points  integer NOT NULL DEFAULT 0,
    ADD COLUMN delivered_at      timestamptz;

-- One row per user: the cart actor's state (lines with their source room and holds).
CREATE TABLE carts (
    user_id     text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Events other services consume (GET /events): cart_abandoned, order_placed, ...
CREATE TABLE commerce_events (
    id       bigserial PRIMARY KEY,
    kind     text NOT NULL,
    user_id  text NOT NULL,
    data     jsonb NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commerce_events_kind ON commerce_events (kind, id);

-- Per room: hold stock when a viewer adds to cart, or first paid, first served.
CREATE TABLE room_commerce (
    room_id       text PRIMARY KEY,
    stock_policy  text NOT NULL CHECK (stock_policy IN ('hold', 'first_paid')),
    hold_seconds  double precision NOT NULL CHECK (hold_seconds > 0)
);

CREATE TABLE shipping_rules (
    seller_id        text NOT NULL,
    country          text NOT NULL,
    base_minor       bigint NOT NULL CHECK (base_minor >= 0),
    per_item_minor   bigint NOT NULL DEFAULT 0 CHECK (per_item_minor >= 0),
    free_over_minor  bigint CHECK (free_over_minor >= 0),
    PRIMARY KEY (seller_id, country)
);

CREATE TABLE checkouts (
    buyer_id  text NOT NULL,
    idem_key  text NOT NULL,
    order_id  text NOT NULL REFERENCES orders (id),
    PRIMARY KEY (buyer_id, idem_key)
);

CREATE TABLE returns (
    id            text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES orders (id),
    buyer_id      text NOT NULL,
    status        text NOT NULL DEFAULT 'requested'
                  CHECK (status IN ('requested', 'approved', 'rejected', 'refunded')),
    lines         jsonb NOT NULL,
    reason        text NOT NULL,
    refund_minor  bigint NOT NULL CHECK (refund_minor >= 0),
    idem_key      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, idem_key)
);
