-- Virtual gifts: a catalog priced in coins, coin wallets that never go negative, and every
-- gift sent (idempotent per sender and key; event_offset set once the room published it).
ALTER TABLE rooms ADD COLUMN host_id text;

CREATE TABLE gifts (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    price_coins  bigint NOT NULL CHECK (price_coins > 0),
    image_url    text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    user_id     text PRIMARY KEY,
    coins       bigint NOT NULL DEFAULT 0 CHECK (coins >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change of a balance, for audits and for idempotent top-ups.
CREATE TABLE wallet_ledger (
    id          bigserial PRIMARY KEY,
    user_id     text NOT NULL,
    delta       bigint NOT NULL,
    reason      text NOT NULL,
    ref         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, reason, ref)
);

CREATE TABLE gift_sends (
    id            bigserial PRIMARY KEY,
    sender_id     text NOT NULL,
    idem_key      text NOT NULL,
    request_hash  text NOT NULL,
    room_id       text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    recipient_id  text NOT NULL,
    gift_id       text NOT NULL REFERENCES gifts (id),
    quantity      integer NOT NULL CHECK (quantity > 0),
    coins         bigint NOT NULL CHECK (coins > 0),
    sender_name   text NOT NULL,
    event_offset  bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sender_id, idem_key)
);
CREATE INDEX gift_sends_unpublished ON gift_sends (room_id) WHERE event_offset IS NULL;
