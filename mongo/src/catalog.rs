//! [`MongoCatalog`]: the collections of one database as tables, with their
//! inferred schemas cached for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use mongodb::bson::doc;
use mongodb::raw_batch_cursor::RawBatch;

use crate::schema;
use crate::source::{MongoError, MongoSource};

/// Documents sampled to infer a schema, unless configured otherwise.
pub const DEFAULT_SAMPLE_SIZE: usize = 1000;

/// Lists collections and infers their schemas.
#[derive(Debug)]
pub struct MongoCatalog {
    source: Arc<MongoSource>,
    sample_size: usize,
    ttl: Duration,
    cache: Mutex<HashMap<String, (SchemaRef, Instant)>>,
}

impl MongoCatalog {
    /// A catalog over `source`, sampling `sample_size` documents a
    /// collection and keeping each schema for `ttl`.
    pub fn new(source: Arc<MongoSource>, sample_size: usize, ttl: Duration) -> Self {
        Self { source, sample_size: sample_size.max(1), ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// The source this catalog reads.
    pub fn source(&self) -> &Arc<MongoSource> {
        &self.source
    }

    /// Collection names, sorted, without `system.*`.
    pub async fn tables(&self) -> Result<Vec<String>, MongoError> {
        let db = self.source.database().await?;
        let mut names = db.list_collection_names().await.map_err(|e| self.source.error("listing collections", e))?;
        names.retain(|n| !n.starts_with("system."));
        names.sort();
        Ok(names)
    }

    /// The inferred schema of `collection`, `None` when it does not exist.
    pub async fn schema(&self, collection: &str) -> Result<Option<SchemaRef>, MongoError> {
        if let Some((schema, at)) = self.cache.lock().expect("cache lock").get(collection) {
            if at.elapsed() < self.ttl {
                return Ok(Some(schema.clone()));
            }
        }
        let db = self.source.database().await?;
        let exists = db
            .list_collection_names()
            .filter(doc! {"name": collection})
            .await
            .map_err(|e| self.source.error("listing collections", e))?;
        if exists.is_empty() {
            return Ok(None);
        }
        let what = format!("sampling {collection}");
        let mut cursor = db
            .collection::<mongodb::bson::Document>(collection)
            .aggregate(vec![doc! {"$sample": {"size": self.sample_size as i64}}])
            .batch()
            .await
            .map_err(|e| self.source.error(&what, e))?;
        let mut batches: Vec<RawBatch> = Vec::new();
        while let Some(batch) = cursor.next().await {
            batches.push(batch.map_err(|e| self.source.error(&what, e))?);
        }
        let mut docs = Vec::new();
        for batch in &batches {
            let slice = batch.doc_slices().map_err(|e| self.source.error(&what, e))?;
            docs.extend(slice.into_iter().filter_map(|v| v.ok().and_then(|v| v.as_document())));
        }
        let schema = schema::infer(docs);
        self.cache.lock().expect("cache lock").insert(collection.to_string(), (schema.clone(), Instant::now()));
        Ok(Some(schema))
    }
}
