-- KPI 2 in Spark SQL: jobs/src/kpi/stockout_alerts.sql, translated.
-- DataFusion reads `9999.0` as a DOUBLE, Spark as a DECIMAL: the Spark
-- text says `9999.0D`. {window_minutes} is rendered as a DOUBLE literal.
WITH stock AS (
    SELECT i.sku_id, i.dc_id, avg(CAST(i.on_hand_qty AS DOUBLE)) AS current_stock
    FROM inventory_fact i
    JOIN skus_dim s ON s.sku_id = i.sku_id
    JOIN dcs_dim d ON d.dc_id = i.dc_id
    WHERE i.inventory_ts >= {start} AND i.inventory_ts < {end}
      AND i.on_hand_qty IS NOT NULL
    GROUP BY i.sku_id, i.dc_id
),
sold AS (
    SELECT o.sku_id, o.dc_id, sum(CAST(o.quantity AS BIGINT)) AS units_sold
    FROM orders_fact o
    WHERE o.order_ts >= {start} AND o.order_ts < {end}
      AND o.sku_id IS NOT NULL AND o.dc_id IS NOT NULL AND o.quantity IS NOT NULL
      AND o.status IS DISTINCT FROM 'CANCELLED'
    GROUP BY o.sku_id, o.dc_id
),
rates AS (
    SELECT stock.sku_id, stock.dc_id, stock.current_stock,
           coalesce(sold.units_sold, 0) AS units_sold,
           CAST(coalesce(sold.units_sold, 0) AS DOUBLE) / {window_minutes} * 1440 AS units_per_day
    FROM stock
    LEFT JOIN sold ON sold.sku_id = stock.sku_id AND sold.dc_id = stock.dc_id
),
alerts AS (
    SELECT sku_id, dc_id, current_stock, units_sold, units_per_day,
           CASE WHEN units_per_day = 0 THEN 9999.0D ELSE current_stock / units_per_day END AS days_to_stockout
    FROM rates
)
SELECT a.sku_id, s.product_name, a.dc_id, d.dc_name,
       a.current_stock, a.units_sold, a.units_per_day, a.days_to_stockout
FROM alerts a
JOIN skus_dim s ON s.sku_id = a.sku_id
JOIN dcs_dim d ON d.dc_id = a.dc_id
WHERE a.days_to_stockout < 7
ORDER BY a.days_to_stockout, a.sku_id, a.dc_id
