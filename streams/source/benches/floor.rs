//! The floor under a stream's throughput, on the broker the stream reads:
//! reading a topic with rskafka alone, and decoding its JSON values into
//! Arrow alone (one core). `scripts/bench stream` prints these beside the
//! stream's own figure.
//!
//! `cargo bench -p stockyard-stream-source --bench floor -- kafka://H:P/TOPIC`

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use stockyard_stream_source::{Broker, KafkaLocation, decode};

#[tokio::main]
async fn main() {
    let location: KafkaLocation =
        std::env::args().nth(1).expect("usage: floor kafka://HOST:PORT/TOPIC").parse().expect("a Kafka location");
    let broker = Broker::connect(&location).await.expect("connect");
    let started = Instant::now();
    let mut values = Vec::new();
    for p in broker.partitions().await.expect("partitions") {
        let end = broker.end(p, 0).await.expect("end");
        for r in broker.read(p, 0, end).await.expect("read") {
            values.push(r.value);
        }
    }
    let read = started.elapsed().as_secs_f64();
    let n = values.len() as f64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Utf8View, true),
        Field::new("store_id", DataType::Utf8View, true),
        Field::new("category", DataType::Utf8View, true),
        Field::new("price", DataType::Float64, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
    ]));
    let started = Instant::now();
    let mut rows = 0;
    for chunk in values.chunks(100_000) {
        rows += decode(chunk.iter().map(|v| v.as_deref()), &schema, Some(5)).batch.num_rows();
    }
    let decoded = started.elapsed().as_secs_f64();
    assert_eq!(rows, values.len(), "every event decodes");
    println!("| rskafka reading the topic alone | {n:.0} | {read:.2} | {:.0} |", n / read);
    println!("| JSON -> Arrow alone (one core) | {n:.0} | {decoded:.2} | {:.0} |", n / decoded);
}
