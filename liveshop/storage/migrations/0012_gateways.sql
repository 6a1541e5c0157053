-- WebSocket gateways register themselves: each running gateway process keeps its row fresh
-- (seen_at) every few seconds and deletes it when it stops. A row not seen for a while is a
-- gateway that died; readers skip it and the live gateways prune it.
CREATE TABLE gateways (
    id           text PRIMARY KEY,
    url          text NOT NULL,
    node_id      text NOT NULL,
    node_ip      text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    connections  integer NOT NULL DEFAULT 0,
    rooms        integer NOT NULL DEFAULT 0
);
