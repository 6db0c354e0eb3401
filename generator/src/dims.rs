//! The dimension rows (SKUs, DCs, suppliers) and the hidden traits facts are
//! drawn from: each DC's demand level, each SKU's popularity, each
//! supplier's reliability. All of it follows from the seed alone.

use mongodb::bson::{Document, doc};

use crate::rng::Rng;

/// The categories of `shared/spec/supply-chain.md`, with a typical price
/// and product nouns for names.
const CATEGORIES: [(&str, f64, &[&str]); 7] = [
    ("Electronics", 120.0, &["Headphones", "Charger", "Speaker", "Monitor", "Keyboard", "Router", "Webcam"]),
    ("Clothing", 35.0, &["T-Shirt", "Jacket", "Jeans", "Sweater", "Socks", "Cap", "Scarf"]),
    ("Home", 45.0, &["Lamp", "Kettle", "Pillow", "Towel Set", "Vase", "Frying Pan", "Clock"]),
    ("Books", 18.0, &["Cookbook", "Novel", "Atlas", "Biography", "Guide", "Anthology", "Workbook"]),
    ("Sports", 60.0, &["Yoga Mat", "Dumbbell", "Football", "Water Bottle", "Racket", "Helmet", "Backpack"]),
    ("Beauty", 25.0, &["Shampoo", "Face Cream", "Lipstick", "Perfume", "Hair Dryer", "Soap Set", "Serum"]),
    ("Toys", 30.0, &["Puzzle", "Robot", "Doll", "Building Set", "Board Game", "Kite", "Plush Bear"]),
];

const ADJECTIVES: [&str; 10] =
    ["Classic", "Pro", "Mini", "Ultra", "Eco", "Smart", "Deluxe", "Compact", "Premium", "Basic"];

const REGIONS: [(&str, &[&str]); 5] = [
    ("North", &["Oslo", "Bergen", "Tromso", "Lulea", "Umea", "Oulu"]),
    ("South", &["Seville", "Malaga", "Naples", "Palermo", "Athens", "Valencia"]),
    ("East", &["Warsaw", "Krakow", "Vilnius", "Riga", "Tallinn", "Brno"]),
    ("West", &["Lisbon", "Porto", "Dublin", "Cork", "Nantes", "Bristol"]),
    ("Central", &["Prague", "Vienna", "Munich", "Zurich", "Leipzig", "Linz"]),
];

const SUPPLIER_WORDS: [&str; 10] =
    ["Northwind", "Acme", "Globex", "Initech", "Umbrella", "Vandelay", "Hooli", "Stark", "Wayne", "Tyrell"];
const SUPPLIER_KINDS: [&str; 5] = ["Trading", "Logistics", "Manufacturing", "Supply", "Industries"];

/// The dimension identifiers, as the spec writes them.
pub fn sku_id(i: u32) -> String {
    format!("SKU-{:05}", i + 1)
}

/// `DC-01` …
pub fn dc_id(i: u32) -> String {
    format!("DC-{:02}", i + 1)
}

/// `SUP-001` …
pub fn supplier_id(i: u32) -> String {
    format!("SUP-{:03}", i + 1)
}

/// A SKU and what drives its facts.
#[derive(Debug, Clone)]
pub struct Sku {
    pub price: f64,
    pub supplier: u32,
    pub doc: Document,
}

/// A DC and how busy it is.
#[derive(Debug, Clone)]
pub struct Dc {
    /// Relative demand: busy DCs see more orders and hold more stock.
    pub demand: f64,
    pub doc: Document,
}

/// A supplier and how well it keeps its promise.
#[derive(Debug, Clone)]
pub struct Supplier {
    pub promised_days: f64,
    /// Share of shipments that arrive by the promised date.
    pub on_time: f64,
    pub doc: Document,
}

/// Everything facts are drawn from.
#[derive(Debug, Clone)]
pub struct World {
    /// The SKUs, in id order (index 0 is `SKU-00001`).
    pub skus: Vec<Sku>,
    /// The DCs, in id order (index 0 is `DC-01`).
    pub dcs: Vec<Dc>,
    /// The suppliers, in id order (index 0 is `SUP-001`).
    pub suppliers: Vec<Supplier>,
    /// SKU indexes from most to least popular.
    pub popularity: Vec<u32>,
    /// Cumulative DC demand, for weighted picks.
    dc_cumulative: Vec<f64>,
}

