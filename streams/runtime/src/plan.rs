//! A stream's query as DataFusion plans run on one batch of rows. A
//! windowed query is split where DataFusion splits every aggregation:
//! the partial aggregate runs on the batch's rows (grouped by pane), a
//! `PartialReduce` aggregate merges its states into the stream's pane
//! states, and the final aggregate (with everything above it: projection,
//! `HAVING`, order) runs on the panes of one window at a time. Every
//! mergeable aggregate works this way, `count(DISTINCT …)` included.
//!
//! A window function above the aggregate (`avg(revenue) OVER (PARTITION BY
//! store_id ORDER BY window_start RANGE BETWEEN INTERVAL '15 minutes'
//! PRECEDING AND INTERVAL '1 minute' PRECEDING)`) sees earlier windows: the
//! part above the aggregate runs on the aggregate rows of the window and of
//! the earlier windows its frames reach, and keeps the window's own rows.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF, TableType};
use datafusion::optimizer::Optimizer;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::definition::Definition;
use crate::window::{self, PaneUdf, WindowSpec};

/// A session for stream queries: one partition (a batch is small and the
/// split below needs one final aggregate), no rules that merge the partial
/// and final aggregates or rewrite distinct aggregates into two levels, and
/// no dynamic filters.
pub fn session() -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(1);
    // A plan's nodes run again for every window and batch: a dynamic filter
    // (TopK's bound, a join's build keys) would carry one run's values into
    // the next and drop rows.
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    let logical =
        Optimizer::new().rules.into_iter().filter(|r| r.name() != "single_distinct_aggregation_to_group_by").collect();
    let physical = PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| {
            !matches!(r.name(), "CombinePartialFinalAggregate" | "aggregate_statistics" | "LimitedDistinctAggregation")
        })
        .collect();
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_optimizer_rules(logical)
        .with_physical_optimizer_rules(physical)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udf(ScalarUDF::from(PaneUdf::default()));
    ctx
}

/// The source table: the rows of the batch being run.
#[derive(Debug)]
pub struct BatchTable {
    schema: SchemaRef,
    rows: Mutex<Vec<RecordBatch>>,
}

impl BatchTable {
    fn new(schema: SchemaRef) -> Self {
        Self { schema, rows: Mutex::new(Vec::new()) }
    }

    /// Sets the rows the next plan reads.
    pub fn set(&self, rows: Vec<RecordBatch>) {
        *self.rows.lock().expect("batch table lock") = rows;
    }
}

#[async_trait]
impl TableProvider for BatchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows.lock().expect("batch table lock").clone();
        Ok(MemorySourceConfig::try_new_exec(&[rows], self.schema.clone(), projection.cloned())?)
    }
}

/// A stream's query, planned once; physical plans are made per batch.
pub struct Prepared {
    /// The session the query runs in, with the source and static tables registered.
    pub ctx: SessionContext,
    /// The source table, set to a batch's rows before each physical plan.
    pub table: Arc<BatchTable>,
    /// The query's logical plan.
    pub logical: LogicalPlan,
}

impl Prepared {
    /// Registers the source and static tables and plans the query.
    pub async fn new(definition: &Definition) -> std::result::Result<Self, String> {
        let ctx = session();
        crate::definition::register_statics(&ctx, definition).await?;
        let table = Arc::new(BatchTable::new(definition.source.schema.clone()));
        ctx.register_table(definition.source.table.as_str(), table.clone()).map_err(|e| e.strip_backtrace())?;
        let frame = ctx.sql(&definition.query).await.map_err(|e| e.strip_backtrace())?;
        Ok(Self { ctx, table, logical: frame.logical_plan().clone() })
    }

    /// The physical plan over `rows`.
    pub async fn physical(&self, rows: Vec<RecordBatch>) -> Result<Arc<dyn ExecutionPlan>> {
        self.table.set(rows);
        self.ctx.state().create_physical_plan(&self.logical).await
    }

