-- Where a product may be promoted: the rooms its seller allows to pin or queue it, run flash
-- deals on it and auction it (docs/protocol.md, "Ownership"). A seller's own rooms (rooms
-- whose host is the seller) need no row.
CREATE TABLE product_rooms (
    product_id  text NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    room_id     text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    granted_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, room_id)
);
CREATE INDEX product_rooms_room ON product_rooms (room_id);
