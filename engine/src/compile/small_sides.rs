//! Joins whose one side is a small table of known size (an earlier stage's values,
//! one row per patient of the population) are built once and probed where the
//! other side is read (`CollectLeft`), not both sides repartitioned by patient.
//!
//! DataFusion decides this by estimated size against one threshold (1 MiB). Raised
//! for every join, it also chose one thread to build the table of a large pass
//! whose size it underestimated (`monthly` at 1 M patients: 3.6 s to 4.6 s); a
//! stage's row count is exact, so only sides of exactly known size are collected here.
//! In `staged` at 1 M patients, the second stage's join then no longer moves all
//! 99 M event rows between threads (see `benches/RESULTS.md`).

use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result as DFResult;
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};

/// The largest build side collected, in rows: a stage has a few columns per
/// patient, so 2 Mi of them are tens of MiB.
const MAX_ROWS: usize = 2 << 20;

/// Runs after DataFusion's join selection and before it places repartitions. Two
/// small tables are left joined as DataFusion chose.
#[derive(Debug, Default)]
pub struct CollectSmallSides;

impl CollectSmallSides {
    /// DataFusion's physical optimizer rules with this one after join selection,
    /// then ours that rewrite the finished plan: `codes_first`, `shared_exprs`,
    /// `lookup_join`, `runs` and `gather_sort`.
    pub fn with_default_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        let at = rules.iter().position(|r| r.name() == "join_selection").map_or(0, |i| i + 1);
        rules.insert(at, Arc::new(CollectSmallSides));
        rules.push(Arc::new(super::codes_first::CodesFirst));
        rules.push(Arc::new(super::shared_exprs::ShareRepeated));
        rules.push(Arc::new(super::lookup_join::LookupJoins));
        rules.push(Arc::new(super::runs::OnePhaseRuns));
        rules.push(Arc::new(super::gather_sort::GatherSorts));
        rules
    }
}

/// Whether a side's row count is known exactly (a stage's size survives the
/// projections above its table; its byte size does not) and small.
fn exactly_small(plan: &Arc<dyn ExecutionPlan>) -> DFResult<bool> {
    Ok(matches!(row_count(plan)?, Precision::Exact(rows) if rows < MAX_ROWS))
}

/// A plan's row count, as its statistics know it.
pub(super) fn row_count(plan: &Arc<dyn ExecutionPlan>) -> DFResult<Precision<usize>> {
    Ok(StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new())?.num_rows)
}

impl PhysicalOptimizerRule for CollectSmallSides {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            if *join.partition_mode() != PartitionMode::Partitioned || !exactly_small(join.left())? || exactly_small(join.right())? {
                return Ok(Transformed::no(node));
            }
            let collected = join.builder().with_partition_mode(PartitionMode::CollectLeft).build()?;
            Ok(Transformed::yes(Arc::new(collected) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ehrfusion_collect_small_sides"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
