//! MongoDB tables on a real cluster: SecantusDB, a scheduler and two
//! executors. Results are checked against what the documents hold.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mongodb::bson::{Bson, DateTime, Decimal128, Document, doc, oid::ObjectId};
use stockyard_tests::{Cluster, Mongo, Proc};

const DB: &str = "stockyard_test";

fn cluster_on(mongo: &Mongo) -> Cluster {
    Cluster::start_with_env(
        2,
        vec![
            // A short server-selection timeout keeps the failure test quick.
            ("STOCKYARD_MONGO_URI".into(), format!("{}/?serverSelectionTimeoutMS=2000", mongo.uri())),
            ("STOCKYARD_MONGO_DB".into(), DB.into()),
        ],
    )
}

/// Dirty orders: odd `_id`s, missing and mistyped fields, as real data has.
/// Returns the documents and the expected
/// `dc,n,q,s` rows (count, readable quantities, their sum) by `dc_id`.
fn dirty_orders(n: i32) -> (Vec<Document>, String) {
    let base = DateTime::parse_rfc3339_str("2026-01-05T12:00:00Z").unwrap().timestamp_millis();
    let mut docs = Vec::new();
    let mut groups: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    for i in 0..n {
        let mut d = Document::new();
        if i % 50 == 0 {
            d.insert("_id", format!("s{i}"));
        } else if i % 77 == 0 {
            d.insert("_id", i);
        }
        d.insert("order_id", format!("O{i:06}"));
        let dc = match i {
            _ if i % 31 == 0 => None,
            _ if i % 37 == 0 => {
                d.insert("dc_id", i);
                None
            }
            _ => Some(format!("DC-{:02}", i % 5)),
        };
        if let Some(dc) = &dc {
            d.insert("dc_id", dc.clone());
        }
        let q = i % 13 + 1;
        let quantity = match i {
            _ if i % 17 == 0 => {
                d.insert("quantity", q.to_string());
                None
            }
            _ if i % 19 == 0 => {
                d.insert("quantity", i64::from(q));
                Some(q)
            }
            _ if i % 29 == 0 => {
                d.insert("quantity", Bson::Null);
                None
            }
            _ if i % 41 == 0 => None,
            _ => {
                d.insert("quantity", q);
                Some(q)
            }
        };
        match i {
            _ if i % 43 == 0 => d.insert("order_ts", "2026-01-05"),
            _ if i % 47 == 0 => None,
            _ if i % 53 == 0 => d.insert("order_ts", vec![Bson::DateTime(DateTime::from_millis(base))]),
            _ => d.insert("order_ts", DateTime::from_millis(base + i64::from(i) * 1000)),
        };
        docs.push(d);
        let g = groups.entry(dc.unwrap_or_else(|| "-".into())).or_default();
        g.0 += 1;
        if let Some(q) = quantity {
            g.1 += 1;
            g.2 += i64::from(q);
        }
    }
    let expected: String = groups.into_iter().map(|(dc, (n, q, s))| format!("{dc},{n},{q},{s}\n")).collect();
    (docs, format!("dc,n,q,s\n{expected}"))
}

