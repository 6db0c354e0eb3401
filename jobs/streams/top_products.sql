-- Live top products for the dashboard: the ten products with the most
-- revenue in 5-minute windows sliding every minute, with their orders and
-- units, from the web shop's orders (10 minutes allowed for late orders).
--
-- Orders are cleaned first: every field present, price > 0, quantity > 0,
-- category names written one way (' electronics ' is 'Electronics').
-- order_quality.sql counts what the cleaning leaves out. The Redis key
-- stream:top_products holds the open windows (updated every batch) and the
-- last 10 final ones.
CREATE EXTERNAL TABLE orders (
  order_id VARCHAR, product_id VARCHAR, product_name VARCHAR, category VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/orders'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE top_products STORED AS REDIS LOCATION '${REDIS}'
OPTIONS ('key' 'stream:top_products', 'keep' '10');

INSERT INTO top_products
SELECT window.start AS window_start, window.end AS window_end, product_id, product_name,
       initcap(trim(category)) AS category,
       count(*) AS orders, sum(quantity) AS units, round(sum(price * quantity), 2) AS revenue
FROM orders
WHERE order_id IS NOT NULL AND product_id IS NOT NULL AND product_name IS NOT NULL
  AND category IS NOT NULL AND price > 0 AND quantity > 0
GROUP BY window(ts, '5 minutes', '1 minute'), product_id, product_name, initcap(trim(category))
ORDER BY revenue DESC, product_id
LIMIT 10;
