"""Prints each step of the newest archive run as its ledger entry records it,
polled every 2 s, until it is done. Arguments: MONGO_URI.
"""

import sys
import time

import pymongo

ledger = pymongo.MongoClient(sys.argv[1])["bench"]["stockyard_archive_ledger"]
start, last = time.time(), None
while True:
    entry = ledger.find_one(sort=[("created_at", -1)])
    state = entry and entry.get("state")
    if state != last:
        print(f"{time.time() - start:7.1f} s  {state}", flush=True)
        last = state
    if state == "done":
        break
    time.sleep(2)
