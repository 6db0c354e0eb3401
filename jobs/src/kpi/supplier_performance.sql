-- KPI 3: per supplier, the shipments that arrived in the window.
SELECT sh.supplier_id, sp.supplier_name,
       count(*) AS shipments,
       sum(CAST(sh.quantity AS BIGINT)) AS units,
       avg(CAST(CAST(sh.arrival_ts AS BIGINT) - CAST(sh.shipped_ts AS BIGINT) AS DOUBLE) / 86400000.0)
           AS avg_lead_time_days,
       sp.promised_lead_time_days,
       avg(CASE WHEN sh.arrival_ts <= sh.expected_arrival_ts THEN 1.0 ELSE 0.0 END) AS on_time_rate,
       sum(CASE WHEN sh.arrival_ts > sh.expected_arrival_ts THEN 1 ELSE 0 END) AS late_shipments
FROM shipments_fact sh
JOIN skus_dim s ON s.sku_id = sh.sku_id
JOIN dcs_dim d ON d.dc_id = sh.dc_id
JOIN suppliers_dim sp ON sp.supplier_id = sh.supplier_id
WHERE sh.arrival_ts >= {start} AND sh.arrival_ts < {end}
  AND sh.quantity IS NOT NULL
GROUP BY sh.supplier_id, sp.supplier_name, sp.promised_lead_time_days
ORDER BY on_time_rate, sh.supplier_id
