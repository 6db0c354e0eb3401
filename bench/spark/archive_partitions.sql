-- The archive's layout in Spark SQL (bench/sql/archive_partitions.sql):
-- documents before the cutoff per collection and event_date/event_hour
-- partition (UTC; the session time zone is UTC).
SELECT collection, event_date, event_hour, count(*) AS documents
FROM (
    SELECT 'orders_fact' AS collection, date_format(order_ts, 'yyyy-MM-dd') AS event_date,
           hour(order_ts) AS event_hour
    FROM orders_fact WHERE order_ts < {cutoff}
    UNION ALL
    SELECT 'shipments_fact', date_format(arrival_ts, 'yyyy-MM-dd'), hour(arrival_ts)
    FROM shipments_fact WHERE arrival_ts < {cutoff}
    UNION ALL
    SELECT 'inventory_fact', date_format(inventory_ts, 'yyyy-MM-dd'), hour(inventory_ts)
    FROM inventory_fact WHERE inventory_ts < {cutoff}
) t
GROUP BY collection, event_date, event_hour
ORDER BY collection, event_date, event_hour
