//! The archive job end to end: hand-built facts in SecantusDB, the job on a
//! scheduler and two executors, the Parquet files read back and turned into
//! documents again, MongoDB checked for what stayed. Crash, pause and
//! failure cases are rerun and must end with every selected document in
//! the archive exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mongodb::bson::{Bson, DateTime, Document, doc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use stockyard_mongo::rest_column::{ARCHIVE_MARK, documents};
use stockyard_tests::{Cluster, Mongo, S3, archive_all};

pub(crate) const DB: &str = "supply_chain";
pub(crate) const NOW: &str = "2026-01-05T12:00:00Z";
pub(crate) const FACTS: [&str; 3] = ["orders_fact", "shipments_fact", "inventory_fact"];

fn at(t: &str) -> DateTime {
    DateTime::parse_rfc3339_str(t).unwrap()
}

/// The cutoff is 10:00 (12:00 minus 120 minutes); `selected` marks the
/// documents earlier than it.
pub(crate) fn load(mongo: &Mongo) {
    let order = |id: &str, t: Bson| doc! {"order_id": id, "sku_id": "SKU-1", "dc_id": "DC-1", "quantity": 5, "unit_price": 2.5, "status": "FULFILLED", "order_ts": t};
    let mut o3 = order("O3", Bson::DateTime(at("2026-01-05T08:00:00Z")));
    o3.insert("quantity", "5");
    o3.insert("note", doc! {"x": [1, "a", {"deep": Bson::Null}]});
    let mut o4 = order("O4", Bson::DateTime(at("2026-01-04T23:30:00Z")));
    o4.insert("quantity", 5.0);
    o4.insert("status", Bson::Null);
    let mut o5 = order("O5", Bson::DateTime(at("2026-01-05T08:59:59.999Z")));
    o5.remove("status");
    o5.insert("_id", "custom-id");
    mongo.load(
        DB,
        "orders_fact",
        vec![
            order("O1", Bson::DateTime(at("2026-01-05T09:59:59.999Z"))), // last instant before the cutoff
            order("O2", Bson::DateTime(at("2026-01-05T10:00:00Z"))),     // the cutoff: stays
            o3,
            o4,
            o5,
            order("O6", Bson::String("2026-01-05T01:00:00Z".into())), // no date: stays
            order("O7", Bson::DateTime(at("2026-01-05T11:00:00Z"))),  // recent: stays
        ],
    );
    mongo.load(DB, "inventory_fact", vec![
        doc! {"sku_id": "SKU-1", "dc_id": "DC-1", "on_hand_qty": 10, "reserved_qty": 3i64, "inventory_ts": at("2026-01-05T09:15:00Z")},
        doc! {"sku_id": "SKU-1", "dc_id": "DC-1", "on_hand_qty": 9, "reserved_qty": 0, "inventory_ts": at("2026-01-05T10:30:00Z")},
    ]);
    mongo.load(DB, "shipments_fact", vec![
        doc! {"shipment_id": "S1", "supplier_id": "SUP-1", "sku_id": "SKU-1", "dc_id": "DC-1", "quantity": 4,
              "shipped_ts": at("2026-01-03T07:00:00Z"), "expected_arrival_ts": at("2026-01-05T07:00:00Z"), "arrival_ts": at("2026-01-05T07:10:00Z")},
        doc! {"shipment_id": "S2", "supplier_id": "SUP-1", "sku_id": "SKU-1", "dc_id": "DC-1", "quantity": 4},
    ]);
    mongo.load(DB, "skus_dim", vec![doc! {"sku_id": "SKU-1", "product_name": "Phone"}]);
}

/// A fact's business id, or its `_id` when it has none.
pub(crate) fn id(d: &Document) -> String {
    ["order_id", "shipment_id"]
        .iter()
        .find_map(|k| d.get_str(k).ok().map(str::to_string))
        .unwrap_or_else(|| format!("{}", d.get("_id").cloned().unwrap_or(Bson::Null)))
}

/// Fields sorted by name: documents compare without their field order.
fn sorted(d: &Document) -> Vec<(String, Bson)> {
    let mut fields: Vec<_> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

pub(crate) fn all(mongo: &Mongo, collection: &str) -> Vec<Document> {
    mongo.with_client(async |c| {
        use futures::TryStreamExt;
        c.database(DB).collection::<Document>(collection).find(doc! {}).await.unwrap().try_collect().await.unwrap()
    })
}

/// Every archived document of `collection` under `dest`, by the directory
/// (relative to `dest`) of its file.
pub(crate) fn archived(dest: &Path, collection: &str) -> BTreeMap<String, Vec<Document>> {
    let mut out: BTreeMap<String, Vec<Document>> = BTreeMap::new();
    let mut stack = vec![dest.join(collection)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let rel = path.parent().unwrap().strip_prefix(dest).unwrap().display().to_string();
                out.entry(rel).or_default().extend(read_parquet(std::fs::File::open(&path).unwrap()));
            }
        }
    }
    out
}

fn read_parquet<R: parquet::file::reader::ChunkReader + 'static>(file: R) -> Vec<Document> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    reader.flat_map(|b| documents(&b.unwrap()).unwrap()).collect()
}

fn ids(docs: &[Document]) -> Vec<String> {
    let mut ids: Vec<String> = docs.iter().map(id).collect();
    ids.sort();
    ids
}