impl World {
    /// The world of `seed` with this many rows per dimension (each at least 1).
    pub fn new(seed: u64, skus: u32, dcs: u32, suppliers: u32) -> Self {
        let mut rng = Rng::new(seed, 1);
        let suppliers: Vec<Supplier> = (0..suppliers).map(|i| supplier(&mut rng, i)).collect();
        let mut rng = Rng::new(seed, 2);
        let dcs: Vec<Dc> = (0..dcs).map(|i| dc(&mut rng, i)).collect();
        let mut rng = Rng::new(seed, 3);
        let skus: Vec<Sku> = (0..skus).map(|i| sku(&mut rng, i, suppliers.len() as u32)).collect();
        // A shuffled order, so popularity is not the same as the id order.
        let mut popularity: Vec<u32> = (0..skus.len() as u32).collect();
        for i in (1..popularity.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            popularity.swap(i, j);
        }
        let dc_cumulative = dcs
            .iter()
            .scan(0.0, |acc, d| {
                *acc += d.demand;
                Some(*acc)
            })
            .collect();
        World { skus, dcs, suppliers, popularity, dc_cumulative }
    }

    /// A SKU index, skewed towards the popular ones (a few sell a lot).
    pub fn pick_sku(&self, rng: &mut Rng) -> u32 {
        let u = rng.f64();
        let rank = (u * u * u * self.popularity.len() as f64) as usize;
        self.popularity[rank.min(self.popularity.len() - 1)]
    }

    /// A DC index, weighted by demand.
    pub fn pick_dc(&self, rng: &mut Rng) -> u32 {
        let total = self.dc_cumulative.last().copied().unwrap_or(0.0);
        let x = rng.f64() * total;
        self.dc_cumulative.partition_point(|&c| c <= x).min(self.dcs.len() - 1) as u32
    }
}

fn supplier(rng: &mut Rng, i: u32) -> Supplier {
    // Distinct names for the first 50; later ones carry their number.
    let (w, k) = (SUPPLIER_WORDS.len(), SUPPLIER_KINDS.len());
    let name = format!("{} {}", SUPPLIER_WORDS[i as usize % w], SUPPLIER_KINDS[(i as usize / w) % k]);
    let name = if i as usize >= w * k { format!("{name} {}", i + 1) } else { name };
    // Half-day promises from 2 to 14 days.
    let promised_days = (2 + rng.below(25)) as f64 / 2.0;
    let on_time = rng.range(0.55, 0.97);
    let doc = doc! {"supplier_id": supplier_id(i), "supplier_name": name, "promised_lead_time_days": promised_days};
    Supplier { promised_days, on_time, doc }
}

fn dc(rng: &mut Rng, i: u32) -> Dc {
    let (region, cities) = REGIONS[i as usize % REGIONS.len()];
    let city = cities[(i as usize / REGIONS.len()) % cities.len()];
    let round = i as usize / (REGIONS.len() * cities.len());
    let name = if round == 0 { format!("{city} DC") } else { format!("{city} DC {}", round + 1) };
    let demand = 0.3 + 1.7 * rng.f64() * rng.f64() + 0.2 * rng.f64();
    let capacity = (200 + rng.below(1800)) as i64 * 1000;
    let doc = doc! {"dc_id": dc_id(i), "dc_name": name, "region": region, "capacity_units": capacity};
    Dc { demand, doc }
}

fn sku(rng: &mut Rng, i: u32, suppliers: u32) -> Sku {
    let (category, base, nouns) = CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
    let name = format!("{} {} {}", rng.pick(&ADJECTIVES), rng.pick(nouns), 100 + rng.below(900));
    // Prices spread around the category's, ending in .99.
    let price = (base * (1.0 + 0.35 * rng.normal())).max(2.0).floor() + 0.99;
    let supplier = rng.below(u64::from(suppliers)) as u32;
    let doc = doc! {
        "sku_id": sku_id(i), "product_name": name, "category": category,
        "unit_price": price, "supplier_id": supplier_id(supplier),
    };
    Sku { price, supplier, doc }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_spec() {
        assert_eq!(sku_id(0), "SKU-00001");
        assert_eq!(dc_id(0), "DC-01");
        assert_eq!(supplier_id(49), "SUP-050");
    }

    #[test]
    fn picks_stay_in_range_and_skew() {
        let w = World::new(3, 100, 7, 5);
        let mut rng = Rng::new(3, 99);
        let mut hits = vec![0u32; 100];
        for _ in 0..10_000 {
            hits[w.pick_sku(&mut rng) as usize] += 1;
            assert!(w.pick_dc(&mut rng) < 7);
        }
        let top = hits[w.popularity[0] as usize];
        let bottom = hits[w.popularity[99] as usize];
        assert!(top > 10 * bottom.max(1), "top {top}, bottom {bottom}");
    }
}