    /// Runs `plan` to the end.
    pub async fn run(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Vec<RecordBatch>> {
        // Parts of one plan run once per window: nodes that keep what a run
        // saw (TopK's bound, a join's built side) start afresh each time.
        let plan = datafusion::physical_plan::execution_plan::reset_plan_states(plan)?;
        collect(plan, self.ctx.task_ctx()).await
    }
}

/// Plans the definition on no rows: errors in the query are found before
/// the stream starts.
pub async fn check(definition: &Definition) -> std::result::Result<(), String> {
    let prepared = Prepared::new(definition).await?;
    let plan = prepared.physical(vec![]).await.map_err(|e| e.strip_backtrace())?;
    if let Some(spec) = &definition.window {
        WindowPlan::split(plan, spec)?;
    }
    Ok(())
}

/// The parts of a windowed query's physical plan.
pub struct WindowPlan {
    root: Arc<dyn ExecutionPlan>,
    final_agg: Arc<dyn ExecutionPlan>,
    partial: Arc<dyn ExecutionPlan>,
    /// The index of the `window` column in the state schema.
    pub window_column: usize,
    /// Window functions over earlier windows, when the query has them.
    pub over: Option<Over>,
}

/// How far back a query's window functions look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Over {
    /// Earlier windows starting this many nanoseconds before a window are
    /// in its frames.
    pub horizon_ns: i64,
    /// The output column `window_start`, which says which window a row is of.
    start_column: usize,
}

/// The output column the window functions' windows are told apart by.
pub const WINDOW_START: &str = "window_start";

/// How far back the frames of the window functions between `root` and the
/// final aggregate reach, or `None` when there are none.
fn over(
    root: &Arc<dyn ExecutionPlan>,
    final_agg: &Arc<dyn ExecutionPlan>,
    spec: &WindowSpec,
) -> std::result::Result<Option<Over>, String> {
    use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
    use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
    let mut exprs = Vec::new();
    let mut limited = false;
    let mut node = root.clone();
    while !Arc::ptr_eq(&node, final_agg) {
        if let Some(w) = node.downcast_ref::<BoundedWindowAggExec>() {
            exprs.extend(w.window_expr().iter().cloned());
        } else if let Some(w) = node.downcast_ref::<WindowAggExec>() {
            exprs.extend(w.window_expr().iter().cloned());
        }
        limited |= node.fetch().is_some();
        let children = node.children();
        let Some(next) = children.iter().find(|c| contains(c, final_agg)) else { break };
        node = (*next).clone();
    }
    if exprs.is_empty() {
        return Ok(None);
    }
    let frames = "a window function over earlier windows";
    if limited {
        return Err(format!(
            "{frames} cannot be used with LIMIT (rank rows with row_number() OVER (PARTITION BY window_start …) instead)"
        ));
    }
    let Ok(start_column) = root.schema().index_of(WINDOW_START) else {
        return Err(format!("{frames} needs the window start in the output: SELECT window.start AS {WINDOW_START}, …"));
    };
    let mut horizon_ns = 0;
    for e in exprs {
        let by_window = e.partition_by().iter().any(|p| {
            p.downcast_ref::<datafusion::physical_expr::expressions::Column>().is_some_and(|c| c.name() == WINDOW_START)
        });
        if by_window {
            continue;
        }
        let frame = e.get_window_frame();
        let reach = match (&frame.units, &frame.start_bound) {
            (_, WindowFrameBound::Preceding(v)) if v.is_null() => None,
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => {
                v.to_string().parse::<i64>().ok().map(|n| n * spec.slide)
            }
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => window::duration_ns(v).ok(),
            (_, WindowFrameBound::CurrentRow) => Some(0),
            _ => None,
        };
        let ahead = matches!(&frame.end_bound, WindowFrameBound::Following(v) if v.is_null() || !v.to_string().starts_with('0'));
        match reach {
            Some(ns) if !ahead => horizon_ns = horizon_ns.max(ns),
            _ => {
                return Err(format!(
                    "{frames} needs a frame that ends at the window and reaches a fixed way back, such as OVER (… ORDER BY window_start ROWS BETWEEN 10 PRECEDING AND 1 PRECEDING) or RANGE BETWEEN INTERVAL '15 minutes' PRECEDING AND CURRENT ROW; not '{}'",
                    frame
                ));
            }
        }
    }
    Ok(Some(Over { horizon_ns, start_column }))
}

fn contains(plan: &Arc<dyn ExecutionPlan>, target: &Arc<dyn ExecutionPlan>) -> bool {
    Arc::ptr_eq(plan, target) || plan.children().into_iter().any(|c| contains(c, target))
}

fn aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<&AggregateExec> {
    plan.downcast_ref::<AggregateExec>()
}

