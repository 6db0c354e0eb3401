"""Apache Spark, the benchmark peer: one local-mode session that reads the
Parquet snapshot and runs queries on request. `bench/compare` drives it.

Protocol: one JSON object per line. On start it prints
{"ready": true, "startup_s": ...}; then for each request line
{"name": ..., "sql": ..., "warmup": W, "runs": R, "rows": true} it runs the query W times
untimed and R times timed, each `spark.sql(sql).collect()` (parse, plan,
execute, bring the rows to the driver), and prints
{"name": ..., "times_s": [...], "columns": [...], "rows": [[...], ...]}
with the rows of the last run (timestamps as ISO-8601 UTC strings; none
when "rows" is false).
Spark's own log goes to stderr.

usage: runner.py --snapshot DIR --cores N [--shuffle-partitions N] [--driver-memory 1g]
Run it with TZ=UTC (compare does).
"""

import argparse
import datetime
import decimal
import json
import os
import sys
import time

TABLES = ["skus_dim", "dcs_dim", "suppliers_dim", "orders_fact", "shipments_fact", "inventory_fact"]


def value(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.UTC).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--snapshot", required=True)
    p.add_argument("--cores", type=int, required=True)
    p.add_argument("--shuffle-partitions", type=int, default=None)
    p.add_argument("--driver-memory", default="1g")
    a = p.parse_args()

    started = time.perf_counter()
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{a.cores}]")
        .appName("stockyard-bench")
        .config("spark.driver.memory", a.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if a.shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(a.shuffle_partitions))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for t in TABLES:
        spark.read.parquet(os.path.join(a.snapshot, t)).createOrReplaceTempView(t)
    print(json.dumps({"ready": True, "startup_s": time.perf_counter() - started, "version": spark.version}), flush=True)

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            for _ in range(req.get("warmup", 1)):
                spark.sql(req["sql"]).collect()
            times, rows, columns = [], [], []
            for _ in range(req.get("runs", 1)):
                t0 = time.perf_counter()
                df = spark.sql(req["sql"])
                rows = df.collect()
                times.append(time.perf_counter() - t0)
                columns = df.columns
            out = {
                "name": req.get("name"),
                "times_s": times,
                "columns": columns,
                "rows": [[value(v) for v in r] for r in rows] if req.get("rows", True) else [],
            }
        except Exception as e:  # report, keep serving
            out = {"name": req.get("name"), "error": str(e)[:2000]}
        print(json.dumps(out), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
