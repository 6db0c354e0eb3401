"""Reads one collection of a Stockyard archive as other engines do, straight
from its hive-partitioned Parquet files: pyarrow's dataset and DuckDB.

Usage: read_archive.py ARCHIVE_DIR COLLECTION
Prints JSON: {"pyarrow": [...], "duckdb": [...]}, each a sorted list of
"order_id,quantity,event_date,event_hour" lines.
"""

import json
import os
import sys

import duckdb
import pyarrow.dataset as ds


def line(order_id, quantity, event_date, event_hour):
    quantity = "" if quantity is None else str(quantity)
    return f"{order_id},{quantity},{event_date},{event_hour}"


def main():
    base, collection = sys.argv[1], sys.argv[2]
    path = os.path.join(base, collection)
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table(
        columns=["order_id", "quantity", "event_date", "event_hour"]
    )
    by_pyarrow = sorted(line(*row.values()) for row in table.to_pylist())
    rows = duckdb.sql(
        "SELECT order_id, quantity, event_date, event_hour "
        f"FROM read_parquet('{path}/*/*/*.parquet', hive_partitioning = true)"
    ).fetchall()
    by_duckdb = sorted(line(*row) for row in rows)
    print(json.dumps({"pyarrow": by_pyarrow, "duckdb": by_duckdb}))


if __name__ == "__main__":
    main()
