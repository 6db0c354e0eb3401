//! The KPI job's SQL in-process, over in-memory tables with the declared
//! schemas: no MongoDB, no cluster, no Redis. A dataset small enough to
//! compute by hand, every edge of the spec in it (the window's bounds, a tie
//! on the reading time, cancelled and null statuses, unknown ids, null
//! measures, a DC with no capacity), and the five KPIs and the data-quality
//! counts written out below from `shared/spec/supply-chain.md`.

use std::io::Cursor;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};
use stockyard_jobs::kpi::{self, KpiParams};

/// Rows as JSON lines, read with the collection's declared schema.
fn table(ctx: &SessionContext, name: &str, rows: &[Value]) {
    let (_, schema, _) =
        stockyard_jobs::tables::collections().into_iter().find(|(n, _, _)| *n == name).expect("a collection");
    let lines: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let reader = arrow::json::ReaderBuilder::new(schema.clone()).build(Cursor::new(lines)).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches]).unwrap())).unwrap();
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// The window is [00:00, 01:00) on 2026-01-05: 60 minutes.
fn load(ctx: &SessionContext) {
    table(
        ctx,
        "skus_dim",
        &[
            json!({"sku_id": "S1", "product_name": "Widget", "category": "Tools", "unit_price": 10.0, "supplier_id": "P1"}),
            json!({"sku_id": "S2", "product_name": "Gadget", "category": "Toys", "unit_price": 5.0, "supplier_id": "P2"}),
        ],
    );
    table(
        ctx,
        "dcs_dim",
        &[
            json!({"dc_id": "D1", "dc_name": "North DC", "region": "North", "capacity_units": 100}),
            json!({"dc_id": "D2", "dc_name": "South DC", "region": "South", "capacity_units": 1000}),
            json!({"dc_id": "D3", "dc_name": "East DC", "region": "East", "capacity_units": 0}),
        ],
    );
    table(
        ctx,
        "suppliers_dim",
        &[
            json!({"supplier_id": "P1", "supplier_name": "Acme", "promised_lead_time_days": 2.0}),
            json!({"supplier_id": "P2", "supplier_name": "Bolt", "promised_lead_time_days": 3.0}),
        ],
    );
    let reading = |sku: &str, dc: &str, on_hand: Value, reserved: i32, t: &str| {
        json!({"sku_id": sku, "dc_id": dc, "on_hand_qty": on_hand, "reserved_qty": reserved,
               "inventory_ts": format!("2026-01-05T{t}Z")})
    };
    table(
        ctx,
        "inventory_fact",
        &[
            reading("S1", "D1", json!(40), 5, "00:10:00"),
            reading("S1", "D1", json!(30), 2, "00:50:00"), // the latest of (S1, D1)
            reading("S2", "D1", json!(20), 0, "00:20:00"),
            reading("S2", "D1", json!(25), 1, "00:20:00"), // a tie on the time: the greater on-hand wins
            reading("S1", "D2", json!(60), 10, "00:30:00"),
            reading("S1", "D1", json!(99), 0, "01:00:00"), // the window's end: outside
            reading("S9", "D1", json!(5), 0, "00:30:00"),  // no such SKU: rejected
            reading("S2", "D2", json!(500), 0, "00:40:00"),
            reading("S2", "D2", Value::Null, 0, "00:45:00"), // no quantity: rejected
        ],
    );
    let order = |id: &str, sku: &str, dc: &str, qty: Value, price: f64, status: Value, t: &str| {
        json!({"order_id": id, "sku_id": sku, "dc_id": dc, "quantity": qty, "unit_price": price,
               "status": status, "order_ts": t})
    };
    table(
        ctx,
        "orders_fact",
        &[
            order("O1", "S1", "D1", json!(10), 10.0, json!("FULFILLED"), "2026-01-05T00:00:00Z"), // the window's start: inside
            order("O2", "S1", "D1", json!(5), 10.0, json!("CANCELLED"), "2026-01-05T00:15:00Z"),
            order("O3", "S1", "D1", json!(2), 10.0, Value::Null, "2026-01-05T00:25:00Z"),
            order("O4", "S2", "D1", json!(4), 5.0, json!("FULFILLED"), "2026-01-05T00:35:00Z"),
            order("O5", "S1", "D2", json!(1), 10.0, json!("FULFILLED"), "2026-01-05T00:45:00Z"),
            order("O6", "S1", "D1", json!(100), 10.0, json!("FULFILLED"), "2026-01-04T23:59:59.999Z"), // before it
            order("O7", "S1", "D9", json!(3), 10.0, json!("FULFILLED"), "2026-01-05T00:30:00Z"),       // no such DC
            order("O8", "S2", "D2", Value::Null, 5.0, json!("PENDING"), "2026-01-05T00:30:00Z"),       // no quantity
        ],
    );
    let shipment =
        |id: &str, supplier: &str, sku: &str, dc: &str, qty: i32, shipped: &str, expected: &str, arrived: &str| {
            json!({"shipment_id": id, "supplier_id": supplier, "sku_id": sku, "dc_id": dc, "quantity": qty,
               "shipped_ts": shipped, "expected_arrival_ts": expected, "arrival_ts": arrived})
        };
    table(
        ctx,
        "shipments_fact",
        &[
            // late by 10 minutes, 2 days on the road
            shipment(
                "H1",
                "P1",
                "S1",
                "D1",
                50,
                "2026-01-03T00:10:00Z",
                "2026-01-05T00:00:00Z",
                "2026-01-05T00:10:00Z",
            ),
            // early, 1 day
            shipment(
                "H2",
                "P1",
                "S1",
                "D2",
                30,
                "2026-01-04T00:20:00Z",
                "2026-01-05T12:00:00Z",
                "2026-01-05T00:20:00Z",
            ),
            // exactly on time counts as on time, 3 days
            shipment(
                "H3",
                "P2",
                "S2",
                "D1",
                20,
                "2026-01-02T00:30:00Z",
                "2026-01-05T00:30:00Z",
                "2026-01-05T00:30:00Z",
            ),
            // no such supplier: rejected
            shipment("H4", "P9", "S1", "D1", 5, "2026-01-04T00:40:00Z", "2026-01-05T00:40:00Z", "2026-01-05T00:40:00Z"),
            // arrives after the window
            shipment("H5", "P1", "S1", "D1", 7, "2026-01-04T01:30:00Z", "2026-01-05T01:30:00Z", "2026-01-05T01:30:00Z"),
        ],
    );
}

