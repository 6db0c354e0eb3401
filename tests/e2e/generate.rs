//! `stockyard generate` end to end: the binary writes to SecantusDB, the
//! documents are read back with the driver and counted through a cluster.

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use stockyard_tests::cluster::{base_command, run};
use stockyard_tests::{Cluster, Mongo, Run};

const FACTS: [(&str, &str); 3] =
    [("orders_fact", "order_ts"), ("shipments_fact", "arrival_ts"), ("inventory_fact", "inventory_ts")];
const DIMS: [(&str, u64); 3] = [("skus_dim", 5000), ("dcs_dim", 40), ("suppliers_dim", 50)];

fn generate(mongo: &Mongo, db: &str, args: &[&str]) -> Run {
    let mut c = base_command(&[("STOCKYARD_MONGO_URI".into(), mongo.uri()), ("STOCKYARD_MONGO_DB".into(), db.into())]);
    c.arg("generate").args(args);
    run(c)
}

/// A backfill of 3000 facts with seed 7; its JSON summary.
fn backfill(mongo: &Mongo, db: &str) -> Value {
    let args = ["--seed", "7", "--docs", "3000", "--start", "2026-01-05T11:00:00Z", "--end", "2026-01-05T12:00:00Z"];
    let r = generate(mongo, db, &args).ok();
    let last = r.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {}", r.stdout))
}

fn count(mongo: &Mongo, db: &str, collection: &str) -> u64 {
    mongo.with_client(async |c| {
        c.database(db).collection::<Document>(collection).count_documents(doc! {}).await.unwrap()
    })
}

/// Every document of `collection` but for `_id`, as sorted text.
fn contents(mongo: &Mongo, db: &str, collection: &str) -> Vec<String> {
    mongo.with_client(async |c| {
        let coll = c.database(db).collection::<Document>(collection);
        let docs: Vec<Document> =
            coll.find(doc! {}).projection(doc! {"_id": 0}).await.unwrap().try_collect().await.unwrap();
        let mut text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
        text.sort();
        text
    })
}

#[test]
fn generate_backfills_exact_repeatable_data_that_sql_reads() {
    let mongo = Mongo::start();
    let s = backfill(&mongo, "gen_a");
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(s["facts"], 3000, "{s}");
    let per_fact: Vec<u64> = FACTS.iter().map(|(c, _)| s[c].as_u64().unwrap()).collect();
    assert_eq!(per_fact.iter().sum::<u64>(), 3000, "{s}");
    // Roughly 60/15/25 and 2% dirty.
    assert!((1600..2000).contains(&per_fact[0]) && (300..600).contains(&per_fact[1]), "{s}");
    assert!((20..120).contains(&s["dirty"].as_u64().unwrap()), "{s}");
    for ((collection, _), n) in FACTS.iter().zip(&per_fact) {
        assert_eq!(count(&mongo, "gen_a", collection), *n, "{collection}");
    }
    for (collection, n) in DIMS {
        assert_eq!(s[collection], n, "{s}");
        assert_eq!(count(&mongo, "gen_a", collection), n, "{collection}");
    }

    // Indexes on the event-time fields.
    mongo.with_client(async |c| {
        for (collection, field) in FACTS {
            let names = c.database("gen_a").collection::<Document>(collection).list_index_names().await.unwrap();
            assert!(names.contains(&format!("{field}_1")), "{collection}: {names:?}");
        }
    });

    // The same seed elsewhere: the same facts and dimensions, field for field.
    let mut b = backfill(&mongo, "gen_b");
    for k in ["database", "duration_ms"] {
        b[k] = s[k].clone();
    }
    assert_eq!(b, s);
    for collection in FACTS.iter().map(|f| f.0).chain(DIMS.iter().map(|d| d.0)) {
        assert_eq!(contents(&mongo, "gen_a", collection), contents(&mongo, "gen_b", collection), "{collection}");
    }

    // Again into the first: dimensions replaced, facts appended.
    backfill(&mongo, "gen_a");
    for (collection, n) in DIMS {
        assert_eq!(count(&mongo, "gen_a", collection), n, "{collection}");
    }
    for ((collection, _), n) in FACTS.iter().zip(&per_fact) {
        assert_eq!(count(&mongo, "gen_a", collection), 2 * n, "{collection}");
    }

    // SQL over the generated data on a scheduler and two executors.
    let cluster = Cluster::start_with_env(
        2,
        vec![("STOCKYARD_MONGO_URI".into(), mongo.uri()), ("STOCKYARD_MONGO_DB".into(), "gen_b".into())],
    );
    assert_eq!(cluster.sql_csv("SELECT count(*) AS n FROM orders_fact"), format!("n\n{}\n", per_fact[0]));
    assert_eq!(cluster.sql_csv("SELECT count(*) AS n FROM skus_dim"), "n\n5000\n");
}

#[test]
fn generate_flags_are_checked_before_any_work() {
    // No MongoDB at all: a command-line error exits 2 before connecting.
    let nowhere = format!("mongodb://127.0.0.1:{}", stockyard_tests::free_port());
    let stockyard = |args: &[&str]| {
        let mut c = base_command(&[("STOCKYARD_MONGO_URI".into(), nowhere.clone())]);
        c.arg("generate").args(args);
        run(c)
    };
    let r = stockyard(&["--docs", "5", "--rate", "3", "--duration", "1s"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--docs") && r.stderr.contains("--rate"), "{}", r.stderr);
    let r = stockyard(&["--rate", "3"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--duration"), "{}", r.stderr);
    let r = stockyard(&["--dirty-share", "3"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'3'"), "{}", r.stderr);
    let r = stockyard(&["--docs", "5", "--start", "2026-01-05T12:00:00Z", "--end", "2026-01-05T11:00:00Z"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'2026-01-05T12:00:00Z' is not before"), "{}", r.stderr);
    let r = stockyard(&["--seed", "-1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'-1'"), "{}", r.stderr);
}
