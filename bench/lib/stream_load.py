"""Loads EVENTS sales events into a Kafka topic, spread over its
partitions, event times in order per partition (one event every 10 ms of
event time from 2026-11-30T00:00:00Z), for `scripts/bench stream`."""
import datetime
import json
import sys

from kafka import KafkaProducer

port, topic, events, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
categories = ["grocery", "electronics", "apparel", "home", "toys", "beauty", "sports", "books"]
base = datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc)
producer = KafkaProducer(
    bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 5, 0), linger_ms=50, batch_size=1 << 20,
    max_request_size=8 << 20)
for i in range(events):
    ts = base + datetime.timedelta(milliseconds=10 * (i // partitions))
    value = {
        "transaction_id": f"t{i}", "store_id": f"s{i % 50}", "category": categories[i % len(categories)],
        "price": round(1 + (i % 97) * 0.5, 2), "quantity": 1 + i % 3,
        "ts": ts.isoformat().replace("+00:00", "Z"),
    }
    producer.send(topic, value=json.dumps(value).encode(), partition=i % partitions)
producer.flush(600)
producer.close()
