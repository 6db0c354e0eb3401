//! `stockyard sql`: plan locally, run on the cluster, print as it arrives.

use std::io::Write;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use stockyard_mongo::ScanOptions;

use crate::Failure;
use crate::cli::{Format, Remote};

/// Runs `sql` (one or more statements) on the scheduler and prints the rows
/// of the last statement to stdout.
pub async fn run(sql: &str, scheduler: &Remote, format: Format, mongo: ScanOptions) -> Result<(), Failure> {
    let client = crate::list::require_executors(scheduler).await?;
    let job_name = format!("sql: {}", sql.split_whitespace().collect::<Vec<_>>().join(" "));
    let job_name: String = job_name.chars().take(120).collect();
    let gateway = scheduler.gateway(Duration::from_secs(5)).await.map_err(Failure::new)?;
    let route =
        stockyard_plan::session::Route { scheduler: gateway.addr().to_string(), dialer: Some(gateway.dialer()) };
    let session = stockyard_plan::session::remote_context(&route, &job_name, Some(client), mongo)
        .await
        .map_err(|e| Failure::new(format!("cannot set up a session: {e}")))?;
    let ctx = session.ctx;
    stockyard_jobs::tables::register_history(&ctx)
        .map_err(|e| Failure::new(format!("cannot set up a session: {e}")))?;
    // A missing table may be a MongoDB collection the scheduler cannot see.
    let hint = |message: String| match &session.mongo_unavailable {
        Some(why) if message.contains("not found") => format!("{message} (MongoDB tables are unavailable: {why})"),
        _ => message,
    };
    let statements = stockyard_plan::session::statements(&ctx, sql).map_err(Failure::new)?;
    if statements.is_empty() {
        return Err(Failure::new("no SQL statement given"));
    }
    let last = statements.len() - 1;
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    for (i, statement) in statements.into_iter().enumerate() {
        spinner.set_message(format!("running statement {} of {}", i + 1, last + 1));
        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(|e| Failure::new(hint(format!("SQL error: {}", e.strip_backtrace()))))?;
        let frame = ctx.execute_logical_plan(plan).await.map_err(query_failed)?;
        if i < last {
            frame.collect().await.map_err(query_failed)?;
            continue;
        }
        let schema: SchemaRef = frame.schema().inner().clone();
        let mut stream = frame.execute_stream().await.map_err(query_failed)?;
        let mut out = Output::new(format, schema);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(query_failed)?;
            spinner.suspend(|| out.write(batch))?;
        }
        spinner.finish_and_clear();
        out.finish()?;
    }
    Ok(())
}

fn query_failed(e: datafusion::error::DataFusionError) -> Failure {
    Failure::new(format!("query failed: {}", tidy(&e.strip_backtrace())))
}

/// A task error as Ballista relays it, without the wrappers each layer adds
/// (`DataFusionError(Execution("…"))` and escaped quotes).
fn tidy(message: &str) -> String {
    let mut m = message.replace("\\\"", "\"");
    for (open, close) in [("DataFusionError(Execution(\"", "\"))"), ("DataFusionError(External(", "))")] {
        while let Some(i) = m.find(open) {
            if !m.ends_with(close) || i + open.len() > m.len() - close.len() {
                break;
            }
            m = format!("{}{}", &m[..i], &m[i + open.len()..m.len() - close.len()]);
        }
    }
    for noise in ["Arrow error: External error: ", "Execution error: "] {
        m = m.replace(noise, "");
    }
    m
}

/// Prints batches in the chosen format: CSV and JSON stream, a table waits
/// for all rows to align its columns.
struct Output {
    format: Format,
    schema: SchemaRef,
    table: Vec<RecordBatch>,
    csv_header: bool,
}

impl Output {
    fn new(format: Format, schema: SchemaRef) -> Self {
        Self { format, schema, table: Vec::new(), csv_header: true }
    }

    fn write(&mut self, batch: RecordBatch) -> Result<(), Failure> {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let io = |e: datafusion::arrow::error::ArrowError| Failure::new(format!("cannot print results: {e}"));
        match self.format {
            Format::Table => self.table.push(batch),
            Format::Csv => {
                let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(self.csv_header).build(&mut lock);
                w.write(&batch).map_err(io)?;
                self.csv_header = false;
            }
            Format::Json => {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut lock);
                w.write(&batch).map_err(io)?;
                w.finish().map_err(io)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        match self.format {
            Format::Table => {
                let table = datafusion::arrow::util::pretty::pretty_format_batches_with_schema(
                    self.schema.clone(),
                    &self.table,
                )
                .map_err(|e| Failure::new(format!("cannot print results: {e}")))?;
                let rows: usize = self.table.iter().map(|b| b.num_rows()).sum();
                writeln!(stdout, "{table}").ok();
                writeln!(stdout, "{rows} row{}", if rows == 1 { "" } else { "s" }).ok();
            }
            Format::Csv if self.csv_header => {
                // No rows: still print the header so scripts see the columns.
                let names: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(stdout, "{}", names.join(",")).ok();
            }
            Format::Csv | Format::Json => {}
        }
        stdout.flush().ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn task_errors_lose_their_wrappers() {
        let raw = r#"Arrow error: External error: Execution error: Job x1 failed: Task failed: DataFusionError(Execution("DataFusionError(External(MongoDB (mongodb://h) reading big failed: I/O error))"))"#;
        assert_eq!(super::tidy(raw), "Job x1 failed: Task failed: MongoDB (mongodb://h) reading big failed: I/O error");
    }
}
