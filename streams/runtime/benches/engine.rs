//! The stream engine without a broker: N sales events (the shape of
//! `bench/lib/stream_load.py`) decoded from JSON in batches of 200,000,
//! aggregated into panes and merged into the window state as a batch does,
//! then every window finished, for the hop-window query of
//! `scripts/bench stream` (5 minutes sliding every minute, per category).
//! What the stream would do per second were the broker not the bound.
//!
//! `cargo bench -p stockyard-stream-runtime --bench engine -- [EVENTS]`

use std::collections::BTreeSet;
use std::time::Instant;

use stockyard_stream_runtime::plan::{Prepared, WindowPlan};
use stockyard_stream_runtime::{Definition, Environment, window};

#[tokio::main]
async fn main() {
    let events: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE EXTERNAL TABLE sales (transaction_id VARCHAR, store_id VARCHAR, category VARCHAR, price DOUBLE,
           quantity INT, ts TIMESTAMP) STORED AS KAFKA LOCATION 'kafka://127.0.0.1:9/sales'
           OPTIONS ('event_time' 'ts', 'watermark' '10 minutes');
         CREATE EXTERNAL TABLE hops STORED AS PARQUET LOCATION '{}';
         INSERT INTO hops SELECT window.start AS window_start, window.end AS window_end, category,
           count(*) AS sales, sum(price * quantity) AS revenue
         FROM sales GROUP BY window(ts, '5 minutes', '1 minute'), category",
        dir.path().display()
    );
    let env = Environment { local_files: true, tables: None };
    let d = Definition::parse("bench", &sql, &env).await.expect("the bench's stream parses");
    let spec = d.window.unwrap();
    let categories = ["grocery", "electronics", "apparel", "home", "toys", "beauty", "sports", "books"];
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z").unwrap();
    let values: Vec<Vec<u8>> = (0..events)
        .map(|i| {
            let ts = base + chrono::Duration::milliseconds(10 * (i / 2) as i64);
            serde_json::json!({
                "transaction_id": format!("t{i}"), "store_id": format!("s{}", i % 50),
                "category": categories[i % categories.len()], "price": 1.0 + (i % 97) as f64 * 0.5,
                "quantity": 1 + i % 3, "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    let prepared = Prepared::new(&d).await.unwrap();
    let started = Instant::now();
    let mut states = Vec::new();
    let mut column = 0;
    let (mut decode_s, mut aggregate_s) = (0.0, 0.0);
    for chunk in values.chunks(200_000) {
        let t = Instant::now();
        let decoded = stockyard_stream_source::decode(
            chunk.iter().map(|v| Some(v.as_slice())),
            &d.source.schema,
            d.source.event_time,
        );
        decode_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let split = WindowPlan::split(prepared.physical(vec![decoded.batch]).await.unwrap(), &spec).unwrap();
        column = split.window_column;
        let mut all = states;
        all.extend(split.partial(&prepared).await.unwrap());
        states = split.reduce(&prepared, all).await.unwrap();
        aggregate_s += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    let split = WindowPlan::split(prepared.physical(vec![]).await.unwrap(), &spec).unwrap();
    let panes: BTreeSet<i64> =
        states.iter().flat_map(|b| window::starts(b.column(column).as_ref())).flatten().collect();
    let windows: BTreeSet<i64> = panes.iter().flat_map(|&p| spec.windows_of_pane(p)).collect();
    let mut rows = 0;
    for &start in &windows {
        let input = stockyard_stream_runtime::stream::window_input(&states, column, &spec, start).unwrap();
        rows += split.finish(&prepared, input).await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>();
    }
    let finish_s = t.elapsed().as_secs_f64();
    let total = started.elapsed().as_secs_f64();
    assert_eq!(rows, windows.len() * categories.len());
    println!("| engine alone (decode, panes, windows) | {events} | {total:.2} | {:.0} |", events as f64 / total);
    println!(
        "| of which: JSON -> Arrow {decode_s:.2} s, pane aggregation {aggregate_s:.2} s, {} windows finished {finish_s:.2} s | | | |",
        windows.len()
    );
}
