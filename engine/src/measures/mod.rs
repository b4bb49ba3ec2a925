//! Computing measures: for each group of measures sharing a denominator and intervals,
//! one plan over all its intervals gives the population's (patient, interval) rows
//! (see [`crate::compile::intervals`]); they are summed per interval and grouping set,
//! then laid out as ehrQL lays out its results, with disclosure control applied.

use std::sync::Arc;

use arrow::array::*;
use arrow::compute::{cast, concat_batches, interleave};
use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::functions_aggregate::expr_fn::{min, sum};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col};
use datafusion::prelude::SessionContext;

pub mod file;

use crate::compile::intervals::{self, Intervals};
use crate::compile::{Planner, Providers};
use crate::err;
use crate::error::Result;
use crate::model::measures::group_variable;
use crate::model::{MeasureGroup, MeasuresModel, ValueType};
use crate::output::format::column_text;
use crate::output::{ColumnInfo, Destination, TableWriter, commit};
use crate::run::Prepared;
use crate::source::{self, Tables, blocks::PatientRange};

/// Measures checked and compiled, ready to run.
pub struct PreparedMeasures {
    pub model: MeasuresModel,
    pub groups: Vec<PreparedGroup>,
    /// Tables read from the data, in first-use order.
    pub tables: Vec<String>,
    /// The group columns' types, read from the measures' own nodes (a group's
    /// prepared model may be rewritten, its nodes renumbered).
    group_columns: Vec<ColumnInfo>,
}

pub struct PreparedGroup {
    pub group: MeasureGroup,
    pub prepared: Prepared,
    pub intervals: Intervals,
}

impl PreparedMeasures {
    pub fn new(model: MeasuresModel) -> Result<PreparedMeasures> {
        let mut groups = Vec::new();
        let mut tables: Vec<String> = Vec::new();
        for group in model.groups()? {
            let prepared = Prepared::for_measures(group.model.clone())?;
            for t in &prepared.analysis.tables {
                if !tables.contains(t) {
                    tables.push(t.clone());
                }
            }
            let intervals = Intervals::new(&group.intervals);
            groups.push(PreparedGroup { group, prepared, intervals });
        }
        let group_columns = match groups.first() {
            Some(g) => {
                let infos = crate::model::validate::validate(&g.group.model)?;
                model.group_columns().iter().map(|(name, id)| ColumnInfo::of(&g.group.model, &infos, name, *id)).collect()
            }
            None => Vec::new(),
        };
        Ok(PreparedMeasures { model, groups, tables, group_columns })
    }

    /// The dataset dummy tables are generated for (see [`MeasuresModel::dummy_model`]).
    pub fn dummy_dataset(&self) -> Result<Prepared> {
        Prepared::new(self.model.dummy_model()?)
    }

    /// See [`Prepared::patients_from_all_tables`].
    pub fn consider_patients_from_all_tables(&mut self) {
        for g in &mut self.groups {
            g.prepared.patients_from_all_tables = true;
        }
    }

    /// Blocks of patients for data in `dir`, each about `block_rows` input rows once
    /// repeated: rows repeat once per interval where they cannot be bucketed, so a
    /// block holds that many times fewer input rows.
    pub fn blocks(&self, dir: &std::path::Path, block_rows: u64) -> Result<Vec<PatientRange>> {
        let most = self.groups.iter().map(|g| g.intervals.len() as u64).max().unwrap_or(1);
        let rows = (block_rows / most.max(1)).max(10_000);
        source::blocks::patient_blocks(dir, &self.groups[0].prepared.model.schema, &self.tables, rows)
    }

    pub fn open_tables(&self, tables: Tables, threads: usize) -> Result<Providers> {
        source::open(&self.groups[0].prepared.model, &self.tables, tables, threads)
    }

    fn count_columns() -> Vec<ColumnInfo> {
        vec![
            ColumnInfo::plain("interval_start", ValueType::Date, false),
            ColumnInfo::plain("interval_end", ValueType::Date, false),
            ColumnInfo::plain("ratio", ValueType::Float, true),
            ColumnInfo::plain("numerator", ValueType::Int, true),
            ColumnInfo::plain("denominator", ValueType::Int, true),
        ]
    }

