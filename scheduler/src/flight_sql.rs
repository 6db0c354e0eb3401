//! Arrow Flight SQL on the scheduler's gRPC port, behind the same token and
//! TLS as every call there: notebooks (ADBC), BI tools and Flight SQL
//! drivers query the cluster. A statement plans as a `sql` run plans; its
//! rows run as a recorded run (trigger `flight-sql`) and stream to the
//! client as the cluster makes them. The catalog calls answer what the
//! session sees: the `datafusion` catalog's `public` schema, every MongoDB
//! collection a table.
//!
//! A `FlightInfo`'s ticket names the run its query will be (the run id is
//! chosen when the info is asked for), so `CancelFlightInfo` (and the
//! older `CancelQuery`) can stop that run and its Ballista jobs, also
//! before its rows are asked for.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, CommandGetCatalogs,
    CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor, FlightEndpoint,
    FlightInfo, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::Scheduler;
use crate::leader::Leadership;
use crate::runner::JobRunner;

/// The catalog and schema every table is in.
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

/// The Flight SQL service.
#[derive(Clone)]
pub(crate) struct FlightSql {
    runner: Arc<JobRunner>,
    scheduler: Scheduler,
    leadership: Arc<Leadership>,
    catalog: Arc<stockyard_mongo::MongoCatalog>,
    info: Arc<SqlInfoData>,
    /// Runs cancelled before their rows were asked for (the latest
    /// [`EARLY`]): asked for later, they are refused.
    cancelled_early: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

/// Cancellations of runs not yet started that are remembered.
const EARLY: usize = 1000;

/// The action a Flight client cancels a `FlightInfo`'s query with.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

/// What a driver asks first: who answers, in which versions.
fn sql_info() -> SqlInfoData {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Stockyard");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    builder.append(SqlInfo::FlightSqlServerReadOnly, false);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    builder.append(SqlInfo::FlightSqlServerCancel, true);
    builder.build().expect("the server's SQL info builds")
}

impl FlightSql {
    /// The service, planning on `runner`'s sessions.
    pub(crate) fn new(
        runner: Arc<JobRunner>,
        scheduler: Scheduler,
        leadership: Arc<Leadership>,
        catalog: Arc<stockyard_mongo::MongoCatalog>,
    ) -> Self {
        Self { runner, scheduler, leadership, catalog, info: Arc::new(sql_info()), cancelled_early: Arc::default() }
    }

    /// Runs `sql` with `params` bound as run `run_id`, its rows as Flight data.
    async fn run(&self, run_id: String, sql: String, params: Option<RecordBatch>) -> Result<Response<Rows>, Status> {
        if self.cancelled_early.lock().expect("cancelled lock").contains(&run_id) {
            return Err(Status::cancelled(format!("run {run_id} was cancelled before it started")));
        }
        self.admit().await?;
        let planned = self.runner.plan_query(&sql, params.as_ref()).await.map_err(refused)?;
        let schema = planned.schema.clone();
        let (run_id, rows) = self.runner.clone().stream_query(run_id, sql, planned).await;
        tracing::info!(run = %run_id, "Flight SQL query started");
        Ok(encode(schema, rows.map_err(|e| FlightError::Tonic(Box::new(Status::aborted(e.0))))))
    }

    /// Plans `sql` with `params` for a `FlightInfo`: the ticket's handle,
    /// naming the run the query will be, and the schema of its rows.
    async fn plan_ticket(
        &self,
        sql: &str,
        params: Option<&RecordBatch>,
    ) -> Result<(prost::bytes::Bytes, Arc<Schema>), Status> {
        let planned = self.runner.plan_query(sql, params).await.map_err(refused)?;
        let run_id = crate::runner::new_run_id(stockyard_api::Job::Sql);
        Ok((handle::ticket(&run_id, sql, params)?, planned.schema))
    }

    /// Cancels the run a ticket names: `Cancelling` while it runs (it ends
    /// as cancelled, its Ballista jobs cancelled), `Cancelled` before it
    /// started (it never will), `NotCancellable` once it ended.
    async fn cancel(&self, ticket: &Ticket) -> Result<CancelStatus, Status> {
        let any =
            Any::decode(ticket.ticket.as_ref()).map_err(|_| Status::invalid_argument("not a ticket of this server"))?;
        let handle = if let Ok(Some(t)) = any.unpack::<TicketStatementQuery>() {
            t.statement_handle
        } else if let Ok(Some(q)) = any.unpack::<CommandPreparedStatementQuery>() {
            q.prepared_statement_handle
        } else {
            return Ok(CancelStatus::NotCancellable);
        };
        let (run_id, _, _) = handle::from_ticket(&handle)?;
        Ok(match self.runner.cancel(&run_id).await {
            Ok(()) => CancelStatus::Cancelling,
            Err(crate::runner::CancelError::NotRunning(..)) => CancelStatus::NotCancellable,
            Err(crate::runner::CancelError::Unknown(_)) => {
                let mut early = self.cancelled_early.lock().expect("cancelled lock");
                early.push_back(run_id);
                if early.len() > EARLY {
                    early.pop_front();
                }
                CancelStatus::Cancelled
            }
        })
    }

