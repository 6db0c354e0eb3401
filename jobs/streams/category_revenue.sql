-- Category revenue for the dashboard: orders, revenue and average price per
-- category in 5-minute windows sliding every minute, over the orders that
-- pass the same cleaning as top_products.sql. The Redis key
-- stream:category_revenue holds the open windows and the last 10 final ones.
CREATE EXTERNAL TABLE orders (
  order_id VARCHAR, product_id VARCHAR, product_name VARCHAR, category VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/orders'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE category_revenue STORED AS REDIS LOCATION '${REDIS}'
OPTIONS ('key' 'stream:category_revenue', 'keep' '10');

INSERT INTO category_revenue
SELECT window.start AS window_start, window.end AS window_end, initcap(trim(category)) AS category,
       count(*) AS orders, round(sum(price * quantity), 2) AS revenue, avg(price) AS avg_price
FROM orders
WHERE order_id IS NOT NULL AND product_id IS NOT NULL AND product_name IS NOT NULL
  AND category IS NOT NULL AND price > 0 AND quantity > 0
GROUP BY window(ts, '5 minutes', '1 minute'), initcap(trim(category))
ORDER BY revenue DESC;