    /// The columns of the combined results: `measure`, the interval, the counts,
    /// then every group column in first-use order.
    pub fn combined_columns(&self) -> Vec<ColumnInfo> {
        let names = self.model.measures.iter().map(|m| m.name.clone()).collect();
        let measure = ColumnInfo { categories: Some(names), ..ColumnInfo::plain("measure", ValueType::Str, false) };
        let mut out = vec![measure];
        out.extend(Self::count_columns());
        out.extend(self.group_columns.iter().cloned());
        out
    }

    /// The columns of one measure's own file: no `measure`, only its groups, in the
    /// order the measure lists them.
    pub fn measure_columns(&self, measure: usize) -> Vec<ColumnInfo> {
        let mut out = Self::count_columns();
        for name in self.model.measures[measure].group_by.keys() {
            out.extend(self.group_columns.iter().find(|c| c.name == *name).cloned());
        }
        out
    }

    /// `explain`: how each group's passes read their tables, then its plans.
    /// The plans of each group of measures; with `cluster` (partitions per stage),
    /// each followed by the stages a Ballista cluster would run it in.
    pub async fn explain(&self, ctx: &SessionContext, cluster: Option<usize>) -> Result<String> {
        let providers = self.open_tables(Tables::Empty, 1)?;
        let mut out = String::new();
        for (i, g) in self.groups.iter().enumerate().filter(|(_, g)| !g.intervals.is_empty()) {
            let names: Vec<&str> = g.group.measures.iter().map(|m| self.model.measures[m.measure].name.as_str()).collect();
            out.push_str(&format!("== measures {} over {} intervals, in one pass ==\n", names.join(", "), g.intervals.len()));
            let mut planner = Planner::new(&g.prepared.analysis, &providers).for_intervals(g.intervals.clone()).runs_by_patient();
            for line in planner.describe_passes()? {
                out.push_str(&format!("  {line}\n"));
            }
            for _ in 0..planner.stages_to_materialise() {
                let plan = planner.next_stage_plan()?;
                planner.push_stage(crate::compile::plan::placeholder(&plan)?);
            }
            let plan = planner.measure_rows_plan()?;
            out.push_str(&format!("== group {i}: (patient, interval) rows ==\n{}\n\n", ctx.state().optimize(&plan)?.display_indent()));
            if let Some(partitions) = cluster {
                out.push_str(&format!("{}\n", crate::cluster::explain(&plan, partitions).await?));
            }
        }
        Ok(out)
    }
}

/// Run every measure over the blocks of patients; the combined results (columns as
/// [`PreparedMeasures::combined_columns`]) in ehrQL's order, with disclosure control
/// applied if the definition keeps it on.
pub async fn execute(ctx: &SessionContext, pm: &PreparedMeasures, providers: &Providers, blocks: &[PatientRange]) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    // A measure with no intervals has no rows (ehrQL accepts one).
    for g in pm.groups.iter().filter(|g| !g.intervals.is_empty()) {
        let sums = group_sums(ctx, g, providers, blocks).await?;
        rows.push(layout(pm, g, &sums)?);
    }
    let schema = Arc::new(crate::output::narrow::output_schema(&pm.combined_columns(), source::Format::Csv).as_ref().clone());
    let mut batch = concat_batches(&schema, &rows)?;
    if pm.model.disclosure_control {
        batch = disclosure_control(&batch)?;
    }
    Ok(batch)
}

/// Per grouping set: rows of (interval index, group values, first patient, sums),
/// sorted by interval and then by the first patient (in id order) in each group.
///
/// The population's rows are summed once, by interval and every group column the
/// group's measures use (the finest grouping), as they stream; each grouping set's
/// sums are then sums of those (and its first patient their first), so no row is
/// kept and every block of patients adds to the same small table.
/// How many blocks of patients run at once (at most the session's partitions).
const BLOCKS_AT_ONCE: usize = 2;

