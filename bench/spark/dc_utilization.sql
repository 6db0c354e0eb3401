-- KPI 4 in Spark SQL: jobs/src/kpi/dc_utilization.sql, translated
-- (`100.0D`: a DOUBLE, as DataFusion reads `100.0`).
WITH readings AS (
    SELECT i.sku_id, i.dc_id, i.on_hand_qty,
           row_number() OVER (
               PARTITION BY i.sku_id, i.dc_id
               ORDER BY i.inventory_ts DESC, i.on_hand_qty DESC
           ) AS rn
    FROM inventory_fact i
    JOIN skus_dim s ON s.sku_id = i.sku_id
    WHERE i.inventory_ts >= {start} AND i.inventory_ts < {end}
      AND i.dc_id IS NOT NULL AND i.on_hand_qty IS NOT NULL
),
used AS (
    SELECT dc_id, sum(CAST(on_hand_qty AS BIGINT)) AS used_units
    FROM readings WHERE rn = 1 GROUP BY dc_id
)
SELECT d.dc_id, d.dc_name, d.region, d.capacity_units,
       coalesce(u.used_units, 0) AS used_units,
       CASE WHEN d.capacity_units > 0
            THEN 100.0D * CAST(coalesce(u.used_units, 0) AS DOUBLE) / CAST(d.capacity_units AS DOUBLE)
       END AS utilization_pct
FROM dcs_dim d
LEFT JOIN used u ON u.dc_id = d.dc_id
WHERE d.dc_id IS NOT NULL
ORDER BY utilization_pct DESC NULLS LAST, d.dc_id
