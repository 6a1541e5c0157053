-- Entities hosted many to a process (liveshop/mesh): which host owns each entity, fenced by
-- an epoch that every claim raises, and the directory of hosts entities are placed on.
CREATE TABLE entity_owners (
    kind text NOT NULL,
    key text NOT NULL,
    host text NOT NULL,
    epoch bigint NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);

-- The hosts entities are placed on: slots (placed by a stable hash) and dedicated hosts
-- (``entity`` = 'kind:key', that entity alone). Written by `liveshop up` and when the
-- cluster's ``actors`` units change; read by every caller and host every few seconds.
CREATE TABLE entity_hosts (
    name text PRIMARY KEY,
    entity text UNIQUE,
    added_at timestamptz NOT NULL DEFAULT now()
);
