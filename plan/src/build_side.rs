//! [`SmallTableBuilds`]: a physical optimizer rule that puts a small base
//! table, not the output of another join, on the build side of a hash join.
//!
//! DataFusion estimates a join's output from its inputs' statistics, and
//! for a fact table joined to a 40-row dimension it estimates 40 rows. The
//! next join in a star query then takes that "small" side (really millions
//! of rows) as its build side, and Ballista broadcasts it: one task reads
//! the whole fact stream while the others wait. A table scan's row count is
//! known; a join's is a guess. So when a join's build side is derived
//! (holds a join or an aggregate) and its probe side is a plain scan under
//! the single-partition threshold, the sides are swapped and the scan is
//! broadcast instead.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SmallTableBuilds;

/// `state` with [`SmallTableBuilds`] right after DataFusion's join
/// selection: before the exchanges and sorts are placed, so they are placed
/// for the joins as they end up.
pub fn install(state: SessionState) -> SessionState {
    let mut rules = state.physical_optimizers().to_vec();
    let at = rules.iter().position(|r| r.name() == "join_selection").map_or(rules.len(), |i| i + 1);
    rules.insert(at, Arc::new(SmallTableBuilds));
    SessionStateBuilder::new_from_existing(state).with_physical_optimizer_rules(rules).build()
}

impl PhysicalOptimizerRule for SmallTableBuilds {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let limit = config.optimizer.hash_join_single_partition_threshold_rows;
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            let wrong_way = *join.join_type() == JoinType::Inner
                && join.filter().is_none()
                && derived(join.left().as_ref())
                && !derived(join.right().as_ref())
                && small(join.right().as_ref(), limit);
            if !wrong_way {
                return Ok(Transformed::no(node));
            }
            // The scan builds, collected once; the join output streams.
            Ok(Transformed::yes(join.swap_inputs(PartitionMode::CollectLeft)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "small_table_builds"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `plan` holds a join or an aggregate, whose row count is an
/// estimate that can be far off.
fn derived(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || name.contains("Aggregate") || plan.children().iter().any(|c| derived(c.as_ref()))
}

/// Whether `plan` has at most `limit` rows by its statistics.
fn small(plan: &dyn ExecutionPlan, limit: usize) -> bool {
    plan.partition_statistics(None).is_ok_and(|s| s.num_rows.get_value().is_some_and(|rows| *rows <= limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn table(columns: &[(&str, Vec<String>)], numbers: Option<Vec<i64>>, parts: usize) -> Arc<MemTable> {
        let mut fields: Vec<Field> = columns.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, false)).collect();
        if numbers.is_some() {
            fields.push(Field::new("qty", DataType::Int64, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let rows = columns[0].1.len();
        let per = rows.div_ceil(parts);
        let batches = (0..parts)
            .map(|p| {
                let range = p * per..((p + 1) * per).min(rows);
                let mut arrays: Vec<Arc<dyn datafusion::arrow::array::Array>> =
                    columns.iter().map(|(_, v)| Arc::new(StringArray::from(v[range.clone()].to_vec())) as _).collect();
                if let Some(n) = &numbers {
                    arrays.push(Arc::new(Int64Array::from(n[range.clone()].to_vec())));
                }
                vec![RecordBatch::try_new(schema.clone(), arrays).unwrap()]
            })
            .collect();
        Arc::new(MemTable::try_new(schema, batches).unwrap())
    }

    /// A star query: facts joined to two dimensions, grouped.
    async fn star(with_rule: bool) -> (String, Arc<dyn ExecutionPlan>) {
        let mut config = SessionConfig::new().with_target_partitions(4);
        config.options_mut().optimizer.prefer_hash_join = true;
        let state = SessionStateBuilder::new().with_default_features().with_config(config).build();
        let ctx = SessionContext::new_with_state(if with_rule { install(state) } else { state });
        let n = 20_000;
        let facts = table(
            &[
                ("sku_id", (0..n).map(|i| format!("S{}", i % 500)).collect()),
                ("dc_id", (0..n).map(|i| format!("D{}", i % 8)).collect()),
            ],
            Some((0..n as i64).collect()),
            4,
        );
        let skus = table(
            &[
                ("sku_id", (0..500).map(|i| format!("S{i}")).collect()),
                ("name", (0..500).map(|i| format!("N{}", i % 7)).collect()),
            ],
            None,
            1,
        );
        let dcs = table(
            &[
                ("dc_id", (0..8).map(|i| format!("D{i}")).collect()),
                ("region", (0..8).map(|i| format!("R{}", i % 3)).collect()),
            ],
            None,
            1,
        );
        ctx.register_table("facts", facts).unwrap();
        ctx.register_table("skus", skus).unwrap();
        ctx.register_table("dcs", dcs).unwrap();
        let sql = "SELECT d.region, s.name, count(*) AS n, sum(f.qty) AS q FROM facts f \
                   JOIN dcs d ON d.dc_id = f.dc_id JOIN skus s ON s.sku_id = f.sku_id \
                   GROUP BY d.region, s.name ORDER BY d.region, s.name";
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let batches = frame.collect().await.unwrap();
        (pretty_format_batches(&batches).unwrap().to_string(), plan)
    }

    /// The join on `key` in `plan`.
    fn join_on<'a>(plan: &'a Arc<dyn ExecutionPlan>, key: &str) -> Option<&'a HashJoinExec> {
        if let Some(j) = plan.downcast_ref::<HashJoinExec>()
            && j.on().iter().any(|(l, _)| l.to_string().starts_with(key))
        {
            return Some(j);
        }
        plan.children().into_iter().find_map(|c| join_on(c, key))
    }

    #[tokio::test]
    async fn a_join_output_is_not_the_build_side_and_results_stay_the_same() {
        let (without, plan_without) = star(false).await;
        let (with, plan_with) = star(true).await;
        // Without the rule, DataFusion builds the second join from the first
        // join's output (estimated at 8 rows, really 20,000).
        let before = join_on(&plan_without, "sku_id").expect("a join on sku_id");
        assert!(derived(before.left().as_ref()), "the case the rule is for");
        let after = join_on(&plan_with, "sku_id").expect("a join on sku_id");
        assert!(!derived(after.left().as_ref()), "the dimension builds");
        assert!(derived(after.right().as_ref()));
        assert_eq!(*after.partition_mode(), PartitionMode::CollectLeft);
        // Same rows, grouped right across partitions.
        assert_eq!(with, without);
        assert!(with.contains("| R0     | N0   |"), "{with}");
    }
}
