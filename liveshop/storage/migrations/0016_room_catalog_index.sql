-- A room's catalog (GET /rooms/{id}/products, ProductStore.in_room) without scanning every
-- product: the products of the room's host by (seller_id, id), the products listed in the
-- room by (room_id, product_id), each read in id order for keyset paging.
CREATE INDEX products_seller ON products (seller_id, id);
CREATE INDEX product_rooms_room_product ON product_rooms (room_id, product_id);
DROP INDEX product_rooms_room;
