-- What entities that come and go read on activation, and what finds them while they are
-- passivated, by index.

-- Carts leave memory minutes after their last use, long before they count as abandoned:
-- the API finds the ones due (lines, not yet reported, untouched for the abandon time) by
-- this index and wakes each once to say so.
CREATE INDEX IF NOT EXISTS carts_abandonable ON carts (((state->>'touched_at')::float8))
    WHERE (state->>'abandoned')::boolean IS NOT TRUE
      AND jsonb_array_length(state->'lines') > 0;

-- A SKU loads on every activation now (not once per process lifetime): its recent direct
-- buys by idempotency scope, and the stock returns it applied, by index, never by scanning
-- every order and return there is.
CREATE INDEX IF NOT EXISTS orders_idem_scope ON orders (idem_scope, created_at);
CREATE INDEX IF NOT EXISTS stock_returns_sku ON stock_returns (sku);
