//! Decoding speed on one core: the BSON batches that
//! `shared/bench/pma_decode.py --dump FILE` writes (orders documents,
//! concatenated), decoded into Arrow as a scan would.
//!
//! `cargo bench -p stockyard-mongo --bench decode -- FILE [RUNS]` prints a
//! table; `scripts/bench` runs it next to pymongoarrow on the same file.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use stockyard_mongo::Decoder;
use stockyard_mongo::schema::{KIND_KEY, timestamp_type};

/// Server-sized batches: the dump's documents grouped into ~4 MB runs.
fn batches(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at + 4 <= bytes.len() {
        let len = i32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += len.max(5);
        if at - start >= 4_000_000 {
            out.push(&bytes[start..at.min(bytes.len())]);
            start = at;
        }
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(path) = args.next() else {
        eprintln!("usage: decode FILE [RUNS]   (FILE from shared/bench/pma_decode.py --dump FILE)");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let batches = batches(&bytes);
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, true).with_metadata([(KIND_KEY.to_string(), "objectId".to_string())].into()),
        Field::new("order_id", DataType::Utf8, true),
        Field::new("sku_id", DataType::Utf8, true),
        Field::new("dc_id", DataType::Utf8, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("unit_price", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("order_ts", timestamp_type(), true),
    ]));
    let mut times = Vec::new();
    let mut docs = 0usize;
    for _ in 0..runs {
        let started = Instant::now();
        let mut decoder = Decoder::new(schema.clone()).expect("schema");
        let mut rows = 0;
        for batch in &batches {
            let mut at = 0;
            while at + 4 <= batch.len() {
                let len = i32::from_le_bytes(batch[at..at + 4].try_into().expect("4 bytes")) as usize;
                let end = (at + len.max(5)).min(batch.len());
                decoder.append_bytes(&batch[at..end]);
                at = end;
                if decoder.rows() == 8192 {
                    rows += decoder.finish().expect("batch").num_rows();
                }
            }
        }
        rows += decoder.finish().expect("batch").num_rows();
        times.push(started.elapsed().as_secs_f64());
        docs = rows;
        assert!(decoder.rejected().iter().all(|c| c.iter().all(|&n| n == 0)), "the dump decodes cleanly");
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!("| decoder | docs | bytes/doc | median s | docs/s | MB/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| stockyard (raw BSON -> Arrow, 1 core) | {docs} | {:.0} | {median:.3} | {:.0} | {:.0} |",
        bytes.len() as f64 / docs as f64,
        docs as f64 / median,
        bytes.len() as f64 / median / 1e6
    );
}
