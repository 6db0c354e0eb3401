"""Loads EVENTS sales events into a Kafka topic, spread over its
partitions, event times in order per partition (one event every 10 ms of
event time from 2026-11-30T00:00:00Z), for `scripts/bench stream`.
With a FILES directory, also writes the same events there as JSON lines,
20,000 a file in event order, for Spark's file source
(`scripts/bench stream-spark`).

Usage: stream_load.py PORT TOPIC EVENTS PARTITIONS [FILES]"""
import datetime
import json
import os
import sys

from kafka import KafkaProducer

PER_FILE = 20_000


def events(count, partitions):
    categories = ["grocery", "electronics", "apparel", "home", "toys", "beauty", "sports", "books"]
    base = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
    for i in range(count):
        ts = base + datetime.timedelta(milliseconds=10 * (i // partitions))
        yield i, {
            "transaction_id": f"t{i}", "store_id": f"s{i % 50}", "category": categories[i % len(categories)],
            "price": round(1 + (i % 97) * 0.5, 2), "quantity": 1 + i % 3,
            "ts": ts.isoformat().replace("+00:00", "Z"),
        }


def main():
    port, topic, count, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    files = sys.argv[5] if len(sys.argv) > 5 else None
    producer = KafkaProducer(
        bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 5, 0), linger_ms=50, batch_size=1 << 20,
        max_request_size=8 << 20)
    out = None
    if files:
        os.makedirs(files, exist_ok=True)
    for i, value in events(count, partitions):
        line = json.dumps(value)
        producer.send(topic, value=line.encode(), partition=i % partitions)
        if files:
            if i % PER_FILE == 0:
                if out:
                    out.close()
                out = open(os.path.join(files, f"part-{i // PER_FILE:06}.json"), "w")
            out.write(line + "\n")
    if out:
        out.close()
    producer.flush(600)
    producer.close()


if __name__ == "__main__":
    main()
