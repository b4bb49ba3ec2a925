//! The final sort of a plan, as one gather: all rows collected, their order found
//! from the sort keys alone, and each output column built once from it.
//!
//! DataFusion sorts each partition (a sort per batch, then a merge of the sorted
//! batches) and merges the partitions again, copying every column three times. The
//! last sort of a dataset holds every column of the output, one row per patient:
//! in `monthly` at 1 M patients, 73 columns of 914 K rows, and its two merges took
//! 0.6 s of CPU. Here the keys (the patient id) are sorted, and every other column
//! is copied once, in batches of [`OUTPUT_ROWS`], as the writer's files are cut.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::{SortColumn, concat, interleave, lexsort_to_indices};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DFResult};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};

/// Rows per output batch: those of a batch of an output file, written uncopied.
pub const OUTPUT_ROWS: usize = crate::output::FILE_BATCH_ROWS;

/// Replaces a plan's last sort (a merge of sorted partitions, or a sort of one
/// partition, below projections).
#[derive(Debug, Default)]
pub struct GatherSorts;

impl PhysicalOptimizerRule for GatherSorts {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        // Only the root (a merge, and projections, above a sort): a sort below
        // it feeds an operator that may want its batches sooner or smaller.
        let mut node = &plan;
        let mut projections = Vec::new();
        if let Some(merge) = plan.downcast_ref::<SortPreservingMergeExec>() {
            if merge.fetch().is_some() {
                return Ok(plan);
            }
            node = merge.input();
        }
        while let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            projections.push(projection.expr().to_vec());
            node = projection.input();
        }
        let Some(sort) = node.downcast_ref::<SortExec>() else { return Ok(plan) };
        let partitions = sort.properties().output_partitioning().partition_count();
        let is_last = plan.downcast_ref::<SortPreservingMergeExec>().is_some() || partitions == 1;
        if sort.fetch().is_some() || !is_last {
            return Ok(plan);
        }
        let properties = Arc::new(sort.properties().as_ref().clone().with_partitioning(Partitioning::UnknownPartitioning(1)));
        let mut gathered: Arc<dyn ExecutionPlan> = Arc::new(GatherSortExec::new(sort.input().clone(), sort.expr().clone(), properties));
        for exprs in projections.into_iter().rev() {
            gathered = Arc::new(ProjectionExec::try_new(exprs, gathered)?);
        }
        Ok(gathered)
    }

    fn name(&self) -> &str {
        "gather_sorts"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// All partitions of its input, sorted, as one partition.
#[derive(Debug)]
pub struct GatherSortExec {
    input: Arc<dyn ExecutionPlan>,
    order: LexOrdering,
    /// The replaced sort's, in one partition.
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl GatherSortExec {
    fn new(input: Arc<dyn ExecutionPlan>, order: LexOrdering, properties: Arc<PlanProperties>) -> GatherSortExec {
        GatherSortExec { input, order, properties, metrics: ExecutionPlanMetricsSet::new() }
    }
}

impl DisplayAs for GatherSortExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GatherSortExec: expr=[{}]", self.order)
    }
}

impl ExecutionPlan for GatherSortExec {
    fn name(&self) -> &str {
        "GatherSortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>) -> DFResult<TreeNodeRecursion> {
        for e in self.order.iter() {
            if f(&e.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("a gather sort has one child".into()));
        }
        Ok(Arc::new(GatherSortExec::new(children.remove(0), self.order.clone(), self.properties.clone())))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("a gather sort has one partition, not {partition}")));
        }
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        // Every input partition read on its own task, as a merge would read them.
        let inputs = (0..self.input.output_partitioning().partition_count())
            .map(|p| {
                let stream = self.input.execute(p, ctx.clone())?;
                Ok(tokio::spawn(stream.try_collect::<Vec<RecordBatch>>()))
            })
            .collect::<DFResult<Vec<_>>>()?;
        let order = self.order.clone();
        let schema = self.schema();
        let stream = futures::stream::once(async move {
            let mut batches = Vec::new();
            for input in inputs {
                let collected = input.await.map_err(|e| DataFusionError::External(Box::new(e)))??;
                batches.extend(collected.into_iter().filter(|b| b.num_rows() > 0));
            }
            let rows = {
                let _timer = baseline.elapsed_compute().timer();
                sorted_rows(&batches, &order)?
            };
            let starts = (0..rows.len()).step_by(OUTPUT_ROWS);
            Ok::<_, DataFusionError>(futures::stream::iter(starts).map(move |start| {
                let _timer = baseline.elapsed_compute().timer();
                let chunk = &rows[start..rows.len().min(start + OUTPUT_ROWS)];
                let columns = (0..batches[0].num_columns())
                    .map(|c| {
                        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
                        gather(&arrays, chunk)
                    })
                    .collect::<DFResult<Vec<ArrayRef>>>()?;
                let out = RecordBatch::try_new(batches[0].schema(), columns)?;
                baseline.record_output(out.num_rows());
                Ok(out)
            }))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The rows `at` ((array, row) pairs) of one column's arrays, in that order.
/// Booleans are gathered bit by bit here: arrow's `interleave` takes them through
/// its generic path, a copy call per row (`monthly`'s 24 flags cost it three times
/// its 48 integer columns).
fn gather(arrays: &[&dyn Array], at: &[(usize, usize)]) -> DFResult<ArrayRef> {
    let booleans: Option<Vec<&BooleanArray>> = arrays.iter().map(|a| a.as_boolean_opt()).collect();
    let Some(booleans) = booleans else { return Ok(interleave(arrays, at)?) };
    let values = BooleanBuffer::collect_bool(at.len(), |i| booleans[at[i].0].values().value(at[i].1));
    let nulls = booleans
        .iter()
        .any(|a| a.null_count() > 0)
        .then(|| NullBuffer::new(BooleanBuffer::collect_bool(at.len(), |i| booleans[at[i].0].is_valid(at[i].1))));
    Ok(Arc::new(BooleanArray::new(values, nulls)))
}

/// Every row as (batch, row), in the order of `order`.
fn sorted_rows(batches: &[RecordBatch], order: &LexOrdering) -> DFResult<Vec<(usize, usize)>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let keys = order
        .iter()
        .map(|e| {
            let parts = batches.iter().map(|b| Ok(e.evaluate_to_sort_column(b)?.values)).collect::<DFResult<Vec<ArrayRef>>>()?;
            let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(SortColumn { values: concat(&parts)?, options: Some(e.options) })
        })
        .collect::<DFResult<Vec<_>>>()?;
    let positions: Vec<(usize, usize)> = batches.iter().enumerate().flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r))).collect();
    Ok(lexsort_to_indices(&keys, None)?.values().iter().map(|&i| positions[i as usize]).collect())
}