#[tokio::test]
async fn the_kpis_of_a_hand_computed_dataset_match_the_spec() {
    let ctx = SessionContext::new();
    load(&ctx);
    let params = KpiParams {
        now: at("2026-01-05T01:00:00Z"),
        window: std::time::Duration::from_secs(3600),
        ttl: std::time::Duration::from_secs(120),
        force: false,
    };
    let generated_at = at("2026-01-05T01:00:05Z");
    let output = kpi::compute(&ctx, &params, generated_at).await.unwrap();
    let got: Vec<(String, Value)> =
        output.values.iter().map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap())).collect();
    let envelope = |rows: Value| {
        json!({"window_start": "2026-01-05T00:00:00Z", "window_end": "2026-01-05T01:00:00Z",
               "generated_at": "2026-01-05T01:00:05Z", "rows": rows})
    };
    // Units a day at the window's rate: units / 60 minutes * 1440.
    let per_day = |units: f64| units / 60.0 * 1440.0;
    let expected = vec![
        (
            "kpi:inventory_level",
            envelope(json!([
                {"sku_id": "S1", "product_name": "Widget", "category": "Tools", "dc_id": "D1", "dc_name": "North DC",
                 "region": "North", "on_hand_qty": 30, "reserved_qty": 2, "available_qty": 28, "as_of": "2026-01-05T00:50:00Z"},
                {"sku_id": "S1", "product_name": "Widget", "category": "Tools", "dc_id": "D2", "dc_name": "South DC",
                 "region": "South", "on_hand_qty": 60, "reserved_qty": 10, "available_qty": 50, "as_of": "2026-01-05T00:30:00Z"},
                {"sku_id": "S2", "product_name": "Gadget", "category": "Toys", "dc_id": "D1", "dc_name": "North DC",
                 "region": "North", "on_hand_qty": 25, "reserved_qty": 1, "available_qty": 24, "as_of": "2026-01-05T00:20:00Z"},
                {"sku_id": "S2", "product_name": "Gadget", "category": "Toys", "dc_id": "D2", "dc_name": "South DC",
                 "region": "South", "on_hand_qty": 500, "reserved_qty": 0, "available_qty": 500, "as_of": "2026-01-05T00:40:00Z"},
            ])),
        ),
        // (S1, D1): readings 40 and 30, orders 10 + 2 (O2 cancelled);
        // (S2, D1): 20 and 25, 4; (S1, D2): 60, 1; (S2, D2): 500 and no
        // quantity, no orders with one, so 9999 days and no alert.
        (
            "kpi:stockout_alerts",
            envelope(json!([
                {"sku_id": "S1", "product_name": "Widget", "dc_id": "D1", "dc_name": "North DC", "current_stock": 35.0,
                 "units_sold": 12, "units_per_day": per_day(12.0), "days_to_stockout": 35.0 / per_day(12.0)},
                {"sku_id": "S2", "product_name": "Gadget", "dc_id": "D1", "dc_name": "North DC", "current_stock": 22.5,
                 "units_sold": 4, "units_per_day": per_day(4.0), "days_to_stockout": 22.5 / per_day(4.0)},
                {"sku_id": "S1", "product_name": "Widget", "dc_id": "D2", "dc_name": "South DC", "current_stock": 60.0,
                 "units_sold": 1, "units_per_day": per_day(1.0), "days_to_stockout": 60.0 / per_day(1.0)},
            ])),
        ),
        (
            "kpi:supplier_performance",
            envelope(json!([
                {"supplier_id": "P1", "supplier_name": "Acme", "shipments": 2, "units": 80, "avg_lead_time_days": 1.5,
                 "promised_lead_time_days": 2.0, "on_time_rate": 0.5, "late_shipments": 1},
                {"supplier_id": "P2", "supplier_name": "Bolt", "shipments": 1, "units": 20, "avg_lead_time_days": 3.0,
                 "promised_lead_time_days": 3.0, "on_time_rate": 1.0, "late_shipments": 0},
            ])),
        ),
        // D1: 30 + 25 of 100; D2: 60 + 500 of 1000; D3 has no capacity.
        (
            "kpi:dc_utilization",
            envelope(json!([
                {"dc_id": "D2", "dc_name": "South DC", "region": "South", "capacity_units": 1000, "used_units": 560,
                 "utilization_pct": 56.0},
                {"dc_id": "D1", "dc_name": "North DC", "region": "North", "capacity_units": 100, "used_units": 55,
                 "utilization_pct": 55.0},
                {"dc_id": "D3", "dc_name": "East DC", "region": "East", "capacity_units": 0, "used_units": 0,
                 "utilization_pct": null},
            ])),
        ),
        // North: O1..O4 (O2 cancelled, O3 no status); South: O5.
        (
            "kpi:regional_performance",
            envelope(json!([
                {"region": "North", "total_orders": 4, "fulfilled_orders": 2, "fulfillment_rate": 0.5, "units": 16,
                 "revenue": 120.0},
                {"region": "South", "total_orders": 1, "fulfilled_orders": 1, "fulfillment_rate": 1.0, "units": 1,
                 "revenue": 10.0},
            ])),
        ),
        (
            "kpi:data_quality",
            json!({
                "window_start": "2026-01-05T00:00:00Z", "window_end": "2026-01-05T01:00:00Z",
                "generated_at": "2026-01-05T01:00:05Z",
                "collections": {
                    "orders_fact": {"read": 7, "rejected": 2, "reasons": {"unknown_dc_id": 1, "unreadable_quantity": 1}},
                    "shipments_fact": {"read": 4, "rejected": 1, "reasons": {"unknown_supplier_id": 1}},
                    "inventory_fact": {"read": 8, "rejected": 2,
                                       "reasons": {"unknown_sku_id": 1, "unreadable_on_hand_qty": 1}},
                },
            }),
        ),
    ];
    assert_eq!(got.len(), expected.len());
    for ((key, value), (want_key, want)) in got.iter().zip(&expected) {
        assert_eq!(key, want_key);
        assert_eq!(value, want, "{key}");
    }
    // The KPI keys keep the spec's field order, not a sorted one.
    let (_, level) = &output.values[0];
    assert!(level.starts_with(r#"{"window_start":"#) && level.contains(r#"{"sku_id":"S1","product_name":"Widget""#));
    assert_eq!(
        output.summary,
        json!({
            "rows": {"inventory_level": 4, "stockout_alerts": 3, "supplier_performance": 2, "dc_utilization": 3,
                     "regional_performance": 2},
            "documents_read": 19, "documents_rejected": 5,
            // 28 + 50 + 24 + 500 available; (56 + 55) / 2 with D3 left
            // out; 1 + 1 of 3 shipments on time; 3 of 5 orders fulfilled.
            "headline": {"available_units": 602.0, "stockout_alerts": 3, "mean_utilization_pct": 55.5,
                         "on_time_rate": 2.0 / 3.0, "fulfillment_rate": 0.6, "revenue": 130.0},
        })
    );
}
