-- Loyalty points: one point per whole currency unit a customer has paid, with a ledger that
-- explains every balance. A schema change plus a data migration over every order.
ALTER TABLE customers ADD COLUMN loyalty_points INTEGER NOT NULL DEFAULT 0;

CREATE TABLE loyalty_ledger (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    order_id     INTEGER REFERENCES orders (id),
    points       INTEGER NOT NULL,
    reason       TEXT    NOT NULL
);
CREATE INDEX loyalty_ledger_customer ON loyalty_ledger (customer_id);

INSERT INTO loyalty_ledger (customer_id, order_id, points, reason)
SELECT customer_id, id, total_cents / 100, 'order'
FROM orders
WHERE status <> 'refunded' AND total_cents >= 100;

UPDATE customers
SET loyalty_points = (
    SELECT COALESCE(SUM(points), 0) FROM loyalty_ledger WHERE loyalty_ledger.customer_id = customers.id
);
