-- What the orders' cleaning leaves out, per minute of event time: orders
-- read, orders kept, orders missing a field (a null, or a value of the
-- wrong type, which is read as null), and orders with no positive price or
-- quantity. Records that are not JSON at all, or have no readable event
-- time, never reach a query: `stockyard streams` counts them as rejected.
CREATE EXTERNAL TABLE orders (
  order_id VARCHAR, product_id VARCHAR, product_name VARCHAR, category VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/orders'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE order_quality STORED AS REDIS LOCATION '${REDIS}'
OPTIONS ('key' 'stream:order_quality', 'keep' '30');

INSERT INTO order_quality
SELECT window.start AS window_start, window.end AS window_end,
       count(*) AS orders,
       count(*) FILTER (WHERE order_id IS NOT NULL AND product_id IS NOT NULL AND product_name IS NOT NULL
                          AND category IS NOT NULL AND price > 0 AND quantity > 0) AS kept,
       count(*) FILTER (WHERE order_id IS NULL OR product_id IS NULL OR product_name IS NULL
                          OR category IS NULL OR price IS NULL OR quantity IS NULL) AS missing_field,
       count(*) FILTER (WHERE price <= 0 OR quantity <= 0) AS not_positive
FROM orders
GROUP BY window(ts, '1 minute');