/// `history.X` holds every fact once whatever step a run reached, and
/// `archive.X` just the committed copy: by hand from `load`, with the
/// late order when it was inserted. `archived` lists the orders the
/// archive holds, as `order_id,event_date,event_hour`.
fn assert_history(cluster: &Cluster, late: bool, archived: &[&str], when: &str) {
    // O3's quantity is "5" (unreadable, null); O4's is 5.0 (a whole double,
    // read as 5); LATE's is 1.
    let mut orders = String::from("order_id,quantity\n");
    if late {
        orders += "LATE,1\n";
    }
    orders += "O1,5\nO2,5\nO3,\nO4,5\nO5,5\nO6,5\nO7,5\n";
    let got = cluster.sql_csv("SELECT order_id, quantity FROM history.orders_fact ORDER BY order_id");
    assert_eq!(got, orders, "history.orders_fact {when}\n{}", cluster.logs());
    let (count, sum) = if late { (8, 31) } else { (7, 30) };
    assert_eq!(
        cluster.sql_csv("SELECT count(*) AS n, sum(quantity) AS q FROM history.orders_fact"),
        format!("n,q\n{count},{sum}\n"),
        "{when}"
    );
    assert_eq!(
        cluster.sql_csv(
            "SELECT (SELECT count(*) FROM history.shipments_fact) AS s, (SELECT count(*) FROM history.inventory_fact) AS i"
        ),
        "s,i\n2,2\n",
        "{when}"
    );
    let want: String = std::iter::once("order_id,event_date,event_hour")
        .chain(archived.iter().copied())
        .map(|l| format!("{l}\n"))
        .collect();
    let got = cluster.sql_csv("SELECT order_id, event_date, event_hour FROM archive.orders_fact ORDER BY order_id");
    assert_eq!(got, want, "archive.orders_fact {when}");
}

/// Event-time filters prune the archive's hours (`EXPLAIN` lists only the
/// files of the hours asked for, none for the last hour), and DuckDB and
/// pyarrow read the archive as it lies and get `archive.orders_fact`'s rows.
fn assert_pruned_and_readable(cluster: &Cluster, dest: &Path) {
    let hour8 = "FROM history.orders_fact WHERE order_ts >= TIMESTAMP '2026-01-05T08:00:00Z' \
                 AND order_ts < TIMESTAMP '2026-01-05T09:00:00Z'";
    let plan = cluster.sql_csv(&format!("EXPLAIN SELECT order_id {hour8}"));
    assert!(plan.contains("event_hour=8/"), "the hour asked for is read: {plan}");
    for other in ["event_hour=6/", "event_hour=9/", "event_hour=23/"] {
        assert!(!plan.contains(other), "{other} is pruned: {plan}");
    }
    assert!(plan.contains("MongoScanExec") && plan.contains("order_ts"), "MongoDB gets the range: {plan}");
    assert_eq!(cluster.sql_csv(&format!("SELECT order_id {hour8} ORDER BY order_id")), "order_id\nO3\nO5\n");
    let last_hour = "FROM history.orders_fact WHERE order_ts >= TIMESTAMP '2026-01-05T11:00:00Z'";
    let plan = cluster.sql_csv(&format!("EXPLAIN SELECT order_id {last_hour}"));
    assert!(!plan.contains(".parquet"), "no archive file for the last hour: {plan}");
    assert_eq!(cluster.sql_csv(&format!("SELECT order_id {last_hour}")), "order_id\nO7\n");

    assert_read_by_others(
        cluster,
        dest,
        &["LATE,1,2026-01-05,6", "O1,5,2026-01-05,9", "O3,,2026-01-05,8", "O4,5,2026-01-04,23", "O5,5,2026-01-05,8"],
    );
}

