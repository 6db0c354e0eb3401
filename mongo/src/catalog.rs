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
    names: Mutex<Vec<String>>,
    /// The last failure to reach MongoDB, repeated for a few seconds
    /// instead of waiting out another server-selection timeout.
    failure: Mutex<Option<(MongoError, Instant)>>,
    listed_at: Mutex<Option<Instant>>,
}

/// How long a failure to reach MongoDB is answered from memory.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);

impl MongoCatalog {
    /// A catalog over `source`, sampling `sample_size` documents a
    /// collection and keeping each schema for `ttl`.
    pub fn new(source: Arc<MongoSource>, sample_size: usize, ttl: Duration) -> Self {
        Self {
            source,
            sample_size: sample_size.max(1),
            ttl,
            cache: Mutex::default(),
            names: Mutex::default(),
            failure: Mutex::default(),
            listed_at: Mutex::default(),
        }
    }

    /// The source this catalog reads.
    pub fn source(&self) -> &Arc<MongoSource> {
        &self.source
    }

    /// Collection names, sorted, without `system.*`; also remembered for
    /// [`MongoCatalog::known_tables`].
    pub async fn tables(&self) -> Result<Vec<String>, MongoError> {
        let db = self.source.database().await?;
        let listed = self.source.answer("listing collections", db.list_collection_names().into_future()).await;
        let mut names = self.remember(listed)?;
        names.retain(|n| !n.starts_with("system."));
        names.sort();
        *self.names.lock().expect("names lock") = names.clone();
        *self.listed_at.lock().expect("listed lock") = Some(Instant::now());
        Ok(names)
    }

    /// Lists the collections again if the last list is older than
    /// `max_age`, waiting at most `wait` (`first_wait` before any list has
    /// succeeded: connecting takes longer), unless MongoDB just failed.
    pub async fn refresh_if_stale(&self, max_age: Duration, wait: Duration, first_wait: Duration) {
        let listed_at = *self.listed_at.lock().expect("listed lock");
        if listed_at.is_some_and(|t| t.elapsed() < max_age) || self.recent_failure().is_some() {
            return;
        }
        let wait = if listed_at.is_some() { wait } else { first_wait };
        let _ = tokio::time::timeout(wait, self.tables()).await;
    }

    /// Why MongoDB failed in the last few seconds, if it did.
    pub fn recent_failure(&self) -> Option<String> {
        match self.recent_error()? {
            MongoError::Operation { message, .. } => Some(message),
            e => Some(e.to_string()),
        }
    }

    /// The error behind [`MongoCatalog::recent_failure`], its source kept.
    fn recent_error(&self) -> Option<MongoError> {
        let failure = self.failure.lock().expect("failure lock");
        failure.as_ref().filter(|(_, at)| at.elapsed() < FAILURE_MEMORY).map(|(e, _)| e.clone())
    }

    fn remember<T>(&self, result: Result<T, MongoError>) -> Result<T, MongoError> {
        let mut failure = self.failure.lock().expect("failure lock");
        match &result {
            Ok(_) => *failure = None,
            Err(e @ MongoError::Operation { .. }) => *failure = Some((e.clone(), Instant::now())),
            Err(_) => {}
        }
        result
    }

    /// The names the last [`MongoCatalog::tables`] saw, without waiting on
    /// MongoDB: listing tables must not stall a query that reads none.
    pub fn known_tables(&self) -> Vec<String> {
        self.names.lock().expect("names lock").clone()
    }

    /// The inferred schema of `collection`, `None` when it does not exist.
    pub async fn schema(&self, collection: &str) -> Result<Option<SchemaRef>, MongoError> {
        if let Some((schema, at)) = self.cache.lock().expect("cache lock").get(collection)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(schema.clone()));
        }
        if let Some(e) = self.recent_error() {
            return Err(e);
        }
        let db = self.source.database().await?;
        let listing = db.list_collection_names().filter(doc! {"name": collection}).into_future();
        let listed = self.source.answer("listing collections", listing).await;
        let exists = self.remember(listed)?;
        if exists.is_empty() {
            return Ok(None);
        }
        {
            let mut names = self.names.lock().expect("names lock");
            if !names.iter().any(|n| n == collection) {
                names.push(collection.to_string());
                names.sort();
            }
        }
        let what = format!("sampling {collection}");
        let coll = db.collection::<mongodb::bson::Document>(collection);
        let sampling = coll.aggregate(vec![doc! {"$sample": {"size": self.sample_size as i64}}]).batch().into_future();
        let mut cursor = self.source.answer(&what, sampling).await?;
        let mut batches: Vec<RawBatch> = Vec::new();
        while let Some(batch) = self.source.next(&what, cursor.next()).await? {
            batches.push(batch);
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

/// The collections of a [`MongoCatalog`] as a DataFusion schema, in the
/// process that holds the catalog (the scheduler's job runner). Nothing is
/// asked of MongoDB until a query names a table, so a statement that reads
/// no collection never waits on it. Tables made in the session (`CREATE
/// EXTERNAL TABLE`) come first.
#[derive(Debug)]
pub struct CatalogSchema {
    catalog: Arc<MongoCatalog>,
    options: crate::ScanOptions,
    local: datafusion::catalog::MemorySchemaProvider,
    /// Names that are never collections: the session's table functions.
    not_collections: Vec<String>,
}

impl CatalogSchema {
    /// `catalog`'s collections, scanned with `options`.
    pub fn new(catalog: Arc<MongoCatalog>, options: crate::ScanOptions) -> Self {
        let local = datafusion::catalog::MemorySchemaProvider::new();
        Self { catalog, options, local, not_collections: Vec::new() }
    }

    /// Never asks MongoDB about `names` (the session's table functions,
    /// which DataFusion also looks up as tables): a query that reads no
    /// collection runs whether MongoDB answers or not.
    pub fn not_collections(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.not_collections.extend(names);
        self
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::SchemaProvider for CatalogSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.local.table_names();
        names.extend(self.catalog.known_tables().into_iter().filter(|n| !self.local.table_exist(n)));
        names
    }

    async fn table(
        &self,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if let Some(t) = self.local.table(name).await? {
            return Ok(Some(t));
        }
        // DataFusion also looks up table functions and the targets of
        // CREATE statements here: a name the catalog has not listed is asked
        // of MongoDB (a collection made a moment ago) only while MongoDB
        // answers.
        if self.not_collections.iter().any(|n| n == name) {
            return Ok(None);
        }
        let known = self.catalog.known_tables().iter().any(|n| n == name);
        if !known && self.catalog.recent_failure().is_some() {
            return Ok(None);
        }
        match self.catalog.schema(name).await {
            Ok(Some(schema)) => {
                let source = Some(self.catalog.source().clone());
                Ok(Some(Arc::new(crate::MongoTable::new(name, schema, self.options.clone(), source))))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(datafusion::error::DataFusionError::Plan(format!("cannot look up table {name}: {e}"))),
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn datafusion::catalog::TableProvider>,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        self.local.register_table(name, table)
    }

    fn deregister_table(
        &self,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        self.local.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.local.table_exist(name) || self.catalog.known_tables().iter().any(|n| n == name)
    }
}
