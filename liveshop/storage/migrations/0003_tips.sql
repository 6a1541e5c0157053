-- A tip is a gift of the built-in "tip" item priced one coin, sent in any quantity.
INSERT INTO gifts (id, name, price_coins) VALUES ('tip', 'Tip', 1) ON CONFLICT (id) DO NOTHING;
