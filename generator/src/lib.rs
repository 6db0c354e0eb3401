//! Supply-chain data for MongoDB, as `shared/spec/supply-chain.md` defines it:
//! the three dimension collections, the three fact collections and a share of
//! dirty documents; and the seed event streams for Kafka (sales, stock
//! readings, orders, a clickstream) that the shipped streams read. It feeds
//! demos, benchmarks and tests with realistic data that a seed reproduces
//! exactly.

mod dims;
pub mod events;
mod facts;
pub mod kafka;
mod rng;
mod write;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::bson::Document;

pub use dims::World;
pub use facts::{Fact, FactGenerator, FactKind};
pub use write::generate;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Same seed and options, same documents (but for `_id`, which MongoDB
    /// assigns, and live event times, which are the wall clock).
    pub seed: u64,
    /// A backfill over a time range or a live stream.
    pub mode: Mode,
    /// Rows of `skus_dim`.
    pub skus: u32,
    /// Rows of `dcs_dim`.
    pub dcs: u32,
    /// Rows of `suppliers_dim`.
    pub suppliers: u32,
    /// Share of fact documents, 0 to 1, with a null, missing, mistyped or
    /// unknown-id field. Dimensions are always clean.
    pub dirty_share: f64,
}

/// When facts happen.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `docs` facts with event times spread over `[start, end)`, in time order.
    Backfill {
        /// Facts to write (for Kafka, records per stream).
        docs: u64,
        /// The earliest event time, inclusive.
        start: DateTime<Utc>,
        /// The end of the range, exclusive.
        end: DateTime<Utc>,
    },
    /// `rate` facts a second for `duration`, stamped with the wall clock.
    Live {
        /// Facts a second (for Kafka, records a second per stream).
        rate: u64,
        /// How long the run lasts, by the wall clock.
        duration: Duration,
    },
}

impl Default for GenerateOptions {
    /// The sizes the spec suggests: 5000 SKUs, 40 DCs, 50 suppliers, 2% dirty,
    /// and a backfill of 10,000 facts over the hour before now.
    fn default() -> Self {
        let end = Utc::now();
        GenerateOptions {
            seed: 42,
            mode: Mode::Backfill { docs: 10_000, start: end - chrono::Duration::hours(1), end },
            skus: 5000,
            dcs: 40,
            suppliers: 50,
            dirty_share: 0.02,
        }
    }
}

impl GenerateOptions {
    /// Checks the options, naming the bad value.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::Options(m));
        for (name, n) in [("skus", self.skus), ("dcs", self.dcs), ("suppliers", self.suppliers)] {
            if n == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&self.dirty_share) {
            return bad(format!("dirty share '{}' is not between 0 and 1", self.dirty_share));
        }
        match &self.mode {
            Mode::Backfill { start, end, .. } if start >= end => {
                bad(format!("start '{}' is not before end '{}'", start.to_rfc3339(), end.to_rfc3339()))
            }
            Mode::Live { rate: 0, .. } => bad("rate must be at least 1 document a second".into()),
            Mode::Live { duration, .. } if duration.is_zero() => bad("duration must be longer than zero".into()),
            _ => Ok(()),
        }
    }

    /// Fact documents this run writes.
    pub fn total_facts(&self) -> u64 {
        match &self.mode {
            Mode::Backfill { docs, .. } => *docs,
            Mode::Live { rate, duration } => (*rate as f64 * duration.as_secs_f64()).round() as u64,
        }
    }

    /// The world (dimension rows and their traits) of these options.
    pub fn world(&self) -> World {
        World::new(self.seed, self.skus, self.dcs, self.suppliers)
    }

    /// A fresh fact generator for these options.
    pub fn fact_generator(&self) -> FactGenerator {
        FactGenerator::new(self.world(), self.seed, self.dirty_share)
    }
}

