//! Writing to MongoDB: dimensions replaced by key (so a rerun never doubles
//! them), facts appended in unordered batches, event-time indexes created.

use std::time::Duration;

use chrono::Utc;
use mongodb::bson::{Document, doc};
use mongodb::{Database, IndexModel};

use crate::{Fact, FactKind, GenerateError, GenerateOptions, Mode, Summary, dimensions, facts};

/// Documents per `insert_many`: large enough to amortise a round trip,
/// small enough to stay far below the 48 MB message limit.
const BATCH: usize = 5000;

/// Writes the dimensions and then the facts of `opts` to `db`, calling
/// `progress(written, total)` as fact batches land. A backfill returns when
/// every fact is written; a live run after its duration.
pub async fn generate(
    db: &Database,
    opts: &GenerateOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Summary, GenerateError> {
    opts.validate()?;
    let mut summary = Summary::default();
    for (collection, key, docs) in dimensions(opts) {
        let n = docs.len() as u64;
        replace_by_key(db, collection, key, docs).await?;
        match collection {
            "skus_dim" => summary.skus = n,
            "dcs_dim" => summary.dcs = n,
            _ => summary.suppliers = n,
        }
    }
    for kind in FactKind::ALL {
        let index = IndexModel::builder().keys(doc! {kind.event_time_field(): 1}).build();
        db.collection::<Document>(kind.collection()).create_index(index).await.map_err(mongo(&format!(
            "creating an index on {}.{}",
            kind.collection(),
            kind.event_time_field()
        )))?;
    }
    let total = opts.total_facts();
    progress(0, total);
    let mut out = Batches { db, pending: Default::default(), summary };
    match &opts.mode {
        Mode::Backfill { .. } => {
            for fact in facts(opts)? {
                if out.push(fact).await? {
                    progress(out.summary.facts(), total);
                }
            }
        }
        Mode::Live { rate, duration } => live(&mut out, opts, *rate, *duration, total, &mut progress).await?,
    }
    out.flush_all().await?;
    progress(out.summary.facts(), total);
    Ok(out.summary)
}

/// Stamps facts with the wall clock at `rate` a second, writing what is due
/// every fifth of a second.
async fn live(
    out: &mut Batches<'_>,
    opts: &GenerateOptions,
    rate: u64,
    duration: Duration,
    total: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), GenerateError> {
    let mut generator = opts.fact_generator();
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut made = 0;
    while made < total {
        ticks.tick().await;
        let elapsed = started.elapsed();
        let due = if elapsed >= duration { total } else { ((rate as f64 * elapsed.as_secs_f64()) as u64).min(total) };
        let now = Utc::now().timestamp_millis();
        while made < due {
            out.push(generator.next_at(now)).await?;
            made += 1;
        }
        out.flush_all().await?;
        progress(out.summary.facts(), total);
    }
    Ok(())
}

/// Facts waiting to be written, per collection.
struct Batches<'a> {
    db: &'a Database,
    pending: [Vec<Fact>; 3],
    summary: Summary,
}

impl Batches<'_> {
    /// Queues `fact`; writes its collection's batch when full. True if it wrote.
    async fn push(&mut self, fact: Fact) -> Result<bool, GenerateError> {
        let i = fact.kind as usize;
        self.pending[i].push(fact);
        if self.pending[i].len() < BATCH {
            return Ok(false);
        }
        self.flush(i).await?;
        Ok(true)
    }

    async fn flush_all(&mut self) -> Result<(), GenerateError> {
        for i in 0..self.pending.len() {
            self.flush(i).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, i: usize) -> Result<(), GenerateError> {
        let batch = std::mem::take(&mut self.pending[i]);
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let collection = first.kind.collection();
        // Unordered: the server may apply a batch in any order, and one bad
        // document does not stop the rest.
        self.db
            .collection::<Document>(collection)
            .insert_many(batch.iter().map(|f| &f.doc))
            .ordered(false)
            .await
            .map_err(mongo(&format!("inserting into {collection}")))?;
        for fact in &batch {
            self.summary.count(fact);
        }
        Ok(())
    }
}

/// Replaces the rows of `collection` whose `key` is among `docs`' keys, so
/// running again with the same options leaves one row per key.
async fn replace_by_key(db: &Database, collection: &str, key: &str, docs: Vec<Document>) -> Result<(), GenerateError> {
    let coll = db.collection::<Document>(collection);
    for chunk in docs.chunks(BATCH) {
        let keys: Vec<_> = chunk.iter().filter_map(|d| d.get(key).cloned()).collect();
        coll.delete_many(doc! {key: {"$in": keys}}).await.map_err(mongo(&format!("replacing rows of {collection}")))?;
        coll.insert_many(chunk).ordered(false).await.map_err(mongo(&format!("inserting into {collection}")))?;
    }
    Ok(())
}

/// A MongoDB error for `action`, keeping the part a person reads (driver
/// messages end in labels and a dump of the server's reply).
fn mongo(action: &str) -> impl FnOnce(mongodb::error::Error) -> GenerateError {
    let action = action.to_string();
    move |e| {
        let source = stockyard_mask::Masked::new(&e);
        let full = source.to_string();
        let message = full.split(", labels: ").next().unwrap_or(&full).trim_start_matches("Kind: ").to_string();
        GenerateError::Mongo { action, message, source }
    }
}
