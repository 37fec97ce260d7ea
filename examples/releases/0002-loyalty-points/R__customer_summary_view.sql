-- What the app's account page reads. Repeatable: re-created whenever this file changes.
DROP VIEW IF EXISTS customer_summary;
CREATE VIEW customer_summary AS
SELECT c.id,
       c.email,
       c.full_name,
       c.loyalty_points,
       COUNT(o.id)                      AS order_count,
       COALESCE(SUM(o.total_cents), 0)  AS lifetime_cents
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id
GROUP BY c.id;
