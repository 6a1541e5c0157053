-- RTMP stream keys: one live key per room and slot (primary, backup). Only a hash is kept:
-- a key is shown once, when it is issued; rotating revokes the old one.
CREATE TABLE stream_keys (
    key_hash    text PRIMARY KEY,
    room_id     text NOT NULL REFERENCES rooms (id),
    slot        text NOT NULL CHECK (slot IN ('primary', 'backup')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX stream_keys_live ON stream_keys (room_id, slot) WHERE revoked_at IS NULL;
