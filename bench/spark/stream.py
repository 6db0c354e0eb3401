"""Spark Structured Streaming side of `scripts/bench stream-spark`: the
sales-metrics aggregate (5-minute windows sliding every minute, per store
and category, a 10-minute watermark) over JSON files with the file source
(`maxFilesPerTrigger`), appended to Parquet, until every file is read
(`availableNow`). Prints one JSON line: the seconds from the query's start
to its end, and its micro-batches.

Usage: stream.py FILES OUT CHECKPOINT CORES FILES_PER_TRIGGER"""
import json
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType, TimestampType


def main():
    files, out, checkpoint, cores, per_trigger = sys.argv[1:6]
    spark = (SparkSession.builder.master(f"local[{cores}]").appName("stockyard-bench-stream")
             .config("spark.sql.shuffle.partitions", str(int(cores) * 2))
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    schema = StructType([
        StructField("transaction_id", StringType()), StructField("store_id", StringType()),
        StructField("category", StringType()), StructField("price", DoubleType()),
        StructField("quantity", IntegerType()), StructField("ts", TimestampType()),
    ])
    sales = spark.readStream.schema(schema).option("maxFilesPerTrigger", int(per_trigger)).json(files)
    metrics = (sales.withWatermark("ts", "10 minutes")
               .groupBy(F.window("ts", "5 minutes", "1 minute"), "store_id", "category")
               .agg(F.count(F.lit(1)).alias("sales"), F.sum(F.col("price") * F.col("quantity")).alias("revenue"))
               .select(F.col("window.start").alias("window_start"), F.col("window.end").alias("window_end"),
                       "store_id", "category", "sales", "revenue"))
    started = time.time()
    query = (metrics.writeStream.format("parquet").outputMode("append").option("path", out)
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    query.awaitTermination()
    took = time.time() - started
    batches = len(query.recentProgress)
    print(json.dumps({"seconds": took, "batches": batches}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
