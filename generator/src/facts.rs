//! Fact documents: orders, arriving shipments and stock readings drawn from
//! a [`World`], with a running stock level per (SKU, DC) so readings fall
//! with sales and jump with arrivals, and a share of dirty documents.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat};
use mongodb::bson::{self, Bson, Document, doc};

use crate::dims::{self, World};
use crate::rng::{Rng, mix};

/// The three fact collections of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactKind {
    /// An order, for `orders_fact`.
    Order,
    /// A shipment arriving at a DC, for `shipments_fact`.
    Shipment,
    /// A stock reading of one SKU at one DC, for `inventory_fact`.
    Inventory,
}

impl FactKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [FactKind; 3] = [FactKind::Order, FactKind::Shipment, FactKind::Inventory];

    /// The collection its documents go to.
    pub fn collection(self) -> &'static str {
        match self {
            FactKind::Order => "orders_fact",
            FactKind::Shipment => "shipments_fact",
            FactKind::Inventory => "inventory_fact",
        }
    }

    /// Its event-time field, which jobs filter and archive by.
    pub fn event_time_field(self) -> &'static str {
        match self {
            FactKind::Order => "order_ts",
            FactKind::Shipment => "arrival_ts",
            FactKind::Inventory => "inventory_ts",
        }
    }

    /// Its measured quantity, a key field of the KPIs.
    fn measure(self) -> &'static str {
        match self {
            FactKind::Inventory => "on_hand_qty",
            _ => "quantity",
        }
    }
}

/// One generated fact document.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Which collection it goes to.
    pub kind: FactKind,
    /// The document as written; MongoDB assigns its `_id`.
    pub doc: Document,
    /// Whether a field was nulled, dropped, mistyped or given an unknown id.
    pub dirty: bool,
}

/// Draws facts one at a time, each at an event time the caller chooses
/// (spread over a range for a backfill, the wall clock when live).
#[derive(Debug, Clone)]
pub struct FactGenerator {
    world: World,
    seed: u64,
    rng: Rng,
    /// Draws for spoiling documents, apart from `rng` so that the dirty
    /// share does not change what the clean facts say.
    dirt: Rng,
    dirty_share: f64,
    /// Units on hand per (SKU, DC), created on first use.
    stock: HashMap<(u32, u32), i64>,
    orders: u64,
    shipments: u64,
}

impl FactGenerator {
    /// A generator over `world`; `dirty_share` of its facts are dirty.
    pub fn new(world: World, seed: u64, dirty_share: f64) -> Self {
        FactGenerator {
            world,
            seed,
            rng: Rng::new(seed, 4),
            dirt: Rng::new(seed, 6),
            dirty_share,
            stock: HashMap::new(),
            orders: 0,
            shipments: 0,
        }
    }

    /// The next fact, with event time `ts` (milliseconds since the epoch).
    /// About 60% orders, 15% shipments and 25% stock readings.
    pub fn next_at(&mut self, ts: i64) -> Fact {
        let roll = self.rng.f64();
        let (kind, doc) = if roll < 0.60 {
            (FactKind::Order, self.order(ts))
        } else if roll < 0.75 {
            (FactKind::Shipment, self.shipment(ts))
        } else {
            (FactKind::Inventory, self.reading(ts))
        };
        let mut fact = Fact { kind, doc, dirty: false };
        let dirty = self.dirt.chance(self.dirty_share);
        if dirty {
            self.dirty_up(&mut fact, ts);
        }
        fact
    }

    /// The level a (SKU, DC) is restocked to: busier DCs hold more.
    fn target(&self, sku: u32, dc: u32) -> i64 {
        let h = mix(self.seed ^ (u64::from(sku) << 32) ^ u64::from(dc) ^ 0x5EED);
        let base = 40.0 + (h % 260) as f64;
        (base * self.world.dcs[dc as usize].demand).round().max(10.0) as i64
    }

    /// Units on hand now, starting somewhere between half and full target.
    fn stock(&mut self, sku: u32, dc: u32) -> &mut i64 {
        let target = self.target(sku, dc);
        let start =
            target / 2 + (mix(u64::from(sku) * 31 + u64::from(dc) + self.seed) % (target as u64 / 2 + 1)) as i64;
        self.stock.entry((sku, dc)).or_insert(start)
    }

