-- Silver purchases: clickstream purchases with every id present and a
-- positive price and quantity, enriched from skus_dim (MongoDB) with the
-- product's name, category and list price, in Parquet partitioned by
-- event date. `discount` is how far under the list price it sold.
CREATE EXTERNAL TABLE clickstream (
  event_id VARCHAR, session_id VARCHAR, user_id VARCHAR, event_type VARCHAR, page VARCHAR,
  product_id VARCHAR, category VARCHAR, country VARCHAR, device VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/clickstream'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE silver_purchases STORED AS PARQUET PARTITIONED BY (event_date)
LOCATION '${OUT}/silver/purchases/';

INSERT INTO silver_purchases
SELECT c.event_id, c.session_id, c.user_id, c.product_id, s.product_name, s.category,
       c.price, c.quantity, c.price * c.quantity AS amount, s.unit_price - c.price AS discount,
       c.country, c.device, c.ts, to_char(c.ts, '%Y-%m-%d') AS event_date
FROM clickstream c JOIN skus_dim s ON c.product_id = s.sku_id
WHERE c.event_type = 'purchase'
  AND c.event_id IS NOT NULL AND c.session_id IS NOT NULL AND c.user_id IS NOT NULL
  AND c.price > 0 AND c.quantity > 0;
