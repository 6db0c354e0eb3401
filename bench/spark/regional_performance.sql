-- KPI 5 in Spark SQL: jobs/src/kpi/regional_performance.sql, translated
-- (`0.0D`: a DOUBLE, as DataFusion reads `0.0`).
SELECT d.region,
       count(*) AS total_orders,
       sum(CASE WHEN o.status = 'FULFILLED' THEN 1 ELSE 0 END) AS fulfilled_orders,
       CAST(sum(CASE WHEN o.status = 'FULFILLED' THEN 1 ELSE 0 END) AS DOUBLE) / CAST(count(*) AS DOUBLE)
           AS fulfillment_rate,
       coalesce(sum(CASE WHEN o.status IS DISTINCT FROM 'CANCELLED' THEN CAST(o.quantity AS BIGINT) END), 0) AS units,
       coalesce(sum(CASE WHEN o.status = 'FULFILLED' THEN CAST(o.quantity AS DOUBLE) * o.unit_price END), 0.0D) AS revenue
FROM orders_fact o
JOIN dcs_dim d ON d.dc_id = o.dc_id
JOIN skus_dim s ON s.sku_id = o.sku_id
WHERE o.order_ts >= {start} AND o.order_ts < {end}
  AND o.quantity IS NOT NULL
GROUP BY d.region
ORDER BY revenue DESC, d.region
