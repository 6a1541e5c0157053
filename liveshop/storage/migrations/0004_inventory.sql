-- Commerce, part 1: SKUs with their stock, the inventory ledger, cart holds and the orders a
-- buy places. A SKU actor writes one batch of decisions in one transaction (group commit).
CREATE TABLE skus (
    id               text PRIMARY KEY,
    product_id       text NOT NULL REFERENCES products (id),
    price_minor      bigint NOT NULL CHECK (price_minor >= 0),
    currency         char(3) NOT NULL,
    on_hand          bigint NOT NULL CHECK (on_hand >= 0),
    reserved         bigint NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    sold             bigint NOT NULL CHECK (sold >= 0),
    limit_per_buyer  integer CHECK (limit_per_buyer > 0),
    -- The current (or last) flash deal, see commerce.inventory.FlashDeal.
    deal             jsonb,
    deal_sold        bigint NOT NULL DEFAULT 0,
    -- Numbers reservation and order ids, so they are never reused after a restart.
    next_seq         bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX skus_product ON skus (product_id);

-- Every change of stock; the sums of the deltas are the SKU's counts.
CREATE TABLE inventory_ledger (
    id              bigserial PRIMARY KEY,
    sku             text NOT NULL REFERENCES skus (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    on_hand_delta   bigint NOT NULL,
    reserved_delta  bigint NOT NULL,
    sold_delta      bigint NOT NULL,
    ref             text NOT NULL,
    at              timestamptz NOT NULL
);
CREATE INDEX inventory_ledger_sku ON inventory_ledger (sku, id);

-- Cart holds; rows stay after they close (for the idempotent answer and the audit trail).
CREATE TABLE sku_reservations (
    id           text PRIMARY KEY,
    sku          text NOT NULL REFERENCES skus (id) ON DELETE CASCADE,
    buyer_id     text NOT NULL,
    idem_key     text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    ttl          double precision NOT NULL,
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    deal_id      text,
    room_id      text,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'held'
                 CHECK (status IN ('held', 'released', 'expired', 'committed')),
    order_id     text,
    closed_at    timestamptz,
    UNIQUE (sku, buyer_id, idem_key)
);
CREATE INDEX sku_reservations_held ON sku_reservations (sku) WHERE status = 'held';

CREATE TABLE orders (
    id              text PRIMARY KEY,
    buyer_id        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'fulfilled', 'shipped', 'delivered',
                                      'cancelled')),
    currency        char(3) NOT NULL,
    subtotal_minor  bigint NOT NULL CHECK (subtotal_minor >= 0),
    tax_minor       bigint NOT NULL DEFAULT 0 CHECK (tax_minor >= 0),
    shipping_minor  bigint NOT NULL DEFAULT 0 CHECK (shipping_minor >= 0),
    total_minor     bigint NOT NULL CHECK (total_minor >= 0),
    -- Where the purchase happened (commissions and analytics).
    room_id         text,
    -- Idempotency: a buyer's key is unique within its scope (a SKU's buys, checkout, ...).
    idem_scope      text NOT NULL,
    idem_key        text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (buyer_id, idem_scope, idem_key)
);
CREATE INDEX orders_buyer ON orders (buyer_id, created_at DESC);

CREATE TABLE order_lines (
    order_id        text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line            smallint NOT NULL,
    sku             text NOT NULL REFERENCES skus (id),
    product_id      text NOT NULL,
    quantity        integer NOT NULL CHECK (quantity > 0),
    price_minor     bigint NOT NULL CHECK (price_minor >= 0),
    deal_id         text,
    -- Set when the line came from a cart hold (its units were counted at commit).
    reservation_id  text,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX order_lines_sku ON order_lines (sku);

-- Rooms that pin a SKU's product: the SKU pushes its stock counter to them.
CREATE TABLE sku_watchers (
    sku      text NOT NULL REFERENCES skus (id) ON DELETE CASCADE,
    room_id  text NOT NULL,
    PRIMARY KEY (sku, room_id)
);
