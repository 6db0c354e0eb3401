"""The archive benchmark's table from the run's summary, the Parquet bytes and
the collections left. Arguments: SUMMARY_JSON PARQUET_BYTES MONGO_URI.
"""

import json
import sys

import pymongo

s = json.load(open(sys.argv[1]))
parquet = int(sys.argv[2])
size = s["data_size_bytes"]
secs = s["duration_ms"] / 1000
records = s["total_records"]
print("| dataSize MB | archived documents | run s | MB/s (dataSize share archived) | docs/s | Parquet MB | Parquet / BSON |")
print("|---|---|---|---|---|---|---|")
# BSON archived: the archived share of the database's data size.
db = pymongo.MongoClient(sys.argv[3])["bench"]
left = sum(db.command("collStats", c)["size"] for c in ["orders_fact", "shipments_fact", "inventory_fact"])
dims = sum(db.command("collStats", c)["size"] for c in ["skus_dim", "dcs_dim", "suppliers_dim"])
archived = size - left - dims
print(f"| {size / 2**20:.0f} | {records} | {secs:.1f} | {archived / 2**20 / secs:.1f} | {records / secs:.0f} | {parquet / 2**20:.1f} | {parquet / max(archived, 1):.2f} |")