/// `archive.orders_fact` holds `want` (`order_id,quantity,date,hour`, by
/// hand), and DuckDB and pyarrow read the same from the files as they lie.
fn assert_read_by_others(cluster: &Cluster, dest: &Path, want: &[&str]) {
    let ours =
        cluster.sql_csv("SELECT order_id, quantity, event_date, event_hour FROM archive.orders_fact ORDER BY order_id");
    let ours: Vec<&str> = ours.lines().skip(1).collect();
    assert_eq!(ours, want);
    let out = std::process::Command::new(stockyard_tests::venv_bin("python"))
        .arg(stockyard_tests::repo_root().join("tests/python/read_archive.py"))
        .arg(dest)
        .arg("orders_fact")
        .output()
        .expect("run python (scripts/setup installs duckdb and pyarrow into .venv)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(read["pyarrow"], json!(ours), "pyarrow");
    assert_eq!(read["duckdb"], json!(ours), "duckdb");
}

/// The orders the first run archives, as [`assert_history`] lists them.
const ARCHIVED_ORDERS: [&str; 4] = ["O1,2026-01-05,9", "O3,2026-01-05,8", "O4,2026-01-04,23", "O5,2026-01-05,8"];

fn cluster(mongo: &Mongo, extra: &[(&str, &str)]) -> Cluster {
    let mut env =
        vec![("STOCKYARD_MONGO_URI".to_string(), mongo.uri()), ("STOCKYARD_MONGO_DB".to_string(), DB.to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Cluster::start_with_env(2, env)
}

fn archive(cluster: &Cluster, dest: &str) -> (i32, Value, String) {
    let run = cluster.stockyard(&archive_all(NOW, "120m", dest));
    let summary = run.stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    (run.code, summary, run.stderr)
}

/// What the selected originals were, per collection, before any run.
pub(crate) fn selected(mongo: &Mongo) -> BTreeMap<&'static str, Vec<Document>> {
    FACTS.iter().map(|c| (*c, all(mongo, c).into_iter().filter(selected_time).collect())).collect()
}

/// Every selected document is in the archive exactly once, equal to its
/// original, and gone from MongoDB; every other document is still there
/// and unmarked.
pub(crate) fn assert_exactly_once(
    mongo: &Mongo,
    dest: &Path,
    before: &BTreeMap<&str, Vec<Document>>,
    everything: &BTreeMap<&str, Vec<Document>>,
) {
    for c in FACTS {
        let archived: Vec<Document> = archived(dest, c).into_values().flatten().collect();
        let mut got: Vec<_> = archived.iter().map(sorted).collect();
        let mut want: Vec<_> = before[c].iter().map(sorted).collect();
        got.sort_by_key(|d| format!("{d:?}"));
        want.sort_by_key(|d| format!("{d:?}"));
        assert_eq!(ids(&archived), ids(&before[c]), "{c}: archived ids");
        assert_eq!(got, want, "{c}: archived documents equal the originals");
        let left = all(mongo, c);
        assert!(left.iter().all(|d| !d.contains_key(ARCHIVE_MARK)), "{c}: a document kept its mark: {left:?}");
        let mut expected_left: Vec<_> = everything[c].iter().filter(|d| !before[c].contains(d)).map(id).collect();
        expected_left.sort();
        assert_eq!(ids(&left), expected_left, "{c}: documents left in MongoDB");
    }
}

#[test]
fn the_archive_writes_exact_hive_partitions_and_deletes_only_what_it_wrote() {
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let cluster = cluster(&mongo, &[]);
    let dest = tempfile::tempdir().unwrap();
    let (code, summary, stderr) = archive(&cluster, dest.path().to_str().unwrap());
    assert_eq!(code, 0, "{summary} {stderr}\n{}", cluster.logs());
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["total_records"], 6, "{summary}");
    assert_eq!(summary["cutoff"], "2026-01-05T10:00:00Z");

    // Layout: one directory per event date and hour (unpadded), by hand.
    let layout: BTreeMap<String, Vec<String>> =
        FACTS.iter().flat_map(|c| archived(dest.path(), c)).map(|(dir, docs)| (dir, ids(&docs))).collect();
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    want.insert("orders_fact/event_date=2026-01-04/event_hour=23".into(), vec!["O4".into()]);
    want.insert("orders_fact/event_date=2026-01-05/event_hour=8".into(), vec!["O3".into(), "O5".into()]);
    want.insert("orders_fact/event_date=2026-01-05/event_hour=9".into(), vec!["O1".into()]);
    want.insert("shipments_fact/event_date=2026-01-05/event_hour=7".into(), vec!["S1".into()]);
    let inventory = before["inventory_fact"][0].get_object_id("_id").unwrap();
    want.insert("inventory_fact/event_date=2026-01-05/event_hour=9".into(), vec![format!("ObjectId(\"{inventory}\")")]);
    assert_eq!(layout, want);
    for file in walk(dest.path()).iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")) {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("part-") && name.ends_with(".parquet"), "{name}");
    }

    assert_exactly_once(&mongo, dest.path(), &before, &everything);

    // The metadata, written before the delete.
    let metadata: Vec<PathBuf> = walk(&dest.path().join("metadata"));
    assert_eq!(metadata.len(), 1, "{metadata:?}");
    let id = summary["archive_id"].as_str().unwrap();
    assert_eq!(metadata[0].file_name().unwrap().to_str().unwrap(), format!("archive_{id}.json"));
    let meta: Value = serde_json::from_slice(&std::fs::read(&metadata[0]).unwrap()).unwrap();
    let size = |c: &str| -> f64 {
        walk(&dest.path().join(c)).iter().map(|p| p.metadata().unwrap().len() as f64).sum::<f64>() / (1u64 << 20) as f64
    };
    assert_eq!(meta["archive_id"], id);
    assert!(meta["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["base_path"], dest.path().to_str().unwrap());
    assert_eq!(meta["total_records"], 6);
    assert_eq!(
        meta["archive_policy"],
        json!({"older_than_minutes": 120.0, "format": "parquet", "compression": "snappy", "partitioned_by": ["event_date", "event_hour"]})
    );
    assert_eq!(
        meta["archived_collections"],
        json!([
            {"collection": "orders_fact", "record_count": 4, "size_mb": size("orders_fact"),
             "date_range": {"min": "2026-01-04T23:30:00Z", "max": "2026-01-05T09:59:59.999Z"}},
            {"collection": "shipments_fact", "record_count": 1, "size_mb": size("shipments_fact"),
             "date_range": {"min": "2026-01-05T07:10:00Z", "max": "2026-01-05T07:10:00Z"}},
            {"collection": "inventory_fact", "record_count": 1, "size_mb": size("inventory_fact"),
             "date_range": {"min": "2026-01-05T09:15:00Z", "max": "2026-01-05T09:15:00Z"}},
        ])
    );
    let total = meta["total_size_mb"].as_f64().unwrap();
    assert!((total - FACTS.iter().map(|c| size(c)).sum::<f64>()).abs() < 1e-12, "{total}");

    // A second run finds nothing old enough and writes nothing.
    let files = walk(dest.path()).len();
    let (code, again, _) = archive(&cluster, dest.path().to_str().unwrap());
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["total_records"], 0, "{again}");
    assert_eq!(walk(dest.path()).len(), files);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

#[test]
fn the_archive_skips_below_the_threshold_and_says_what_it_measured() {
    let mongo = Mongo::start();
    load(&mongo);
    let cluster = cluster(&mongo, &[]);
    let dest = tempfile::tempdir().unwrap();
    let run = cluster
        .stockyard(&[
            "run",
            "archive",
            "--now",
            NOW,
            "--threshold-mb",
            "100000",
            "--dest",
            dest.path().to_str().unwrap(),
        ])
        .ok();
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "skipped", "{summary}");
    assert_eq!(summary["threshold_bytes"], 100000u64 << 20);
    assert!(summary["data_size_bytes"].as_u64().unwrap() > 0, "{summary}");
    assert!(walk(dest.path()).is_empty());
    assert_eq!(all(&mongo, "orders_fact").len(), 7);
    // Bad values are refused before anything runs.
    let bad = cluster.stockyard(&["run", "archive", "--threshold-mb", "-1"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("'-1' is not a size in MiB"), "{}", bad.stderr);
    let bad = cluster.stockyard(&["run", "archive", "--dest", "ftp://x/y"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("'ftp://x/y' is not an archive destination"), "{}", bad.stderr);
}

/// Kills the run at `fault`, inserts old documents while it is down, then
/// reruns on a fresh cluster: everything selected ends up archived once.
fn killed_then_rerun(fault: &str, on_executor: bool) {
    let mongo = Mongo::start();
    load(&mongo);
    let mut before = selected(&mongo);
    let mut everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let dest = tempfile::tempdir().unwrap();
    let dest_str = dest.path().to_str().unwrap();
    {
        // On executors, only the first to get there dies; the other goes on.
        let once = dest.path().parent().unwrap().join(format!("fault-once-{}", std::process::id()));
        let once = once.to_str().unwrap();
        let env = [("STOCKYARD_FAULT", fault), ("STOCKYARD_FAULT_ONCE", once), ("STOCKYARD_ARCHIVE_DEST", dest_str)];
        let mut cluster = cluster(&mongo, &env);
        let (code, summary, stderr) = archive(&cluster, dest_str);
        if on_executor {
            let died = cluster.executors.iter_mut().map(|e| e.is_running()).filter(|running| !running).count();
            assert_eq!(died, 1, "one executor dies at {fault}: {summary} {stderr}\n{}", cluster.logs());
        } else {
            assert_ne!(code, 0, "the run should have died at {fault}: {summary} {stderr}");
            assert!(cluster.scheduler.wait_exit(Duration::from_secs(10)).is_some(), "the scheduler died at {fault}");
        }
        let _ = std::fs::remove_file(once);
    }
    // Inserted after the interrupted run marked its documents, with an old
    // event time: archived by a later run, never lost.
    mongo.with_client(async |c| {
        c.database(DB)
            .collection::<Document>("orders_fact")
            .insert_one(doc! {"order_id": "LATE", "quantity": 1, "order_ts": at("2026-01-05T06:00:00Z")})
            .await
            .unwrap();
    });
    let late = all(&mongo, "orders_fact").into_iter().find(|d| id(d) == "LATE").unwrap();
    before.get_mut("orders_fact").unwrap().push(late.clone());
    everything.get_mut("orders_fact").unwrap().push(late);
    let cluster = cluster(&mongo, &[("STOCKYARD_ARCHIVE_DEST", dest_str)]);
    // Stopped there: marked (nothing committed), or written and maybe
    // partly deleted (the first run's files committed).
    if !on_executor {
        let committed: &[&str] = if fault == "archive-after-mark" { &[] } else { &ARCHIVED_ORDERS };
        assert_history(&cluster, true, committed, &format!("with a run stopped at {fault}"));
    }
    let (code, summary, stderr) = archive(&cluster, dest_str);
    assert_eq!(code, 0, "rerun after {fault}: {summary} {stderr}\n{}", cluster.logs());
    if !on_executor {
        assert_eq!(summary["resumed_runs"].as_array().map(Vec::len), Some(1), "{summary}");
    }
    assert_exactly_once(&mongo, dest.path(), &before, &everything);
    let mut all_archived = vec!["LATE,2026-01-05,6"];
    all_archived.extend(ARCHIVED_ORDERS);
    assert_history(&cluster, true, &all_archived, &format!("after the rerun that finished a run stopped at {fault}"));
    if fault == "archive-after-write" {
        // Once is enough: any finished archive reads the same.
        assert_pruned_and_readable(&cluster, dest.path());
    }
    let (code, summary, stderr) = compact(&cluster, dest_str);
    assert_eq!(code, 0, "compaction after {fault}: {summary} {stderr}\n{}", cluster.logs());
    assert_one_file_per_hour(dest.path());
    assert_exactly_once(&mongo, dest.path(), &before, &everything);
    assert_history(&cluster, true, &all_archived, &format!("after compacting what a run stopped at {fault} left"));
}

fn compact(cluster: &Cluster, dest: &str) -> (i32, Value, String) {
    let run = cluster.stockyard(&["run", "compact", "--dest", dest]);
    let summary = run.stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    (run.code, summary, run.stderr)
}

/// The Parquet files of each hour directory under `dest`, by name.
fn hour_files(dest: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in walk(dest).iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")) {
        let dir = file.parent().unwrap().strip_prefix(dest).unwrap().display().to_string();
        out.entry(dir).or_default().push(file.file_name().unwrap().to_str().unwrap().to_string());
    }
    out
}

fn assert_one_file_per_hour(dest: &Path) {
    for (dir, names) in hour_files(dest) {
        assert_eq!(names.len(), 1, "{dir} holds one file once compacted: {names:?}");
    }
}

/// An archive of two runs has hours of several files; compaction killed
/// before and after its commit, then run whole, leaves one file per hour
/// and every row once, read by `history.X`, `archive.X`, DuckDB and pyarrow
/// at every step.
#[test]
fn compaction_merges_each_hour_into_one_file_exactly_once_across_kills() {
    let mongo = Mongo::start();
    load(&mongo);
    let dest = tempfile::tempdir().unwrap();
    let dest_str = dest.path().to_str().unwrap();
    let with_dest = [("STOCKYARD_ARCHIVE_DEST", dest_str)];
    // Two archive runs: the second adds files to hours 8 and 9.
    let mut fault = [("STOCKYARD_ARCHIVE_DEST", dest_str), ("STOCKYARD_FAULT", "compact-after-write")];
    let mut cluster = cluster(&mongo, &fault);
    let mut before = selected(&mongo);
    let mut everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let (code, summary, stderr) = archive(&cluster, dest_str);
    assert_eq!(code, 0, "{summary} {stderr}");
    mongo.with_client(async |c| {
        let db = c.database(DB);
        let orders = [
            doc! {"order_id": "O8", "quantity": 2, "order_ts": at("2026-01-05T08:30:00Z")},
            doc! {"order_id": "O9", "quantity": 3, "order_ts": at("2026-01-05T09:30:00Z")},
        ];
        db.collection::<Document>("orders_fact").insert_many(orders).await.unwrap();
        let stock =
            doc! {"sku_id": "SKU-1", "dc_id": "DC-1", "on_hand_qty": 7, "inventory_ts": at("2026-01-05T09:45:00Z")};
        db.collection::<Document>("inventory_fact").insert_one(stock).await.unwrap();
    });
    // The documents added: all three old enough for the second run.
    for (c, added) in selected(&mongo) {
        before.get_mut(c).unwrap().extend(added.iter().cloned());
        everything.get_mut(c).unwrap().extend(added);
    }
    let (code, summary, stderr) = archive(&cluster, dest_str);
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(summary["total_records"], 3, "{summary}");
    let hour8 = "orders_fact/event_date=2026-01-05/event_hour=8";
    let files = hour_files(dest.path());
    for dir in
        [hour8, "orders_fact/event_date=2026-01-05/event_hour=9", "inventory_fact/event_date=2026-01-05/event_hour=9"]
    {
        assert!(files[dir].len() >= 2, "{dir} has a file of each run: {files:?}");
    }
    let originals = files[hour8].clone();

    // By hand: O2, O6 and O7 stay in MongoDB; O3's "5" reads as null.
    let orders = "order_id,quantity\nO1,5\nO2,5\nO3,\nO4,5\nO5,5\nO6,5\nO7,5\nO8,2\nO9,3\n";
    let archived = [
        "O1,5,2026-01-05,9",
        "O3,,2026-01-05,8",
        "O4,5,2026-01-04,23",
        "O5,5,2026-01-05,8",
        "O8,2,2026-01-05,8",
        "O9,3,2026-01-05,9",
    ];
    let check = |cluster: &Cluster, when: &str| {
        let got = cluster.sql_csv("SELECT order_id, quantity FROM history.orders_fact ORDER BY order_id");
        assert_eq!(got, orders, "history.orders_fact {when}");
        assert_eq!(
            cluster.sql_csv("SELECT count(*) AS n, sum(quantity) AS q FROM history.orders_fact"),
            "n,q\n9,35\n",
            "{when}"
        );
        let got = cluster.sql_csv(
            "SELECT (SELECT count(*) FROM history.inventory_fact) AS i, (SELECT sum(on_hand_qty) FROM history.inventory_fact) AS q",
        );
        assert_eq!(got, "i,q\n3,26\n", "history.inventory_fact {when}");
        let got = cluster
            .sql_csv("SELECT order_id, quantity, event_date, event_hour FROM archive.orders_fact ORDER BY order_id");
        assert_eq!(got.lines().skip(1).collect::<Vec<_>>(), archived, "archive.orders_fact {when}");
    };
    check(&cluster, "before compaction");

    // Killed with the merged file written, not committed: the old files
    // are the archive, the merged one nobody's.
    let (code, summary, stderr) = compact(&cluster, dest_str);
    assert_ne!(code, 0, "the compaction dies after writing: {summary} {stderr}");
    assert!(cluster.scheduler.wait_exit(Duration::from_secs(10)).is_some(), "the scheduler died");
    let files = hour_files(dest.path());
    let merged: Vec<&String> = files[hour8].iter().filter(|n| n.starts_with("part-compacted-")).collect();
    assert_eq!(merged.len(), 1, "the merged file of the first hour merged: {files:?}");
    assert!(originals.iter().all(|o| files[hour8].contains(o)), "{files:?}");
    fault[1].1 = "compact-after-commit";
    let mut cluster = self::cluster(&mongo, &fault);
    check(&cluster, "with a compaction killed before its commit");

    // Killed with the merged file committed, the old ones not yet removed:
    // the merged file is the archive, the old ones nobody's.
    let (code, summary, stderr) = compact(&cluster, dest_str);
    assert_ne!(code, 0, "the compaction dies after its commit: {summary} {stderr}");
    assert!(cluster.scheduler.wait_exit(Duration::from_secs(10)).is_some(), "the scheduler died");
    let files = hour_files(dest.path());
    let merged: Vec<&String> = files[hour8].iter().filter(|n| n.starts_with("part-compacted-")).collect();
    assert_eq!(merged.len(), 1, "the first compaction's merged file was removed, this one's kept: {files:?}");
    assert!(originals.iter().all(|o| files[hour8].contains(o)), "{files:?}");
    let cluster = self::cluster(&mongo, &with_dest);
    check(&cluster, "with a compaction killed after its commit");
    let plan = cluster.sql_csv(
        "EXPLAIN SELECT order_id FROM history.orders_fact WHERE order_ts >= TIMESTAMP '2026-01-05T08:00:00Z' \
         AND order_ts < TIMESTAMP '2026-01-05T09:00:00Z'",
    );
    assert!(plan.contains(merged[0].as_str()), "the merged file is read: {plan}");
    for original in &originals {
        assert!(!plan.contains(original.as_str()), "{original} is replaced: {plan}");
    }

    drop(cluster);

    // Run whole, while a query planned before it waits to open its files:
    // the first hour's old files go, the other hours of two files are
    // merged (orders 9: O1 and O9; inventory 9: two readings). The query
    // finds an hour-9 file gone and says so.
    let paused = [("STOCKYARD_ARCHIVE_DEST", dest_str), ("STOCKYARD_FAULT", "pause:history-before-read")];
    let cluster = self::cluster(&mongo, &paused);
    let query = cluster.command(&["sql", "SELECT count(*) AS n FROM history.orders_fact"]);
    let reading = std::thread::spawn(move || stockyard_tests::cluster::run(query));
    let waiting = || cluster.logs().contains("pausing at history-before-read");
    assert!(stockyard_tests::within(Duration::from_secs(20), waiting), "the query never reached its files");
    let (code, summary, stderr) = compact(&cluster, dest_str);
    let read = reading.join().unwrap();
    assert_eq!(read.code, 1, "{read:?}");
    let says = "an archive file this query was planned to read is gone: a compaction replaced it while the query ran; \
                run the query again";
    assert!(read.stderr.contains(says), "{}", read.stderr);
    drop(cluster);
    let cluster = self::cluster(&mongo, &with_dest);
    assert_eq!(code, 0, "{summary} {stderr}\n{}", cluster.logs());
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!((summary["hours_compacted"].as_u64(), summary["rows"].as_u64()), (Some(2), Some(4)), "{summary}");
    assert_eq!(summary["files_tidied"].as_u64(), Some(originals.len() as u64), "{summary}");
    assert_one_file_per_hour(dest.path());
    assert_exactly_once(&mongo, dest.path(), &before, &everything);
    check(&cluster, "after compaction");
    assert_read_by_others(&cluster, dest.path(), &archived);

    // Nothing left to merge: nothing changes.
    let files = hour_files(dest.path());
    let (code, summary, stderr) = compact(&cluster, dest_str);
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(
        (summary["hours_compacted"].as_u64(), summary["files_tidied"].as_u64()),
        (Some(0), Some(0)),
        "{summary}"
    );
    assert_eq!(hour_files(dest.path()), files);
    let bad = cluster.stockyard(&["run", "compact", "--min-files", "1"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("'1' is not a number of files (2 or more)"), "{}", bad.stderr);
}

#[test]
fn a_run_killed_after_marking_is_finished_by_the_next() {
    killed_then_rerun("archive-after-mark", false);
}

#[test]
fn a_run_killed_after_writing_is_finished_by_the_next() {
    killed_then_rerun("archive-after-write", false);
}

#[test]
fn a_run_killed_mid_delete_is_finished_by_the_next() {
    killed_then_rerun("archive-mid-delete", false);
}

#[test]
fn an_executor_killed_mid_write_loses_and_doubles_nothing() {
    killed_then_rerun("archive-mid-write", true);
}

#[test]
fn documents_inserted_during_a_run_and_a_mongodb_outage_lose_nothing() {
    let mut mongo = Mongo::start();
    load(&mongo);
    let everything_before: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let dest = tempfile::tempdir().unwrap();
    let dest_str = dest.path().to_str().unwrap().to_string();
    let cluster = cluster(&mongo, &[("STOCKYARD_FAULT", "pause:archive-after-mark")]);

    // Run 1: while it pauses after marking, an old document arrives.
    let cmd = cluster.command(&["run", "archive", "--now", NOW, "--threshold-mb", "0", "--dest", &dest_str]);
    let first = std::thread::spawn(move || stockyard_tests::cluster::run(cmd));
    std::thread::sleep(Duration::from_secs(2));
    mongo.with_client(async |c| {
        c.database(DB)
            .collection::<Document>("orders_fact")
            .insert_one(doc! {"order_id": "DURING", "quantity": 1, "order_ts": at("2026-01-05T05:00:00Z")})
            .await
            .unwrap();
    });
    let first = first.join().unwrap();
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, cluster.logs());
    let left = ids(&all(&mongo, "orders_fact"));
    assert!(left.contains(&"DURING".to_string()), "a document inserted during the run stays: {left:?}");
    let first_archive = archived(dest.path(), "orders_fact").into_values().flatten().count();
    assert_eq!(first_archive, 4);

    // Run 2: MongoDB goes away while it pauses after marking.
    let cmd = cluster.command(&["run", "archive", "--now", NOW, "--threshold-mb", "0", "--dest", &dest_str]);
    let second = std::thread::spawn(move || stockyard_tests::cluster::run(cmd));
    std::thread::sleep(Duration::from_secs(2));
    mongo.proc.stop(Duration::from_secs(20));
    let second = second.join().unwrap();
    assert_eq!(second.code, 1, "{}", second.stdout);
    assert!(second.stderr.contains("MongoDB"), "the error names MongoDB: {}", second.stderr);
    mongo.restart(&[]);

    // Run 3 finishes run 2: DURING is archived once, nothing else doubled.
    let cluster = cluster;
    let (code, summary, stderr) = archive(&cluster, &dest_str);
    assert_eq!(code, 0, "{summary} {stderr}");
    let mut before: BTreeMap<&str, Vec<Document>> = everything_before
        .iter()
        .map(|(c, docs)| (*c, docs.iter().filter(|d| selected_time(d)).cloned().collect()))
        .collect();
    let during = archived(dest.path(), "orders_fact")
        .into_values()
        .flatten()
        .find(|d| id(d) == "DURING")
        .expect("DURING archived");
    before.get_mut("orders_fact").unwrap().push(during.clone());
    let mut everything = everything_before.clone();
    everything.get_mut("orders_fact").unwrap().push(during);
    assert_exactly_once(&mongo, dest.path(), &before, &everything);
}

/// Whether `d`'s event time is a date before the 10:00 cutoff.
fn selected_time(d: &Document) -> bool {
    let cutoff = at("2026-01-05T10:00:00Z");
    ["order_ts", "arrival_ts", "inventory_ts"].iter().find_map(|f| d.get_datetime(f).ok()).is_some_and(|t| *t < cutoff)
}

#[test]
fn a_failing_store_deletes_nothing_and_the_next_run_completes() {
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let dest = tempfile::tempdir().unwrap();
    // A file where the orders' directory must go: every write there fails.
    std::fs::write(dest.path().join("orders_fact"), "in the way").unwrap();
    let cluster = cluster(&mongo, &[]);
    let (code, summary, stderr) = archive(&cluster, dest.path().to_str().unwrap());
    assert_eq!(code, 1, "{summary}");
    assert!(stderr.contains("orders_fact"), "the error names what failed: {stderr}");
    assert_eq!(all(&mongo, "orders_fact").len(), 7, "nothing deleted");
    std::fs::remove_file(dest.path().join("orders_fact")).unwrap();
    let (code, summary, stderr) = archive(&cluster, dest.path().to_str().unwrap());
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(summary["resumed_runs"].as_array().map(Vec::len), Some(1), "{summary}");
    assert_exactly_once(&mongo, dest.path(), &before, &everything);
}

#[test]
fn the_archive_writes_to_s3() {
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let s3 = S3::start("archive");
    let env = s3.env();
    let mut extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // A run may name a destination only under one the scheduler was given.
    extra.push(("STOCKYARD_ARCHIVE_DESTS", "s3://archive/cold"));
    // The history tables read the scheduler's own destination.
    extra.push(("STOCKYARD_ARCHIVE_DEST", "s3://archive/cold/supply"));
    let cluster = cluster(&mongo, &extra);
    let outside =
        cluster.stockyard(&["run", "archive", "--now", NOW, "--threshold-mb", "0", "--dest", "s3://archive/elsewhere"]);
    assert_eq!(outside.code, 1, "{outside:?}");
    assert!(
        outside
            .stderr
            .contains("the archive destination 's3://archive/elsewhere' is not under the scheduler's destinations"),
        "{outside:?}"
    );
    assert_eq!(selected(&mongo), before, "a refused run marks nothing");
    let (code, summary, stderr) = archive(&cluster, "s3://archive/cold/supply");
    assert_eq!(code, 0, "{summary} {stderr}\n{}", cluster.logs());
    assert_eq!(summary["total_records"], 6, "{summary}");

    // Read the bucket back through the same S3 API.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let objects = runtime.block_on(async {
        use futures::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name("archive");
        for (k, v) in &env {
            builder = builder.with_config(k.to_lowercase().parse().unwrap(), v);
        }
        let store = builder.build().unwrap();
        let listed: Vec<_> = store.list(Some(&"cold/supply".into())).try_collect().await.unwrap();
        let mut objects = BTreeMap::new();
        for o in listed {
            let bytes = store.get(&o.location).await.unwrap().bytes().await.unwrap();
            objects.insert(o.location.to_string(), bytes);
        }
        objects
    });
    let mut layout: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, bytes) in &objects {
        if key.ends_with(".parquet") {
            let dir = key.rsplit_once('/').unwrap().0.to_string();
            layout.entry(dir).or_default().extend(read_parquet(bytes.clone()).iter().map(id));
        }
    }
    for ids in layout.values_mut() {
        ids.sort();
    }
    assert_eq!(
        layout.get("cold/supply/orders_fact/event_date=2026-01-05/event_hour=8"),
        Some(&vec!["O3".to_string(), "O5".to_string()])
    );
    assert_eq!(layout.values().map(Vec::len).sum::<usize>(), 6);
    assert_eq!(objects.keys().filter(|k| k.starts_with("cold/supply/metadata/archive_")).count(), 1);
    let archived_orders: Vec<String> =
        layout.iter().filter(|(k, _)| k.contains("orders_fact")).flat_map(|(_, v)| v.clone()).collect();
    let mut archived_orders = archived_orders;
    archived_orders.sort();
    assert_eq!(archived_orders, ids(&before["orders_fact"]));
    assert_eq!(ids(&all(&mongo, "orders_fact")), vec!["O2", "O6", "O7"]);

    // The executors read the bucket with their own credentials; the
    // scheduler lists and prunes it. By hand, as in `load`.
    assert_history(&cluster, false, &ARCHIVED_ORDERS, "over an S3 archive");
    let plan = cluster.sql_csv(
        "EXPLAIN SELECT order_id FROM history.orders_fact WHERE order_ts >= TIMESTAMP '2026-01-05T08:00:00Z' \
         AND order_ts < TIMESTAMP '2026-01-05T09:00:00Z'",
    );
    assert!(plan.contains("ArchiveReadExec: s3://archive/cold/supply"), "{plan}");
    assert!(plan.contains("event_hour=8/") && !plan.contains("event_hour=9/"), "pruned on S3: {plan}");
    let (code, summary, stderr) = compact(&cluster, "s3://archive/cold/supply");
    assert_eq!(code, 0, "compaction on S3: {summary} {stderr}\n{}", cluster.logs());
    assert_history(&cluster, false, &ARCHIVED_ORDERS, "over an S3 archive, compacted");
}

