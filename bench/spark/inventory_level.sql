-- KPI 1 in Spark SQL: jobs/src/kpi/inventory_level.sql, translated.
-- Same text: every construct here means the same in both dialects.
WITH readings AS (
    SELECT i.sku_id, i.dc_id, i.on_hand_qty, i.reserved_qty, i.inventory_ts,
           row_number() OVER (
               PARTITION BY i.sku_id, i.dc_id
               ORDER BY i.inventory_ts DESC, i.on_hand_qty DESC
           ) AS rn
    FROM inventory_fact i
    WHERE i.inventory_ts >= {start} AND i.inventory_ts < {end}
      AND i.sku_id IS NOT NULL AND i.dc_id IS NOT NULL AND i.on_hand_qty IS NOT NULL
)
SELECT r.sku_id, s.product_name, s.category, r.dc_id, d.dc_name, d.region,
       r.on_hand_qty, r.reserved_qty,
       r.on_hand_qty - r.reserved_qty AS available_qty,
       r.inventory_ts AS as_of
FROM readings r
JOIN skus_dim s ON s.sku_id = r.sku_id
JOIN dcs_dim d ON d.dc_id = r.dc_id
WHERE r.rn = 1
ORDER BY r.sku_id, r.dc_id
