//! A Flight SQL query as a run: planned as a `sql` run plans (every
//! collection a table, the local-file rule), recorded in the history with
//! the trigger `flight-sql`, its rows streamed to the client as they come
//! and never kept.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, StreamExt};
use serde_json::json;
use stockyard_api::{Job, Run, RunStatus, Trigger};
use stockyard_plan::session::Session;
use tokio::sync::{mpsc, oneshot};

use super::bodies::RunError;
use super::{JobRunner, new_run_id};

/// A planned query: its session, its plan, and the schema its rows have.
pub(crate) struct Planned {
    session: Session,
    plan: LogicalPlan,
    /// The schema of the rows, the same the stream carries.
    pub schema: SchemaRef,
}

/// Why a streamed run ended without its rows all sent, as the client reads it.
#[derive(Debug, Clone)]
pub(crate) struct Unfinished(pub String);

impl JobRunner {
    /// Plans `sql`, which must be one statement, on a session of its own,
    /// its placeholders (`$1`, `$2`…) bound to `params` (one row, a
    /// column each, in order) when given.
    pub(crate) async fn plan_query(&self, sql: &str, params: Option<&RecordBatch>) -> Result<Planned, RunError> {
        let (session, mut statements) = self.sql_session("flight-sql".into(), sql).await?;
        if statements.len() != 1 {
            return Err(RunError::NotOneStatement(statements.len()));
        }
        let mut plan = self.plan(&session, statements.remove(0)).await?;
        if let Some(batch) = params {
            let values = (0..batch.num_columns())
                .map(|i| ScalarValue::try_from_array(batch.column(i), 0))
                .collect::<Result<Vec<_>, _>>()?;
            plan = plan.with_param_values(values)?;
        }
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Ok(Planned { session, plan, schema })
    }

    /// The placeholders of `sql`'s plan as a schema, `$1` first, with the
    /// types the plan gives them (null where it gives none).
    pub(crate) async fn parameters(&self, sql: &str) -> Result<(SchemaRef, SchemaRef), RunError> {
        let planned = self.plan_query(sql, None).await?;
        let mut found: Vec<(String, Option<DataType>)> = planned.plan.get_parameter_types()?.into_iter().collect();
        // `$10` after `$9`: by number, not text.
        found.sort_by_key(|(name, _)| name.trim_start_matches('$').parse::<u64>().unwrap_or(u64::MAX));
        let fields: Vec<Field> =
            found.into_iter().map(|(name, t)| Field::new(name, t.unwrap_or(DataType::Null), true)).collect();
        Ok((planned.schema, Arc::new(Schema::new(fields))))
    }

    /// Runs `planned` (the query `sql`) as run `run_id` (a fresh id if
    /// this process ran one by that id: a ticket fetched twice), recorded
    /// from now on;
    /// its rows come through the stream. The run ends with the stream:
    /// succeeded with the row count, or failed (the error also ends the
    /// stream), cancelled or timed out as any run.
    pub(crate) async fn stream_query(
        self: Arc<Self>,
        run_id: String,
        sql: String,
        planned: Planned,
    ) -> (String, impl Stream<Item = Result<RecordBatch, Unfinished>> + Send + 'static) {
        let params = [("sql".to_string(), sql)].into_iter().collect();
        let run_id = if self.history.is_recent(&run_id) { new_run_id(Job::Sql) } else { run_id };
        let run = Run::new(run_id, Job::Sql, Trigger::FlightSql, params);
        let begun = self.begin(run).await;
        let run_id = begun.run.run_id.clone();
        let (rows_tx, mut rows_rx) = mpsc::channel::<RecordBatch>(2);
        let (done_tx, done_rx) = oneshot::channel::<Run>();
        let Planned { session, plan, .. } = planned;
        let work = async move {
            let mut stream = session.ctx.execute_logical_plan(plan).await?.execute_stream().await?;
            let mut rows = 0;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                if rows_tx.send(batch).await.is_err() {
                    return Err(RunError::ClientGone(rows));
                }
            }
            Ok(json!({"rows": rows}))
        };
        let runner = self.clone();
        tokio::spawn(async move {
            let run = runner.finish(begun, work).await;
            let _ = done_tx.send(run);
        });
        let rows = futures::stream::poll_fn(move |cx| rows_rx.poll_recv(cx)).map(Ok);
        // After the last row: whether the run ended well, so a client never
        // takes a stream cut short for the whole result.
        let end = futures::stream::once(async move {
            match done_rx.await {
                Ok(run) if run.status == RunStatus::Succeeded => None,
                Ok(run) => Some(Err(Unfinished(format!("run {} {}: {}", run.run_id, run.status, run.error)))),
                Err(_) => Some(Err(Unfinished("the run ended without a record".into()))),
            }
        })
        .filter_map(|end| async move { end });
        (run_id, rows.chain(end))
    }
}
