//! An outer join onto a side that holds one row per key becomes a lookup: the
//! preserved side's batches pass through untouched, and the other side's columns
//! are gathered for them by one hash lookup per row.
//!
//! Every pass of a plan ends in one row per patient (or per patient and date), and
//! passes are joined by a left join on that key. DataFusion's hash join copies
//! every column of both sides into its output, and a left join that builds on the
//! preserved side copies them twice (into its table, then out of it): in `monthly`
//! at 1 M patients the two joins adding the event passes' 48 columns to the 914 K
//! population rows wrote 858 MB. Here only the looked-up columns are new arrays.
//!
//! Uniqueness is proven from the plan (an aggregate grouped by the key columns,
//! below projections, filters and repartitions), and checked again while the
//! lookup is built: a repeated key is an internal error, never a lost row.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, JoinType, NullEquality, Result as DFResult, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateOutputMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties, SendableRecordBatchStream};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt};

/// Replaces the hash joins that are lookups.
#[derive(Debug, Default)]
pub struct LookupJoins;

impl PhysicalOptimizerRule for LookupJoins {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            Ok(match LookupJoinExec::of(join) {
                Some(lookup) => Transformed::yes(Arc::new(lookup) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lookup_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A left (or right) join whose other side is unique on the join keys.
#[derive(Debug)]
pub struct LookupJoinExec {
    /// The side whose rows are all kept, in their order.
    preserved: Arc<dyn ExecutionPlan>,
    /// The side with one row per key.
    unique: Arc<dyn ExecutionPlan>,
    /// Whether the preserved side is the join's left (its columns come first).
    preserved_left: bool,
    /// Key column indices: (in preserved, in unique).
    keys: Vec<(usize, usize)>,
    /// The join's projection of its [left columns, right columns].
    projection: Option<Vec<usize>>,
    /// Whether partition i of the preserved side meets only partition i of the
    /// unique side (both hash-partitioned by the keys); else all of the unique side
    /// is one lookup, shared by every partition.
    per_partition: bool,
    properties: Arc<PlanProperties>,
    shared: Mutex<Option<SharedLookup>>,
    metrics: ExecutionPlanMetricsSet,
}

type SharedLookup = Shared<BoxFuture<'static, Result<Arc<Lookup>, Arc<DataFusionError>>>>;

/// Keys of up to two integer (or date) columns, as i64 each.
type Key = (i64, i64);

/// The unique side as one batch, and the row of each key.
struct Lookup {
    batch: RecordBatch,
    rows: HashMap<Key, u32, ahash::RandomState>,
}

/// The most rows of a right join's values for a lookup: a map of them fits in a
/// core's L2 cache.
const FEW_ROWS: usize = 1 << 16;

/// Whether a plan's statistics bound its rows by [`FEW_ROWS`].
fn few_rows(plan: &Arc<dyn ExecutionPlan>) -> bool {
    super::small_sides::row_count(plan).is_ok_and(|rows| rows.get_value().is_some_and(|&rows| rows <= FEW_ROWS))
}

impl LookupJoinExec {
    /// The lookup doing what `join` does, if it is one.
    fn of(join: &HashJoinExec) -> Option<LookupJoinExec> {
        if join.filter().is_some() || join.null_aware || join.null_equality() != NullEquality::NullEqualsNothing {
            return None;
        }
        let (preserved_left, per_partition): (bool, bool) = match (join.join_type(), join.partition_mode()) {
            (JoinType::Left, PartitionMode::Partitioned) => (true, true),
            // A right join is one DataFusion swapped to build on the values. Many
            // values looked up row by row cost more than its vectorised probe: the
            // antipsychotics study at 1 M patients and 25 dates took 59.5 s with
            // such lookups, 53.9 s without (50.8-53.9 s before any lookups). Few
            // values (a measure's per-patient values in a block of patients, probed
            // by every (patient, interval) row) stay in cache, and the preserved
            // side's columns are then not copied: measures at 1 M, 12.1-13.4 s as
            // hash joins, 10.7-13.0 s as lookups (interleaved).
            (JoinType::Right, PartitionMode::CollectLeft) if few_rows(join.left()) => (false, false),
            // The preserved side collected in one partition, looked up in the first.
            (JoinType::Left, PartitionMode::CollectLeft) => (true, false),
            _ => return None,
        };
        let mut keys = Vec::new();
        for (l, r) in join.on() {
            let (l, r) = (l.downcast_ref::<Column>()?.index(), r.downcast_ref::<Column>()?.index());
            let (lt, rt) = (join.left().schema().field(l).data_type().clone(), join.right().schema().field(r).data_type().clone());
            if lt != rt || !key_type(&lt) {
                return None;
            }
            keys.push(if preserved_left { (l, r) } else { (r, l) });
        }
        let (preserved, unique) = if preserved_left { (join.left(), join.right()) } else { (join.right(), join.left()) };
        let unique_keys: Vec<usize> = keys.iter().map(|k| k.1).collect();
        if keys.is_empty() || keys.len() > 2 || !unique_on(unique, &unique_keys) {
            return None;
        }
        let partitions = preserved.output_partitioning().partition_count();
        let unique_partitions = unique.output_partitioning().partition_count();
        if per_partition && unique_partitions != partitions {
            return None;
        }
        Some(LookupJoinExec {
            preserved: preserved.clone(),
            unique: unique.clone(),
            preserved_left,
            keys,
            projection: join.projection.as_ref().map(|p| p.to_vec()),
            per_partition,
            // The join's own: its partitions are the preserved side's, and it claims
            // no order the lookup does not keep.
            properties: join.properties().clone(),
            shared: Mutex::new(None),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn with_children(&self, preserved: Arc<dyn ExecutionPlan>, unique: Arc<dyn ExecutionPlan>) -> LookupJoinExec {
        LookupJoinExec {
            preserved,
            unique,
            keys: self.keys.clone(),
            projection: self.projection.clone(),
            properties: self.properties.clone(),
            shared: Mutex::new(None),
            metrics: ExecutionPlanMetricsSet::new(),
            ..*self
        }
    }

    /// Where output column `i` comes from: `Ok(preserved column)` or `Err(unique column)`.
    fn source(&self, i: usize) -> Result<usize, usize> {
        let i = self.projection.as_ref().map_or(i, |p| p[i]);
        let left = if self.preserved_left { &self.preserved } else { &self.unique };
        let lefts = left.schema().fields().len();
        match (i < lefts, self.preserved_left) {
            (true, true) => Ok(i),
            (true, false) => Err(i),
            (false, true) => Err(i - lefts),
            (false, false) => Ok(i - lefts),
        }
    }

    /// The lookup of the unique side's `partition`, or of all of it, built by the
    /// first caller.
    fn lookup(&self, partition: usize, ctx: Arc<TaskContext>, build_time: Time) -> DFResult<BoxFuture<'static, DFResult<Arc<Lookup>>>> {
        let keys: Vec<usize> = self.keys.iter().map(|k| k.1).collect();
        let schema = self.unique.schema();
        if self.per_partition {
            let stream = self.unique.execute(partition, ctx)?;
            return Ok(async move { build(&schema, &stream.try_collect::<Vec<_>>().await?, &keys, &build_time) }.boxed());
        }
        let mut shared = self.shared.lock().map_err(|_| DataFusionError::Internal("a lookup's lock was poisoned".into()))?;
        if shared.is_none() {
            // Each partition of the unique side read on its own task.
            let parts = (0..self.unique.output_partitioning().partition_count())
                .map(|p| Ok(tokio::spawn(self.unique.execute(p, ctx.clone())?.try_collect::<Vec<RecordBatch>>())))
                .collect::<DFResult<Vec<_>>>()?;
            let built = async move {
                let mut batches = Vec::new();
                for part in parts {
                    batches.extend(part.await.map_err(|e| DataFusionError::External(Box::new(e)))??);
                }
                build(&schema, &batches, &keys, &build_time)
            };
            *shared = Some(built.map(|r| r.map_err(Arc::new)).boxed().shared());
        }
        let future = shared.clone().expect("set above");
        Ok(async move { future.await.map_err(DataFusionError::Shared) }.boxed())
    }
}

/// Indexes the unique side's rows by key.
fn build(schema: &SchemaRef, batches: &[RecordBatch], keys: &[usize], build_time: &Time) -> DFResult<Arc<Lookup>> {
    let _timer = build_time.timer();
    let batch = concat_batches(schema, batches)?;
    let columns = key_columns(&batch, keys)?;
    let mut rows = HashMap::with_capacity_and_hasher(batch.num_rows(), ahash::RandomState::new());
    for row in 0..batch.num_rows() {
        // A null key matches nothing.
        let Some(key) = key_at(&columns, row) else { continue };
        if rows.insert(key, row as u32).is_some() {
            return internal_err!("a lookup join's side holds key {key:?} twice");
        }
    }
    Ok(Arc::new(Lookup { batch, rows }))
}

fn key_type(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::Date32)
}

/// The key columns of a batch as i64.
fn key_columns(batch: &RecordBatch, keys: &[usize]) -> DFResult<Vec<Int64Array>> {
    keys.iter()
        .map(|&k| {
            let column = batch.column(k);
            let column = if column.data_type() == &DataType::Date32 { cast(column, &DataType::Int32)? } else { column.clone() };
            let column = cast(&column, &DataType::Int64)?;
            Ok(column.as_any().downcast_ref::<Int64Array>().expect("cast to Int64").clone())
        })
        .collect()
}

fn key_at(columns: &[Int64Array], row: usize) -> Option<Key> {
    let value = |c: &Int64Array| c.is_valid(row).then(|| c.value(row));
    Some(match columns {
        [a] => (value(a)?, 0),
        [a, b] => (value(a)?, value(b)?),
        _ => unreachable!("one or two key columns"),
    })
}

/// Whether `plan`'s rows are unique on the columns `keys` (or on some of them).
fn unique_on(plan: &Arc<dyn ExecutionPlan>, keys: &[usize]) -> bool {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>() {
        let groups = agg.group_expr();
        return agg.mode().output_mode() == AggregateOutputMode::Final
            && groups.is_single()
            && !groups.expr().is_empty()
            && (0..groups.expr().len()).all(|g| keys.contains(&g));
    }
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        let inner: Vec<usize> = keys.iter().filter_map(|&k| p.expr()[k].expr.downcast_ref::<Column>().map(|c| c.index())).collect();
        return unique_on(p.input(), &inner);
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        let inner: Vec<usize> = match f.projection() {
            Some(p) => keys.iter().map(|&k| p[k]).collect(),
            None => keys.to_vec(),
        };
        return unique_on(f.input(), &inner);
    }
    if let Some(l) = plan.downcast_ref::<LookupJoinExec>() {
        // A lookup keeps the preserved side's rows one for one.
        let inner: Vec<usize> = keys.iter().filter_map(|&k| l.source(k).ok()).collect();
        return unique_on(&l.preserved, &inner);
    }
    // Nodes that only move, merge or reorder rows.
    let moves = plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<SortExec>().is_some();
    moves && unique_on(plan.children()[0], keys)
}

impl DisplayAs for LookupJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let on: Vec<String> = self.keys.iter().map(|(p, u)| format!("({}@{p}, {}@{u})", self.preserved.schema().field(*p).name(), self.unique.schema().field(*u).name())).collect();
        let side = if self.preserved_left { "left" } else { "right" };
        write!(f, "LookupJoinExec: preserved={side}, per_partition={}, on=[{}]", self.per_partition, on.join(", "))
    }
}

impl ExecutionPlan for LookupJoinExec {
    fn name(&self) -> &str {
        "LookupJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        if self.preserved_left { vec![&self.preserved, &self.unique] } else { vec![&self.unique, &self.preserved] }
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        if self.preserved_left { vec![true, false] } else { vec![false, true] }
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] = children.try_into().map_err(|_| DataFusionError::Internal("a lookup join has two children".into()))?;
        let (preserved, unique) = if self.preserved_left { (left, right) } else { (right, left) };
        Ok(Arc::new(self.with_children(preserved, unique)))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let schema = self.schema();
        if partition >= self.preserved.output_partitioning().partition_count() {
            // The join's other partitions, when the preserved side has one.
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::empty())));
        }
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let build_time = MetricBuilder::new(&self.metrics).subset_time("build_time", partition);
        let lookup = self.lookup(partition, ctx.clone(), build_time)?;
        let preserved = self.preserved.execute(partition, ctx)?;
        let keys: Vec<usize> = self.keys.iter().map(|k| k.0).collect();
        let sources: Vec<Result<usize, usize>> = (0..schema.fields().len()).map(|i| self.source(i)).collect();
        let out_schema = schema.clone();
        let stream = futures::stream::once(async move {
            let lookup = lookup.await?;
            Ok::<_, DataFusionError>(preserved.map(move |batch| {
                let batch = batch?;
                let _timer = baseline.elapsed_compute().timer();
                let out = probe(&lookup, &batch, &keys, &sources, &out_schema)?;
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

/// The output rows of one preserved batch.
fn probe(lookup: &Lookup, batch: &RecordBatch, keys: &[usize], sources: &[Result<usize, usize>], schema: &SchemaRef) -> DFResult<RecordBatch> {
    let columns = key_columns(batch, keys)?;
    let indices: UInt32Array = (0..batch.num_rows()).map(|row| key_at(&columns, row).and_then(|k| lookup.rows.get(&k).copied())).collect();
    let gathered = |u: usize| -> DFResult<ArrayRef> {
        let values = lookup.batch.column(u);
        Ok(if values.is_empty() { new_null_array(values.data_type(), batch.num_rows()) } else { take(values, &indices, None)? })
    };
    let out = sources
        .iter()
        .map(|s| match s {
            Ok(p) => Ok(batch.column(*p).clone()),
            Err(u) => gathered(*u),
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), out)?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Visits (a patient, a date, a text) with null patients and dates, and
    /// people (a patient, a name), some with no visits, one twice.
    fn tables(ctx: &SessionContext) {
        let visits = Arc::new(Schema::new(vec![Field::new("pid", DataType::Int64, true), Field::new("day", DataType::Date32, true), Field::new("what", DataType::Utf8, true)]));
        let part = |pids: Vec<Option<i64>>, days: Vec<Option<i32>>| {
            let whats: Vec<Option<String>> = pids.iter().map(|p| p.map(|p| format!("w{p}"))).collect();
            RecordBatch::try_new(visits.clone(), vec![Arc::new(Int64Array::from(pids)), Arc::new(Date32Array::from(days)), Arc::new(StringArray::from(whats))]).unwrap()
        };
        let v = MemTable::try_new(
            visits.clone(),
            vec![vec![part(vec![Some(1), Some(2), Some(2), None], vec![Some(10), Some(10), Some(11), Some(10)])], vec![part(vec![Some(3), Some(1), Some(2)], vec![None, Some(10), Some(12)])]],
        )
        .unwrap();
        ctx.register_table("visits", Arc::new(v)).unwrap();
        let people = Arc::new(Schema::new(vec![Field::new("pid", DataType::Int64, true), Field::new("day", DataType::Date32, true), Field::new("name", DataType::Utf8, true)]));
        let rows = |pids: Vec<Option<i64>>, days: Vec<Option<i32>>, names: Vec<&str>| {
            RecordBatch::try_new(people.clone(), vec![Arc::new(Int64Array::from(pids)), Arc::new(Date32Array::from(days)), Arc::new(StringArray::from(names))]).unwrap()
        };
        let p = MemTable::try_new(
            people.clone(),
            vec![
                vec![rows(vec![Some(1), Some(2), Some(4)], vec![Some(10), Some(11), Some(10)], vec!["a", "b", "d"])],
                vec![rows(vec![None, Some(2), Some(3)], vec![Some(10), Some(12), None], vec!["n", "b2", "c"])],
            ],
        )
        .unwrap();
        ctx.register_table("people", Arc::new(p)).unwrap();
    }

    /// Our session, and DataFusion's own with the same settings, joins built as
    /// tables (`collect`) or partitioned by key; left joins kept left (no `swap`)
    /// or swapped when DataFusion finds the left side larger.
    fn sessions(collect: bool, swap: bool) -> (SessionContext, SessionContext) {
        let tune = |mut config: SessionConfig| {
            let rows = if collect { 1 << 20 } else { 0 };
            config.options_mut().optimizer.hash_join_single_partition_threshold = rows;
            config.options_mut().optimizer.hash_join_single_partition_threshold_rows = rows;
            config.options_mut().optimizer.join_reordering = swap;
            config
        };
        let ours = crate::run::session(2);
        let state = ours.state();
        let ours = SessionContext::new_with_state(
            datafusion::execution::SessionStateBuilder::new_from_existing(state).with_config(tune(crate::run::session_config(2))).build(),
        );
        let plain = SessionContext::new_with_config(tune(crate::run::session_config(2)));
        tables(&ours);
        tables(&plain);
        (ours, plain)
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        let rows = pretty_format_batches(&collect(plan, ctx.task_ctx()).await.unwrap()).unwrap().to_string();
        (shown, rows)
    }

    /// The query looks up, and gives DataFusion's rows.
    async fn looked_up(sql: &str) {
        for collect in [false, true] {
            let (ours, plain) = sessions(collect, false);
            let (plan, rows) = run(&ours, sql).await;
            assert!(plan.contains("LookupJoinExec") && !plan.contains("HashJoinExec"), "collect={collect}\n{plan}");
            let (plain_plan, expected) = run(&plain, sql).await;
            assert!(plain_plan.contains("HashJoinExec"), "{plain_plan}");
            assert_eq!(rows, expected, "collect={collect}\n{plan}");
        }
    }

    #[tokio::test]
    async fn a_left_join_onto_per_key_values_is_a_lookup() {
        // Null keys on either side match nothing; people without visits keep nulls.
        looked_up(
            "SELECT p.pid, p.name, v.n, v.last FROM (SELECT * FROM people WHERE name <> 'z') p LEFT JOIN \
             (SELECT pid, count(*) AS n, max(what) AS last FROM visits GROUP BY pid) v ON p.pid = v.pid ORDER BY p.name",
        )
        .await;
    }

    #[tokio::test]
    async fn two_key_columns_and_a_filter_above_the_values() {
        looked_up(
            "SELECT p.name, v.n FROM (SELECT * FROM people WHERE name <> 'z') p LEFT JOIN \
             (SELECT pid, day, count(*) AS n FROM visits GROUP BY pid, day HAVING count(*) > 0) v ON p.pid = v.pid AND p.day = v.day ORDER BY p.name",
        )
        .await;
    }

    #[tokio::test]
    async fn no_values_at_all() {
        looked_up("SELECT p.name, v.n FROM (SELECT * FROM people WHERE name <> 'z') p LEFT JOIN (SELECT pid, count(*) AS n FROM visits WHERE pid > 100 GROUP BY pid) v ON p.pid = v.pid ORDER BY p.name").await;
    }

    #[tokio::test]
    async fn a_side_that_is_not_unique_stays_a_hash_join() {
        for sql in [
            // Several visits per patient.
            "SELECT p.name, v.what FROM people p LEFT JOIN visits v ON p.pid = v.pid",
            // Unique on (pid, day), joined on pid alone.
            "SELECT p.name, v.n FROM people p LEFT JOIN (SELECT pid, day, count(*) AS n FROM visits GROUP BY pid, day) v ON p.pid = v.pid",
            // An inner join: rows are dropped, not kept one for one.
            "SELECT p.name, v.n FROM people p JOIN (SELECT pid, count(*) AS n FROM visits GROUP BY pid) v ON p.pid = v.pid",
        ] {
            for collect in [false, true] {
                let (plan, _) = run(&sessions(collect, false).0, sql).await;
                assert!(!plan.contains("LookupJoinExec"), "{sql}\n{plan}");
            }
        }
    }

    #[tokio::test]
    async fn a_join_swapped_to_build_on_few_values_looks_them_up_only_when_collected() {
        let sql = "SELECT p.name, v.n, v.last FROM people p LEFT JOIN \
                   (SELECT pid, count(*) AS n, max(what) AS last FROM visits WHERE pid > 1 GROUP BY pid) v ON p.pid = v.pid";
        // Partitioned by key, a join DataFusion swapped stays a hash join.
        let none = "SELECT p.name, v.n FROM people p LEFT JOIN (SELECT pid, count(*) AS n FROM visits WHERE pid > 100 GROUP BY pid) v ON p.pid = v.pid";
        let (plan, _) = run(&sessions(false, true).0, none).await;
        assert!(plan.contains("join_type=Right") && !plan.contains("LookupJoinExec"), "{plan}");
        // Collected: DataFusion's left join, swapped by hand to build on the values
        // (as it does when they are the smaller side), becomes a lookup shared by
        // every partition of the people, with DataFusion's rows.
        let mut config = crate::run::session_config(2);
        config.options_mut().optimizer.hash_join_single_partition_threshold = 1 << 20;
        config.options_mut().optimizer.hash_join_single_partition_threshold_rows = 1 << 20;
        // A join with a dynamic filter cannot be swapped after planning.
        config.options_mut().optimizer.enable_join_dynamic_filter_pushdown = false;
        let plain = SessionContext::new_with_config(config);
        tables(&plain);
        // Planned afresh for each run: a plan's repartitions run once.
        let swapped_plan = || async {
            let planned = plain.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
            planned
                .transform_up(|node| {
                    let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
                    // The people collected become the probe side, the values collected.
                    let people = Arc::clone(join.left().downcast_ref::<CoalescePartitionsExec>().expect("collected").input());
                    let values: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(Arc::clone(join.right())));
                    let moved = datafusion::physical_plan::execution_plan::replace_children_if_necessary(Arc::clone(&node), vec![people, values])?;
                    let moved = moved.downcast_ref::<HashJoinExec>().expect("a hash join");
                    Ok(Transformed::yes(moved.swap_inputs(PartitionMode::CollectLeft)?))
                })
                .unwrap()
                .data
        };
        let swapped = swapped_plan().await;
        let shown = displayable(swapped.as_ref()).indent(false).to_string();
        assert!(shown.contains("mode=CollectLeft, join_type=Right"), "{shown}");
        let looked = LookupJoins.optimize(swapped_plan().await, &ConfigOptions::default()).unwrap();
        let shown = displayable(looked.as_ref()).indent(false).to_string();
        assert!(shown.contains("LookupJoinExec: preserved=right") && !shown.contains("HashJoinExec"), "{shown}");
        let sorted = |batches: Vec<RecordBatch>| {
            let mut lines: Vec<String> = pretty_format_batches(&batches).unwrap().to_string().lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        let expected = sorted(collect(swapped, plain.task_ctx()).await.unwrap());
        assert_eq!(sorted(collect(looked, plain.task_ctx()).await.unwrap()), expected);
        assert_eq!(expected.len(), 6 + 4, "six people, a header and three rules");
    }

    #[tokio::test]
    async fn a_repeated_key_is_an_error_not_a_lost_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("pid", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2, 1]))]).unwrap();
        let e = build(&schema, &[batch], &[0], &Time::new()).err().expect("a repeated key");
        assert!(e.to_string().contains("holds key (1, 0) twice"), "{e}");
    }
}
