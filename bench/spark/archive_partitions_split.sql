-- bench/sql/archive_partitions_split.sql in Spark SQL: archive_partitions
-- with each collection grouped before the UNION ALL (the same rows).
SELECT 'orders_fact' AS collection, date_format(order_ts, 'yyyy-MM-dd') AS event_date,
       hour(order_ts) AS event_hour, count(*) AS documents
FROM orders_fact WHERE order_ts < {cutoff}
GROUP BY date_format(order_ts, 'yyyy-MM-dd'), hour(order_ts)
UNION ALL
SELECT 'shipments_fact', date_format(arrival_ts, 'yyyy-MM-dd'), hour(arrival_ts), count(*)
FROM shipments_fact WHERE arrival_ts < {cutoff}
GROUP BY date_format(arrival_ts, 'yyyy-MM-dd'), hour(arrival_ts)
UNION ALL
SELECT 'inventory_fact', date_format(inventory_ts, 'yyyy-MM-dd'), hour(inventory_ts), count(*)
FROM inventory_fact WHERE inventory_ts < {cutoff}
GROUP BY date_format(inventory_ts, 'yyyy-MM-dd'), hour(inventory_ts)
ORDER BY collection, event_date, event_hour
