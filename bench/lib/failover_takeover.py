"""Seconds from signalling the leading scheduler to the standby leading with
two active executors. Arguments: PID OLD_HTTP_PORT KILL|TERM NEW_HTTP_PORT.
"""

import json
import os
import sys
import time
import urllib.request

pid, old, sig, new = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def overview(port):
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=2))
    except Exception:
        return None
def ready(port):
    o = overview(port)
    return bool(o) and o["leader"].get("this_scheduler") and sum(e["state"] == "active" for e in o["executors"]) == 2
deadline = time.time() + 60
while not ready(old):
    assert time.time() < deadline, "the first leader never had two executors"
    time.sleep(0.1)
start = time.time()
os.kill(pid, {"KILL": 9, "TERM": 15}[sig])
leads = None
while time.time() - start < 60:
    o = overview(new)
    if o and o["leader"].get("this_scheduler") and leads is None:
        leads = time.time() - start
    if leads is not None and ready(new):
        print(f"| SIG{sig} | {leads:.2f} | {time.time() - start:.2f} |")
        break
    time.sleep(0.05)
else:
    sys.exit("the standby did not take over within 60 s")
