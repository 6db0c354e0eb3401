-- The archive's selection in Spark SQL (bench/sql/archive_selection.sql):
-- per fact collection, the documents whose event time is before the
-- cutoff (`now - older_than`): how many, and their event-time range.
SELECT 'orders_fact' AS collection, count(*) AS documents, min(order_ts) AS min_ts, max(order_ts) AS max_ts
FROM orders_fact WHERE order_ts < {cutoff}
UNION ALL
SELECT 'shipments_fact', count(*), min(arrival_ts), max(arrival_ts)
FROM shipments_fact WHERE arrival_ts < {cutoff}
UNION ALL
SELECT 'inventory_fact', count(*), min(inventory_ts), max(inventory_ts)
FROM inventory_fact WHERE inventory_ts < {cutoff}
ORDER BY collection
