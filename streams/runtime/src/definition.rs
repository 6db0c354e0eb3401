//! A stream's SQL file read into what the runtime runs: the Kafka source,
//! the sink, static tables, and the query with Spark's `window(...)`
//! written out as calls DataFusion plans (`window.start` becomes
//! `get_field(window(…), 'start')`). Everything a user can get wrong is
//! found here, before the stream starts, and named.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::SchemaProvider;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectNamePart, SetExpr, TableObject,
    visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use stockyard_stream_source::KafkaLocation;

use crate::window::{self, WindowSpec};

/// Options a Kafka source takes.
const SOURCE_OPTIONS: [&str; 6] = ["format", "event_time", "watermark", "start", "idle_timeout", "keep_late"];
/// Options a Redis sink takes.
const REDIS_OPTIONS: [&str; 3] = ["key", "keep", "ttl"];

/// What is wrong with a stream's SQL (exit status 2 in the CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream '{stream}': {reason}")]
pub struct DefinitionError {
    /// The stream's name.
    pub stream: String,
    /// What is wrong, in words for the user.
    pub reason: String,
}

/// Where a new stream starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the first offset of each partition.
    Earliest,
    /// From the end of each partition when the stream first runs: only records written since.
    Latest,
}

/// The Kafka source.
#[derive(Debug, Clone)]
pub struct Source {
    /// The table name the query reads.
    pub table: String,
    /// The topic, and the brokers to ask for it.
    pub location: KafkaLocation,
    /// The declared columns, which JSON values are read into.
    pub schema: SchemaRef,
    /// The index of the event-time column, when declared.
    pub event_time: Option<usize>,
    /// The allowed lateness.
    pub lateness: Duration,
    /// Where a new stream starts reading (the `start` option; latest unless set).
    pub start: Start,
    /// How long a partition may give no record before it stops holding the watermark back (30 s unless set).
    pub idle_timeout: Duration,
    /// Where late rows are kept (Parquet, as read), when they are.
    pub keep_late: Option<String>,
}

/// Where results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Parquet files under a directory or prefix (append: final windows).
    Parquet {
        /// A local directory or an object-store prefix (`s3://…`).
        location: String,
        /// Columns written as hive directories (`PARTITIONED BY`).
        partition_by: Vec<String>,
    },
    /// One Redis key (update: open and recent final windows).
    Redis {
        /// `redis://HOST:PORT[/DB]`, as written (it may hold a password).
        url: String,
        /// The key set at every batch; `stream:NAME` unless the `key` option names another.
        key: String,
        /// Final windows kept in the key, newest first (rows, for a stateless stream); 60 unless set.
        keep: usize,
        /// The key's expiry, set again at every write; `None`: it never expires.
        ttl: Option<Duration>,
    },
}

impl Sink {
    /// Where, for listings (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Sink::Parquet { location, .. } => stockyard_mask::uri(location),
            Sink::Redis { url, key, .. } => format!("{} key {key}", stockyard_mask::uri(url)),
        }
    }
}

/// What a stream may use beyond its own file.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Whether locations on this machine's disk are allowed.
    pub local_files: bool,
    /// Tables the query may join that the file does not declare (the
    /// scheduler's MongoDB collections), read once and refreshed.
    pub tables: Option<Arc<dyn SchemaProvider>>,
}

/// A stream, read and checked.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The stream's name, which its state-store keys are made from.
    pub name: String,
    /// The Kafka source the query reads.
    pub source: Source,
    /// The table the query inserts into.
    pub sink_table: String,
    /// Where the query's rows go.
    pub sink: Sink,
    /// `CREATE EXTERNAL TABLE` plans of static tables, run in the stream's
    /// session.
    pub statics: Vec<LogicalPlan>,
    /// The `SELECT`, with `window.start`/`window.end` written out.
    pub query: String,
    /// The window, for a windowed stream; `None` for a stateless one.
    pub window: Option<WindowSpec>,
    /// Undeclared tables the query may join.
    pub tables: Option<Arc<dyn SchemaProvider>>,
}