impl WindowPlan {
    /// Finds the final and partial aggregates of `root`, a query over
    /// windows of `spec`.
    pub fn split(root: Arc<dyn ExecutionPlan>, spec: &WindowSpec) -> std::result::Result<Self, String> {
        fn find_final(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
            if aggregate(plan)
                .is_some_and(|a| matches!(a.mode(), AggregateMode::Final | AggregateMode::FinalPartitioned))
            {
                return Some(plan.clone());
            }
            plan.children().into_iter().find_map(find_final)
        }
        let cannot = "the query's aggregation cannot be split into window panes";
        let final_agg = find_final(&root).ok_or_else(|| format!("{cannot} (no final aggregate in the plan)"))?;
        let mut partial = final_agg.children()[0].clone();
        while !aggregate(&partial).is_some_and(|a| *a.mode() == AggregateMode::Partial) {
            let children = partial.children();
            if children.len() != 1 {
                return Err(format!("{cannot} (no partial aggregate under the final one)"));
            }
            partial = children[0].clone();
        }
        let schema = partial.schema();
        let windows: Vec<usize> =
            (0..schema.fields().len()).filter(|&i| schema.field(i).data_type() == &window::struct_type()).collect();
        let [window_column] = windows.as_slice() else {
            return Err(format!("{cannot} (the window is not one of the groups)"));
        };
        let over = over(&root, &final_agg, spec)?;
        Ok(Self { window_column: *window_column, root, final_agg, partial, over })
    }

    /// The schema of pane states.
    pub fn state_schema(&self) -> SchemaRef {
        self.partial.schema()
    }

    /// The partial aggregate of the batch's rows: states per pane and group.
    pub async fn partial(&self, prepared: &Prepared) -> Result<Vec<RecordBatch>> {
        prepared.run(self.partial.clone()).await
    }

    /// `states` merged into one state per pane and group.
    pub async fn reduce(&self, prepared: &Prepared, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let states = conform(states, &self.state_schema())?;
        if states.iter().all(|b| b.num_rows() == 0) {
            return Ok(vec![]);
        }
        let Some(f) = aggregate(&self.final_agg) else { return plan_err!("not an aggregate") };
        let input = MemorySourceConfig::try_new_exec(&[states], self.state_schema(), None)?;
        let reduce = AggregateExec::try_new(
            AggregateMode::PartialReduce,
            f.group_expr().clone(),
            f.aggr_expr().to_vec(),
            f.filter_expr().to_vec(),
            input,
            f.input_schema(),
        )?;
        let out = prepared.run(Arc::new(reduce)).await?;
        conform(out, &self.state_schema())
    }

    /// The query's rows for one window, from the states of its panes with
    /// their `window` column set to the window.
    pub async fn finish(&self, prepared: &Prepared, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let input =
            MemorySourceConfig::try_new_exec(&[conform(states, &self.state_schema())?], self.state_schema(), None)?;
        let final_agg = self.final_agg.clone().with_new_children(vec![input])?;
        prepared.run(self.above(final_agg)?).await
    }

    /// The final aggregate's rows for one window (what a window function
    /// over earlier windows reads of it).
    pub async fn aggregate(&self, prepared: &Prepared, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let input =
            MemorySourceConfig::try_new_exec(&[conform(states, &self.state_schema())?], self.state_schema(), None)?;
        prepared.run(self.final_agg.clone().with_new_children(vec![input])?).await
    }

    /// The query's rows for the window starting at `start`, from its
    /// aggregate rows and those of the earlier windows in its frames.
    pub async fn finish_over(
        &self,
        prepared: &Prepared,
        start: i64,
        rows: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let Some(over) = self.over else { return plan_err!("the query has no window function over windows") };
        let schema = self.final_agg.schema();
        let input = MemorySourceConfig::try_new_exec(&[conform(rows, &schema)?], schema, None)?;
        let out = prepared.run(self.above(input)?).await?;
        let mut kept = Vec::new();
        for b in out {
            let starts = arrow::compute::cast(
                b.column(over.start_column),
                &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
            )?;
            let starts = starts.as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().expect("cast");
            let mask: arrow::array::BooleanArray = starts.iter().map(|s| Some(s == Some(start))).collect();
            let b = arrow::compute::filter_record_batch(&b, &mask)?;
            if b.num_rows() > 0 {
                kept.push(b);
            }
        }
        Ok(kept)
    }

    /// The query above the final aggregate, on `input` in its place.
    fn above(&self, input: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let target = self.final_agg.clone();
        Ok(self
            .root
            .clone()
            .transform_down(|node| {
                Ok(if Arc::ptr_eq(&node, &target) {
                    Transformed::new(input.clone(), true, TreeNodeRecursion::Jump)
                } else {
                    Transformed::no(node)
                })
            })?
            .data)
    }
}

/// `batches` under `schema` (the same columns; nullability may differ
/// between the partial and reduced outputs).
pub fn conform(batches: Vec<RecordBatch>, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .map(|b| {
            if b.schema() == *schema {
                Ok(b)
            } else {
                RecordBatch::try_new_with_options(
                    schema.clone(),
                    b.columns().to_vec(),
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                )
                .map_err(Into::into)
            }
        })
        .collect()
}
