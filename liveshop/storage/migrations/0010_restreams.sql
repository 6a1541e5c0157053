-- Restream destinations: other platforms' RTMP ingests a room's show is forwarded to. The
-- URL holds the platform's stream key, so it is only ever shown masked.
CREATE TABLE restreams (
    room_id     text NOT NULL REFERENCES rooms (id),
    id          text NOT NULL,
    url         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, id)
);
