-- Silver page views: clickstream page views with every id present,
-- enriched with the product's name and category from the skus_dim
-- collection (MongoDB), in Parquet partitioned by event date.
CREATE EXTERNAL TABLE clickstream (
  event_id VARCHAR, session_id VARCHAR, user_id VARCHAR, event_type VARCHAR, page VARCHAR,
  product_id VARCHAR, category VARCHAR, country VARCHAR, device VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/clickstream'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE silver_page_views STORED AS PARQUET PARTITIONED BY (event_date)
LOCATION '${OUT}/silver/page_views/';

INSERT INTO silver_page_views
SELECT c.event_id, c.session_id, c.user_id, c.page, c.product_id, s.product_name, s.category,
       c.country, c.device, c.ts, to_char(c.ts, '%Y-%m-%d') AS event_date
FROM clickstream c JOIN skus_dim s ON c.product_id = s.sku_id
WHERE c.event_type = 'page_view'
  AND c.event_id IS NOT NULL AND c.session_id IS NOT NULL AND c.user_id IS NOT NULL;