impl Definition {
    /// Reads `sql` as stream `name`.
    pub async fn parse(name: &str, sql: &str, env: &Environment) -> Result<Self, DefinitionError> {
        let local_files = env.local_files;
        let fail = |reason: String| DefinitionError { stream: name.to_string(), reason };
        // Stream names become state keys, and files in a file store.
        stockyard_plan::names::path_part("stream name", name).map_err(|e| fail(e.to_string()))?;
        let statements =
            DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| fail(format!("SQL error: {e}")))?;
        let ctx = crate::plan::session();
        let mut source: Option<Source> = None;
        let mut sinks: HashMap<String, (Sink, LogicalPlan)> = HashMap::new();
        let mut insert: Option<(String, ast::Query)> = None;
        for statement in statements {
            match statement {
                Statement::CreateExternalTable(create) => {
                    let plan = ctx
                        .state()
                        .statement_to_plan(Statement::CreateExternalTable(create))
                        .await
                        .map_err(|e| fail(e.strip_backtrace()))?;
                    let text = plan.clone();
                    let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(table)) = plan else {
                        return Err(fail("CREATE EXTERNAL TABLE planned into something else".into()));
                    };
                    let table_name = table.name.table().to_string();
                    // A password in a location is masked wherever it
                    // would be logged or shown.
                    stockyard_mask::register_uri(&table.location);
                    let options: HashMap<String, String> = table
                        .options
                        .iter()
                        .map(|(k, v)| (k.strip_prefix("format.").unwrap_or(k).to_ascii_lowercase(), v.clone()))
                        .collect();
                    let check_local = |location: &str| {
                        if !local_files && stockyard_plan::store::is_local(location) {
                            Err(fail(format!(
                                "table '{table_name}' names this machine's files ('{location}'); the scheduler allows that only with --allow-local-files"
                            )))
                        } else {
                            Ok(())
                        }
                    };
                    match table.file_type.to_ascii_uppercase().as_str() {
                        "KAFKA" => {
                            if source.is_some() {
                                return Err(fail("a stream reads one Kafka source".into()));
                            }
                            let schema: SchemaRef = table.schema.inner().clone();
                            let read = read_source(&table_name, &table.location, schema, &options).map_err(fail)?;
                            if let Some(late) = &read.keep_late {
                                check_local(late)?;
                            }
                            source = Some(read);
                        }
                        "REDIS" => {
                            if let Some(unknown) = options.keys().find(|k| !REDIS_OPTIONS.contains(&k.as_str())) {
                                return Err(fail(format!(
                                    "unknown option '{unknown}' for Redis sink '{table_name}' (known: {})",
                                    REDIS_OPTIONS.join(", ")
                                )));
                            }
                            if !table.location.starts_with("redis://") && !table.location.starts_with("rediss://") {
                                return Err(fail(format!(
                                    "Redis sink '{table_name}': LOCATION must be redis://HOST:PORT[/DB], not '{}'",
                                    stockyard_mask::uri(&table.location)
                                )));
                            }
                            let key = options.get("key").cloned().unwrap_or_else(|| format!("stream:{name}"));
                            let keep = match options.get("keep") {
                                Some(k) => k.parse().map_err(|_| {
                                    fail(format!("Redis sink '{table_name}': keep '{k}' is not a count of windows"))
                                })?,
                                None => 60,
                            };
                            let ttl = match options.get("ttl") {
                                Some(t) => Some(humantime::parse_duration(t).map_err(|e| {
                                    fail(format!("Redis sink '{table_name}': ttl '{t}' is not a duration ({e})"))
                                })?),
                                None => None,
                            };
                            let sink = Sink::Redis { url: table.location.clone(), key, keep, ttl };
                            sinks.insert(table_name, (sink, text));
                        }
                        "PARQUET" => {
                            check_local(&table.location)?;
                            let sink = Sink::Parquet {
                                location: table.location.clone(),
                                partition_by: table.table_partition_cols.clone(),
                            };
                            sinks.insert(table_name, (sink, text));
                        }
                        other => {
                            return Err(fail(format!(
                                "table '{table_name}' is STORED AS {other}; a stream reads KAFKA and writes PARQUET or REDIS"
                            )));
                        }
                    }
                }
                Statement::Statement(s) => match *s {
                    ast::Statement::Insert(i) => {
                        if insert.is_some() {
                            return Err(fail("a stream has one INSERT INTO … SELECT".into()));
                        }
                        let TableObject::TableName(target) = &i.table else {
                            return Err(fail("INSERT INTO must name a sink table".into()));
                        };
                        if !i.columns.is_empty() {
                            return Err(fail("INSERT INTO a stream's sink takes no column list".into()));
                        }
                        let target = last_part(target);
                        let query = i.source.ok_or_else(|| fail("INSERT INTO needs a SELECT".into()))?;
                        insert = Some((target, *query));
                    }
                    other => {
                        return Err(fail(format!(
                            "a stream file holds CREATE EXTERNAL TABLE statements and one INSERT INTO … SELECT, not '{other}'"
                        )));
                    }
                },
                other => {
                    return Err(fail(format!(
                        "a stream file holds CREATE EXTERNAL TABLE statements and one INSERT INTO … SELECT, not '{other}'"
                    )));
                }
            }
        }
        let source =
            source.ok_or_else(|| fail("no source: declare one with CREATE EXTERNAL TABLE … STORED AS KAFKA".into()))?;
        let (sink_table, mut query) = insert.ok_or_else(|| fail("no INSERT INTO … SELECT".into()))?;
        let (sink, _) = sinks.remove(&sink_table).ok_or_else(|| {
            fail(format!("INSERT INTO '{sink_table}': no such sink (declare it with CREATE EXTERNAL TABLE … STORED AS PARQUET or REDIS)"))
        })?;
        // Other Parquet tables are static tables the query may join.
        let statics: Vec<LogicalPlan> = sinks
            .into_values()
            .map(|(s, text)| match s {
                Sink::Parquet { .. } => Ok(text),
                Sink::Redis { .. } => Err(fail("a Redis table can only be the sink".into())),
            })
            .collect::<Result<_, _>>()?;
        let window = rewrite_window(&mut query, &source).map_err(fail)?;
        let definition = Definition {
            name: name.to_string(),
            source,
            sink_table,
            sink,
            statics,
            query: query.to_string(),
            window,
            tables: env.tables.clone(),
        };
        // Plans once on no rows: unknown columns, types and functions are
        // named now, not at the first batch.
        crate::plan::check(&definition).await.map_err(fail)?;
        Ok(definition)
    }
}

