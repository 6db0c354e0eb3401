"""Latency of a live stream: produces RATE events a second for SECONDS
into a topic (event time = produce time), and polls the stream's Redis key
every 5 ms. An event is visible once the open window it falls in shows at
least as many rows as events produced into that window up to it; its
latency is that moment minus its produce time. Prints p50 and p99."""
import datetime
import json
import sys
import threading
import time

import redis
from kafka import KafkaProducer

port, topic, redis_port, key, rate, seconds, window_s = sys.argv[1:8]
rate, seconds, window_s = int(rate), int(seconds), int(window_s)
producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 5, 0), linger_ms=0)
r = redis.Redis(port=int(redis_port))
produced = []  # (window start s, position in window, produce time)
seen = {}  # window start -> [(time, count)]
done = threading.Event()


def poll():
    while not done.is_set():
        raw = r.get(key)
        now = time.time()
        if raw:
            for w in json.loads(raw)["windows"]:
                start = datetime.datetime.fromisoformat(w["window_start"].replace("Z", "+00:00")).timestamp()
                count = sum(row["events"] for row in w["rows"])
                history = seen.setdefault(int(start), [])
                if not history or history[-1][1] < count:
                    history.append((now, count))
        time.sleep(0.005)


poller = threading.Thread(target=poll)
poller.start()
counts = {}
start = time.time()
for i in range(rate * seconds):
    due = start + i / rate
    delay = due - time.time()
    if delay > 0:
        time.sleep(delay)
    now = time.time()
    window = int(now // window_s * window_s)
    counts[window] = counts.get(window, 0) + 1
    ts = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat().replace("+00:00", "Z")
    producer.send(topic, value=json.dumps({"id": str(i), "ts": ts}).encode(), partition=0)
    producer.flush()
    produced.append((window, counts[window], now))
time.sleep(5)
done.set()
poller.join()
latencies = []
for window, position, t in produced:
    visible = next((at for at, count in seen.get(window, []) if count >= position), None)
    if visible is not None:
        latencies.append(visible - t)
latencies.sort()
if len(latencies) < len(produced):
    print(f"warning: {len(produced) - len(latencies)} of {len(produced)} events never seen", file=sys.stderr)
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"| latency at {rate} events/s, {seconds} s | {len(latencies)} events | p50 {p(0.5):.3f} s | p99 {p(0.99):.3f} s |")
