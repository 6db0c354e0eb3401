//! The generator without MongoDB: determinism, the dirty share, the spec's
//! types and event times.

use chrono::{DateTime, Utc};
use mongodb::bson::{Bson, Document};

use crate::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn options(seed: u64, docs: u64, dirty_share: f64) -> GenerateOptions {
    GenerateOptions {
        seed,
        mode: Mode::Backfill { docs, start: at("2026-01-05T11:00:00Z"), end: at("2026-01-05T12:00:00Z") },
        skus: 500,
        dcs: 12,
        suppliers: 20,
        dirty_share,
    }
}

fn all(opts: &GenerateOptions) -> Vec<Fact> {
    facts(opts).unwrap().collect()
}

/// The spec's BSON type of each field, by collection.
fn spec(kind: FactKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        FactKind::Order => &[
            ("order_id", "string"),
            ("sku_id", "string"),
            ("dc_id", "string"),
            ("quantity", "int32"),
            ("unit_price", "double"),
            ("status", "string"),
            ("order_ts", "date"),
        ],
        FactKind::Shipment => &[
            ("shipment_id", "string"),
            ("supplier_id", "string"),
            ("sku_id", "string"),
            ("dc_id", "string"),
            ("quantity", "int32"),
            ("shipped_ts", "date"),
            ("expected_arrival_ts", "date"),
            ("arrival_ts", "date"),
        ],
        FactKind::Inventory => &[
            ("sku_id", "string"),
            ("dc_id", "string"),
            ("on_hand_qty", "int32"),
            ("reserved_qty", "int32"),
            ("inventory_ts", "date"),
        ],
    }
}

fn type_name(b: &Bson) -> &'static str {
    match b {
        Bson::String(_) => "string",
        Bson::Int32(_) => "int32",
        Bson::Int64(_) => "int64",
        Bson::Double(_) => "double",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        _ => "other",
    }
}

fn has_spec_types(kind: FactKind, doc: &Document) -> bool {
    let fields = spec(kind);
    doc.len() == fields.len() && fields.iter().all(|(f, t)| doc.get(f).map(type_name) == Some(t))
}

#[test]
fn the_same_seed_gives_the_same_documents() {
    let a = all(&options(7, 5000, 0.02));
    let b = all(&options(7, 5000, 0.02));
    assert_eq!(a, b);
    let c = all(&options(8, 5000, 0.02));
    assert_ne!(a, c);
    assert_eq!(dimensions(&options(7, 1, 0.0)), dimensions(&options(7, 1, 0.0)));
}

#[test]
fn the_dirty_share_leaves_clean_facts_alone() {
    // Same seed, different shares: every fact left clean is the same.
    let clean = all(&options(3, 2000, 0.0));
    let dirty = all(&options(3, 2000, 0.3));
    assert!(clean.iter().zip(&dirty).all(|(a, b)| a.kind == b.kind && (b.dirty || a == b)));
}

#[test]
fn the_dirty_share_is_roughly_as_configured() {
    for share in [0.0, 0.02, 0.2] {
        let facts = all(&options(11, 20_000, share));
        let dirty = facts.iter().filter(|f| f.dirty).count() as f64 / facts.len() as f64;
        assert!((dirty - share).abs() < 0.01 + share * 0.15, "share {share}: got {dirty}");
        for f in &facts {
            assert_eq!(!f.dirty, has_spec_types(f.kind, &f.doc) && known_ids(&options(11, 1, 0.0), &f.doc), "{f:?}");
        }
    }
}

fn known_ids(opts: &GenerateOptions, doc: &Document) -> bool {
    let ok = |field: &str, n: u32, id: fn(u32) -> String| match doc.get_str(field) {
        Ok(v) => (0..n).any(|i| id(i) == v),
        Err(_) => true,
    };
    ok("sku_id", opts.skus, crate::dims::sku_id)
        && ok("dc_id", opts.dcs, crate::dims::dc_id)
        && ok("supplier_id", opts.suppliers, crate::dims::supplier_id)
}

#[test]
fn the_mix_is_mostly_orders() {
    let facts = all(&options(5, 20_000, 0.02));
    let share = |k: FactKind| facts.iter().filter(|f| f.kind == k).count() as f64 / facts.len() as f64;
    assert!((share(FactKind::Order) - 0.60).abs() < 0.02);
    assert!((share(FactKind::Shipment) - 0.15).abs() < 0.02);
    assert!((share(FactKind::Inventory) - 0.25).abs() < 0.02);
}

#[test]
fn event_times_fall_in_the_range_in_order() {
    let opts = options(9, 3000, 0.05);
    let (start, end) = (at("2026-01-05T11:00:00Z").timestamp_millis(), at("2026-01-05T12:00:00Z").timestamp_millis());
    let mut last = start;
    let mut seen = 0;
    for f in all(&opts) {
        if let Ok(t) = f.doc.get_datetime(f.kind.event_time_field()) {
            let t = t.timestamp_millis();
            assert!((start..end).contains(&t), "{f:?}");
            assert!(t >= last);
            last = t;
            seen += 1;
        }
    }
    assert!(seen > 2800);
    // The range is covered, not just its start.
    assert!(last > end - 60_000);
}