fn last_part(name: &ast::ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => i.value.clone(),
        _ => name.to_string(),
    }
}

fn read_source(
    table: &str,
    location: &str,
    schema: SchemaRef,
    options: &HashMap<String, String>,
) -> Result<Source, String> {
    if let Some(unknown) = options.keys().find(|k| !SOURCE_OPTIONS.contains(&k.as_str())) {
        return Err(format!(
            "unknown option '{unknown}' for Kafka source '{table}' (known: {})",
            SOURCE_OPTIONS.join(", ")
        ));
    }
    if let Some(f) = options.get("format").filter(|f| !f.eq_ignore_ascii_case("json")) {
        return Err(format!("Kafka source '{table}': format '{f}' is not supported (json)"));
    }
    let location: KafkaLocation =
        location.parse().map_err(|e: stockyard_stream_source::LocationError| e.to_string())?;
    if schema.fields().is_empty() {
        return Err(format!("Kafka source '{table}' declares no columns"));
    }
    if let Some(f) = schema.fields().iter().find(|f| !stockyard_stream_source::decode::supported(f.data_type())) {
        return Err(format!(
            "Kafka source '{table}': column '{}' has type {}, which JSON values are not read into (use VARCHAR, BOOLEAN, INT, BIGINT, DOUBLE or TIMESTAMP)",
            f.name(),
            f.data_type()
        ));
    }
    let event_time = match options.get("event_time") {
        Some(col) => {
            let i = schema
                .index_of(col)
                .map_err(|_| format!("Kafka source '{table}': event_time '{col}' is not one of its columns"))?;
            if !matches!(schema.field(i).data_type(), arrow::datatypes::DataType::Timestamp(_, _)) {
                return Err(format!(
                    "Kafka source '{table}': event_time '{col}' must be a TIMESTAMP column, not {}",
                    schema.field(i).data_type()
                ));
            }
            Some(i)
        }
        None => None,
    };
    let duration = |key: &str, default: Duration| -> Result<Duration, String> {
        match options.get(key) {
            Some(v) => humantime::parse_duration(v)
                .map_err(|e| format!("Kafka source '{table}': {key} '{v}' is not a duration ({e})")),
            None => Ok(default),
        }
    };
    let start = match options.get("start").map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("latest") => Start::Latest,
        Some("earliest") => Start::Earliest,
        Some(other) => return Err(format!("Kafka source '{table}': start '{other}' is not earliest or latest")),
    };
    Ok(Source {
        table: table.to_string(),
        location,
        schema,
        event_time,
        lateness: duration("watermark", Duration::ZERO)?,
        start,
        idle_timeout: duration("idle_timeout", Duration::from_secs(30))?,
        keep_late: options.get("keep_late").cloned(),
    })
}

