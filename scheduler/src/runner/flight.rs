//! A Flight SQL query as a run: planned as a `sql` run plans (every
//! collection a table, the local-file rule), recorded in the history with
//! the trigger `flight-sql`, its rows streamed to the client as they come
//! and never kept.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
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
    /// Plans `sql`, which must be one statement, on a session of its own.
    pub(crate) async fn plan_query(&self, sql: &str) -> Result<Planned, RunError> {
        let (session, mut statements) = self.sql_session("flight-sql".into(), sql).await?;
        if statements.len() != 1 {
            return Err(RunError::NotOneStatement(statements.len()));
        }
        let plan = self.plan(&session, statements.remove(0)).await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Ok(Planned { session, plan, schema })
    }

    /// Runs `planned` (the query `sql`) as a run, recorded from now on;
    /// its rows come through the stream. The run ends with the stream:
    /// succeeded with the row count, or failed (the error also ends the
    /// stream), cancelled or timed out as any run.
    pub(crate) async fn stream_query(
        self: Arc<Self>,
        sql: String,
        planned: Planned,
    ) -> (String, impl Stream<Item = Result<RecordBatch, Unfinished>> + Send + 'static) {
        let params = [("sql".to_string(), sql)].into_iter().collect();
        let run = Run::new(new_run_id(Job::Sql), Job::Sql, Trigger::FlightSql, params);
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
