"""BSON files (as `bson_sink.py` writes them) to a Parquet snapshot with the
declared types of `shared/spec/supply-chain.md`.

Each value is read by the spec's rules: an int32 field accepts int32, and
int64 or a whole double in int32 range; an int64 field int32, int64 and a
whole double in range; a double field double, int32 and int64; a string
field only strings; a date field only BSON dates. Anything else (another
type, null, a missing field) reads as null. `_id` is kept as the ObjectId's
hex string. The columns are those of `jobs/src/tables.rs`, in its order.
`bench/compare` checks that this gives the same rows as Stockyard's own
MongoDB reader (`COPY ... TO ... STORED AS PARQUET`) on the same documents.

usage: to_parquet.py SRC_DIR DEST_DIR [--rows-per-file N]
  writes DEST_DIR/<collection>/part-NNNNN.parquet (snappy)
"""

import argparse
import os
import sys

import bson
import pyarrow as pa
import pyarrow.parquet as pq
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.objectid import ObjectId

TS = pa.timestamp("ms", tz="UTC")
S, I32, I64, F64 = pa.string(), pa.int32(), pa.int64(), pa.float64()

# jobs/src/tables.rs, column for column.
COLLECTIONS = {
    "skus_dim": [("_id", S), ("sku_id", S), ("product_name", S), ("category", S), ("unit_price", F64), ("supplier_id", S)],
    "dcs_dim": [("_id", S), ("dc_id", S), ("dc_name", S), ("region", S), ("capacity_units", I64)],
    "suppliers_dim": [("_id", S), ("supplier_id", S), ("supplier_name", S), ("promised_lead_time_days", F64)],
    "orders_fact": [
        ("_id", S), ("order_id", S), ("sku_id", S), ("dc_id", S), ("quantity", I32),
        ("unit_price", F64), ("status", S), ("order_ts", TS),
    ],
    "shipments_fact": [
        ("_id", S), ("shipment_id", S), ("supplier_id", S), ("sku_id", S), ("dc_id", S), ("quantity", I32),
        ("shipped_ts", TS), ("expected_arrival_ts", TS), ("arrival_ts", TS),
    ],
    "inventory_fact": [
        ("_id", S), ("sku_id", S), ("dc_id", S), ("on_hand_qty", I32), ("reserved_qty", I32), ("inventory_ts", TS),
    ],
}


def _int(lo, hi):
    def read(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v if lo <= v <= hi else None
        if isinstance(v, float) and v.is_integer() and lo <= v <= hi:
            return int(v)
        return None

    return read


def _double(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _string(v):
    return v if isinstance(v, str) else None


def _date(v):
    return int(v) if isinstance(v, DatetimeMS) else None


def _id(v):
    if isinstance(v, ObjectId):
        return str(v)
    return v if isinstance(v, str) else None


READERS = {
    I32: _int(-(2**31), 2**31 - 1),
    I64: _int(-(2**63), 2**63 - 1),
    F64: _double,
    S: _string,
    TS: _date,
}


def convert(src, dest, collection, fields, rows_per_file):
    path = os.path.join(src, collection + ".bson")
    out = os.path.join(dest, collection)
    os.makedirs(out, exist_ok=True)
    schema = pa.schema([pa.field(n, t) for n, t in fields])
    readers = [(n, _id if n == "_id" else READERS[t]) for n, t in fields]
    options = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)
    columns = [[] for _ in fields]
    total, part = 0, 0

    def flush():
        nonlocal columns, part
        if not columns[0] and part > 0:
            return
        table = pa.table([pa.array(c, type=t) for c, (_, t) in zip(columns, fields)], schema=schema)
        pq.write_table(table, os.path.join(out, f"part-{part:05d}.parquet"), compression="snappy")
        part += 1
        columns = [[] for _ in fields]

    if os.path.exists(path):
        with open(path, "rb") as f:
            for doc in bson.decode_file_iter(f, options):
                get = doc.get
                for col, (name, read) in zip(columns, readers):
                    col.append(read(get(name)))
                total += 1
                if len(columns[0]) >= rows_per_file:
                    flush()
    flush()
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--rows-per-file", type=int, default=1_000_000)
    p.add_argument("--collections", default=",".join(COLLECTIONS))
    a = p.parse_args()
    for c in a.collections.split(","):
        n = convert(a.src, a.dest, c, COLLECTIONS[c], a.rows_per_file)
        print(f"{c}: {n} documents", file=sys.stderr)


if __name__ == "__main__":
    main()