#[cfg(test)]
mod tests {
    use arrow::array::{BooleanArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// Three partitions of (n, text, flag), with nulls and repeats of n, more rows
    /// than one output batch.
    fn register(ctx: &SessionContext) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("f", DataType::Boolean, true),
        ]));
        let part = |from: i64, rows: i64| {
            let n: Int64Array = (from..from + rows).map(|i| (i % 11 != 0).then_some((i * 7919) % 5003)).collect();
            let t: StringArray = (from..from + rows).map(|i| (i % 13 != 0).then(|| format!("t{}", i % 97))).collect();
            let f: BooleanArray = (from..from + rows).map(|i| (i % 17 != 0).then_some(i % 3 == 0)).collect();
            RecordBatch::try_new(schema.clone(), vec![Arc::new(n), Arc::new(t), Arc::new(f)]).unwrap()
        };
        let rows = OUTPUT_ROWS as i64;
        let table = MemTable::try_new(schema.clone(), vec![vec![part(0, rows), part(rows, 5)], vec![], vec![part(rows + 5, rows / 2)]]).unwrap();
        ctx.register_table("things", Arc::new(table)).unwrap();
    }

    async fn sorted(ctx: &SessionContext, sql: &str) -> (String, Vec<RecordBatch>) {
        register(ctx);
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        (shown, collect(plan, ctx.task_ctx()).await.unwrap())
    }

    #[tokio::test]
    async fn the_last_sort_is_one_gather_with_datafusions_order() {
        for sql in [
            "SELECT n, t FROM things ORDER BY n, t",
            "SELECT n, t, f FROM things ORDER BY n DESC NULLS LAST, t NULLS FIRST, f",
            "SELECT f, n, t FROM things ORDER BY f, n, t",
            "SELECT t, n FROM things WHERE n > 4000 ORDER BY t DESC, n",
            "SELECT n, t FROM things WHERE n < 0 ORDER BY n",
        ] {
            let (plan, ours) = sorted(&crate::run::session(2), sql).await;
            assert!(plan.lines().any(|l| l.starts_with("GatherSortExec") || l.starts_with("  GatherSortExec")), "{sql}\n{plan}");
            assert!(ours.iter().all(|b| b.num_rows() <= OUTPUT_ROWS), "{sql}");
            let (plain, expected) = sorted(&SessionContext::new_with_config(crate::run::session_config(2)), sql).await;
            assert!(!plain.contains("GatherSortExec"), "{plain}");
            // The keys cover every column, so the order is the same row for row.
            assert_eq!(pretty_format_batches(&ours).unwrap().to_string(), pretty_format_batches(&expected).unwrap().to_string(), "{sql}");
        }
    }

    #[tokio::test]
    async fn a_sort_below_the_root_or_with_a_limit_stays() {
        for sql in ["SELECT n, count(*) FROM (SELECT n FROM things ORDER BY n LIMIT 10) GROUP BY n", "SELECT n FROM things ORDER BY n LIMIT 5"] {
            let (plan, _) = sorted(&crate::run::session(2), sql).await;
            assert!(!plan.contains("GatherSortExec"), "{sql}\n{plan}");
        }
    }
}