    fn order(&mut self, ts: i64) -> Document {
        let (sku, dc) = (self.world.pick_sku(&mut self.rng), self.world.pick_dc(&mut self.rng));
        self.orders += 1;
        let u = self.rng.f64();
        let mut quantity = 1 + (u * u * 12.0) as i64;
        if self.rng.chance(0.03) {
            quantity += 20 + self.rng.below(40) as i64; // a bulk order
        }
        let list = self.world.skus[sku as usize].price;
        let price = if self.rng.chance(0.3) {
            (list * (1.0 - self.rng.range(0.05, 0.2)) * 100.0).round() / 100.0
        } else {
            list
        };
        let roll = self.rng.f64();
        let on_hand = self.stock(sku, dc);
        let status = if roll < 0.04 {
            "CANCELLED"
        } else if quantity > *on_hand {
            "BACKORDERED"
        } else if roll < 0.14 {
            "PENDING"
        } else {
            *on_hand -= quantity;
            "FULFILLED"
        };
        doc! {
            "order_id": format!("ORD-{}-{:08}", self.seed, self.orders),
            "sku_id": dims::sku_id(sku),
            "dc_id": dims::dc_id(dc),
            "quantity": quantity as i32,
            "unit_price": price,
            "status": status,
            "order_ts": bson::DateTime::from_millis(ts),
        }
    }

    fn shipment(&mut self, ts: i64) -> Document {
        let (sku, dc) = (self.world.pick_sku(&mut self.rng), self.world.pick_dc(&mut self.rng));
        self.shipments += 1;
        let supplier_ix = self.world.skus[sku as usize].supplier;
        let supplier = &self.world.suppliers[supplier_ix as usize];
        let (promised, on_time) = (supplier.promised_days, supplier.on_time);
        // On time: a little early. Late: a tail up to about twice the promise.
        let lead_days = if self.rng.chance(on_time) {
            promised * self.rng.range(0.6, 1.0)
        } else {
            let u = self.rng.f64();
            promised * (1.02 + 0.8 * u * u) + if self.rng.chance(0.1) { self.rng.range(0.0, promised) } else { 0.0 }
        };
        let day = 86_400_000.0;
        let shipped = ts - (lead_days * day).round() as i64;
        let expected = shipped + (promised * day).round() as i64;
        // Reorder up to a bit over the target level.
        let target = self.target(sku, dc);
        let on_hand = self.stock(sku, dc);
        let quantity = ((target * 6 / 5 - *on_hand).max(10) + 9) / 10 * 10;
        *on_hand += quantity;
        doc! {
            "shipment_id": format!("SHP-{}-{:08}", self.seed, self.shipments),
            "supplier_id": dims::supplier_id(supplier_ix),
            "sku_id": dims::sku_id(sku),
            "dc_id": dims::dc_id(dc),
            "quantity": quantity as i32,
            "shipped_ts": bson::DateTime::from_millis(shipped),
            "expected_arrival_ts": bson::DateTime::from_millis(expected),
            "arrival_ts": bson::DateTime::from_millis(ts),
        }
    }

    fn reading(&mut self, ts: i64) -> Document {
        let (sku, dc) = (self.world.pick_sku(&mut self.rng), self.world.pick_dc(&mut self.rng));
        let share = self.rng.range(0.0, 0.15);
        let on_hand = *self.stock(sku, dc);
        let reserved = (on_hand as f64 * share).round() as i64;
        doc! {
            "sku_id": dims::sku_id(sku),
            "dc_id": dims::dc_id(dc),
            "on_hand_qty": on_hand as i32,
            "reserved_qty": reserved as i32,
            "inventory_ts": bson::DateTime::from_millis(ts),
        }
    }

    /// Spoils one field the way real data is spoiled.
    fn dirty_up(&mut self, fact: &mut Fact, ts: i64) {
        let doc = &mut fact.doc;
        let measure = fact.kind.measure();
        let quantity = doc.get_i32(measure).unwrap_or(1);
        let fields: Vec<String> = doc.keys().cloned().collect();
        let r = &mut self.dirt;
        match r.below(7) {
            0 => {
                let field = r.pick(&fields).clone();
                doc.insert(field, Bson::Null);
            }
            1 => {
                let field = r.pick(&fields).clone();
                doc.remove(&field);
            }
            2 => {
                doc.insert(measure, quantity.to_string());
            }
            3 => {
                doc.insert(measure, f64::from(quantity) + 0.5);
            }
            4 => {
                // A whole double: readable as an int, but not the declared type.
                doc.insert(measure, f64::from(quantity));
            }
            5 => {
                let text = DateTime::from_timestamp_millis(ts)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_else(|| ts.to_string());
                doc.insert(fact.kind.event_time_field(), text);
            }
            _ => {
                let w = &self.world;
                let (field, id) = match (fact.kind, r.below(3)) {
                    (FactKind::Shipment, 0) => {
                        ("supplier_id", dims::supplier_id(w.suppliers.len() as u32 + r.below(100) as u32))
                    }
                    (_, 1) => ("dc_id", dims::dc_id(w.dcs.len() as u32 + r.below(10) as u32)),
                    _ => ("sku_id", dims::sku_id(w.skus.len() as u32 + r.below(1000) as u32)),
                };
                doc.insert(field, id);
            }
        }
        fact.dirty = true;
    }
}
