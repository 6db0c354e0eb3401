-- Retail sales metrics, as the Spark job computed them: revenue,
-- transactions and distinct customers per store and category, in 5-minute
-- windows sliding every minute, with an anomaly flag.
--
-- The anomaly rule: a window's revenue is anomalous when the same store and
-- category had at least 5 windows starting in the 15 minutes before it, and
-- the revenue is more than twice, or less than half, their average.
--
-- Records without a transaction, store or product id, or with no positive
-- price and quantity, are left out. Final windows land in Parquet under
-- ${OUT}/sales_metrics/, once each.
CREATE EXTERNAL TABLE sales (
  transaction_id VARCHAR, store_id VARCHAR, country VARCHAR, product_id VARCHAR,
  category VARCHAR, customer_id VARCHAR, price DOUBLE, quantity INT, ts TIMESTAMP
) STORED AS KAFKA LOCATION 'kafka://${KAFKA}/sales'
OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '10m', 'start' 'earliest');

CREATE EXTERNAL TABLE sales_metrics STORED AS PARQUET LOCATION '${OUT}/sales_metrics/';

INSERT INTO sales_metrics
SELECT window_start, window_end, store_id, category, revenue, transactions, customers,
       count(*) OVER recent AS recent_windows,
       avg(revenue) OVER recent AS recent_revenue,
       coalesce(count(*) OVER recent >= 5
                AND (revenue > 2 * avg(revenue) OVER recent OR revenue < 0.5 * avg(revenue) OVER recent),
                false) AS anomaly
FROM (
  SELECT window.start AS window_start, window.end AS window_end, store_id, category,
         round(sum(price * quantity), 2) AS revenue, count(*) AS transactions,
         count(DISTINCT customer_id) AS customers
  FROM sales
  WHERE transaction_id IS NOT NULL AND store_id IS NOT NULL AND product_id IS NOT NULL
    AND price > 0 AND quantity > 0
  GROUP BY window(ts, '5 minutes', '1 minute'), store_id, category
)
WINDOW recent AS (PARTITION BY store_id, category ORDER BY window_start
                  RANGE BETWEEN INTERVAL '15 minutes' PRECEDING AND INTERVAL '1 minute' PRECEDING);
