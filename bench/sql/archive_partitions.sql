-- The archive job's layout (archive step 3) as DataFusion SQL: documents
-- before the cutoff per collection and event_date=YYYY-MM-DD/event_hour=H
-- partition, from the event time in UTC.
SELECT collection, event_date, event_hour, count(*) AS documents
FROM (
    SELECT 'orders_fact' AS collection, to_char(order_ts, '%Y-%m-%d') AS event_date,
           CAST(date_part('hour', order_ts) AS INT) AS event_hour
    FROM orders_fact WHERE order_ts < {cutoff}
    UNION ALL
    SELECT 'shipments_fact', to_char(arrival_ts, '%Y-%m-%d'), CAST(date_part('hour', arrival_ts) AS INT)
    FROM shipments_fact WHERE arrival_ts < {cutoff}
    UNION ALL
    SELECT 'inventory_fact', to_char(inventory_ts, '%Y-%m-%d'), CAST(date_part('hour', inventory_ts) AS INT)
    FROM inventory_fact WHERE inventory_ts < {cutoff}
) t
GROUP BY collection, event_date, event_hour
ORDER BY collection, event_date, event_hour
