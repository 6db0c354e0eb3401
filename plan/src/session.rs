//! The client's session: DataFusion planning locally, execution on a
//! Ballista scheduler, with our codecs, table functions and the
//! scheduler's MongoDB collections as tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use stockyard_mongo::{MongoTable, ScanOptions};
use stockyard_proto::stockyard_client::StockyardClient;
use stockyard_proto::{DescribeTableRequest, ListTablesRequest};
use tonic::transport::Channel;

use crate::range::{FUNCTION_NAME, PartitionedRangeFunc};
use crate::schema::decode_schema;
use crate::{LogicalCodec, PhysicalCodec};

/// A client session on the cluster.
pub struct Session {
    /// Plans locally, runs on the scheduler.
    pub ctx: SessionContext,
    /// Why the scheduler could not list MongoDB collections, if it could not.
    pub mongo_unavailable: Option<String>,
}

/// Where a session's calls go: the scheduler (`HOST:PORT`) and, when calls
/// go through a gateway, how Ballista's endpoints are sent there (to the
/// scheduler, and to executors for results).
#[derive(Clone)]
pub struct Route {
    /// The scheduler, or the gateway in front of it.
    pub scheduler: String,
    /// Ballista's endpoint override that sends every call to the gateway.
    pub dialer: Option<ballista_core::extension::EndpointOverrideFn>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("scheduler", &self.scheduler)
            .field("through_gateway", &self.dialer.is_some())
            .finish()
    }
}

impl Route {
    /// Calls straight to the scheduler at `host:port`.
    pub fn direct(scheduler: impl Into<String>) -> Self {
        Self { scheduler: scheduler.into(), dialer: None }
    }
}

/// A session whose queries run on the scheduler `route` names; `job_name`
/// labels the Ballista jobs it submits. With a job-API `client`, the
/// scheduler's MongoDB collections are tables of the default schema,
/// scanned with `mongo` options.
pub async fn remote_context(
    route: &Route,
    job_name: &str,
    client: Option<StockyardClient<Channel>>,
    mongo: ScanOptions,
) -> Result<Session> {
    let mut config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        .with_ballista_job_name(job_name);
    if let Some(dialer) = &route.dialer {
        config = config.with_ballista_override_create_grpc_client_endpoint(dialer.clone());
    }
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build()
        .upgrade_for_ballista(format!("http://{}", route.scheduler))?;
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udtf(FUNCTION_NAME, Arc::new(PartitionedRangeFunc));
    let mut mongo_unavailable = None;
    if let Some(client) = client {
        let schema = ClusterSchema::new(client, mongo).await;
        mongo_unavailable = schema.unavailable.clone();
        let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
        catalog.register_schema("public", Arc::new(schema))?;
    }
    Ok(Session { ctx, mongo_unavailable })
}

/// The default schema on a client: tables made in the session (`CREATE
/// EXTERNAL TABLE`) first, then the MongoDB collections the scheduler
/// lists, each described by the scheduler when a query first names it.
#[derive(Debug)]
struct ClusterSchema {
    local: MemorySchemaProvider,
    client: StockyardClient<Channel>,
    options: ScanOptions,
    /// Collection names, for `SHOW TABLES`; empty when MongoDB is down.
    names: Vec<String>,
    unavailable: Option<String>,
    described: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

impl ClusterSchema {
    async fn new(mut client: StockyardClient<Channel>, options: ScanOptions) -> Self {
        let (names, unavailable) = match client.list_tables(ListTablesRequest {}).await {
            Ok(r) => {
                let r = r.into_inner();
                (r.tables, (!r.unavailable.is_empty()).then_some(r.unavailable))
            }
            Err(e) => (Vec::new(), Some(e.message().to_string())),
        };
        Self { local: MemorySchemaProvider::new(), client, options, names, unavailable, described: Mutex::default() }
    }
}

#[async_trait]
impl SchemaProvider for ClusterSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.local.table_names();
        names.extend(self.names.iter().filter(|n| !self.local.table_exist(n)).cloned());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.local.table(name).await? {
            return Ok(Some(t));
        }
        // Only collections the scheduler listed: DataFusion also looks up
        // table functions and the targets of CREATE statements here.
        if !self.names.iter().any(|n| n == name) {
            return Ok(None);
        }
        if let Some(t) = self.described.lock().expect("lock").get(name) {
            return Ok(Some(t.clone()));
        }
        let reply = self
            .client
            .clone()
            .describe_table(DescribeTableRequest { name: name.to_string() })
            .await
            .map_err(|e| DataFusionError::Plan(format!("cannot look up table {name}: {}", e.message())))?
            .into_inner();
        if !reply.found {
            return Ok(None);
        }
        let schema = decode_schema(&reply.schema)?;
        let table: Arc<dyn TableProvider> = Arc::new(MongoTable::new(name, schema, self.options.clone(), None));
        self.described.lock().expect("lock").insert(name.to_string(), table.clone());
        Ok(Some(table))
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        self.local.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.local.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.local.table_exist(name) || self.names.iter().any(|n| n == name)
    }
}

/// The statements of `sql`, split by the SQL parser in the session's
/// dialect: a `;` inside a string or a comment does not end a statement.
/// The CLI and the scheduler's `sql` job both split with it; the error is
/// the message a person reads (`SQL error: …`).
pub fn statements(
    ctx: &SessionContext,
    sql: &str,
) -> std::result::Result<Vec<datafusion::sql::parser::Statement>, String> {
    use datafusion::sql::parser::DFParser;
    let name = ctx.state().config().options().sql_parser.dialect.to_string();
    let dialect = datafusion::sql::sqlparser::dialect::dialect_from_str(&name)
        .ok_or_else(|| format!("unknown SQL dialect '{name}'"))?;
    Ok(DFParser::parse_sql_with_dialect(sql, dialect.as_ref())
        .map_err(|e| format!("SQL error: {e}"))?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod statement_tests {
    use super::*;

    #[test]
    fn semicolons_in_strings_and_comments_do_not_split() {
        let ctx = SessionContext::new();
        let parts = statements(&ctx, "SELECT ';' AS a; -- one; two\nSELECT 'x;y'; ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].to_string(), "SELECT ';' AS a");
        assert!(statements(&ctx, "SELEC 1").unwrap_err().starts_with("SQL error: "));
        assert!(statements(&ctx, " ; ").unwrap().is_empty());
    }
}
