-- archive_partitions.sql with each collection grouped before the UNION ALL:
-- the same rows. It sidesteps a bug of Stockyard's cluster (BENCHMARKS.md):
-- a GROUP BY over a UNION ALL of scans that have several partitions each
-- counts every branch after the first once per partition.
SELECT 'orders_fact' AS collection, to_char(order_ts, '%Y-%m-%d') AS event_date,
       CAST(date_part('hour', order_ts) AS INT) AS event_hour, count(*) AS documents
FROM orders_fact WHERE order_ts < {cutoff}
GROUP BY to_char(order_ts, '%Y-%m-%d'), CAST(date_part('hour', order_ts) AS INT)
UNION ALL
SELECT 'shipments_fact', to_char(arrival_ts, '%Y-%m-%d'), CAST(date_part('hour', arrival_ts) AS INT), count(*)
FROM shipments_fact WHERE arrival_ts < {cutoff}
GROUP BY to_char(arrival_ts, '%Y-%m-%d'), CAST(date_part('hour', arrival_ts) AS INT)
UNION ALL
SELECT 'inventory_fact', to_char(inventory_ts, '%Y-%m-%d'), CAST(date_part('hour', inventory_ts) AS INT), count(*)
FROM inventory_fact WHERE inventory_ts < {cutoff}
GROUP BY to_char(inventory_ts, '%Y-%m-%d'), CAST(date_part('hour', inventory_ts) AS INT)
ORDER BY collection, event_date, event_hour