/// The id of the one unfinished archive run in the ledger.
fn unfinished_run(mongo: &Mongo) -> String {
    let open: Vec<Document> = mongo.with_client(async |c| {
        let ledger = c.database(DB).collection::<Document>(stockyard_jobs::archive::LEDGER);
        let found = ledger.find(doc! {"state": {"$nin": ["done", "abandoned"]}}).await.unwrap();
        futures::TryStreamExt::try_collect(found).await.unwrap()
    });
    assert_eq!(open.len(), 1, "{open:?}");
    open[0].get_str("_id").unwrap().to_string()
}

/// Nothing is marked for a destination that cannot be written: the run
/// fails before marking, and the next run is not held up.
#[test]
fn a_destination_that_cannot_be_written_marks_nothing_and_blocks_nothing() {
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "not a directory").unwrap();
    let bad = dir.path().join("file/archive");
    let cluster = cluster(&mongo, &[]);
    let (code, summary, stderr) = archive(&cluster, bad.to_str().unwrap());
    assert_eq!(code, 1, "{summary}");
    let opening = format!("the archive store failed while opening: archive destination '{}'", bad.display());
    assert!(stderr.contains(&opening) && stderr.contains("cannot create the directory"), "{stderr}");
    for c in FACTS {
        assert!(all(&mongo, c).iter().all(|d| !d.contains_key(ARCHIVE_MARK)), "{c}: marked for a dead destination");
    }
    let good = tempfile::tempdir().unwrap();
    let (code, summary, stderr) = archive(&cluster, good.path().to_str().unwrap());
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(summary["resumed_runs"], json!([]), "{summary}");
    assert_exactly_once(&mongo, good.path(), &before, &everything);
}