#[test]
fn shipments_arrive_around_the_promise_with_a_late_tail() {
    let opts = options(2, 20_000, 0.0);
    let world = opts.world();
    let shipments: Vec<Fact> = all(&opts).into_iter().filter(|f| f.kind == FactKind::Shipment).collect();
    let mut late = 0;
    for f in &shipments {
        let d = &f.doc;
        let ms = |k: &str| d.get_datetime(k).unwrap().timestamp_millis();
        let supplier = d.get_str("supplier_id").unwrap();
        let promised =
            world.suppliers.iter().find(|s| s.doc.get_str("supplier_id").unwrap() == supplier).unwrap().promised_days;
        assert_eq!(ms("expected_arrival_ts") - ms("shipped_ts"), (promised * 86_400_000.0).round() as i64);
        assert!(ms("shipped_ts") < ms("arrival_ts"));
        late += usize::from(ms("arrival_ts") > ms("expected_arrival_ts"));
    }
    let late = late as f64 / shipments.len() as f64;
    assert!((0.05..0.45).contains(&late), "late share {late}");
}

#[test]
fn stock_falls_with_sales_and_jumps_with_arrivals() {
    // Follow the busiest (SKU, DC): its readings move both ways.
    let facts = all(&options(4, 20_000, 0.0));
    let mut counts = std::collections::HashMap::new();
    for f in facts.iter().filter(|f| f.kind == FactKind::Inventory) {
        *counts.entry((f.doc.get_str("sku_id").unwrap(), f.doc.get_str("dc_id").unwrap())).or_insert(0) += 1;
    }
    let (&(sku, dc), _) = counts.iter().max_by_key(|(k, n)| (**n, **k)).unwrap();
    let levels: Vec<i32> = facts
        .iter()
        .filter(|f| {
            f.kind == FactKind::Inventory
                && f.doc.get_str("sku_id").ok() == Some(sku)
                && f.doc.get_str("dc_id").ok() == Some(dc)
        })
        .map(|f| f.doc.get_i32("on_hand_qty").unwrap())
        .collect();
    assert!(levels.windows(2).any(|w| w[1] < w[0]), "{levels:?}");
    assert!(levels.windows(2).any(|w| w[1] > w[0]), "{levels:?}");
    assert!(levels.iter().all(|&l| l >= 0));
}

#[test]
fn dimensions_follow_the_spec() {
    let opts = GenerateOptions { skus: 5000, dcs: 40, suppliers: 50, ..options(1, 1, 0.0) };
    let [(_, _, skus), (_, _, dcs), (_, _, suppliers)] = dimensions(&opts);
    assert_eq!((skus.len(), dcs.len(), suppliers.len()), (5000, 40, 50));
    assert_eq!(skus[0].get_str("sku_id").ok(), Some("SKU-00001"));
    assert_eq!(skus[4999].get_str("sku_id").ok(), Some("SKU-05000"));
    assert_eq!(dcs[39].get_str("dc_id").ok(), Some("DC-40"));
    assert_eq!(suppliers[0].get_str("supplier_id").ok(), Some("SUP-001"));
    let categories = ["Electronics", "Clothing", "Home", "Books", "Sports", "Beauty", "Toys"];
    for s in &skus {
        assert!(categories.contains(&s.get_str("category").unwrap()));
        assert!(s.get_f64("unit_price").unwrap() > 0.0);
        assert!(s.get_str("product_name").is_ok());
        let sup: u32 = s.get_str("supplier_id").unwrap()[4..].parse().unwrap();
        assert!((1..=50).contains(&sup));
    }
    for d in &dcs {
        assert!(["North", "South", "East", "West", "Central"].contains(&d.get_str("region").unwrap()));
        assert!(d.get_i64("capacity_units").unwrap() > 0);
        assert!(d.get_str("dc_name").is_ok());
    }
    for s in &suppliers {
        assert!(s.get_f64("promised_lead_time_days").unwrap() > 0.0);
        assert!(s.get_str("supplier_name").is_ok());
    }
}

#[test]
fn bad_options_are_named() {
    let mut o = options(1, 10, 0.0);
    o.dirty_share = 1.5;
    assert!(o.validate().unwrap_err().to_string().contains("'1.5'"));
    let o = GenerateOptions {
        mode: Mode::Backfill { docs: 1, start: at("2026-01-05T12:00:00Z"), end: at("2026-01-05T12:00:00Z") },
        ..options(1, 1, 0.0)
    };
    assert!(o.validate().unwrap_err().to_string().contains("2026-01-05T12:00:00"));
    let o = GenerateOptions { skus: 0, ..options(1, 1, 0.0) };
    assert!(o.validate().is_err());
    let o = GenerateOptions {
        mode: Mode::Live { rate: 5, duration: std::time::Duration::from_secs(2) },
        ..options(1, 1, 0.0)
    };
    assert_eq!(o.total_facts(), 10);
    assert!(facts(&o).is_err());
}