#[test]
fn scans_are_exact_with_1_2_and_7_partitions_by_id_and_by_time() {
    let mongo = Mongo::start();
    let (docs, expected) = dirty_orders(3000);
    mongo.load(DB, "orders_fact", docs);
    let cluster = cluster_on(&mongo);
    let sql = "SELECT coalesce(dc_id, '-') AS dc, count(*) AS n, count(quantity) AS q, sum(quantity) AS s
               FROM orders_fact GROUP BY 1 ORDER BY 1";
    for (parts, field) in [("1", "_id"), ("2", "_id"), ("7", "_id"), ("7", "order_ts")] {
        let out = cluster
            .stockyard(&["sql", "--format", "csv", "--mongo-partitions", parts, "--mongo-partition-field", field, sql])
            .ok()
            .stdout;
        assert_eq!(out, expected, "{parts} partitions by {field}\n{}", cluster.logs());
    }
    // Every document once, by its key.
    let out = cluster
        .stockyard(&[
            "sql",
            "--format",
            "csv",
            "--mongo-partitions",
            "7",
            "SELECT count(DISTINCT order_id) AS d, count(*) AS n FROM orders_fact",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "d,n\n3000,3000\n");
    // LIMIT reaches MongoDB.
    let out = cluster.stockyard(&["sql", "--format", "csv", "SELECT order_id FROM orders_fact LIMIT 5"]).ok().stdout;
    assert_eq!(out.lines().count(), 6, "{out}");
    let plan = cluster.stockyard(&["sql", "EXPLAIN SELECT order_id FROM orders_fact LIMIT 5"]).ok().stdout;
    assert!(plan.contains("projection=[order_id], limit=5"), "{plan}");
    // The partitions are visible in the plan.
    let plan =
        cluster.stockyard(&["sql", "--mongo-partitions", "7", "EXPLAIN SELECT count(*) FROM orders_fact"]).ok().stdout;
    assert!(plan.contains("MongoScanExec: collection=orders_fact, partitions=7 (ranges of _id)"), "{plan}");
}

#[test]
fn types_nesting_and_dirty_values_read_as_documented() {
    let mongo = Mongo::start();
    let oid = |s: &str| ObjectId::parse_str(s).unwrap();
    let dec = |s: &str| Bson::Decimal128(s.parse::<Decimal128>().unwrap());
    let docs = vec![
        doc! {"_id": 1, "i": 1i32, "s": "a", "b": true, "t": DateTime::from_millis(-86_400_000),
        "o": oid("6b024cab249a8006423f8c6f"), "n": {"x": 1i32, "y": "p"}, "l": [1i32, 2i32], "dec": dec("1.25")},
        doc! {"_id": 2, "i": 2i64, "s": "b", "b": false, "t": DateTime::parse_rfc3339_str("2026-01-01T00:00:00Z").unwrap(),
        "o": oid("6b024cab249a8006423f8c70"), "n": {"x": 2i32}, "l": [3i32], "dec": dec("-3.50")},
        doc! {"_id": 3, "i": Bson::Null, "s": 7i32, "b": "yes", "t": "2026-01-01", "o": "custom", "n": "str",
        "l": "notarray", "dec": 4i32},
        doc! {"_id": 4},
        doc! {"_id": 5, "i": 5i32, "s": "c", "b": true, "t": DateTime::from_millis(-2_208_988_800_000),
        "o": oid("6b024cab249a8006423f8c71"), "n": {"y": "q", "z": true}, "l": [Bson::Null, 4i32], "dec": dec("0.01")},
    ];
    mongo.load(DB, "kinds", docs);
    let cluster = cluster_on(&mongo);
    let out = cluster.stockyard(&["sql", "--format", "json", "SELECT * FROM kinds ORDER BY _id"]).ok().stdout;
    let expected = [
        r#"{"_id":1,"i":1,"s":"a","b":true,"t":"1969-12-31T00:00:00Z","o":"6b024cab249a8006423f8c6f","n":{"x":1,"y":"p"},"l":[1,2],"dec":1.25}"#,
        r#"{"_id":2,"i":2,"s":"b","b":false,"t":"2026-01-01T00:00:00Z","o":"6b024cab249a8006423f8c70","n":{"x":2},"l":[3],"dec":-3.50}"#,
        r#"{"_id":3,"dec":4.00}"#,
        r#"{"_id":4}"#,
        r#"{"_id":5,"i":5,"s":"c","b":true,"t":"1900-01-01T00:00:00Z","o":"6b024cab249a8006423f8c71","n":{"y":"q","z":true},"l":[null,4],"dec":0.01}"#,
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
    let types = cluster
        .stockyard(&["sql", "--format", "csv", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'kinds' ORDER BY ordinal_position"])
        .ok()
        .stdout;
    assert_eq!(
        types,
        "column_name,data_type\n_id,Int32\ni,Int64\ns,Utf8\nb,Boolean\nt,\"Timestamp(ms, \"\"UTC\"\")\"\no,Utf8\n\
         n,\"Struct(\"\"x\"\": Int32, \"\"y\"\": Utf8, \"\"z\"\": Boolean)\"\nl,List(Int32)\ndec,\"Decimal128(38, 2)\"\n",
    );
}

/// Rows of `SELECT k … WHERE pred`, once pushed down and once not (an OR
/// with a volatile false keeps DataFusion from pushing it).
#[test]
fn every_pushed_filter_returns_what_sql_would() {
    let mongo = Mongo::start();
    let t0 = DateTime::parse_rfc3339_str("2026-01-05T12:00:00Z").unwrap().timestamp_millis();
    let mut docs = Vec::new();
    for k in 0..120i32 {
        let mut d = doc! {"k": k};
        match k % 8 {
            0 => d.insert("s", format!("v{}", k % 5)),
            1 => d.insert("s", vec![Bson::String("v1".into()), Bson::String("v3".into())]),
            2 => d.insert("s", k),
            3 => d.insert("s", Bson::Null),
            4 => None,
            5 => d.insert("s", Bson::Symbol("v2".into())),
            _ => d.insert("s", format!("v{}", k % 3)),
        };
        match k % 9 {
            0 => d.insert("q", k % 7),
            1 => d.insert("q", 2.5),
            2 => d.insert("q", "3"),
            3 => d.insert("q", vec![Bson::Int32(1), Bson::Int32(9)]),
            4 => d.insert("q", i64::from(k % 6)),
            5 => None,
            6 => d.insert("q", 3_000_000_000i64),
            _ => d.insert("q", k % 5),
        };
        match k % 7 {
            0 => d.insert("r", k % 4),
            1 => d.insert("r", i64::from(k % 6)),
            2 => d.insert("r", "3"),
            3 => d.insert("r", vec![Bson::Int32(1), Bson::Int32(9)]),
            4 => d.insert("r", 3_000_000_000i64),
            5 => None,
            _ => d.insert("r", Bson::Null),
        };
        match k % 6 {
            0 => d.insert("p", f64::NAN),
            1 => d.insert("p", k),
            2 => d.insert("p", f64::from(k) / 4.0),
            3 => d.insert("p", "x"),
            _ => d.insert("p", f64::from(k % 7)),
        };
        match k % 5 {
            0 => d.insert("t", "2026-01-05"),
            1 => None,
            _ => d.insert("t", DateTime::from_millis(t0 + i64::from(k) * 60_000)),
        };
        match k % 4 {
            0 => d.insert("b", true),
            1 => d.insert("b", false),
            2 => d.insert("b", 1),
            _ => None,
        };
        docs.push(d);
    }
    mongo.load(DB, "f", docs);
    let cluster = cluster_on(&mongo);
    // The column types the sample gives: checked so the cases below mean
    // what they say.
    let types = cluster
        .stockyard(&["sql", "--format", "csv", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'f' ORDER BY ordinal_position"])
        .ok()
        .stdout;
    assert!(
        types.contains("s,Utf8\n")
            && types.contains("q,Float64\n")
            && types.contains("r,Int64\n")
            && types.contains("p,Float64\n"),
        "{types}"
    );
    let predicates = [
        "s = 'v1'",
        "s <> 'v1'",
        "s > 'v1'",
        "s <= 'v2'",
        "s IN ('v0', 'v2')",
        "s NOT IN ('v0', 'v2')",
        "s IS NOT NULL",
        "q > 2",
        "q <= 2",
        "q = 3",
        "q <> 3",
        "q BETWEEN 1 AND 3",
        "q IN (1, 4)",
        "q IS NOT NULL",
        "r > 2",
        "r = 3",
        "r <> 3",
        "r < 4",
        "r IN (1, 3)",
        "r NOT IN (1, 3)",
        "r IS NOT NULL",
        "p >= 2.5",
        "p < 2.5",
        "p <> 1.0",
        "t >= TIMESTAMP '2026-01-05T12:30:00Z'",
        "t < TIMESTAMP '2026-01-05T13:00:00Z'",
        "b = true",
        "b = false",
        "s = 'v1' OR q > 3",
        "s = 'v0' AND p > 1.0",
        "2 < q",
    ];
    let csv = |sql: &str| cluster.stockyard(&["sql", "--format", "csv", "--mongo-partitions", "3", sql]).ok().stdout;
    for pred in predicates {
        let pushed = csv(&format!("SELECT k FROM f WHERE {pred} ORDER BY k"));
        let plain = csv(&format!("SELECT k FROM f WHERE ({pred}) OR random() < 0 ORDER BY k"));
        assert_eq!(pushed, plain, "WHERE {pred}");
        assert!(pushed.lines().count() > 1, "WHERE {pred} should select some rows to mean anything");
    }
    let plan = csv("EXPLAIN SELECT k FROM f WHERE s = 'v1' AND r > 2");
    assert!(
        plan.contains(r#"filter={""$and"":[{""s"":{""$eq"":""v1"",""$not"":{""$type"":""array""},""$type"":""string""}},{""r"":{""$gt"":2}}]}"#),
        "{plan}"
    );
    assert!(plan.contains("full_filters=[f.s = Utf8(\"\"v1\"\")], partial_filters=[f.r > Int64(2)]"), "{plan}");
}

#[test]
fn missing_collections_and_a_dead_mongodb_give_clear_errors() {
    let mut mongo = Mongo::start();
    let docs: Vec<Document> = (0..60_000).map(|i| doc! {"i": i, "pad": "x".repeat(200)}).collect();
    mongo.load(DB, "big", docs);
    let cluster = cluster_on(&mongo);

    let r = cluster.stockyard(&["sql", "SELECT * FROM no_such_collection"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no_such_collection") && r.stderr.contains("not found"), "{}", r.stderr);

    // Kill MongoDB while a scan runs: the query fails, naming MongoDB,
    // without hanging; the cluster keeps serving.
    let mut cmd = cluster.command(&["sql", "--mongo-partitions", "1", "SELECT count(*), sum(length(pad)) FROM big"]);
    cmd.env("STOCKYARD_LOG", "off");
    let mut query = Proc::spawn("query", cmd, cluster.dir.path().join("query.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.stockyard(&["jobs", "--ballista", "--format", "json"]).ok().stdout.contains("\"status\":\"running\"")
    {
        assert!(Instant::now() < deadline, "the scan never ran\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    mongo.proc.kill();
    let started = Instant::now();
    let status = query.wait_exit(Duration::from_secs(120)).expect("the query ends instead of hanging");
    let output = query.output();
    assert!(!status.success(), "a scan cut off midway cannot succeed:\n{output}");
    assert!(output.contains("error: query failed") && output.contains("MongoDB"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    eprintln!("failed {:?} after MongoDB died", started.elapsed());
    assert_eq!(cluster.sql_csv("SELECT 1 + 1 AS two"), "two\n2\n");
    let r = cluster.stockyard(&["sql", "SELECT * FROM big"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("MongoDB"), "a missing table names MongoDB when it is down: {}", r.stderr);
}

#[test]
fn a_wrong_password_fails_clearly_and_no_password_ever_shows() {
    let mut mongo = Mongo::start();
    mongo.with_client(async |client| {
        client
            .database("admin")
            .run_command(doc! {"createUser": "stockyard", "pwd": "right-Pa55", "roles": ["root"]})
            .await
            .expect("create user");
        let coll = client.database(DB).collection::<Document>("t");
        coll.insert_many(vec![doc! {"a": 1}, doc! {"a": 2}]).await.expect("insert");
    });
    mongo.restart(&["--auth"]);
    let uri = |password: &str| {
        format!(
            "mongodb://stockyard:{password}@127.0.0.1:{}/?authSource=admin&serverSelectionTimeoutMS=2000",
            mongo.port
        )
    };
    let env = |password: &str| {
        vec![("STOCKYARD_MONGO_URI".to_string(), uri(password)), ("STOCKYARD_MONGO_DB".to_string(), DB.to_string())]
    };

    let wrong = Cluster::start_with_env(2, env("wrong-Pa55"));
    let started = Instant::now();
    let r = wrong.stockyard(&["sql", "SELECT sum(a) FROM t"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(r.stderr.to_lowercase().contains("auth"), "the error says authentication failed: {}", r.stderr);
    let everything = format!("{}{}{}", r.stdout, r.stderr, wrong.logs());
    assert!(!everything.contains("wrong-Pa55"), "a password leaked:\n{everything}");
    assert!(everything.contains("stockyard:***@"), "the URI is shown masked:\n{everything}");

    let right = Cluster::start_with_env(2, env("right-Pa55"));
    let out = right.stockyard(&["sql", "--format", "csv", "SELECT sum(a) AS s FROM t"]).ok();
    assert_eq!(out.stdout, "s\n3\n");
    let plan = right.stockyard(&["sql", "EXPLAIN SELECT sum(a) FROM t WHERE a > 1"]).ok();
    let everything = format!("{}{}{}", plan.stdout, plan.stderr, right.logs());
    assert!(!everything.contains("right-Pa55"), "a password leaked:\n{everything}");
}
