-- Readable order numbers (LS-10427) for shoppers and support. The id stays the internal key
-- (idempotency and every reference use it); the number is assigned by PostgreSQL when the
-- order row is inserted, whoever inserts it (buys, checkouts, auctions), and never changes.
CREATE SEQUENCE order_numbers START 10001;

ALTER TABLE orders ADD COLUMN number text;
-- Orders placed before this migration are numbered in the order they were placed.
UPDATE orders o SET number = 'LS-' || (10000 + n.rank)
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS rank FROM orders) n
WHERE o.id = n.id;
SELECT setval('order_numbers', 10001 + (SELECT count(*) FROM orders), false);

ALTER TABLE orders
    ALTER COLUMN number SET DEFAULT 'LS-' || nextval('order_numbers'),
    ALTER COLUMN number SET NOT NULL,
    ADD CONSTRAINT orders_number_key UNIQUE (number);
ALTER SEQUENCE order_numbers OWNED BY orders.number;
