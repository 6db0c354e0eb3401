"""Seconds from creating the hop-window stream to every event read (its
commit counts them). Arguments: HTTP_PORT EVENTS.
"""

import json
import sys
import time
import urllib.request

port, events = sys.argv[1], int(sys.argv[2])
start, deadline = time.time(), time.time() + 1200
while True:
    s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/streams/hop", timeout=5))
    if s["records"] >= events:
        break
    assert time.time() < deadline, f"the stream read {s['records']} of {events} events in 20 minutes: {s}"
    time.sleep(0.05)
took = time.time() - start
print(f"| the hop-window stream, end to end (Parquet sink), {s['batches']} batches | {events} | {took:.2f} | {events / took:.0f} |")
