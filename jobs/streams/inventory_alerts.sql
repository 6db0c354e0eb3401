-- Inventory alerts: stock readings per store and product in 10-minute
-- windows sliding every 2 minutes. A product whose lowest stock in the
-- window is 20 units or fewer raises an alert:
--   lowest 0            -> out_of_stock, severity critical
--   lowest 1 to 5       -> low_stock,    severity high
--   lowest 6 to 20      -> low_stock,    severity medium
-- Stock turnover is the units sold in the window over the average stock
-- level in it.
--
-- Readings without a store or product, or with a negative or unreadable
-- level, are left out. The Redis key stream:inventory_alerts holds the open
-- windows and the last 15 final ones, most severe first.
CREATE EXTERNAL TABLE inventory (
  store_id VARCHAR, product_id VARCHAR, stock_level INT, units_sold INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/inventory'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE inventory_alerts STORED AS REDIS LOCATION '${REDIS}'
OPTIONS ('key' 'stream:inventory_alerts', 'keep' '15');

INSERT INTO inventory_alerts
SELECT window.start AS window_start, window.end AS window_end, store_id, product_id,
       CASE WHEN min(stock_level) = 0 THEN 'out_of_stock' ELSE 'low_stock' END AS alert,
       CASE WHEN min(stock_level) = 0 THEN 'critical'
            WHEN min(stock_level) <= 5 THEN 'high'
            ELSE 'medium' END AS severity,
       min(stock_level) AS lowest_stock,
       count(*) AS readings,
       sum(units_sold) AS units_sold,
       sum(units_sold) / nullif(avg(stock_level), 0) AS turnover
FROM inventory
WHERE store_id IS NOT NULL AND product_id IS NOT NULL AND stock_level >= 0
GROUP BY window(ts, '10 minutes', '2 minutes'), store_id, product_id
HAVING min(stock_level) <= 20
ORDER BY lowest_stock, store_id, product_id;
