//! What each job does in a run: the KPI job, the archive job and a saved
//! SQL statement, each on a Ballista session of its own, named after the
//! run so its Ballista jobs can be found.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::error::DataFusionError;
use futures::StreamExt;
use serde_json::{Value, json};
use stockyard_jobs::{archive, compact, kpi};
use stockyard_mongo::ScanOptions;
use tokio::sync::mpsc;

use super::params::{self, BadRequest};
use super::{JobRunner, RESULTS};

/// Why a run failed. Its text is what the run history records.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The parameters were refused.
    #[error(transparent)]
    Params(#[from] BadRequest),
    /// A query failed to plan or run.
    #[error("{}", .0.strip_backtrace())]
    Query(#[from] DataFusionError),
    /// The KPI job failed.
    #[error(transparent)]
    Kpi(#[from] stockyard_jobs::JobError),
    /// The archive job failed.
    #[error(transparent)]
    Archive(#[from] stockyard_jobs::archive::ArchiveError),
    /// The compaction job failed.
    #[error(transparent)]
    Compact(#[from] stockyard_jobs::compact::CompactError),
    /// The state store refused the run (this scheduler no longer leads).
    #[error(transparent)]
    State(#[from] stockyard_state::StateError),
    /// A `sql` run named a file on the scheduler, which it may not.
    #[error(
        "'{0}' is a file on the scheduler: sql jobs may not read or write local files \
         (start the scheduler with --allow-local-files to allow it)"
    )]
    LocalFile(String),
    /// The statements do not parse.
    #[error("{0}")]
    Parse(String),
    /// A Flight SQL query of no statement, or of several.
    #[error("a Flight SQL query is one SQL statement; this has {0}")]
    NotOneStatement(usize),
    /// The Flight SQL client stopped reading the result.
    #[error("the Flight SQL client stopped reading after {0} rows")]
    ClientGone(usize),
    /// The result could not be turned into the UI's view, or its shown
    /// rows are over the limit.
    #[error(transparent)]
    Result(#[from] super::result::ResultError),
}

impl JobRunner {
    /// A Ballista session for one run's queries.
    async fn session(&self, name: String) -> Result<stockyard_plan::session::Session, RunError> {
        Ok(stockyard_plan::session::remote_context(&self.targets.scheduler, &name, None, ScanOptions::default())
            .await?)
    }

    /// A session for `sql` as a `sql` run has it (every collection a
    /// table, as for `stockyard sql`), and its statements split by the SQL
    /// parser (`SELECT ';'` is one statement).
    pub(super) async fn sql_session(
        &self,
        name: String,
        sql: &str,
    ) -> Result<(stockyard_plan::session::Session, Vec<datafusion::sql::parser::Statement>), RunError> {
        let session = self.session(name).await?;
        let statements = stockyard_plan::session::statements(&session.ctx, sql).map_err(RunError::Parse)?;
        // Table functions and the tables the statements create are never
        // collections: DataFusion looks them up too, and they must not wait
        // on MongoDB (which may be away while a query reads none).
        let mut not_collections: Vec<String> = session.ctx.state().table_functions().keys().cloned().collect();
        not_collections.extend(statements.iter().filter_map(created_table));
        let schema = stockyard_mongo::CatalogSchema::new(self.targets.catalog.clone(), ScanOptions::default())
            .not_collections(not_collections);
        let catalog = session.ctx.catalog("datafusion").expect("the default catalog exists");
        catalog.register_schema("public", Arc::new(schema))?;
        stockyard_jobs::tables::register_history(&session.ctx)?;
        Ok((session, statements))
    }

    /// Plans `statement` on `session`, refusing local files unless allowed.
    pub(super) async fn plan(
        &self,
        session: &stockyard_plan::session::Session,
        statement: datafusion::sql::parser::Statement,
    ) -> Result<datafusion::logical_expr::LogicalPlan, RunError> {
        let plan = session.ctx.state().statement_to_plan(statement).await?;
        if !self.targets.allow_local_files
            && let Some(location) = local_location(&plan)
        {
            return Err(RunError::LocalFile(location));
        }
        Ok(plan)
    }

    pub(super) async fn kpi(
        &self,
        run_id: &str,
        params: &BTreeMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, RunError> {
        let params = params::kpi(params)?;
        let say = |m: &str| {
            let _ = progress.try_send(m.to_string());
        };
        say("planning the KPI queries");
        let session = self.session(format!("kpi {run_id}")).await?;
        // The queries read the same window: once per executor, in one
        // cursor per collection, whose plain time range any server can
        // answer from its event-time index (a split into ranges cannot be
        // that plain: it must also place arrays and other types).
        stockyard_jobs::tables::register(&session.ctx, Some(self.targets.mongo.clone()), Some(1), Some(run_id))?;
        // A window is small: a few shuffle partitions beat Ballista's 16,
        // each of which is a task to schedule; and hash joins let the small
        // dimensions be broadcast (scans report their collection's size)
        // instead of shuffling both sides of every join.
        for setting in ["datafusion.execution.target_partitions = 4", "datafusion.optimizer.prefer_hash_join = true"] {
            session.ctx.sql(&format!("SET {setting}")).await?;
        }
        say("computing five KPIs over the window");
        let generated_at = Utc::now();
        let computing = Instant::now();
        let output = kpi::compute(&session.ctx, &params, generated_at).await?;
        let compute_ms = computing.elapsed().as_millis() as u64;
        say("writing the KPIs to Redis");
        let writing = Instant::now();
        let (start, end) = params.bounds();
        let written = kpi::write(&self.targets.redis_url, &output, end, params.ttl, Utc::now(), params.force).await?;
        let redis_ms = writing.elapsed().as_millis() as u64;
        let mut summary = output.summary;
        if let kpi::Written::Superseded { held } = written {
            // A late rerun or a backfill leaves newer KPIs as they are.
            summary["status"] = json!(stockyard_api::RunStatus::Superseded.as_str());
            summary["newer_window_end"] = json!(held);
        }
        // Reading MongoDB happens inside the queries: compute includes it.
        summary["compute_ms"] = json!(compute_ms);
        summary["redis_write_ms"] = json!(redis_ms);
        summary["window_start"] = json!(kpi::iso(start));
        summary["window_end"] = json!(kpi::iso(end));
        Ok(summary)
    }

    pub(super) async fn archive(
        &self,
        run_id: &str,
        params: &BTreeMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, RunError> {
        let mut params = params::archive(params, &self.targets.archive_dest, &self.targets.allowed_dests)?;
        // Taken when it starts: a term won later is another run's.
        params.leader = self.history.leader()?;
        let say = |m: String| {
            let _ = progress.try_send(m);
        };
        let _one_at_a_time = match self.archiving.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                say("waiting for the archive run going on to end".into());
                self.archiving.lock().await
            }
        };
        let session = self.session(format!("archive {run_id}")).await?;
        if let Some(archive_id) = &params.abandon {
            return Ok(
                archive::abandon(&session.ctx, &self.targets.mongo, archive_id, params.leader.as_ref(), &say).await?
            );
        }
        Ok(archive::run(&session.ctx, &self.targets.mongo, &params, &say).await?)
    }

    /// One compaction run over the archive.
    pub(super) async fn compact(
        &self,
        params: &BTreeMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, RunError> {
        let params = params::compact(params, &self.targets.archive_dest, &self.targets.allowed_dests)?;
        let say = |m: String| {
            let _ = progress.try_send(m);
        };
        // Two at once would each claim the other's hours: safe, but each
        // merge would be written twice.
        let _one_at_a_time = match self.compacting.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                say("waiting for the compaction going on to end".into());
                self.compacting.lock().await
            }
        };
        Ok(compact::run(&self.targets.mongo, &params, &say).await?)
    }

    /// A saved SQL statement (or several, `;`-separated) run on the cluster.
    pub(super) async fn sql(
        &self,
        run_id: &str,
        params: &BTreeMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, RunError> {
        let sql = params::sql(params)?;
        let _ = progress.try_send("running the statement".into());
        let (session, statements) = self.sql_session(format!("sql {run_id}"), &sql).await?;
        let mut last = None;
        for statement in statements {
            let plan = self.plan(&session, statement).await?;
            let frame = session.ctx.execute_logical_plan(plan).await?;
            // Streamed, never collected: the scheduler keeps the rows the
            // UI shows and counts the rest, whatever the result's size.
            let mut stream = frame.execute_stream().await?;
            let mut kept = super::result::Kept::new(stream.schema(), self.targets.max_result_bytes);
            while let Some(batch) = stream.next().await {
                kept.add(&batch?).map_err(RunError::Result)?;
            }
            last = Some(kept);
        }
        let Some(kept) = last else { return Ok(json!({"rows": 0})) };
        let table = kept.into_json();
        let rows = table["total_rows"].clone();
        let mut results = self.results.lock().expect("results lock");
        results.push_back((run_id.to_string(), table));
        if results.len() > RESULTS {
            results.pop_front();
        }
        Ok(json!({"rows": rows}))
    }
}

/// The table `statement` creates, if it creates one, by its last name part.
fn created_table(statement: &datafusion::sql::parser::Statement) -> Option<String> {
    use datafusion::sql::parser::Statement;
    use datafusion::sql::sqlparser::ast;
    let name = match statement {
        Statement::CreateExternalTable(c) => &c.name,
        Statement::Statement(s) => match s.as_ref() {
            ast::Statement::CreateTable(c) => &c.name,
            ast::Statement::CreateView(c) => &c.name,
            _ => return None,
        },
        _ => return None,
    };
    // Unquoted names are looked up in lower case, as DataFusion folds them.
    let ident = name.0.last()?.as_ident()?;
    Some(if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() })
}

/// The local path a statement reads or writes, if any: an external table's
/// location or a COPY's target.
fn local_location(plan: &datafusion::logical_expr::LogicalPlan) -> Option<String> {
    use datafusion::logical_expr::{DdlStatement, LogicalPlan};
    let location = match plan {
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(t)) => &t.location,
        LogicalPlan::Copy(c) => &c.output_url,
        _ => return None,
    };
    stockyard_plan::store::is_local(location).then(|| location.clone())
}