/// Finds `window(...)` in the `GROUP BY` of the query or of a subquery in
/// its `FROM` (for window functions over the windows), checks it, and
/// writes `window`, `window.start` and `window.end` elsewhere as calls on it.
fn rewrite_window(query: &mut ast::Query, source: &Source) -> Result<Option<WindowSpec>, String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Ok(None);
    };
    let call = match window_call(select)? {
        Some(call) => call,
        None => match nested_window_call(select)? {
            Some(call) => {
                if aggregates(select, false) {
                    return Err("a query over a windowed subquery aggregates only with window functions (… OVER (…)); group in the subquery".into());
                }
                call
            }
            None => {
                let GroupByExpr::Expressions(groups, _) = &select.group_by else { unreachable!("checked") };
                if !groups.is_empty() || aggregates(select, true) {
                    return Err(
                        "a stream that aggregates needs GROUP BY window(ts, size[, slide]): without a window its groups never close".into(),
                    );
                }
                return Ok(None);
            }
        },
    };
    let FunctionArguments::List(list) = &call.args else {
        return Err("window(...) needs arguments: window(ts, size[, slide])".into());
    };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    if !(2..=3).contains(&args.len()) || args.len() != list.args.len() {
        return Err(format!("'{call}': write window(ts, size) or window(ts, size, slide)"));
    }
    let column = match args[0] {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()).unwrap_or_default(),
        other => return Err(format!("window(...) is on a column, not '{other}'")),
    };
    let Some(event_time) = source.event_time else {
        return Err(format!(
            "window(...) needs the source's event time: add OPTIONS ('event_time' '{column}') to '{}'",
            source.table
        ));
    };
    let declared = source.schema.field(event_time).name();
    if !column.eq_ignore_ascii_case(declared) {
        return Err(format!(
            "window(...) is on '{column}', but the event time of '{}' is '{declared}' (windows follow the event time)",
            source.table
        ));
    }
    let durations = args[1..].iter().map(|e| literal_duration(e)).collect::<Result<Vec<_>, _>>()?;
    let spec = WindowSpec::new(durations[0], *durations.get(1).unwrap_or(&durations[0]))?;
    // `window`, `window.start`, `window.end` elsewhere in the query.
    let call_text = call.to_string();
    let field = |name: &str| -> Expr {
        Parser::new(&GenericDialect {})
            .try_with_sql(&format!("get_field({call_text}, '{name}')"))
            .and_then(|mut p| p.parse_expr())
            .expect("a get_field call parses")
    };
    let whole: Expr = Expr::Function(call.clone());
    let _ = visit_expressions_mut(query, |e| {
        match e {
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2
                    && parts[0].value.eq_ignore_ascii_case(window::NAME)
                    && ["start", "end"].contains(&parts[1].value.to_ascii_lowercase().as_str()) =>
            {
                *e = field(&parts[1].value.to_ascii_lowercase());
            }
            Expr::Identifier(i) if i.value.eq_ignore_ascii_case(window::NAME) => *e = whole.clone(),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Some(spec))
}

/// The `window(...)` call in `select`'s `GROUP BY`, if there is one.
fn window_call(select: &ast::Select) -> Result<Option<ast::Function>, String> {
    let GroupByExpr::Expressions(groups, _) = &select.group_by else {
        return Err("GROUP BY ALL is not supported in a stream".into());
    };
    let calls: Vec<&ast::Function> = groups
        .iter()
        .filter_map(|g| match g {
            Expr::Function(f) if is_window(f) => Some(f),
            _ => None,
        })
        .collect();
    match calls.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        _ => Err("GROUP BY has more than one window(...)".into()),
    }
}

