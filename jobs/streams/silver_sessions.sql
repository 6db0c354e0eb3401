-- Silver sessions: per session and 30-minute window of event time, its
-- events, page views, carts, purchases and revenue, first and last event.
-- A session that crosses a window boundary is counted in each window it
-- touches (sessions here last minutes, windows half an hour).
CREATE EXTERNAL TABLE clickstream (
  event_id VARCHAR, session_id VARCHAR, user_id VARCHAR, event_type VARCHAR, page VARCHAR,
  product_id VARCHAR, category VARCHAR, country VARCHAR, device VARCHAR,
  price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/clickstream'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE silver_sessions STORED AS PARQUET LOCATION '${OUT}/silver/sessions/';

INSERT INTO silver_sessions
SELECT window.start AS window_start, window.end AS window_end, session_id,
       min(user_id) AS user_id, min(country) AS country, min(device) AS device,
       count(*) AS events,
       count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
       count(*) FILTER (WHERE event_type = 'add_to_cart') AS carts,
       count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
       coalesce(sum(price * quantity) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,
       min(ts) AS first_event, max(ts) AS last_event
FROM clickstream
WHERE session_id IS NOT NULL AND event_id IS NOT NULL
GROUP BY window(ts, '30 minutes'), session_id;
