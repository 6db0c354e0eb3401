"""`scripts/bench stream-spark`: Stockyard's stream and Spark Structured
Streaming on the same sales events, in one sitting, one after the other.

Stockyard reads the events from the broker (they are already there: the
catch-up case); Spark reads the same events from JSON files with its file
source (its Kafka connector is a Maven package this machine cannot
fetch). Both run the sales-metrics aggregate (5-minute windows sliding
every minute, per store and category, count and revenue, a 10-minute
watermark) into Parquet. Measured: seconds from start to every event read
(Stockyard: from `streams create`; Spark: from the query's start, after
its JVM is up), events/s, CPU seconds and peak resident memory of each
engine's processes (sampled from /proc every 50 ms). Then the window rows
both emitted must be the same. Prints Markdown.

Usage: stream_vs_spark.py BIN HTTP_PORT SCHEDULER_PID KAFKA_PORT EVENTS FILES WORK CORES"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid):
    """`pid` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def usage(pids):
    """CPU seconds and resident bytes of `pids`."""
    cpu = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return cpu, rss


class Sampler:
    """Peak resident memory and CPU used of a process tree while it runs."""

    def __init__(self, pids):
        self.pids, self.peak, self.stop = pids, 0, False
        self.cpu0, _ = usage(self.pids())
        # CPU of processes that exit before the end is their last reading.
        self.cpu = self.cpu0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            cpu, rss = usage(self.pids())
            self.peak, self.cpu = max(self.peak, rss), max(self.cpu, cpu)
            time.sleep(0.05)

    def done(self):
        self.stop = True
        self.thread.join()
        return max(self.cpu, usage(self.pids())[0]) - self.cpu0, self.peak


def rows(path, key):
    """Window rows under `path` as {(window start, store, category): (sales, revenue)}."""
    table = pq.read_table(path).to_pylist()
    return {(r["window_start"].replace(tzinfo=None), r["store_id"], r["category"]): (r[key], r["revenue"]) for r in table}


def main():
    bin_, http_port, spid, kport, events, files, work, cores = sys.argv[1:9]
    events, spid = int(events), int(spid)
    out_y, out_s = os.path.join(work, "stockyard-out"), os.path.join(work, "spark-out")
    sql = f"""
CREATE EXTERNAL TABLE sales (transaction_id VARCHAR, store_id VARCHAR, category VARCHAR, price DOUBLE,
  quantity INT, ts TIMESTAMP) STORED AS KAFKA LOCATION 'kafka://127.0.0.1:{kport}/sales'
  OPTIONS ('event_time' 'ts', 'watermark' '10 minutes', 'start' 'earliest');
CREATE EXTERNAL TABLE metrics STORED AS PARQUET LOCATION '{out_y}/';
INSERT INTO metrics SELECT window.start AS window_start, window.end AS window_end, store_id, category,
  count(*) AS sales, sum(price * quantity) AS revenue
FROM sales GROUP BY window(ts, '5 minutes', '1 minute'), store_id, category"""
    sampler = Sampler(lambda: tree(spid))
    started = time.time()
    subprocess.run([bin_, "streams", "create", "metrics", "--sql", sql], check=True, stdout=subprocess.DEVNULL)
    deadline = started + 1800
    while True:
        s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/streams/metrics", timeout=5))
        if s["records"] >= events:
            break
        if time.time() > deadline:
            sys.exit(f"Stockyard read {s['records']} of {events} events in 30 minutes")
        time.sleep(0.05)
    y_took = time.time() - started
    y_cpu, y_peak = sampler.done()

    spark_py = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench", ".venv-spark", "bin", "python")
    env = dict(os.environ, TZ="UTC", PYSPARK_PYTHON=spark_py)
    proc = subprocess.Popen(
        [spark_py, os.path.join(os.path.dirname(HERE), "spark", "stream.py"), files, out_s,
         os.path.join(work, "spark-checkpoint"), cores, "5"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "spark-stream.log"), "w"), env=env, text=True)
    sampler = Sampler(lambda: tree(proc.pid))
    line = proc.stdout.readline()
    proc.wait()
    s_cpu, s_peak = sampler.done()
    if not line:
        sys.exit(f"Spark failed: see {work}/spark-stream.log")
    spark = json.loads(line)

    ours, theirs = rows(out_y, "sales"), rows(out_s, "sales")
    common = ours.keys() & theirs.keys()
    differ = [k for k in common if ours[k][0] != theirs[k][0] or abs(ours[k][1] - theirs[k][1]) > 1e-9 * max(1, abs(ours[k][1]))]
    windows = lambda d: len({k[0] for k in d})
    print("| engine | events | s to read all | events/s | CPU s | peak memory MiB | window rows out |")
    print("|---|---|---|---|---|---|---|")
    print(f"| Stockyard (broker, {s['batches']} batches) | {events} | {y_took:.2f} | {events / y_took:.0f} | {y_cpu:.1f} | {y_peak / 2**20:.0f} | {len(ours)} ({windows(ours)} windows) |")
    print(f"| Spark {cores} cores (JSON files, {spark['batches']} batches) | {events} | {spark['seconds']:.2f} | {events / spark['seconds']:.0f} | {s_cpu:.1f} | {s_peak / 2**20:.0f} | {len(theirs)} ({windows(theirs)} windows) |")
    print()
    print(f"Throughput ratio: {spark['seconds'] / y_took:.2f}x; CPU ratio (Spark / Stockyard): {s_cpu / max(y_cpu, 1e-9):.2f}; "
          f"peak memory ratio: {s_peak / max(y_peak, 1):.2f}.")
    print(f"Same rows: {len(common)} window rows emitted by both, {len(differ)} differ; "
          f"only Stockyard: {len(ours.keys() - theirs.keys())}, only Spark: {len(theirs.keys() - ours.keys())}.")
    if differ:
        sys.exit(f"rows differ, e.g. {differ[0]}: Stockyard {ours[differ[0]]}, Spark {theirs[differ[0]]}")


if __name__ == "__main__":
    main()