async fn group_sums(ctx: &SessionContext, g: &PreparedGroup, providers: &Providers, blocks: &[PatientRange]) -> Result<Vec<RecordBatch>> {
    let variables = &g.group.model.dataset.variables;
    let groups: Vec<String> = variables.keys().filter_map(|v| v.strip_prefix("g_")).map(str::to_string).collect();
    let every_numerator: Vec<String> = variables.keys().filter(|v| v.starts_with('n')).cloned().collect();
    let mut fine: Vec<RecordBatch> = Vec::new();
    let mut schema = None;
    // A block's final plan runs while the next block's stages are materialised: one
    // plan alone keeps only 1.3-1.8 of 2 cores busy. Results are kept in block order.
    // On a cluster, as many final plans as --blocks-at-once.
    let at_once = match crate::cluster::stages::of(ctx) {
        Some(run) => run.blocks_at_once.max(1),
        None => ctx.copied_config().target_partitions().clamp(1, BLOCKS_AT_ONCE),
    };
    let mut running = std::collections::VecDeque::new();
    for (i, range) in blocks.iter().enumerate() {
        let mut planner = Planner::new(&g.prepared.analysis, providers)
            .for_patients(*range)
            .for_intervals(g.intervals.clone())
            .all_tables_patients(g.prepared.patients_from_all_tables)
            .runs_by_patient();
        planner.materialise_stages(ctx).await?;
        let rows = LogicalPlanBuilder::from(planner.measure_rows_plan()?);
        let plan = sums(rows, &groups, &every_numerator, "__patient")?;
        if i == 0 {
            schema = Some(Arc::new(plan.schema().as_arrow().clone()));
        }
        if running.len() == at_once {
            fine.extend(crate::run::join_collect(running.pop_front().expect("a running block")).await?);
        }
        running.push_back(crate::run::spawn_collect(ctx, plan, "measures rows").await?);
    }
    while let Some(task) = running.pop_front() {
        fine.extend(crate::run::join_collect(task).await?);
    }
    // The batches' own schema where there are any (nullability may differ from the plan's).
    if let Some(b) = fine.first() {
        schema = Some(b.schema());
    }
    // Every column nullable: a group column's nullability may differ between a plan
    // and its batches, and between blocks.
    let schema = schema.ok_or_else(|| err!("no blocks of patients to run"))?;
    let schema = Arc::new(arrow::datatypes::Schema::new(
        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
    ));
    let fine = fine.into_iter().map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec())).collect::<std::result::Result<Vec<_>, _>>()?;
    let fine: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![fine])?);
    let mut out = Vec::new();
    for (s, set) in g.group.grouping_sets.iter().enumerate() {
        let rows = LogicalPlanBuilder::scan(TableReference::bare("__sums"), provider_as_source(fine.clone()), None)?;
        let plan = sums(rows, set, &numerators(g, s), "__first")?;
        let plan = LogicalPlanBuilder::from(plan).sort(vec![col(intervals::INDEX).sort(true, false), col("__first").sort(true, false)])?.build()?;
        let planned = Arc::new(plan.schema().as_arrow().clone());
        let batches = crate::run::collect_with_metrics(ctx, plan, "measures").await?;
        let schema = batches.first().map(|b| b.schema()).unwrap_or(planned);
        out.push(concat_batches(&schema, &batches)?);
    }
    Ok(out)
}

/// The numerator variables the measures of grouping set `s` use.
fn numerators(g: &PreparedGroup, s: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in g.group.measures.iter().filter(|m| m.grouping_set == s) {
        if !out.contains(&m.numerator) {
            out.push(m.numerator.clone());
        }
    }
    out
}

/// Sum the denominator and numerators by interval and the given group columns,
/// keeping the first patient (the least of column `first`) of each group.
fn sums(rows: LogicalPlanBuilder, groups: &[String], numerators: &[String], first: &str) -> Result<datafusion::logical_expr::LogicalPlan> {
    // Names as written (`col` would fold `g_IMD` to lower case).
    let named = |n: &str| Expr::Column(datafusion::common::Column::new_unqualified(n));
    let mut keys = vec![named(intervals::INDEX)];
    keys.extend(groups.iter().map(|n| named(&group_variable(n))));
    let mut aggs: Vec<Expr> = vec![min(named(first)).alias("__first"), sum(named("d")).alias("d")];
    aggs.extend(numerators.iter().map(|n| sum(named(n)).alias(n.as_str())));
    Ok(rows.aggregate(keys, aggs)?.build()?)
}

