-- Data quality of the clickstream, per minute of event time: events read,
-- events silver keeps (every id present, a known event type, a purchase
-- with a positive price and quantity), and what the rest lack. Records
-- that are not JSON, or have no readable event time, are counted by
-- `stockyard streams` as rejected.
CREATE EXTERNAL TABLE clickstream (
  event_id VARCHAR, session_id VARCHAR, user_id VARCHAR, event_type VARCHAR, page VARCHAR,
  product_id VARCHAR, category VARCHAR, country VARCHAR, device VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/clickstream'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE clickstream_quality STORED AS PARQUET LOCATION '${OUT}/quality/clickstream/';

INSERT INTO clickstream_quality
SELECT window.start AS window_start, window.end AS window_end,
       count(*) AS events,
       count(*) FILTER (WHERE event_id IS NOT NULL AND session_id IS NOT NULL AND user_id IS NOT NULL
                          AND event_type IN ('page_view', 'add_to_cart', 'purchase')
                          AND (event_type <> 'purchase' OR (price > 0 AND quantity > 0))) AS valid,
       count(*) FILTER (WHERE event_id IS NULL OR session_id IS NULL OR user_id IS NULL) AS missing_id,
       count(*) FILTER (WHERE event_type IS NULL OR event_type NOT IN ('page_view', 'add_to_cart', 'purchase')) AS bad_event_type,
       count(*) FILTER (WHERE event_type = 'purchase' AND NOT coalesce(price > 0 AND quantity > 0, false)) AS bad_purchase
FROM clickstream
GROUP BY window(ts, '1 minute');