/// Why generating failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The options make no sense.
    #[error("{0}")]
    Options(String),
    /// A MongoDB operation failed.
    #[error("MongoDB {action} failed: {message}")]
    Mongo {
        /// What was being done, such as `inserting into orders_fact`.
        action: String,
        /// The driver's message, without its labels and the server's reply.
        message: String,
        /// The driver's error, masked (it can quote the connection string).
        #[source]
        source: stockyard_mask::Masked,
    },
    /// A Kafka call failed.
    #[error(transparent)]
    Kafka(#[from] stockyard_stream_source::KafkaError),
}

/// What a run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows written to `skus_dim`.
    pub skus: u64,
    /// Rows written to `dcs_dim`.
    pub dcs: u64,
    /// Rows written to `suppliers_dim`.
    pub suppliers: u64,
    /// Documents written to `orders_fact`.
    pub orders: u64,
    /// Documents written to `shipments_fact`.
    pub shipments: u64,
    /// Documents written to `inventory_fact`.
    pub inventory: u64,
    /// Fact documents written dirty on purpose.
    pub dirty: u64,
}

impl Summary {
    /// Fact documents written.
    pub fn facts(&self) -> u64 {
        self.orders + self.shipments + self.inventory
    }

    /// Counts one written fact.
    fn count(&mut self, fact: &Fact) {
        match fact.kind {
            FactKind::Order => self.orders += 1,
            FactKind::Shipment => self.shipments += 1,
            FactKind::Inventory => self.inventory += 1,
        }
        self.dirty += u64::from(fact.dirty);
    }

    /// The summary as a JSON object, collection names as keys.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "skus_dim": self.skus, "dcs_dim": self.dcs, "suppliers_dim": self.suppliers,
            "orders_fact": self.orders, "shipments_fact": self.shipments, "inventory_fact": self.inventory,
            "facts": self.facts(), "dirty": self.dirty,
        })
    }
}

/// The dimension documents of `opts`, per collection: what a run upserts.
pub fn dimensions(opts: &GenerateOptions) -> [(&'static str, &'static str, Vec<Document>); 3] {
    let world = opts.world();
    [
        ("skus_dim", "sku_id", world.skus.into_iter().map(|s| s.doc).collect()),
        ("dcs_dim", "dc_id", world.dcs.into_iter().map(|d| d.doc).collect()),
        ("suppliers_dim", "supplier_id", world.suppliers.into_iter().map(|s| s.doc).collect()),
    ]
}

/// The facts of a backfill, in order, without MongoDB: what [`generate`]
/// writes for `opts`. A live run's facts are timed by the wall clock, so
/// this refuses `Mode::Live`.
pub fn facts(opts: &GenerateOptions) -> Result<Facts, GenerateError> {
    opts.validate()?;
    let Mode::Backfill { docs, start, end } = &opts.mode else {
        return Err(GenerateError::Options("a live run's facts are timed by the wall clock: use FactGenerator".into()));
    };
    Ok(Facts {
        generator: opts.fact_generator(),
        times: rng::Rng::new(opts.seed, 5),
        next: 0,
        docs: *docs,
        start: start.timestamp_millis(),
        end: end.timestamp_millis(),
    })
}

/// The facts of a backfill; see [`facts`].
#[derive(Debug, Clone)]
pub struct Facts {
    generator: FactGenerator,
    times: rng::Rng,
    next: u64,
    docs: u64,
    start: i64,
    end: i64,
}

impl Iterator for Facts {
    type Item = Fact;

    fn next(&mut self) -> Option<Fact> {
        if self.next >= self.docs {
            return None;
        }
        // Fact i falls in the i-th of `docs` equal slices of the range, so
        // times never go backwards and stock levels evolve in time order.
        let slice = (self.next as f64 + self.times.f64()) / self.docs as f64;
        let ts = (self.start + (slice * (self.end - self.start) as f64) as i64).clamp(self.start, self.end - 1);
        self.next += 1;
        Some(self.generator.next_at(ts))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.docs - self.next) as usize;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests;
