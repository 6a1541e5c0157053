-- The skeleton: channels, rooms, products and the room event log.
CREATE TABLE channels (
    id          text PRIMARY KEY,
    title       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rooms (
    id           text PRIMARY KEY,
    channel_id   text REFERENCES channels (id),
    title        text NOT NULL,
    status       text NOT NULL DEFAULT 'live' CHECK (status IN ('scheduled', 'live', 'ended')),
    -- Changes when a restart may have lost published events; clients then resync.
    epoch        text NOT NULL,
    last_offset  bigint NOT NULL DEFAULT 0,
    -- Pinned product, reaction totals, peak viewers: see Room.durable_state().
    state        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id           text PRIMARY KEY,
    title        text NOT NULL,
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    currency     char(3) NOT NULL,
    image_url    text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_events (
    room_id       text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    event_offset  bigint NOT NULL,
    epoch         text NOT NULL,
    kind          text NOT NULL,
    data          jsonb NOT NULL,
    ts_ms         bigint NOT NULL,
    PRIMARY KEY (room_id, event_offset)
);
