-- A bank transfer that pays several pledges at once (one sponsor, two letters, one
-- transfer naming both references) becomes one payment per pledge, each pointing to the
-- statement line it came from. statement_line.payment_id stays the mark of a booked line
-- (its first payment); deleting any payment of a line deletes all of them
-- (sync/sponsors/payments.py), so the line waits on the statement page again, whole.
ALTER TABLE payment ADD COLUMN IF NOT EXISTS statement_line_id bigint
    REFERENCES statement_line (id);
CREATE INDEX IF NOT EXISTS payment_statement_line ON payment (statement_line_id)
    WHERE statement_line_id IS NOT NULL;
UPDATE payment y SET statement_line_id = l.id
FROM statement_line l WHERE l.payment_id = y.id AND y.statement_line_id IS NULL;