    /// Cancels every endpoint's run of `info`: the most advanced status.
    async fn cancel_info(&self, info: Option<FlightInfo>) -> Result<CancelStatus, Status> {
        let info = info.ok_or_else(|| Status::invalid_argument("CancelFlightInfo names no FlightInfo"))?;
        let mut status = CancelStatus::Unspecified;
        for ticket in info.endpoint.iter().filter_map(|e| e.ticket.as_ref()) {
            status = match (status, self.cancel(ticket).await?) {
                (CancelStatus::Cancelling, _) | (_, CancelStatus::Cancelling) => CancelStatus::Cancelling,
                (CancelStatus::Cancelled, _) | (_, CancelStatus::Cancelled) => CancelStatus::Cancelled,
                (_, s) => s,
            };
        }
        Ok(status)
    }

    /// Refuses queries a standby, or a cluster with no executor, cannot run.
    async fn admit(&self) -> Result<(), Status> {
        crate::ballista::admit(&self.scheduler, &self.leadership).await.map_err(|e| match e {
            crate::ballista::Refusal::NotLeading(why) => Status::unavailable(why),
            e @ crate::ballista::Refusal::NoExecutor(_) => Status::failed_precondition(e.to_string()),
            e @ crate::ballista::Refusal::Executors(_) => Status::internal(e.to_string()),
        })
    }
}

/// A `FlightInfo` for `command`, answered by this server, its rows of `schema`.
fn info_for(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor))
}

type Rows = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// `batches` of `schema` as Flight data.
fn encode(
    schema: Arc<Schema>,
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
) -> Response<Rows> {
    Response::new(Box::pin(FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from)))
}

/// One batch of `schema` as Flight data.
fn one<E>(schema: Arc<Schema>, batch: Result<RecordBatch, E>) -> Response<Rows>
where
    FlightError: From<E>,
    E: Send + 'static,
{
    encode(schema, futures::stream::once(async move { batch.map_err(FlightError::from) }))
}

/// `schema` as the IPC message Flight SQL carries schemas in.
fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let message: arrow_flight::IpcMessage = arrow_flight::SchemaAsIpc::new(schema, &Default::default())
        .try_into()
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?;
    Ok(message.0)
}

/// A prepared statement's handle: its SQL and, once the client sent them,
/// its parameters as an Arrow IPC stream. The service keeps nothing
/// between calls, so any scheduler process answers any call.
mod handle {
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::ipc::reader::StreamReader;
    use datafusion::arrow::ipc::writer::StreamWriter;
    use prost::bytes::Bytes;
    use tonic::Status;

    /// `sql` and `params` as a handle.
    pub(super) fn encode(sql: &str, params: Option<&RecordBatch>) -> Result<Bytes, Status> {
        let mut out = (sql.len() as u64).to_be_bytes().to_vec();
        out.extend_from_slice(sql.as_bytes());
        if let Some(batch) = params {
            let fail =
                |e: datafusion::arrow::error::ArrowError| Status::internal(format!("cannot keep the parameters: {e}"));
            let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).map_err(fail)?;
            writer.write(batch).map_err(fail)?;
            writer.finish().map_err(fail)?;
        }
        Ok(out.into())
    }

    /// A ticket: the run the query will be, then the handle of `sql` and
    /// `params`.
    pub(super) fn ticket(run_id: &str, sql: &str, params: Option<&RecordBatch>) -> Result<Bytes, Status> {
        let mut out = (run_id.len() as u64).to_be_bytes().to_vec();
        out.extend_from_slice(run_id.as_bytes());
        out.extend_from_slice(&encode(sql, params)?);
        Ok(out.into())
    }

    /// The run id, SQL and parameters of a ticket `ticket` made.
    pub(super) fn from_ticket(ticket: &[u8]) -> Result<(String, String, Option<RecordBatch>), Status> {
        let bad = || Status::invalid_argument("not a ticket of this server");
        let (len, rest) = ticket.split_at_checked(8).ok_or_else(bad)?;
        let len = u64::from_be_bytes(len.try_into().map_err(|_| bad())?) as usize;
        let (run_id, handle) = rest.split_at_checked(len).ok_or_else(bad)?;
        let run_id = String::from_utf8(run_id.to_vec()).map_err(|_| bad())?;
        let (sql, params) = decode(handle)?;
        Ok((run_id, sql, params))
    }

    /// The SQL and parameters of a handle `encode` made.
    pub(super) fn decode(handle: &[u8]) -> Result<(String, Option<RecordBatch>), Status> {
        let bad = || Status::invalid_argument("not a prepared statement handle of this server");
        let (len, rest) = handle.split_at_checked(8).ok_or_else(bad)?;
        let len = u64::from_be_bytes(len.try_into().map_err(|_| bad())?) as usize;
        let (sql, params) = rest.split_at_checked(len).ok_or_else(bad)?;
        let sql = String::from_utf8(sql.to_vec()).map_err(|_| bad())?;
        if params.is_empty() {
            return Ok((sql, None));
        }
        let mut reader = StreamReader::try_new(params, None).map_err(|_| bad())?;
        let batch = reader.next().transpose().map_err(|_| bad())?;
        Ok((sql, batch))
    }
}