/// The `window(...)` call of a subquery in `select`'s `FROM`.
fn nested_window_call(select: &ast::Select) -> Result<Option<ast::Function>, String> {
    let factors =
        select.from.iter().flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    for factor in factors {
        if let ast::TableFactor::Derived { subquery, .. } = factor
            && let SetExpr::Select(inner) = subquery.body.as_ref()
            && let Some(call) = match window_call(inner)? {
                Some(call) => Some(call),
                None => nested_window_call(inner)?,
            }
        {
            return Ok(Some(call));
        }
    }
    Ok(None)
}

/// Whether `select` calls an aggregate function (`with_over`: counting
/// window functions too).
fn aggregates(select: &ast::Select, with_over: bool) -> bool {
    // Its own expressions, not those of subqueries in its FROM.
    let mut found = false;
    let mut check = |e: &Expr| {
        if let Expr::Function(f) = e
            && is_aggregate_name(f)
            && (with_over || f.over.is_none())
        {
            found = true;
        }
        ControlFlow::<()>::Continue(())
    };
    let _ = visit_expressions(&select.projection, &mut check);
    let _ = visit_expressions(&select.selection, &mut check);
    let _ = visit_expressions(&select.having, &mut check);
    found
}

fn is_window(f: &ast::Function) -> bool {
    f.name.0.len() == 1 && last_part(&f.name).eq_ignore_ascii_case(window::NAME)
}

fn is_aggregate_name(f: &ast::Function) -> bool {
    let name = last_part(&f.name).to_ascii_lowercase();
    datafusion::functions_aggregate::all_default_aggregate_functions()
        .iter()
        .any(|a| a.name() == name || a.aliases().iter().any(|x| x == &name))
}

/// A duration written `'5 minutes'` or `INTERVAL '5' MINUTE`, in ns.
fn literal_duration(e: &Expr) -> Result<i64, String> {
    let text = match e {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => return Err(format!("window duration {other} is not a string such as '5 minutes'")),
        },
        Expr::Interval(i) => {
            let value = match i.value.as_ref() {
                Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            match &i.leading_field {
                Some(unit) => format!("{value} {unit}").to_ascii_lowercase(),
                None => value,
            }
        }
        other => return Err(format!("window duration '{other}' is not a string such as '5 minutes'")),
    };
    window::duration_ns(&datafusion::common::ScalarValue::Utf8(Some(text)))
}

/// Registers the file's static tables and the undeclared tables the query
/// names, each read once into memory: a dimension is read when the stream
/// opens and again when it is refreshed, not at every batch.
pub async fn register_statics(ctx: &SessionContext, definition: &Definition) -> Result<(), String> {
    for plan in &definition.statics {
        ctx.execute_logical_plan(plan.clone()).await.map_err(|e| e.strip_backtrace())?;
    }
    for name in ctx.catalog("datafusion").and_then(|c| c.schema("public")).map(|s| s.table_names()).unwrap_or_default()
    {
        snapshot(ctx, &name).await?;
    }
    let Some(tables) = &definition.tables else { return Ok(()) };
    let statement = ctx
        .state()
        .sql_to_statement(&definition.query, &datafusion::config::Dialect::Generic)
        .map_err(|e| e.strip_backtrace())?;
    let references = ctx.state().resolve_table_references(&statement).map_err(|e| e.strip_backtrace())?;
    for r in references {
        let name = r.table().to_string();
        if name == definition.source.table || ctx.table_exist(name.as_str()).unwrap_or(false) {
            continue;
        }
        if let Some(provider) = tables.table(&name).await.map_err(|e| e.strip_backtrace())? {
            ctx.register_table(name.as_str(), provider).map_err(|e| e.strip_backtrace())?;
            snapshot(ctx, &name).await?;
        }
    }
    Ok(())
}

/// Replaces table `name` by its rows now.
async fn snapshot(ctx: &SessionContext, name: &str) -> Result<(), String> {
    let frame = ctx.table(name).await.map_err(|e| e.strip_backtrace())?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let rows = frame.collect().await.map_err(|e| format!("reading static table '{name}': {}", e.strip_backtrace()))?;
    let table = datafusion::datasource::MemTable::try_new(schema, vec![rows]).map_err(|e| e.strip_backtrace())?;
    ctx.deregister_table(name).map_err(|e| e.strip_backtrace())?;
    ctx.register_table(name, Arc::new(table)).map_err(|e| e.strip_backtrace())?;
    Ok(())
}
