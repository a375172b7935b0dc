-- no-transaction
-- CONCURRENTLY cannot run inside a transaction; this file opts out, as with sqlx.
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON orders (customer);