/// A refused query, as the client reads it.
fn refused(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(stockyard_mask::text(&e.to_string()))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (ticket, schema) = self.plan_ticket(&query.query, None).await?;
        let ticket = TicketStatementQuery { statement_handle: ticket };
        Ok(Response::new(info_for(ticket, &schema, request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (run_id, sql, params) = handle::from_ticket(&ticket.statement_handle)?;
        self.run(run_id, sql, params).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let (dataset, parameters) = self.runner.parameters(&query.query).await.map_err(refused)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle::encode(&query.query, None)?,
            dataset_schema: schema_bytes(&dataset)?,
            parameter_schema: schema_bytes(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let (sql, _) = handle::decode(&query.prepared_statement_handle)?;
        let stream = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(stream)
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(format!("the parameters do not read: {e}")))?;
        let params = match batches.as_slice() {
            [one] if one.num_rows() == 1 => one,
            _ => return Err(Status::invalid_argument("give the parameters as one row (a batch of one row)")),
        };
        // Stateless: the new handle carries the statement and its values.
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle::encode(&sql, Some(params))?) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (sql, params) = handle::decode(&query.prepared_statement_handle)?;
        let (ticket, schema) = self.plan_ticket(&sql, params.as_ref()).await?;
        let ticket = CommandPreparedStatementQuery { prepared_statement_handle: ticket };
        Ok(Response::new(info_for(ticket, &schema, request.into_inner())?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (run_id, sql, params) = handle::from_ticket(&query.prepared_statement_handle)?;
        self.run(run_id, sql, params).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Nothing is kept for a prepared statement: nothing to close.
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        Ok(one(builder.schema(), builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        Ok(one(builder.schema(), builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let with_schema = query.include_schema;
        let mut builder = query.into_builder();
        let names = self.catalog.tables().await.map_err(|e| Status::unavailable(e.to_string()))?;
        for name in names {
            let schema = match with_schema {
                true => match self.catalog.schema(&name).await.map_err(|e| Status::unavailable(e.to_string()))? {
                    Some(schema) => schema.as_ref().clone(),
                    None => continue,
                },
                false => Schema::empty(),
            };
            builder.append(CATALOG, SCHEMA, &name, "TABLE", &schema).map_err(Status::from)?;
        }
        Ok(one(builder.schema(), builder.build()))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append("TABLE");
        Ok(one(builder.schema(), builder.build()))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.info).schema();
        Ok(Response::new(info_for(query, &schema, request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let builder = query.into_builder(&self.info);
        Ok(one(builder.schema(), builder.build()))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!("Stockyard's Flight SQL does not answer {}", message.type_url)))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info =
            FlightInfo::decode(query.info).map_err(|_| Status::invalid_argument("CancelQuery names no FlightInfo"))?;
        let result = self.cancel_info(Some(info)).await? as i32;
        Ok(ActionCancelQueryResult { result })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::invalid_argument(format!("Stockyard's Flight SQL has no action '{}'", action.r#type)));
        }
        let asked = CancelFlightInfoRequest::decode(action.body)
            .map_err(|_| Status::invalid_argument("the CancelFlightInfo request does not read"))?;
        let result = CancelFlightInfoResult::new(self.cancel_info(asked.info).await?);
        let body = arrow_flight::Result::new(result.encode_to_vec());
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(body)]))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
