-- Bronze: the clickstream landed as it comes, every record that parses,
-- in Parquet partitioned by event date and hour
-- (${OUT}/bronze/clickstream/event_date=2026-01-05/event_hour=10/…).
-- Nothing is cleaned here: silver_*.sql clean and enrich.
CREATE EXTERNAL TABLE clickstream (
  event_id VARCHAR, session_id VARCHAR, user_id VARCHAR, event_type VARCHAR, page VARCHAR,
  product_id VARCHAR, category VARCHAR, country VARCHAR, device VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/clickstream'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE bronze_clickstream STORED AS PARQUET PARTITIONED BY (event_date, event_hour)
LOCATION '${OUT}/bronze/clickstream/';

INSERT INTO bronze_clickstream
SELECT event_id, session_id, user_id, event_type, page, product_id, category, country, device,
       price, quantity, ts,
       to_char(ts, '%Y-%m-%d') AS event_date, to_char(ts, '%H') AS event_hour
FROM clickstream;
