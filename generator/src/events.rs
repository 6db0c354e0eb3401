//! The event streams of the replaced Spark pipelines, as JSON records for
//! Kafka: retail sales, stock readings, orders and a clickstream. They are
//! drawn from the same [`World`] as the MongoDB data (the SKUs are the
//! products), with retail stores of their own, and carry what real feeds
//! carry: records a little out of order, a share of late ones, and the
//! GlobalMart generator's chaos (null ids and fields, wrong types, broken
//! JSON). A seed and a backfill give the same records every time.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

use crate::dims::{self, World};
use crate::rng::{Rng, mix};

/// How far back an out-of-order record's event time may be: less than
/// every shipped stream's allowed lateness, so these are never late.
pub const DISORDER_MS: i64 = 2 * 60_000;
/// How far behind its neighbours a late record is, at least: more than any
/// shipped stream's allowed lateness (10 minutes).
pub const LATE_BY_MS: i64 = 20 * 60_000;

/// One of the seed event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Point-of-sale lines: store, product, customer, price, quantity.
    Sales,
    /// Stock readings per store and product, with units sold since the last.
    Inventory,
    /// Web orders: product name and category (not always written cleanly).
    Orders,
    /// Page views, carts and purchases in sessions of 1–10 events.
    Clickstream,
}

impl EventKind {
    /// Every stream, in the order summaries list them.
    pub const ALL: [EventKind; 4] = [EventKind::Sales, EventKind::Inventory, EventKind::Orders, EventKind::Clickstream];

    /// Its name on the command line, which is also its default topic.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Sales => "sales",
            EventKind::Inventory => "inventory",
            EventKind::Orders => "orders",
            EventKind::Clickstream => "clickstream",
        }
    }

    /// The fields a record is useless without; chaos nulls these.
    fn critical(self) -> &'static [&'static str] {
        match self {
            EventKind::Sales => &["transaction_id", "store_id", "product_id"],
            EventKind::Inventory => &["store_id", "product_id"],
            EventKind::Orders => &["order_id", "product_id"],
            EventKind::Clickstream => &["event_id", "session_id", "user_id"],
        }
    }

    /// A number field chaos writes as text.
    fn measure(self) -> &'static str {
        match self {
            EventKind::Inventory => "stock_level",
            _ => "price",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("'{s}' is not an event stream (sales, inventory, orders, clickstream or all)"))
    }
}

/// Shares of records spoiled or shifted on purpose, each 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disorder {
    /// Records with a chaos fault: half a null critical id, a quarter
    /// another null field, and the rest a wrong type, a negative or zero
    /// amount, or broken JSON (the GlobalMart shares, 1% and 0.5% of all,
    /// at the default 2%).
    pub dirty_share: f64,
    /// Records stamped up to [`DISORDER_MS`] before their neighbours.
    pub out_of_order_share: f64,
    /// Records stamped [`LATE_BY_MS`] or more before their neighbours.
    pub late_share: f64,
}

impl Default for Disorder {
    fn default() -> Self {
        Disorder { dirty_share: 0.02, out_of_order_share: 0.05, late_share: 0.005 }
    }
}

/// What was done to a record, for summaries and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// As drawn: well formed and in time order.
    Clean,
    /// A chaos fault (see [`Disorder::dirty_share`]).
    Dirty,
    /// Stamped up to [`DISORDER_MS`] before its neighbours: out of order, but not late.
    OutOfOrder,
    /// Stamped [`LATE_BY_MS`] or more before its neighbours: late for every shipped stream.
    Late,
}

/// One record: the key that picks its partition and the JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The partition key: the store for sales and stock readings, the product for orders, the session for clicks.
    pub key: String,
    /// The JSON record, as written (not JSON at all when chaos cut it off).
    pub value: Vec<u8>,
    /// Its event time (milliseconds since the epoch), as written.
    pub event_ms: i64,
    /// What was done to it on purpose.
    pub quality: Quality,
}

impl Event {
    /// The partition of `partitions` its key maps to.
    pub fn partition(&self, partitions: i32) -> i32 {
        let hash =
            self.key.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x1_0000_01B3));
        (mix(hash) % partitions.max(1) as u64) as i32
    }
}

/// Countries of the stores, weighted as the seeds weight them.
const COUNTRIES: [(&str, f64); 8] =
    [("US", 0.35), ("UK", 0.15), ("DE", 0.12), ("FR", 0.10), ("ES", 0.08), ("IT", 0.08), ("NL", 0.06), ("SE", 0.06)];
const DEVICES: [(&str, f64); 3] = [("mobile", 0.6), ("desktop", 0.32), ("tablet", 0.08)];
/// Customers (sales) and users (clickstream) drawn from.
const PEOPLE: u64 = 50_000;