/// The rows of one group's measures in ehrQL's order: by interval, then grouping set
/// (first-use order), then group (first patient), then measure (definition order).
fn layout(pm: &PreparedMeasures, g: &PreparedGroup, sums: &[RecordBatch]) -> Result<RecordBatch> {
    let columns = pm.combined_columns();
    let groups = &columns[6..];
    // (set, row, measure) for each output row.
    let mut picks: Vec<(usize, usize, usize)> = Vec::new();
    let index_of = |b: &RecordBatch| -> Result<Int64Array> {
        Ok(b.column_by_name(intervals::INDEX).ok_or_else(|| err!("missing interval index"))?.as_primitive::<arrow::datatypes::Int64Type>().clone())
    };
    let indexes: Vec<Int64Array> = sums.iter().map(index_of).collect::<Result<_>>()?;
    let mut cursor = vec![0usize; sums.len()];
    for i in 0..g.intervals.len() {
        for (s, idx) in indexes.iter().enumerate() {
            while cursor[s] < idx.len() && idx.value(cursor[s]) == i {
                for m in g.group.measures.iter().filter(|m| m.grouping_set == s) {
                    picks.push((s, cursor[s], m.measure));
                }
                cursor[s] += 1;
            }
        }
    }
    let n = picks.len();
    let names: Vec<&str> = picks.iter().map(|p| pm.model.measures[p.2].name.as_str()).collect();
    let iv = &g.intervals.0;
    let interval = |p: &(usize, usize, usize)| iv[indexes[p.0].value(p.1) as usize];
    let starts = Date32Array::from_iter_values(picks.iter().map(|p| interval(p).0));
    let ends = Date32Array::from_iter_values(picks.iter().map(|p| interval(p).1));
    let int = |b: &RecordBatch, name: &str, row: usize| -> Option<i64> {
        b.column_by_name(name).and_then(|c| cast(c, &DataType::Int64).ok()).map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().clone()).and_then(|c| c.is_valid(row).then(|| c.value(row)))
    };
    let mut numerator = Vec::with_capacity(n);
    let mut denominator = Vec::with_capacity(n);
    for &(s, row, m) in &picks {
        let gm = g.group.measures.iter().find(|x| x.measure == m).expect("measure of this group");
        // A numerator that is null for every patient of a group sums to 0, as in ehrQL.
        numerator.push(int(&sums[s], &gm.numerator, row).unwrap_or(0));
        denominator.push(int(&sums[s], "d", row).ok_or_else(|| err!("a group with no denominator"))?);
    }
    let ratio: Float64Array = numerator.iter().zip(&denominator).map(|(a, b)| Some(*a as f64 / *b as f64)).collect();
    let mut out: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names)),
        Arc::new(starts),
        Arc::new(ends),
        Arc::new(ratio),
        Arc::new(Int64Array::from(numerator)),
        Arc::new(Int64Array::from(denominator)),
    ];
    for info in groups {
        let ty = info.ty.arrow_type();
        let var = group_variable(&info.name);
        let mut sources: Vec<ArrayRef> = Vec::new();
        let mut slot = vec![None; sums.len()];
        for (s, b) in sums.iter().enumerate() {
            if let Some(c) = b.column_by_name(&var) {
                slot[s] = Some(sources.len());
                sources.push(cast(c, &ty)?);
            }
        }
        let null = sources.len();
        sources.push(new_null_array(&ty, 1));
        let at: Vec<(usize, usize)> = picks.iter().map(|&(s, row, _)| slot[s].map_or((null, 0), |i| (i, row))).collect();
        let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
        out.push(interleave(&refs, &at)?);
    }
    let schema = crate::output::narrow::output_schema(&columns, source::Format::Csv);
    Ok(RecordBatch::try_new(schema, out)?)
}

