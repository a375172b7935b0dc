-- Expand: a new column with a default, so the previous revision's inserts keep working.
ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'placed';
