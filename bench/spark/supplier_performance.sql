-- KPI 3 in Spark SQL: jobs/src/kpi/supplier_performance.sql, translated.
-- DataFusion's CAST(ts AS BIGINT) of a millisecond timestamp is epoch
-- milliseconds; Spark's is epoch seconds, so the Spark text says
-- unix_millis(ts). Decimal literals are written as DOUBLEs (`1.0D`), as
-- DataFusion reads them.
SELECT sh.supplier_id, sp.supplier_name,
       count(*) AS shipments,
       sum(CAST(sh.quantity AS BIGINT)) AS units,
       avg(CAST(unix_millis(sh.arrival_ts) - unix_millis(sh.shipped_ts) AS DOUBLE) / 86400000.0D)
           AS avg_lead_time_days,
       sp.promised_lead_time_days,
       avg(CASE WHEN sh.arrival_ts <= sh.expected_arrival_ts THEN 1.0D ELSE 0.0D END) AS on_time_rate,
       sum(CASE WHEN sh.arrival_ts > sh.expected_arrival_ts THEN 1 ELSE 0 END) AS late_shipments
FROM shipments_fact sh
JOIN skus_dim s ON s.sku_id = sh.sku_id
JOIN dcs_dim d ON d.dc_id = sh.dc_id
JOIN suppliers_dim sp ON sp.supplier_id = sh.supplier_id
WHERE sh.arrival_ts >= {start} AND sh.arrival_ts < {end}
  AND sh.quantity IS NOT NULL
GROUP BY sh.supplier_id, sp.supplier_name, sp.promised_lead_time_days
ORDER BY on_time_rate, sh.supplier_id