/// `STORE-001` …
pub fn store_id(i: u32) -> String {
    format!("STORE-{:03}", i + 1)
}

fn weighted<'a>(rng: &mut Rng, items: &'a [(&'a str, f64)]) -> &'a str {
    let mut x = rng.f64() * items.iter().map(|(_, w)| w).sum::<f64>();
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

#[derive(Debug, Clone)]
struct Store {
    country: &'static str,
    /// Relative demand: busy stores sell more.
    demand: f64,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    user: String,
    country: &'static str,
    device: &'static str,
    left: u32,
    product: u32,
}

/// Draws the records of one stream, each at a time the caller chooses.
#[derive(Debug, Clone)]
pub struct EventGenerator {
    kind: EventKind,
    world: World,
    stores: Vec<Store>,
    seed: u64,
    /// What record ids start with: the seed, and for a live run also its
    /// start, so two runs of one seed never share an id.
    run: String,
    disorder: Disorder,
    rng: Rng,
    /// Draws for disorder and chaos, apart from `rng` so that the shares do
    /// not change what the clean records say.
    dirt: Rng,
    count: u64,
    stock: HashMap<(u32, u32), i64>,
    sessions: Vec<Session>,
    sessions_started: u64,
}

impl EventGenerator {
    /// A generator of `kind` over `world` and `stores` retail stores.
    pub fn new(kind: EventKind, world: World, stores: u32, seed: u64, disorder: Disorder) -> Self {
        let mut rng = Rng::new(seed, 20);
        let stores = (0..stores.max(1))
            .map(|_| {
                let country = COUNTRIES[{
                    let c = weighted(&mut rng, &COUNTRIES);
                    COUNTRIES.iter().position(|(n, _)| *n == c).unwrap_or(0)
                }]
                .0;
                Store { country, demand: 0.3 + 1.7 * rng.f64() * rng.f64() }
            })
            .collect();
        let stream = 21 + kind as u64;
        EventGenerator {
            kind,
            world,
            stores,
            seed,
            run: seed.to_string(),
            disorder,
            rng: Rng::new(seed, stream),
            dirt: Rng::new(seed, stream + 10),
            count: 0,
            stock: HashMap::new(),
            sessions: Vec::new(),
            sessions_started: 0,
        }
    }

    /// Record ids start with `run` instead of the seed.
    pub fn with_run(mut self, run: String) -> Self {
        self.run = run;
        self
    }

    /// The next record, happening at `ms` (milliseconds since the epoch).
    pub fn next_at(&mut self, ms: i64) -> Event {
        self.count += 1;
        let (key, mut value) = match self.kind {
            EventKind::Sales => self.sale(ms),
            EventKind::Inventory => self.reading(),
            EventKind::Orders => self.order(),
            EventKind::Clickstream => self.click(),
        };
        let d = &mut self.dirt;
        let (quality, event_ms) = if d.chance(self.disorder.late_share) {
            (Quality::Late, ms - LATE_BY_MS - d.below(5 * 60_000) as i64)
        } else if d.chance(self.disorder.out_of_order_share) {
            (Quality::OutOfOrder, ms - 1 - d.below(DISORDER_MS as u64 - 1) as i64)
        } else {
            (Quality::Clean, ms)
        };
        value["ts"] = json!(rfc3339(event_ms));
        if d.chance(self.disorder.dirty_share) {
            return Event { key, value: self.spoil(value), event_ms, quality: Quality::Dirty };
        }
        Event { key, value: value.to_string().into_bytes(), event_ms, quality }
    }

    /// A store index, weighted by demand, with a short promotion burst now
    /// and then (4% of a store's 10-minute slots sell six times as much):
    /// the anomalies the sales stream should flag.
    fn pick_store(&mut self, ms: i64) -> u32 {
        let slot = ms.div_euclid(600_000) as u64;
        let weight = |i: usize, s: &Store| {
            let burst = mix(self.seed ^ slot.wrapping_mul(0x9E37) ^ (i as u64) << 40) % 100 < 4;
            s.demand * if burst { 6.0 } else { 1.0 }
        };
        let total: f64 = self.stores.iter().enumerate().map(|(i, s)| weight(i, s)).sum();
        let mut x = self.rng.f64() * total;
        for (i, s) in self.stores.iter().enumerate() {
            let w = weight(i, s);
            if x < w {
                return i as u32;
            }
            x -= w;
        }
        self.stores.len() as u32 - 1
    }

    fn product(&self, sku: u32) -> (String, String, String, f64) {
        let s = &self.world.skus[sku as usize];
        let text = |f: &str| s.doc.get_str(f).unwrap_or_default().to_string();
        (dims::sku_id(sku), text("product_name"), text("category"), s.price)
    }

    fn quantity(&mut self) -> i64 {
        let u = self.rng.f64();
        1 + (u * u * 4.0) as i64
    }

    fn sale(&mut self, ms: i64) -> (String, Value) {
        let store = self.pick_store(ms);
        let sku = self.world.pick_sku(&mut self.rng);
        let (product_id, _, category, list) = self.product(sku);
        let price = if self.rng.chance(0.15) { (list * 0.9 * 100.0).round() / 100.0 } else { list };
        let u = self.rng.f64();
        let customer = format!("CUST-{:06}", 1 + (u * u * PEOPLE as f64) as u64);
        let quantity = self.quantity();
        let id = store_id(store);
        let value = json!({
            "transaction_id": format!("TX-{}-{:09}", self.run, self.count),
            "store_id": id, "country": self.stores[store as usize].country,
            "product_id": product_id, "category": category, "customer_id": customer,
            "price": price, "quantity": quantity,
        });
        (id, value)
    }

    /// A stock reading: units sold since the last reading of this store and
    /// product, and the level after them; an empty shelf is restocked now
    /// and then (units sold 0, the level back up).
    fn reading(&mut self) -> (String, Value) {
        let store = self.pick_store(0);
        // A store carries the 200 most popular products.
        let rank = {
            let u = self.rng.f64();
            ((u * u * 200.0) as usize).min(self.world.popularity.len() - 1)
        };
        let sku = self.world.popularity[rank];
        let start = 20 + (mix(self.seed ^ u64::from(sku) << 20 ^ u64::from(store)) % 180) as i64;
        let level = *self.stock.entry((store, sku)).or_insert(start);
        let (sold, after) = if level == 0 && self.rng.chance(0.4) {
            (0, 100 + self.rng.below(200) as i64)
        } else {
            let sold = (self.rng.below(9) as i64).min(level);
            (sold, level - sold)
        };
        self.stock.insert((store, sku), after);
        let id = store_id(store);
        let value = json!({
            "store_id": id, "product_id": dims::sku_id(sku), "stock_level": after, "units_sold": sold,
        });
        (id, value)
    }

    /// An order; one in ten writes its category loosely (case, spaces), as
    /// the web shop's feed did.
    fn order(&mut self) -> (String, Value) {
        let sku = self.world.pick_sku(&mut self.rng);
        let (product_id, name, category, price) = self.product(sku);
        let category = match (self.rng.chance(0.1), self.rng.below(3)) {
            (false, _) => category,
            (true, 0) => category.to_lowercase(),
            (true, 1) => category.to_uppercase(),
            (true, _) => format!("  {category} "),
        };
        let quantity = self.quantity();
        let value = json!({
            "order_id": format!("ORD-{}-{:09}", self.run, self.count),
            "product_id": product_id, "product_name": name, "category": category,
            "price": price, "quantity": quantity,
        });
        (product_id, value)
    }

    /// The next event of a session: a new session (1–10 events, landing on
    /// a product page) or the next step of an open one.
    fn click(&mut self) -> (String, Value) {
        if self.sessions.len() < 40 || self.rng.chance(0.15) {
            self.sessions_started += 1;
            let u = self.rng.f64();
            let session = Session {
                id: format!("S-{}-{:07}", self.run, self.sessions_started),
                user: format!("USER-{:06}", 1 + (u * u * PEOPLE as f64) as u64),
                country: weighted(&mut self.rng, &COUNTRIES),
                device: weighted(&mut self.rng, &DEVICES),
                left: 1 + self.rng.below(10) as u32,
                product: self.world.pick_sku(&mut self.rng),
            };
            self.sessions.push(session);
        }
        let i = self.rng.below(self.sessions.len() as u64) as usize;
        let step = {
            let s = &mut self.sessions[i];
            s.left -= 1;
            s.left
        };
        let roll = self.rng.f64();
        if roll < 0.35 {
            self.sessions[i].product = self.world.pick_sku(&mut self.rng);
        }
        let s = if step == 0 { self.sessions.swap_remove(i) } else { self.sessions[i].clone() };
        let (product_id, _, category, price) = self.product(s.product);
        let event_type = match roll {
            r if r < 0.75 => "page_view",
            r if r < 0.92 => "add_to_cart",
            _ => "purchase",
        };
        let mut value = json!({
            "event_id": format!("E-{}-{:09}", self.run, self.count),
            "session_id": s.id, "user_id": s.user, "event_type": event_type,
            "page": format!("/product/{product_id}"), "product_id": product_id, "category": category,
            "country": s.country, "device": s.device,
        });
        if event_type == "purchase" {
            value["price"] = json!(price);
            value["quantity"] = json!(self.quantity());
        }
        (s.id, value)
    }

    /// The record with one chaos fault.
    fn spoil(&mut self, mut value: Value) -> Vec<u8> {
        let d = &mut self.dirt;
        let roll = d.f64();
        let object = value.as_object_mut().expect("records are objects");
        if roll < 0.5 {
            let field = *d.pick(self.kind.critical());
            object.insert(field.to_string(), Value::Null);
        } else if roll < 0.75 {
            let others: Vec<String> =
                object.keys().filter(|k| *k != "ts" && !self.kind.critical().contains(&k.as_str())).cloned().collect();
            let field = d.pick(&others).clone();
            object.insert(field, Value::Null);
        } else if roll < 0.85 {
            let field = self.kind.measure();
            if object.contains_key(field) {
                object.insert(field.to_string(), json!("N/A"));
            } else {
                object.insert("quantity".into(), json!("two"));
            }
        } else if roll < 0.92 {
            // A value of the right type that cannot be right.
            let field = self.kind.measure();
            match object.get(field).and_then(Value::as_f64) {
                Some(v) => object.insert(field.to_string(), json!(-v.abs().max(1.0).round())),
                None => object.insert("quantity".into(), json!(0)),
            };
        } else {
            // Cut off mid-record, as a crashed producer leaves it.
            let text = value.to_string();
            return text.as_bytes()[..text.len() / 2].to_vec();
        }
        value.to_string().into_bytes()
    }
}

/// `ms` as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(kind: EventKind, disorder: Disorder) -> EventGenerator {
        EventGenerator::new(kind, World::new(7, 300, 5, 5), 20, 7, disorder)
    }

    #[test]
    fn a_seed_gives_the_same_records() {
        for kind in EventKind::ALL {
            let (mut a, mut b) = (generator(kind, Disorder::default()), generator(kind, Disorder::default()));
            for i in 0..500 {
                assert_eq!(a.next_at(1_000 * i), b.next_at(1_000 * i));
            }
        }
    }

    #[test]
    fn shares_of_disorder_are_about_as_asked() {
        let disorder = Disorder { dirty_share: 0.02, out_of_order_share: 0.05, late_share: 0.01 };
        let mut g = generator(EventKind::Orders, disorder);
        let n = 20_000;
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for i in 0..n {
            let e = g.next_at(1_000_000_000 + i);
            let q = match e.quality {
                Quality::Clean => "clean",
                Quality::Dirty => "dirty",
                Quality::OutOfOrder => {
                    assert!(e.event_ms < 1_000_000_000 + i && e.event_ms >= 1_000_000_000 + i - DISORDER_MS);
                    "out_of_order"
                }
                Quality::Late => {
                    assert!(e.event_ms <= 1_000_000_000 + i - LATE_BY_MS);
                    "late"
                }
            };
            *counts.entry(q).or_default() += 1;
        }
        let share = |q: &str| f64::from(counts[q]) / n as f64;
        assert!((share("dirty") - 0.02).abs() < 0.005, "{counts:?}");
        assert!((share("late") - 0.01).abs() < 0.003, "{counts:?}");
        assert!((share("out_of_order") - 0.05 * 0.99).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn clean_records_have_every_field() {
        let mut g =
            generator(EventKind::Sales, Disorder { dirty_share: 0.0, out_of_order_share: 0.0, late_share: 0.0 });
        for i in 0..200 {
            let e = g.next_at(i * 60_000);
            let v: Value = serde_json::from_slice(&e.value).unwrap();
            for f in
                ["transaction_id", "store_id", "country", "product_id", "category", "customer_id", "price", "quantity"]
            {
                assert!(!v[f].is_null(), "{f} missing in {v}");
            }
            assert_eq!(v["ts"], json!(rfc3339(i * 60_000)));
            assert_eq!(e.partition(4), e.partition(4));
        }
    }

    #[test]
    fn sessions_have_one_to_ten_events() {
        let mut g = generator(EventKind::Clickstream, Disorder { dirty_share: 0.0, ..Disorder::default() });
        let mut per: HashMap<String, u32> = HashMap::new();
        for i in 0..5_000 {
            let v: Value = serde_json::from_slice(&g.next_at(i).value).unwrap();
            *per.entry(v["session_id"].as_str().unwrap().to_string()).or_default() += 1;
        }
        assert!(per.values().all(|&n| (1..=10).contains(&n)), "{:?}", per.values().max());
        assert!(per.values().any(|&n| n == 1) && per.values().any(|&n| n >= 9));
    }

    #[test]
    fn names_parse() {
        assert_eq!("Sales".parse::<EventKind>(), Ok(EventKind::Sales));
        assert!("sale".parse::<EventKind>().unwrap_err().contains("not an event stream"));
    }
}
