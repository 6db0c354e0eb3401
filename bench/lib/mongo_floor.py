"""The server's own floor for the KPI benchmark: pymongo reads the same six
collections with the same filters as raw BSON, one after the other.
Arguments: MONGO_URI.
"""

import datetime
import sys
import time

import pymongo
from bson.raw_bson import RawBSONDocument

db = pymongo.MongoClient(sys.argv[1], document_class=RawBSONDocument)["bench"]
utc = datetime.UTC
window = {"$gte": datetime.datetime(2026, 1, 5, 11, 45, tzinfo=utc), "$lt": datetime.datetime(2026, 1, 5, 12, 0, tzinfo=utc)}
reads = [("orders_fact", {"order_ts": window}), ("shipments_fact", {"arrival_ts": window}), ("inventory_fact", {"inventory_ts": window}),
         ("skus_dim", {}), ("dcs_dim", {}), ("suppliers_dim", {})]
start, docs = time.time(), 0
for name, filter in reads:
    docs += sum(1 for _ in db[name].find(filter, batch_size=10000))
print(f"MongoDB read by pymongo (the same six reads, raw BSON, sequential): {(time.time() - start) * 1000:.0f} ms for {docs} documents")
