-- Live auctions: the terms, every accepted bid (replayed on restart), and the settlement
-- (the winner's order, the unit taken from the SKU's hold, the payment attempt).
CREATE TABLE auctions (
    id              text PRIMARY KEY,
    room_id         text NOT NULL,
    sku             text NOT NULL REFERENCES skus (id),
    -- The unit on sale is held from the SKU for the auction's whole life.
    reservation_id  text NOT NULL,
    currency        char(3) NOT NULL,
    start_price     bigint NOT NULL CHECK (start_price >= 0),
    min_increment   bigint NOT NULL CHECK (min_increment > 0),
    reserve_price   bigint CHECK (reserve_price >= 0),
    starts_at       double precision NOT NULL,
    ends_at         double precision NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('extend', 'sudden_death')),
    extend_window   double precision NOT NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Kept current as bids land (for services; the bids are the truth).
    price           bigint,
    leader          text,
    current_ends_at double precision,
    -- Settlement.
    ended           boolean NOT NULL DEFAULT false,
    winner          text,
    result          text,
    order_id        text REFERENCES orders (id),
    stock_done      boolean NOT NULL DEFAULT false,
    payment_done    boolean NOT NULL DEFAULT false
);
CREATE INDEX auctions_room ON auctions (room_id, created_at DESC);

CREATE TABLE auction_bids (
    id          bigserial PRIMARY KEY,
    auction_id  text NOT NULL REFERENCES auctions (id) ON DELETE CASCADE,
    bidder      text NOT NULL,
    amount      bigint NOT NULL,
    max_amount  bigint NOT NULL,
    idem_key    text NOT NULL,
    at          double precision NOT NULL,
    UNIQUE (auction_id, bidder, idem_key)
);
CREATE INDEX auction_bids_auction ON auction_bids (auction_id, id);