/// A run interrupted after marking whose destination is gone for good is
/// retried by the next two runs (which go on with their own work), then
/// abandoned by the third: its marks lifted, the documents archived by
/// that run, exactly once. By hand, abandoning names what cannot be.
#[test]
fn an_interrupted_run_that_cannot_finish_is_abandoned_and_blocks_nothing() {
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let gone = tempfile::tempdir().unwrap();
    let gone_dest = gone.path().join("archive");
    {
        let mut cluster = cluster(&mongo, &[("STOCKYARD_FAULT", "archive-after-mark")]);
        let (code, summary, _) = archive(&cluster, gone_dest.to_str().unwrap());
        assert_ne!(code, 0, "{summary}");
        assert!(cluster.scheduler.wait_exit(Duration::from_secs(10)).is_some(), "the scheduler died after marking");
    }
    let interrupted = unfinished_run(&mongo);
    // Its destination becomes a file: it can never be written again.
    std::fs::remove_dir_all(&gone_dest).unwrap();
    std::fs::write(&gone_dest, "in the way").unwrap();

    let good = tempfile::tempdir().unwrap();
    let good_dest = good.path().to_str().unwrap();
    let cluster = cluster(&mongo, &[]);
    for tries in 1..=2 {
        let (code, summary, stderr) = archive(&cluster, good_dest);
        assert_eq!(code, 0, "try {tries}: {summary} {stderr}");
        let unfinished = &summary["unfinished_runs"];
        assert_eq!(unfinished.as_array().map(Vec::len), Some(1), "{summary}");
        assert_eq!(unfinished[0]["archive_id"], interrupted.as_str());
        assert_eq!(unfinished[0]["state"], "writing");
        assert_eq!(unfinished[0]["tries"], tries);
        assert!(
            unfinished[0]["error"].as_str().unwrap().contains("the archive store failed while opening"),
            "{summary}"
        );
        // Its documents stay marked for it: this run found nothing to do.
        assert_eq!(summary["total_records"], 0, "{summary}");
    }
    let (code, summary, stderr) = archive(&cluster, good_dest);
    assert_eq!(code, 0, "{summary} {stderr}");
    let abandoned = &summary["abandoned_runs"][0];
    assert_eq!(abandoned["abandoned"], interrupted.as_str(), "{summary}");
    assert_eq!(abandoned["was"], "writing");
    assert!(abandoned["reason"].as_str().unwrap().starts_with("abandoned after 3 tries: "), "{summary}");
    let unmarked: u64 = FACTS.iter().map(|c| abandoned["unmarked"][c].as_u64().unwrap()).sum();
    let selected_count: usize = before.values().map(Vec::len).sum();
    assert_eq!(unmarked, selected_count as u64, "{summary}");
    assert_exactly_once(&mongo, good.path(), &before, &everything);

    // By hand: an abandoned run, and one the ledger does not have.
    let r = cluster.stockyard(&["archive", "abandon", &interrupted]);
    assert_eq!(r.code, 1, "{r:?}");
    let expected = format!(
        "archive run {interrupted} is abandoned: only a run stopped before its files were complete (marking or writing) can be abandoned"
    );
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    let r = cluster.stockyard(&["archive", "abandon", "no-such-run"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no archive run 'no-such-run' in the ledger (stockyard_archive_ledger)"), "{}", r.stderr);
}

/// Two leaders finish one interrupted run at once, as when a frozen leader
/// wakes after its standby took over: the later term claims the run, the
/// earlier one's commit is refused and it removes only its own files, so
/// the archive holds every selected document once and nothing is lost.
#[test]
fn two_leaders_finishing_one_run_leave_one_copy() {
    use std::sync::Arc;
    use stockyard_jobs::archive::{self, ArchiveError, ArchiveParams, Leader};
    // Every run pauses after its files are written and checked, before it
    // commits them (this test's process only: nextest runs one per process).
    unsafe { std::env::set_var("STOCKYARD_FAULT", "pause:archive-before-commit") };
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let dest = tempfile::tempdir().unwrap();
    let dest_str = dest.path().to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let source = Arc::new(stockyard_mongo::MongoSource::new(mongo.uri(), DB));
    let params = |term: u64| ArchiveParams {
        now: chrono::DateTime::parse_from_rfc3339(NOW).unwrap().into(),
        threshold_mb: 0.0,
        older_than: Duration::from_secs(120 * 60),
        dest: dest_str.clone(),
        abandon: None,
        leader: Some(Leader { store: "etcd://test".into(), term }),
    };
    let (first, second) = rt.block_on(async {
        let (ctx, source1, p1) = (datafusion::prelude::SessionContext::new(), source.clone(), params(7));
        let first = tokio::spawn(async move { archive::run(&ctx, &source1, &p1, &|_| {}).await });
        // The first is paused once its last collection's files are there.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !walk(&dest.path().join("inventory_fact")).iter().any(|p| p.extension().is_some_and(|e| e == "parquet")) {
            assert!(std::time::Instant::now() < deadline, "the first run wrote no files");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ctx = datafusion::prelude::SessionContext::new();
        let second = archive::run(&ctx, &source, &params(8), &|_| {}).await;
        (first.await.unwrap(), second)
    });
    let refused = first.unwrap_err();
    assert!(matches!(refused, ArchiveError::Fenced { term: 7, .. }), "{refused}");
    assert!(refused.to_string().contains("a later leader (term 8 of etcd://test) took the run over"), "{refused}");
    let second = second.unwrap();
    assert_eq!(second["resumed_runs"].as_array().map(Vec::len), Some(1), "{second}");
    assert_exactly_once(&mongo, dest.path(), &before, &everything);
}

#[test]
fn a_query_an_archive_run_deletes_under_fails_and_says_to_run_it_again() {
    let mongo = Mongo::start();
    load(&mongo);
    let dest = tempfile::tempdir().unwrap();
    let env =
        [("STOCKYARD_FAULT", "pause:history-before-check"), ("STOCKYARD_ARCHIVE_DEST", dest.path().to_str().unwrap())];
    let cluster = cluster(&mongo, &env);
    let query = cluster
        .command(&["sql", "--format", "csv", "SELECT count(*) AS n FROM history.orders_fact"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // MongoDB read, the check not yet made: a run starts deleting now.
    let paused = || cluster.executors.iter().any(|e| e.output().contains("pausing at history-before-check"));
    assert!(stockyard_tests::within(Duration::from_secs(20), paused), "{}", cluster.logs());
    mongo.with_client(async |c| {
        let ledger = c.database(DB).collection::<Document>("stockyard_archive_ledger");
        ledger
            .insert_one(doc! {"_id": "a-run-that-began-deleting", "state": "deleting", "attempt": "1a2b3c4d"})
            .await
            .unwrap();
    });
    let out = query.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.contains("an archive run moved documents from MongoDB to the archive while this query read them")
            && stderr.contains("run the query again"),
        "{stderr}"
    );
    // Run again, against the ledger as it is now: exact.
    assert_eq!(cluster.sql_csv("SELECT count(*) AS n FROM history.orders_fact"), "n\n7\n");
}