/// Write combined results: to one file, to one file per measure (`DIR:FORMAT`,
/// each without the `measure` column and with only its own groups), or as CSV to
/// standard output. Nothing appears until every file is complete.
pub fn write(pm: &PreparedMeasures, results: &RecordBatch, destination: &Destination) -> Result<()> {
    match destination {
        Destination::Console => {
            let mut out = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(std::io::stdout().lock());
            let columns = pm.combined_columns();
            out.write_record(columns.iter().map(|c| c.name.as_str())).map_err(|e| err!("standard output: {e}"))?;
            let texts = results.columns().iter().map(|c| column_text(c.as_ref())).collect::<Result<Vec<_>>>()?;
            for row in 0..results.num_rows() {
                out.write_record(texts.iter().map(|c| c[row].as_deref().unwrap_or(""))).map_err(|e| err!("standard output: {e}"))?;
            }
            out.flush().map_err(|e| err!("standard output: {e}"))?;
            Ok(())
        }
        Destination::File(path, format) => {
            let mut w = TableWriter::create(path, *format, pm.combined_columns())?;
            w.write(results)?;
            commit(vec![w.finish()?])
        }
        Destination::Directory(dir, format, extension) => {
            let mut pending = Vec::new();
            for (i, m) in pm.model.measures.iter().enumerate() {
                let columns = pm.measure_columns(i);
                let rows = measure_rows(results, &m.name, &columns)?;
                let mut w = TableWriter::create(&dir.join(format!("{}.{extension}", m.name)), *format, columns)?;
                w.write(&rows)?;
                pending.push(w.finish()?);
            }
            commit(pending)
        }
    }
}

/// One measure's rows of the combined results, with just `columns`.
fn measure_rows(results: &RecordBatch, name: &str, columns: &[ColumnInfo]) -> Result<RecordBatch> {
    let names = results.column(0).as_string::<i32>();
    let mask: BooleanArray = names.iter().map(|n| Some(n == Some(name))).collect();
    let rows = arrow::compute::filter_record_batch(results, &mask)?;
    let picked = columns
        .iter()
        .map(|c| rows.column_by_name(&c.name).cloned().ok_or_else(|| err!("results have no column '{}'", c.name)))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(crate::output::narrow::output_schema(columns, source::Format::Csv), picked)?)
}

const SUPPRESSION_THRESHOLD: i64 = 7;
const ROUNDING_MULTIPLE: i64 = 5;

/// ehrQL's disclosure control: counts of 7 or fewer become 0, then every count is
/// rounded to the nearest 5; the ratio is recomputed from the rounded counts (null
/// when the denominator is 0).
pub fn apply_sdc(value: i64) -> i64 {
    let v = if value <= SUPPRESSION_THRESHOLD { 0 } else { value };
    // v / 5 is never exactly halfway, so rounding to nearest needs no tie rule.
    (v + ROUNDING_MULTIPLE / 2) / ROUNDING_MULTIPLE * ROUNDING_MULTIPLE
}

/// Apply disclosure control to combined results (columns 3, 4, 5: ratio, numerator,
/// denominator).
pub fn disclosure_control(batch: &RecordBatch) -> Result<RecordBatch> {
    let counts = |i: usize| -> Result<Int64Array> {
        let c = cast(batch.column(i), &DataType::Int64)?;
        Ok(c.as_primitive::<arrow::datatypes::Int64Type>().clone())
    };
    let (num, den) = (counts(4)?, counts(5)?);
    for (what, values) in [("numerator", &num), ("denominator", &den)] {
        if let Some(row) = values.iter().position(|v| v.is_some_and(|v| v < 0)) {
            let text = |i: usize| column_text(batch.column(i).as_ref()).map(|t| t[row].clone().unwrap_or_default());
            return Err(err!(
                "measure '{}', interval {} to {}: the {what} is {}, but disclosure control needs counts of zero or more (turn it off with measures.configure_disclosure_control(enabled=False))",
                text(0)?,
                text(1)?,
                text(2)?,
                values.value(row)
            ));
        }
    }
    let sdc = |a: &Int64Array| -> Int64Array { a.iter().map(|v| v.map(apply_sdc)).collect() };
    let (num, den) = (sdc(&num), sdc(&den));
    let ratio: Float64Array = num
        .iter()
        .zip(den.iter())
        .map(|(n, d)| match (n, d) {
            (Some(n), Some(d)) if d != 0 => Some(n as f64 / d as f64),
            _ => None,
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[3] = Arc::new(ratio);
    columns[4] = Arc::new(num);
    columns[5] = Arc::new(den);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::apply_sdc;

    #[test]
    fn disclosure_control_suppresses_then_rounds() {
        let cases = [(0, 0), (1, 0), (7, 0), (8, 10), (10, 10), (12, 10), (13, 15), (17, 15), (18, 20), (100, 100), (102, 100), (103, 105)];
        for (value, expected) in cases {
            assert_eq!(apply_sdc(value), expected, "apply_sdc({value})");
        }
    }
}
