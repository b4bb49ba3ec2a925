//! Planning: turn an [`Analysis`] into DataFusion logical plans, stage by stage.
//!
//! Stage k's event passes read the patient-level values of stages before k, which are
//! materialised in memory (one row per patient) before stage k is planned. Within a
//! stage each source appears once, so each table is scanned once per stage. Sources
//! are combined with joins on `patient_id` (full outer joins, or inner and left
//! joins from the sources the population cannot do without), and the population
//! then keeps the patients who appear in a table the population uses and satisfy it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::logical_expr::utils::split_conjunction;
use arrow::datatypes::{DataType, Field};
use datafusion::logical_expr::{Expr, ExprSchemable, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, cast, col, lit, when};
use datafusion::prelude::SessionContext;

use super::analyze::{Analysis, EventTable, Source, SourceKind};
use super::codesets;
use super::intervals::{self, Intervals, Limit, Part};
use crate::error::Result;
use crate::source::blocks::PatientRange;
use crate::err;

pub const PID: &str = "__pid";

pub type Providers = HashMap<String, Arc<dyn TableProvider>>;

pub struct Planner<'a> {
    analysis: &'a Analysis,
    providers: &'a Providers,
    /// `materialised[k - 1]` holds the patient-level values of stages before k.
    materialised: Vec<Arc<dyn TableProvider>>,
    /// The patients this plan is for (a block of the population, or all).
    patients: PatientRange,
    /// For measures: rows are keyed by (patient, interval) over these intervals.
    intervals: Option<Intervals>,
    /// Consider the patients of every table used, not just the population's tables.
    all_tables: bool,
    /// For measures (here and on a cluster): passes whose rows count in runs of
    /// intervals are grouped by patient (see `runs`).
    runs_by_patient: bool,
}

impl<'a> Planner<'a> {
    pub fn new(analysis: &'a Analysis, providers: &'a Providers) -> Self {
        Planner { analysis, providers, materialised: Vec::new(), patients: PatientRange::default(), intervals: None, all_tables: false, runs_by_patient: false }
    }

    /// Group the rows of passes that count in runs of intervals by patient, rather
    /// than repeating them for each interval (see [`super::runs`]); measures ask
    /// for it, on a cluster too (`portable` encodes the aggregate).
    pub fn runs_by_patient(mut self) -> Self {
        self.runs_by_patient = true;
        self
    }

    /// Consider every patient in any table the definition uses, as ehrQL's in-memory
    /// engine does over dummy tables (its database engines consider only the patients
    /// in the tables the population uses).
    pub fn all_tables_patients(mut self, yes: bool) -> Self {
        self.all_tables = yes;
        self
    }

    fn universe(&self) -> &[String] {
        if self.all_tables { &self.analysis.universe_all } else { &self.analysis.universe }
    }

    /// Plan measures: every value once per (patient, interval), see [`intervals`].
    pub fn for_intervals(mut self, intervals: Intervals) -> Self {
        self.intervals = Some(intervals);
        self
    }

    /// Plan for the patients in `range` only.
    pub fn for_patients(mut self, range: PatientRange) -> Self {
        self.patients = range;
        self
    }

    /// How many stages must be materialised before the dataset can be planned.
    pub fn stages_to_materialise(&self) -> usize {
        let events = self.analysis.event_tables.iter().map(|t| t.stage).max().unwrap_or(0);
        self.analysis.last_stage().max(events)
    }

    /// The plan whose result becomes the input of the next stage.
    pub fn next_stage_plan(&self) -> Result<LogicalPlan> {
        self.frame_through(self.materialised.len())
    }

    /// Run and keep in memory every stage the dataset needs before its own plan.
    pub async fn materialise_stages(&mut self, ctx: &SessionContext) -> Result<()> {
        for _ in 0..self.stages_to_materialise() {
            let plan = self.next_stage_plan()?;
            self.push_stage(materialise(ctx, plan).await?);
        }
        Ok(())
    }

    /// Provide the result of [`Self::next_stage_plan`] (real data or, for `explain`,
    /// an empty table of the right schema).
    pub fn push_stage(&mut self, table: Arc<dyn TableProvider>) {
        self.materialised.push(table);
    }

    fn provider(&self, table: &str) -> Result<&Arc<dyn TableProvider>> {
        self.providers.get(table).ok_or_else(|| err!("no data for table '{table}'"))
    }

    fn scan(&self, name: &str, provider: &Arc<dyn TableProvider>) -> Result<LogicalPlanBuilder> {
        Ok(LogicalPlanBuilder::scan(TableReference::bare(name.to_string()), provider_as_source(provider.clone()), None)?)
    }

    /// Scan a table's rows for the planned patients (for measures, once per interval).
    fn table_rows(&self, table: &str) -> Result<LogicalPlanBuilder> {
        self.table_rows_with(table, &[], None)
    }

    /// [`Self::table_rows`], with columns `before` (expressions of the row alone)
    /// added before rows are repeated for each interval.
    fn table_rows_with(&self, table: &str, before: &[Expr], keep: Option<Expr>) -> Result<LogicalPlanBuilder> {
        self.table_rows_from(table, false, before, keep, &[])
    }

    /// [`Self::table_rows_with`], from the table's late-materialising provider
    /// where `late` and the table has one. With `limits` (see [`intervals::limiting_conditions`]),
    /// a row is repeated only for the run of intervals they allow, not for all.
    fn table_rows_from(&self, table: &str, late: bool, before: &[Expr], keep: Option<Expr>, limits: &[Limit]) -> Result<LogicalPlanBuilder> {
        let rows = keeping(self.patient_rows_from(table, late, before)?, keep)?;
        match &self.intervals {
            None => Ok(rows),
            Some(iv) if !limits.is_empty() => {
                let mut columns: Vec<Expr> = rows.schema().columns().into_iter().map(Expr::Column).collect();
                columns.push(iv.span(limits).alias(intervals::INDEX));
                let rows = rows.project(columns)?.filter(col(intervals::INDEX).is_not_null())?.unnest_column(intervals::INDEX)?;
                let rows = keyed(rows, iv)?;
                let mut columns: Vec<Expr> = rows.schema().columns().into_iter().map(Expr::Column).collect();
                columns.extend(interval_columns(iv, col("patient_id")));
                Ok(rows.project(columns)?)
            }
            Some(iv) => {
                let every = self.scan("__intervals", &iv.table()?)?.build()?;
                keyed(rows.cross_join(every)?, iv)
            }
        }
    }

    /// A table's rows, each given to the one interval in which `x` (an expression of
    /// the row) lies between the interval's bounds, narrowed by `shift`; rows in no
    /// interval are dropped.
    fn bucketed_rows(&self, table: &str, x: Expr, shift: (i32, i32), iv: &Intervals, before: &[Expr], keep: Option<Expr>) -> Result<LogicalPlanBuilder> {
        let rows = keeping(self.patient_rows_from(table, false, before)?, keep)?;
        // Rows outside the whole span first, by two comparisons (which the scan can
        // also use); a row in a gap between intervals has no bucket, and the inner
        // join drops it.
        let (first, last) = (iv.0.first().map_or(0, |i| i.0), iv.0.last().map_or(0, |i| i.1));
        let date = |d: i32| lit(ScalarValue::Date32(Some(d)));
        let rows = rows.filter(x.clone().gt_eq(date(first + shift.0)).and(x.clone().lt_eq(date(last - shift.1))))?;
        let mut columns: Vec<Expr> = rows.schema().columns().into_iter().map(Expr::Column).collect();
        columns.push(iv.bucket(x, shift).alias("__bucket"));
        let every = self.scan("__intervals", &iv.table()?)?.build()?;
        let rows = rows.project(columns)?.join(
            every,
            JoinType::Inner,
            (vec![Column::from_name("__bucket")], vec![Column::from_name(intervals::INDEX)]),
            None,
        )?;
        keyed(rows, iv)
    }

    /// Whether an event pass can give each row to one interval instead of all: every
    /// value it computes keeps only rows with some expression of the row's own
    /// columns between the interval's bounds, and the intervals do not overlap.
    fn bucketing(&self, s: &Source, aggs: &[Expr]) -> Result<Option<(Expr, (i32, i32))>> {
        let Some(iv) = &self.intervals else { return Ok(None) };
        if !iv.disjoint() {
            return Ok(None);
        }
        let Some(common) = shared_conditions(aggs) else { return Ok(None) };
        let Some((x, shift)) = intervals::bound_by_interval(&common) else { return Ok(None) };
        let schema = self.provider(&s.table)?.schema();
        let own = x.column_refs().iter().all(|c| schema.field_with_name(&c.name).is_ok());
        Ok(own.then_some((x, shift)))
    }

    /// For measures, the conditions every value of an event pass shares that limit
    /// each row to a run of intervals (see [`intervals::limiting_conditions`]), where
    /// they read only the table's own date columns, each with the condition it was
    /// read from.
    fn limiting_conditions(&self, s: &Source, aggs: &[Expr]) -> Result<Vec<(Expr, Limit)>> {
        let (Some(iv), Some(common)) = (&self.intervals, shared_conditions(aggs)) else { return Ok(Vec::new()) };
        let schema = self.provider(&s.table)?.schema();
        let own = |x: &Expr| {
            let refs = x.column_refs();
            !refs.is_empty() && refs.iter().all(|c| schema.field_with_name(&c.name).is_ok())
        };
        let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())?;
        let dated = |x: &Expr| x.get_type(&df_schema).is_ok_and(|t| t == DataType::Date32);
        Ok(intervals::limiting_conditions(&common, iv).into_iter().filter(|(_, l)| own(&l.x) && dated(&l.x)).collect())
    }

    /// How each event pass reads its table, for `explain`.
    pub fn describe_passes(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let Some(iv) = &self.intervals else { return Ok(out) };
        for s in self.passes().iter().filter(|s| s.kind == SourceKind::Events) {
            if self.once_per_patient(s) {
                out.push(format!("{} (stage {}): values that do not depend on the interval, computed once per patient", s.table, s.stage));
                continue;
            }
            let aggs: Vec<Expr> = s.columns.iter().map(|(name, e)| e.clone().alias(name.as_str())).collect();
            let (aggs, _) = codesets::rewrite(aggs)?;
            let limited = self.limiting_conditions(s, &aggs)?;
            let limits: Vec<Limit> = limited.iter().map(|(_, l)| l.clone()).collect();
            let by_patient = self.runs_wrapped(s, &assume_true(aggs.clone(), limited.into_iter().map(|(c, _)| c).collect())?, &limits).is_some();
            out.push(match self.bucketing(s, &aggs)? {
                Some((x, _)) => format!("{} (stage {}): each row counted in the one interval its {x} falls in", s.table, s.stage),
                None if !limits.is_empty() => {
                    let mut xs: Vec<String> = limits.iter().map(|l| l.x.to_string()).collect();
                    xs.dedup();
                    let verb = if xs.len() == 1 { "allows" } else { "allow" };
                    let how = if by_patient { "counted, grouped by patient," } else { "repeated only" };
                    format!(
                        "{} (stage {}): each row {how} for the run of the {} intervals that its {} {verb}",
                        s.table,
                        s.stage,
                        iv.len(),
                        xs.join(", ")
                    )
                }
                None => format!(
                    "{} (stage {}): each row repeated for all {} intervals (not every value keeps only rows dated inside the interval{})",
                    s.table,
                    s.stage,
                    iv.len(),
                    if iv.disjoint() { "" } else { ", and the intervals overlap" }
                ),
            });
        }
        Ok(out)
    }

    /// The passes over the tables: the analysis's sources, except that for measures
    /// an event pass of the first stage whose values partly depend on the interval
    /// is split in two, so that the values that do not are computed once per
    /// patient rather than over rows repeated for the intervals.
    fn passes(&self) -> Vec<Source> {
        let mut out = Vec::new();
        for s in &self.analysis.sources {
            let (keyed, once): (Vec<_>, Vec<_>) = s.columns.iter().cloned().partition(|(_, e)| intervals::mentions_interval(e));
            if self.intervals.is_none() || s.kind != SourceKind::Events || s.stage != 0 || keyed.is_empty() || once.is_empty() {
                out.push(s.clone());
                continue;
            }
            out.push(Source { columns: keyed, ..s.clone() });
            // Its presence column is its own: which patients the table has comes from the other.
            out.push(Source { columns: once, presence: format!("{}{ONCE_SUFFIX}", s.presence), ..s.clone() });
        }
        out
    }

    /// Whether an event pass's values are computed once per patient, however many
    /// intervals (see [`Self::passes`]).
    fn once_per_patient(&self, s: &Source) -> bool {
        self.intervals.is_some() && s.kind == SourceKind::Events && s.stage == 0 && !s.columns.iter().any(|(_, e)| intervals::mentions_interval(e))
    }

    /// The names of the values materialised before `stage`.
    fn stage_columns(&self, stage: usize) -> Result<Vec<(String, DataType)>> {
        let values = self.materialised.get(stage - 1).ok_or_else(|| err!("stage {stage} planned before it was materialised"))?;
        Ok(values.schema().fields().iter().filter(|f| f.name() != PID).map(|f| (f.name().clone(), f.data_type().clone())).collect())
    }

    /// Scan a table's rows for the planned patients.
    fn patient_rows(&self, table: &str) -> Result<LogicalPlanBuilder> {
        self.patient_rows_from(table, false, &[])
    }

    /// [`Self::patient_rows`], from the late-materialising provider where `late`.
    /// Code columns a scan decodes as dictionaries (see `source::dictionary`) are
    /// cast to strings here, in one projection with `before` (expressions of the
    /// row, such as codelist masks), which see them as dictionaries. The optimizer
    /// pushes the filters above through this projection into the scan, so only the
    /// rows they keep are cast.
    fn patient_rows_from(&self, table: &str, late: bool, before: &[Expr]) -> Result<LogicalPlanBuilder> {
        let provider = match self.providers.get(&crate::source::late_key(table)) {
            Some(p) if late => p,
            _ => self.provider(table)?,
        };
        let b = self.scan(table, provider)?;
        let PatientRange { first, end } = self.patients;
        let bounds = first.map(|f| col("patient_id").gt_eq(lit(f))).into_iter().chain(end.map(|e| col("patient_id").lt(lit(e))));
        let b = match bounds.reduce(Expr::and) {
            Some(f) => b.filter(f)?,
            None => b,
        };
        let dictionaries = b.schema().fields().iter().any(|f| matches!(f.data_type(), DataType::Dictionary(..)));
        if !dictionaries && before.is_empty() {
            return Ok(b);
        }
        let mut columns: Vec<Expr> = b
            .schema()
            .iter()
            .map(|(qualifier, field)| {
                let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
                match field.data_type() {
                    DataType::Dictionary(_, values) => cast(column, values.as_ref().clone()).alias_qualified(qualifier.cloned(), field.name()),
                    _ => column,
                }
            })
            .collect();
        columns.extend(before.iter().cloned());
        Ok(b.project(columns)?)
    }

    /// Scan an event table, joined to the values of earlier stages when it needs them.
    fn event_rows(&self, table: &str, stage: usize) -> Result<LogicalPlanBuilder> {
        self.with_stage(self.table_rows(table)?, stage, &[], false)
    }

    /// Rows joined to the earlier stages' values, with `computed` (expressions of
    /// those values alone) computed on the values' side, once per patient. With
    /// `inner`, rows of patients without values are dropped (no value could use
    /// them), and the join can test the values' conditions on each candidate pair
    /// before building its output.
    fn with_stage(&self, b: LogicalPlanBuilder, stage: usize, computed: &[Expr], inner: bool) -> Result<LogicalPlanBuilder> {
        if stage == 0 {
            return Ok(b);
        }
        let values = self.stage_values(stage, computed)?.build()?;
        let how = if inner { JoinType::Inner } else { JoinType::Left };
        Ok(b.join(values, how, (vec![Column::from_name("patient_id")], vec![Column::from_name(PID)]), None)?)
    }

    /// The values materialised before `stage`, with `computed` added (for measures,
    /// without the interval's columns, which the rows joined to them have already).
    fn stage_values(&self, stage: usize, computed: &[Expr]) -> Result<LogicalPlanBuilder> {
        let values = self.materialised.get(stage - 1).ok_or_else(|| err!("stage {stage} planned before it was materialised"))?;
        let values = self.scan(&format!("__stage{stage}"), values)?;
        if self.intervals.is_none() && computed.is_empty() {
            return Ok(values);
        }
        let keep: Vec<Expr> = values
            .schema()
            .columns()
            .into_iter()
            .filter(|c| self.intervals.is_none() || !intervals::mentions_interval(&Expr::Column(c.clone())))
            .map(Expr::Column)
            .chain(computed.iter().cloned())
            .collect();
        Ok(values.project(keep)?)
    }

    /// For measures, a later stage's rows the other way round: rather than repeat
    /// each row for every interval and then join the earlier values of each
    /// (patient, interval), join each of the earlier values that `needed` keeps
    /// (see [`Self::stage_row_needed`]) to the patient's rows. Where few keys have
    /// earlier values (a date found in that month, say), this makes few rows.
    #[allow(clippy::too_many_arguments)]
    fn stage_rows_by_patient(&self, table: &str, late: bool, before: &[Expr], keep: Option<Expr>, stage: usize, computed: &[Expr], needed: Expr, iv: &Intervals) -> Result<LogicalPlanBuilder> {
        let rows = keeping(self.patient_rows_from(table, late, before)?, keep)?;
        let values = self.stage_values(stage, computed)?.filter(needed)?;
        let mut kept: Vec<Expr> = values.schema().columns().into_iter().map(Expr::Column).collect();
        kept.push(iv.of_key(col(PID), Part::Patient).alias(STAGE_PATIENT));
        let joined = rows.join(values.project(kept)?.build()?, JoinType::Inner, (vec![Column::from_name("patient_id")], vec![Column::from_name(STAGE_PATIENT)]), None)?;
        // The key of (patient, interval) takes the patient's place, as on repeated rows.
        let mut out = vec![col(PID).alias("patient_id")];
        for (q, f) in joined.schema().iter() {
            if f.name() != "patient_id" && f.name() != STAGE_PATIENT {
                out.push(Expr::Column(Column::new(q.cloned(), f.name())));
            }
        }
        out.extend(interval_columns(iv, col(PID)));
        Ok(joined.project(out)?)
    }

    /// Which of an earlier stage's rows (with `computed` added) a later pass needs:
    /// if no row can pass `filter` (the pass's rows must meet it) when the stage's
    /// values it reads are all null, the rows with at least one of them not null.
    /// Any doubt gives None.
    fn stage_row_needed(&self, filter: &Expr, stage: usize, table: &str, masks: &[Expr], before: &[Expr], computed: &[Expr]) -> Result<Option<Expr>> {
        use datafusion::common::DFSchema;
        let all = self.stage_columns(stage)?;
        let stage_schema = Arc::new(DFSchema::try_from(arrow::datatypes::Schema::new(all.iter().map(|(n, t)| Field::new(n, t.clone(), true)).collect::<Vec<_>>()))?);
        // The interval's columns are the row's (its key's), not the stage's values.
        let (bounds, mut values): (Vec<_>, Vec<_>) = all.into_iter().partition(|(n, _)| intervals::mentions_interval(&col(n)));
        for e in computed {
            values.push((e.schema_name().to_string(), e.get_type(stage_schema.as_ref())?));
        }
        // The row's own columns, codelist masks and what is computed from the row
        // alone (`before`) are all that is left to type, with the interval's.
        let mut fields = self.row_fields(table, masks)?;
        let own = DFSchema::try_from(arrow::datatypes::Schema::new(fields.clone()))?;
        for e in before {
            fields.push(Field::new(e.schema_name().to_string(), e.get_type(&own)?, true));
        }
        fields.extend(bounds.iter().map(|(n, t)| Field::new(n, t.clone(), true)));
        let Some(read) = never_true_without(filter, &values, true, fields)? else { return Ok(None) };
        // A computed value that is null whenever the stage's values it reads are is
        // tested by those values: a test of the expression itself would be pushed
        // below the projection that computes it, and evaluated on every row.
        let mut tested = Vec::new();
        for n in read {
            match computed.iter().find(|e| e.schema_name().to_string() == n) {
                Some(e) => match null_without_columns(e, &stage_schema)? {
                    Some(columns) => tested.extend(columns),
                    None => tested.push(n),
                },
                None => tested.push(n),
            }
        }
        tested.sort();
        tested.dedup();
        Ok(tested.into_iter().map(|n| col(n).is_not_null()).reduce(|a, b| a.or(b)))
    }

    /// A table's columns and its codelist masks, as fields.
    fn row_fields(&self, table: &str, masks: &[Expr]) -> Result<Vec<Field>> {
        let mut fields: Vec<Field> = self.provider(table)?.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(masks.iter().map(|m| Field::new(m.schema_name().to_string(), DataType::UInt64, true)));
        Ok(fields)
    }

    /// Whether a pass over `table` should be read with late materialisation: its
    /// filter tests codelists on the row alone (keeping few rows, in practice) and
    /// it reads a column (other than patient_id) that those tests do not, which
    /// the scan then decodes only for the rows they keep. Where the filter keeps
    /// most rows (date ranges over registrations, say) or the pass reads only the
    /// filter's columns, decoding every column at once is cheaper (measured). A
    /// pass without a filter reads every row anyway.
    fn reads_beyond_filter(&self, table: &str, aggs: &[Expr], masks: &[Expr]) -> Result<bool> {
        let Some(filter) = any_filter(aggs) else { return Ok(false) };
        let schema = self.provider(table)?.schema();
        let is_mask = |name: &str| masks.iter().any(|m| m.schema_name().to_string() == name);
        // A codelist mask stands for the code column it is computed from.
        let sources = |name: &str| -> Vec<String> {
            match masks.iter().find(|m| m.schema_name().to_string() == name) {
                Some(m) => m.column_refs().iter().map(|c| c.name.clone()).collect(),
                None => vec![name.to_string()],
            }
        };
        let own = |e: &Expr| e.column_refs().iter().all(|c| sources(&c.name).iter().all(|n| schema.field_with_name(n).is_ok()));
        let own_parts: Vec<Expr> = split_conjunction(&filter).into_iter().filter(|p| own(p)).cloned().collect();
        if !own_parts.iter().any(|p| p.column_refs().iter().any(|c| is_mask(&c.name))) {
            return Ok(false);
        }
        let tested: std::collections::HashSet<String> = own_parts.iter().flat_map(|p| p.column_refs().iter().flat_map(|c| sources(&c.name)).collect::<Vec<_>>()).collect();
        Ok(aggs
            .iter()
            .flat_map(|a| a.column_refs().into_iter().flat_map(|c| sources(&c.name)).collect::<Vec<_>>())
            .any(|n| n != "patient_id" && schema.field_with_name(&n).is_ok() && !tested.contains(&n)))
    }

    /// Whether no row of a patient without values in `stage` can pass `filter`
    /// (the filter, with those values null, is never true), so the rows can be
    /// joined to the values by an inner join. Any doubt answers no.
    fn needs_stage_row(&self, filter: &Expr, stage: usize, table: &str, masks: &[Expr]) -> Result<bool> {
        // The row's own columns and codelist masks are all that is left to type.
        Ok(never_true_without(filter, &self.stage_columns(stage)?, false, self.row_fields(table, masks)?)?.is_some())
    }

    /// The patient-level values of one source. With `values_only`, an event source
    /// gives only the patients some value's filter keeps, even if the table also
    /// decides which patients are considered (the population needs a value).
    ///
    /// With `per_patient`, a patient table's rows are not repeated for each interval:
    /// its `__pid` is the patient's id, to be joined on the patient part of the key.
    fn source_plan(&self, s: &Source, values_only: bool, per_patient: bool) -> Result<LogicalPlan> {
        let mut out = vec![col("patient_id").alias(PID), lit(true).alias(s.presence.as_str())];
        Ok(match &s.kind {
            SourceKind::PatientTable | SourceKind::Inline(_) => {
                out.extend(s.columns.iter().map(|(name, e)| e.clone().alias(name.as_str())));
                let rows = if per_patient { self.patient_rows(&s.table)? } else { self.table_rows(&s.table)? };
                rows.project(out)?.build()?
            }
            // Values the same in every interval are computed once per patient.
            SourceKind::Events if per_patient => {
                let once = Planner { intervals: None, materialised: self.materialised.clone(), ..*self };
                once.source_plan(s, values_only, false)?
            }
            SourceKind::Events => {
                let aggs: Vec<Expr> = s.columns.iter().map(|(name, e)| e.clone().alias(name.as_str())).collect();
                let (aggs, mut masks) = codesets::rewrite(aggs)?;
                let (aggs, computed) = match s.stage {
                    0 => (aggs, Vec::new()),
                    stage => hoist_stage_values(aggs, &self.stage_columns(stage)?)?,
                };
                out.extend(s.columns.iter().map(|(name, _)| col(name.as_str())));
                // Codelist masks of the table's own columns are computed from the
                // scan's rows as it decodes them; masks of an earlier stage's values
                // (a code picked in it) once the rows are joined to those.
                // For measures, what else depends only on a row (sort keys) is
                // computed before the row is repeated for each interval too, and
                // rows no value's filter can keep, whatever the interval, are
                // dropped before that.
                let schema = self.provider(&s.table)?.schema();
                let own = |e: &Expr| e.column_refs().iter().all(|c| schema.field_with_name(&c.name).is_ok());
                let (mut before, after): (Vec<Expr>, Vec<Expr>) = masks.iter().cloned().partition(own);
                let mut keep = None;
                let aggs = match &self.intervals {
                    Some(_) => {
                        let (aggs, keys) = hoist_sort_keys(aggs, own)?;
                        masks.clear();
                        before.extend(keys);
                        let made: Vec<String> = before.iter().map(|e| e.schema_name().to_string()).collect();
                        keep = own_filter(&aggs, |c| schema.field_with_name(c).is_ok() || made.iter().any(|m| m == c));
                        aggs
                    }
                    None => aggs,
                };
                let bucketing = self.bucketing(s, &aggs)?;
                // Conditions that limit each row to its run of intervals hold on
                // every repeated row: they are not tested again.
                let limited = match bucketing {
                    None => self.limiting_conditions(s, &aggs)?,
                    Some(_) => Vec::new(),
                };
                let limits: Vec<Limit> = limited.iter().map(|(_, l)| l.clone()).collect();
                let limited_rows = !limited.is_empty();
                let aggs = assume_true(aggs, limited.into_iter().map(|(c, _)| c).collect())?;
                if let Some(values) = self.runs_values(s, &aggs, &limits, &before, keep.clone(), &computed, &after, &masks)? {
                    return self.with_presence(s, values, values_only, out);
                }
                let rows = match (&bucketing, &self.intervals) {
                    (Some((x, shift)), Some(iv)) => self.with_stage(self.bucketed_rows(&s.table, x.clone(), *shift, iv, &before, keep)?, s.stage, &computed, false)?,
                    _ => {
                        // For datasets: an inner join when every value needs the patient's earlier values.
                        let inner = s.stage > 0
                            && self.intervals.is_none()
                            && match any_filter(&aggs) {
                                Some(f) => self.needs_stage_row(&f, s.stage, &s.table, &masks)?,
                                None => false,
                            };
                        let late = self.reads_beyond_filter(&s.table, &aggs, &masks)?;
                        let needed = match (&self.intervals, any_filter(&aggs)) {
                            (Some(_), Some(f)) if s.stage > 0 && limits.is_empty() => self.stage_row_needed(&f, s.stage, &s.table, &masks, &before, &computed)?,
                            _ => None,
                        };
                        match (needed, &self.intervals) {
                            (Some(needed), Some(iv)) => self.stage_rows_by_patient(&s.table, late, &before, keep, s.stage, &computed, needed, iv)?,
                            _ => self.with_stage(self.table_rows_from(&s.table, late, &before, keep, &limits)?, s.stage, &computed, inner)?,
                        }
                    }
                };
                let rows = with_columns(rows, &after)?;
                // A row that no value's filter keeps cannot change any value, so such
                // rows are dropped before grouping. If this pass also says which
                // patients the table has, that comes from a grouping of patient ids
                // alone, which is far cheaper than the values over every row.
                // Rows limited to their intervals are fewer than the table's: which
                // patients the table has must still come from all of them.
                let any = any_filter(&aggs).or_else(|| limited_rows.then(|| lit(true)));
                let Some(any) = any else {
                    return Ok(rows.aggregate(vec![col("patient_id")], aggs)?.project(out)?.build()?);
                };
                let values = rows.filter(any)?.aggregate(vec![col("patient_id")], aggs)?;
                self.with_presence(s, values, values_only, out)?
            }
        })
    }

    /// An event pass's values (one row per patient, or per patient and interval),
    /// with which patients the table has where the population needs that.
    fn with_presence(&self, s: &Source, values: LogicalPlanBuilder, values_only: bool, out: Vec<Expr>) -> Result<LogicalPlan> {
        if values_only || !self.universe().contains(&s.presence) {
            return Ok(values.project(out)?.build()?);
        }
        let values = values.project(std::iter::once(col("patient_id").alias(PID)).chain(s.columns.iter().map(|(n, _)| col(n.as_str()))))?;
        // Which patients the table has (for measures: for every interval).
        let mut present = self.patient_rows(&s.table)?.aggregate(vec![col("patient_id")], Vec::<Expr>::new())?;
        if let Some(iv) = &self.intervals {
            let every = self.scan("__intervals", &iv.table()?)?.build()?;
            present = keyed(present.cross_join(every)?, iv)?;
        }
        let present = present.project(vec![col("patient_id").alias(PID), lit(true).alias(s.presence.as_str())])?;
        outer_join_all(vec![present.build()?, values.build()?])
    }

    /// A pass's values as `ehr_runs` aggregates (see [`Planner::runs_values`]), if
    /// they are computed that way: for measures, in a pass of the first stage whose rows are
    /// limited to runs of intervals, where [`runs_of`] takes every value. The one
    /// test both the plan and `explain` use.
    fn runs_wrapped(&self, s: &Source, aggs: &[Expr], limits: &[Limit]) -> Option<(&Intervals, Vec<Expr>)> {
        let iv = self.intervals.as_ref().filter(|_| self.runs_by_patient)?;
        if limits.is_empty() || s.stage > 0 {
            return None;
        }
        Some((iv, runs_of(aggs, limits, iv)?))
    }

    /// For measures, the values per (patient, interval) of a pass whose rows each
    /// count in a run of intervals (`limits`), computed by grouping the rows by
    /// patient with `ehr_runs` (see [`super::runs`]): where that is enabled, the pass
    /// reads no earlier stage, and each value is a count or a pick whose arguments
    /// and filter read the row alone. Else None.
    #[allow(clippy::too_many_arguments)]
    fn runs_values(&self, s: &Source, aggs: &[Expr], limits: &[Limit], before: &[Expr], keep: Option<Expr>, computed: &[Expr], after: &[Expr], masks: &[Expr]) -> Result<Option<LogicalPlanBuilder>> {
        let Some((iv, mut wrapped)) = self.runs_wrapped(s, aggs, limits) else { return Ok(None) };
        // A pass of the first stage reads its own table alone: nothing is computed
        // from an earlier stage, and every codelist mask is over its own columns.
        if !computed.is_empty() || !after.is_empty() {
            crate::bail!("pass over {} grouped by patient, yet it reads an earlier stage", s.table);
        }
        let names: Vec<String> = aggs.iter().map(|a| a.schema_name().to_string()).collect();
        // How many rows each (patient, interval) has: one with none has no values.
        let count = datafusion::functions_aggregate::count::count_udaf();
        wrapped.push(runs_call(iv, limits, count, vec![lit(1i64)], None).alias("__rows"));

        let late = self.reads_beyond_filter(&s.table, aggs, masks)?;
        let rows = keeping(self.patient_rows_from(&s.table, late, before)?, keep)?;
        let rows = keeping(rows, any_filter(aggs))?;
        let k = iv.len();
        let index = ScalarValue::FixedSizeList(Arc::new(arrow::array::FixedSizeListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            k as i32,
            Arc::new(arrow::array::Int64Array::from_iter_values(0..k)),
            None,
        )));
        let mut lists: Vec<Expr> = vec![col("patient_id"), lit(index).alias(intervals::INDEX), col("__rows")];
        lists.extend(names.iter().map(|n| Expr::Column(Column::from_name(n.as_str()))));
        let mut unnested: Vec<Column> = vec![Column::from_name(intervals::INDEX), Column::from_name("__rows")];
        unnested.extend(names.iter().map(|n| Column::from_name(n.as_str())));
        let per_interval = rows
            .aggregate(vec![col("patient_id")], wrapped)?
            .project(lists)?
            .unnest_columns_with_options(unnested, datafusion::common::UnnestOptions::new())?
            .filter(col("__rows").gt(lit(0i64)))?;
        let mut out = vec![iv.key(col("patient_id"), col(intervals::INDEX)).alias("patient_id")];
        out.extend(names.iter().map(|n| Expr::Column(Column::from_name(n.as_str()))));
        Ok(Some(per_interval.project(out)?))
    }

    /// All patient-level values through `stage`: the materialised earlier stages plus
    /// this stage's sources, joined on patient_id.
    ///
    /// A source without whose row (or without whose values) the population cannot
    /// hold is required: the sources are then joined starting from the required
    /// ones, inner among themselves and left for the rest, rather than all by full
    /// outer joins. Rows this drops are rows the population would drop.
    fn frame_through(&self, stage: usize) -> Result<LogicalPlan> {
        let earlier = match stage {
            0 => None,
            _ => Some(self.scan(&format!("__stage{stage}"), &self.materialised[stage - 1])?.build()?),
        };
        let passes = self.passes();
        let sources: Vec<&Source> = passes.iter().filter(|s| s.stage == stage).collect();
        let mut plans: Vec<LogicalPlan> = earlier.iter().cloned().collect();
        for s in &sources {
            plans.push(self.source_plan(s, false, false)?);
        }
        let frame = self.with_bounds(outer_join_all(plans)?)?;
        let schema = frame.schema().clone();
        let names = |s: &Source| s.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let mut joins: Vec<Join> = earlier.into_iter().map(|plan| Join { plan, required: false, per_patient: false }).collect();
        let mut chosen = Vec::new();
        for s in &sources {
            let values_only = matches!(s.kind, SourceKind::Events) && self.population_needs(&schema, &names(s));
            let required = values_only || self.population_needs(&schema, &[names(s), vec![s.presence.clone()]].concat());
            // For measures, a patient table joined onto (patient, interval) rows is
            // read once, not once per interval, as is an event table whose values
            // do not depend on the interval.
            let per_patient = self.intervals.is_some()
                && match s.kind {
                    SourceKind::PatientTable | SourceKind::Inline(_) => true,
                    SourceKind::Events => self.once_per_patient(s),
                };
            chosen.push((*s, values_only, required, per_patient));
        }
        if !chosen.iter().any(|c| c.2) {
            return Ok(frame);
        }
        // Required first, and among them one keyed by (patient, interval) first if
        // there is one; the sort is stable.
        chosen.sort_by_key(|&(_, _, required, per_patient)| (!required, per_patient));
        // The first plan gives the rows' keys: it cannot be per patient.
        chosen[0].3 = false;
        for (s, values_only, required, per_patient) in chosen {
            joins.push(Join { plan: self.source_plan(s, values_only, per_patient)?, required, per_patient });
        }
        // The earlier stage's values (if any) are not required: joined after them.
        joins.sort_by_key(|j| !j.required);
        self.with_bounds(join_all(joins, self.intervals.as_ref())?)
    }

    /// For measures, the interval's bounds from the key: patient-level values read them.
    fn with_bounds(&self, frame: LogicalPlan) -> Result<LogicalPlan> {
        let Some(iv) = &self.intervals else { return Ok(frame) };
        let mut columns: Vec<Expr> = frame.schema().columns().into_iter().filter(|c| !intervals::mentions_interval(&Expr::Column(c.clone()))).map(Expr::Column).collect();
        columns.extend(interval_columns(iv, col(PID)));
        Ok(LogicalPlanBuilder::from(frame).project(columns)?.build()?)
    }

    /// Whether the population is false or null whenever all of `columns` are null:
    /// the population with those columns replaced by nulls folds to a constant that
    /// is not true. (Any doubt, such as a column of unknown type, answers no.)
    fn population_needs(&self, schema: &datafusion::common::DFSchemaRef, columns: &[String]) -> bool {
        use datafusion::common::ScalarValue;
        let Some((nulled, _)) = with_nulls(&self.analysis.population.clone().is_true(), schema, |c| columns.iter().any(|n| n == c)) else { return false };
        matches!(simplified(nulled, schema), Some(Expr::Literal(ScalarValue::Boolean(Some(false) | None) | ScalarValue::Null, _)))
    }

    /// For measures: the population's rows, keyed by (patient, interval) in
    /// `__key`, with the interval's index in `__interval`, the patient in `__patient`
    /// and every variable; in no particular order.
    pub fn measure_rows_plan(&self) -> Result<LogicalPlan> {
        let iv = self.intervals.as_ref().ok_or_else(|| err!("measure rows planned without intervals"))?;
        let frame = self.frame_through(self.materialised.len())?;
        let mut out = vec![iv.of_key(col(PID), Part::Index).alias(intervals::INDEX), iv.of_key(col(PID), Part::Patient).alias("__patient")];
        out.extend(self.analysis.variables.iter().map(|(n, e)| e.clone().alias(n.as_str())));
        Ok(LogicalPlanBuilder::from(frame).filter(self.keep()?)?.project(out)?.build()?)
    }

    /// Whether a row of the frame is in the population.
    fn keep(&self) -> Result<Expr> {
        let considered = self
            .universe()
            .iter()
            .map(|p| col(p.as_str()).is_not_null())
            .reduce(|a, b| a.or(b))
            .ok_or_else(|| err!("the population uses no table"))?;
        Ok(considered.and(self.analysis.population.clone().is_true()))
    }

    /// The dataset: one row per patient in the population, sorted by patient_id.
    pub fn dataset_plan(&self) -> Result<LogicalPlan> {
        let mut out = vec![col(PID).alias("patient_id")];
        out.extend(self.analysis.variables.iter().map(|(n, e)| e.clone().alias(n.as_str())));
        self.population_rows(out)
    }

    /// Just the patient ids of the population, sorted.
    pub fn population_plan(&self) -> Result<LogicalPlan> {
        self.population_rows(vec![col(PID).alias("patient_id")])
    }

    fn population_rows(&self, out: Vec<Expr>) -> Result<LogicalPlan> {
        let frame = self.frame_through(self.materialised.len())?;
        Ok(LogicalPlanBuilder::from(frame)
            .filter(self.keep()?)?
            .project(out)?
            .sort(vec![col("patient_id").sort(true, false)])?
            .build()?)
    }

    /// An event-level table of the dataset, restricted to the patients in `population`
    /// (a table with one `patient_id` column), sorted by every column.
    pub fn event_table_plan(&self, t: &EventTable, population: &Arc<dyn TableProvider>) -> Result<LogicalPlan> {
        let mut b = self.event_rows(&t.root, t.stage)?;
        if let Some(f) = t.filters.iter().cloned().reduce(|a, b| a.and(b)) {
            b = b.filter(f)?;
        }
        let pop = self.scan("__population", population)?.project(vec![col("patient_id").alias("__pop")])?.build()?;
        let mut out = vec![col("patient_id")];
        out.extend(t.columns.iter().map(|(n, e)| e.clone().alias(n.as_str())));
        let order: Vec<_> = std::iter::once("patient_id".to_string())
            .chain(t.columns.iter().map(|(n, _)| n.clone()))
            .map(|n| col(n).sort(true, true))
            .collect();
        Ok(b.join(pop, JoinType::LeftSemi, (vec![Column::from_name("patient_id")], vec![Column::from_name("__pop")]), None)?
            .project(out)?
            .sort(order)?
            .build()?)
    }
}

/// One plan to join into a frame: one row per key in `__pid`, which is the
/// patient's id if `per_patient` (for measures, whose other plans are keyed by
/// patient and interval).
struct Join {
    plan: LogicalPlan,
    required: bool,
    per_patient: bool,
}

/// Full outer join plans that each have one row per patient and a `__pid` column.
fn outer_join_all(plans: Vec<LogicalPlan>) -> Result<LogicalPlan> {
    join_all(plans.into_iter().map(|plan| Join { plan, required: false, per_patient: false }).collect(), None)
}

/// Join plans, the required ones (which come first) by inner joins, the others by
/// left joins onto them; by full outer joins if none is required. A per-patient
/// plan is joined on the patient part of the others' (patient, interval) key.
fn join_all(joins: Vec<Join>, intervals: Option<&Intervals>) -> Result<LogicalPlan> {
    let mut joins = joins.into_iter();
    let first = joins.next().ok_or_else(|| err!("nothing to join"))?;
    let (mut acc, some_required) = (first.plan, first.required);
    for Join { plan: right, required, per_patient } in joins {
        let how = match (some_required, required) {
            (true, true) => JoinType::Inner,
            (true, false) => JoinType::Left,
            (false, _) => JoinType::Full,
        };
        let l = LogicalPlanBuilder::from(acc).alias("l")?.build()?;
        let r = LogicalPlanBuilder::from(right).alias("r")?.build()?;
        let (lpid, rpid) = (Expr::Column(Column::new(Some("l"), PID)), Expr::Column(Column::new(Some("r"), PID)));
        let joined = match (per_patient, intervals) {
            // Built on the per-patient values, the smaller side (as below).
            (true, Some(iv)) if some_required => {
                let patient = iv.of_key(lpid.clone(), Part::Patient);
                let how = if how == JoinType::Left { JoinType::Right } else { how };
                LogicalPlanBuilder::from(r).join_on(l, how, vec![rpid.clone().eq(patient)])?
            }
            (true, _) => return Err(err!("a per-patient plan joined without a plan keyed by interval before it")),
            // A hash join builds its table from its left side. The frame grows
            // wider with each join, and a source's values are at most one row per
            // key, so the values are the side to build on: `values RIGHT JOIN frame`.
            _ if how == JoinType::Left => LogicalPlanBuilder::from(r).join(l, JoinType::Right, (vec![Column::new(Some("r"), PID)], vec![Column::new(Some("l"), PID)]), None)?,
            _ => LogicalPlanBuilder::from(l).join(r, how, (vec![Column::new(Some("l"), PID)], vec![Column::new(Some("r"), PID)]), None)?,
        };
        let key = if per_patient { lpid } else { coalesce(vec![lpid, rpid]) };
        let mut out = vec![key.alias(PID)];
        // The frame's columns, then the joined plan's, whichever side built.
        for side in ["l", "r"] {
            for (q, f) in joined.schema().iter() {
                if f.name() != PID && q.is_some_and(|q| q.table() == side) {
                    out.push(Expr::Column(Column::new(q.cloned(), f.name())));
                }
            }
        }
        acc = joined.project(out)?.build()?;
    }
    Ok(acc)
}

/// Run a plan and keep its result as a table: in memory, or on a cluster in files
/// its executors write (see `cluster::stages`).
pub async fn materialise(ctx: &SessionContext, plan: LogicalPlan) -> Result<Arc<dyn TableProvider>> {
    if let Some(files) = crate::cluster::stages::of(ctx).as_ref().and_then(|run| run.stages.as_ref()) {
        return files.materialise(ctx, plan).await;
    }
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let batches = crate::run::collect_with_metrics(ctx, plan, "an earlier stage's values").await?;
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// An empty table with a plan's schema, standing in for a stage when explaining.
pub fn placeholder(plan: &LogicalPlan) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

/// The interval's bounds and parameters, read from a (patient, interval) key.
fn interval_columns(iv: &Intervals, key: Expr) -> Vec<Expr> {
    let mut columns = vec![iv.of_key(key.clone(), Part::Start).alias(intervals::START), iv.of_key(key.clone(), Part::End).alias(intervals::END)];
    for (j, p) in iv.1.iter().enumerate() {
        columns.push(iv.of_key(key.clone(), Part::Param(j)).alias(intervals::param_column(&p.name)));
    }
    columns
}

/// Rows keyed by (patient, interval): `patient_id` becomes the key; the interval's
/// index column is dropped, its bounds kept.
fn keyed(rows: LogicalPlanBuilder, iv: &Intervals) -> Result<LogicalPlanBuilder> {
    let mut out = vec![iv.key(col("patient_id"), col(intervals::INDEX)).alias("patient_id")];
    for (q, f) in rows.schema().iter() {
        if f.name() != "patient_id" && f.name() != intervals::INDEX && f.name() != "__bucket" {
            out.push(Expr::Column(Column::new(q.cloned(), f.name())));
        }
    }
    Ok(rows.project(out)?)
}

/// A pass's values as `ehr_runs` aggregates over rows limited to runs of intervals
/// (see [`Planner::runs_values`]), if every value is a count or a pick whose
/// arguments and filter read the row alone.
fn runs_of(aggs: &[Expr], limits: &[Limit], iv: &Intervals) -> Option<Vec<Expr>> {
    let mut wrapped = Vec::new();
    for agg in aggs {
        let Expr::Alias(alias) = agg else { return None };
        let Expr::AggregateFunction(f) = alias.expr.as_ref() else { return None };
        let p = &f.params;
        let countable = f.func.name() == "count" || super::pick::is_pick(&f.func);
        if !countable || p.distinct || !p.order_by.is_empty() || intervals::mentions_interval(agg) || agg.column_refs().iter().any(|c| c.name == "patient_id") {
            return None;
        }
        wrapped.push(runs_call(iv, limits, f.func.clone(), p.args.clone(), p.filter.clone()).alias(alias.name.as_str()));
    }
    Some(wrapped)
}

/// `inner(args) FILTER (WHERE filter)` per interval, as `ehr_runs` over rows limited
/// to runs of `iv` by `limits`: its arguments are the limits' dates, then `args`.
fn runs_call(iv: &Intervals, limits: &[Limit], inner: Arc<datafusion::logical_expr::AggregateUDF>, args: Vec<Expr>, filter: Option<Box<Expr>>) -> Expr {
    let dates = limits.iter().map(|l| l.x.clone());
    let runs = super::runs::runs_udaf(iv.clone(), limits.to_vec(), inner);
    Expr::AggregateFunction(datafusion::logical_expr::expr::AggregateFunction::new_udf(runs, dates.chain(args).collect(), false, filter, vec![], None))
}

/// Rows that meet a condition, if there is one.
fn keeping(rows: LogicalPlanBuilder, condition: Option<Expr>) -> Result<LogicalPlanBuilder> {
    Ok(match condition {
        Some(c) => rows.filter(c)?,
        None => rows,
    })
}

/// Rows with extra columns.
fn with_columns(rows: LogicalPlanBuilder, extra: &[Expr]) -> Result<LogicalPlanBuilder> {
    if extra.is_empty() {
        return Ok(rows);
    }
    let mut columns: Vec<Expr> = rows.schema().columns().into_iter().map(Expr::Column).collect();
    columns.extend(extra.iter().cloned());
    Ok(rows.project(columns)?)
}

/// Replace the expressions inside the aggregates that read only an earlier stage's
/// values (`stage`: their names and types), such as a window's start computed from
/// an earlier date, by columns; those columns' definitions. They are then computed
/// once per patient, not once per event row. A row whose patient has no values in
/// the stage gets the expression over nulls, as it would have had.
fn hoist_stage_values(aggs: Vec<Expr>, stage: &[(String, DataType)]) -> Result<(Vec<Expr>, Vec<Expr>)> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    let mut found: Vec<Expr> = Vec::new();
    let of_stage = |e: &Expr| {
        let refs = e.column_refs();
        !refs.is_empty() && refs.iter().all(|c| stage.iter().any(|(n, _)| *n == c.name))
    };
    let over_nulls = |e: Expr| -> Result<Expr> {
        let t = e.transform(|e| match &e {
            Expr::Column(c) => match stage.iter().find(|(n, _)| *n == c.name) {
                Some((_, ty)) => Ok(Transformed::yes(lit(datafusion::scalar::ScalarValue::try_from(ty)?))),
                None => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })?;
        Ok(t.data)
    };
    let mut out = Vec::with_capacity(aggs.len());
    for agg in aggs {
        let t = agg.transform_down(|e| {
            if matches!(e, Expr::Column(_) | Expr::Literal(..) | Expr::Alias(_) | Expr::AggregateFunction(_)) || !of_stage(&e) {
                return Ok(Transformed::no(e));
            }
            let i = found.iter().position(|k| *k == e).unwrap_or_else(|| {
                found.push(e.clone());
                found.len() - 1
            });
            let hoisted = when(col(STAGE_ROW).is_true(), col(format!("__stage_value{i}"))).otherwise(over_nulls(e).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?)?;
            Ok(Transformed::new(hoisted, true, TreeNodeRecursion::Jump))
        })?;
        out.push(t.data);
    }
    if found.is_empty() {
        return Ok((out, Vec::new()));
    }
    let mut computed: Vec<Expr> = found.into_iter().enumerate().map(|(i, e)| e.alias(format!("__stage_value{i}"))).collect();
    computed.push(lit(true).alias(STAGE_ROW));
    Ok((out, computed))
}

/// Whether a (simplified) condition can never be true: a false or null literal, a
/// conjunction with such a part, or a disjunction of such parts.
fn never_true(e: &Expr) -> bool {
    use datafusion::common::ScalarValue;
    match e {
        Expr::Literal(ScalarValue::Boolean(Some(false) | None) | ScalarValue::Null, _) => true,
        Expr::BinaryExpr(b) if b.op == Operator::And => never_true(&b.left) || never_true(&b.right),
        Expr::BinaryExpr(b) if b.op == Operator::Or => never_true(&b.left) && never_true(&b.right),
        _ => false,
    }
}

/// Whether `filter` is never true when the stage's `values` it reads are null and
/// `__stage_row` is true (`has_row`, a stage row that exists) or null (none): the
/// names of the values it reads if so, None if it may be true. Any column left
/// must be typed by `fields`; anything else, like any doubt, answers None.
fn never_true_without(filter: &Expr, values: &[(String, DataType)], has_row: bool, fields: Vec<Field>) -> Result<Option<Vec<String>>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::common::DFSchema;
    let mut read = Vec::new();
    let nulled = filter.clone().transform(|e| {
        let Expr::Column(c) = &e else { return Ok(Transformed::no(e)) };
        if c.name == STAGE_ROW {
            return Ok(Transformed::yes(lit(ScalarValue::Boolean(has_row.then_some(true)))));
        }
        match values.iter().find(|(n, _)| *n == c.name) {
            Some((n, ty)) => {
                read.push(n.clone());
                Ok(Transformed::yes(lit(ScalarValue::try_from(ty)?)))
            }
            None => Ok(Transformed::no(e)),
        }
    })?;
    let schema = Arc::new(DFSchema::try_from(arrow::datatypes::Schema::new(fields))?);
    if nulled.data.column_refs().iter().any(|c| schema.field_with_unqualified_name(&c.name).is_err()) {
        return Ok(None);
    }
    Ok(simplified(nulled.data, &schema).is_some_and(|e| never_true(&e)).then_some(read))
}

/// `e` simplified (constants folded) against `schema`; None if the simplifier fails.
fn simplified(e: Expr, schema: &datafusion::common::DFSchemaRef) -> Option<Expr> {
    use datafusion::logical_expr::simplify::SimplifyContext;
    use datafusion::optimizer::simplify_expressions::ExprSimplifier;
    ExprSimplifier::new(SimplifyContext::builder().with_schema(Arc::clone(schema)).build()).simplify(e).ok()
}

/// `e` with the columns `nulled` names replaced by nulls of their types in `schema`,
/// and the names replaced; None if one of them is not in `schema`.
fn with_nulls(e: &Expr, schema: &datafusion::common::DFSchema, nulled: impl Fn(&str) -> bool) -> Option<(Expr, Vec<String>)> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let mut read = Vec::new();
    let replaced = e.clone().transform(|e| {
        let Expr::Column(c) = &e else { return Ok(Transformed::no(e)) };
        if !nulled(&c.name) {
            return Ok(Transformed::no(e));
        }
        let ty = schema.field_with_unqualified_name(&c.name)?.data_type().clone();
        read.push(c.name.clone());
        Ok(Transformed::yes(lit(ScalarValue::try_from(&ty)?)))
    });
    replaced.ok().map(|r| (r.data, read))
}

/// The columns an expression reads, if it is null whenever they all are (so that it
/// is not null only where one of them is not); None otherwise, or in doubt.
fn null_without_columns(e: &Expr, schema: &datafusion::common::DFSchemaRef) -> Result<Option<Vec<String>>> {
    // The key is never null (and the interval's parameter is computed from it).
    let Some((nulled, read)) = with_nulls(e, schema, |c| c != PID) else { return Ok(None) };
    let is_null = simplified(nulled, schema).is_some_and(|e| matches!(e, Expr::Literal(v, _) if v.is_null()));
    Ok((is_null && !read.is_empty()).then_some(read))
}

/// A column true on every row of an earlier stage's values.
const STAGE_ROW: &str = "__stage_row";

/// Ends the presence column of the once-per-patient half of a split pass.
const ONCE_SUFFIX: &str = "__once";

/// The patient part of an earlier stage's (patient, interval) key.
const STAGE_PATIENT: &str = "__stage_patient";

/// Replace the computed sort keys of the aggregates (picks) that are expressions of
/// the row alone (`own`) by columns; those columns' definitions.
fn hoist_sort_keys(aggs: Vec<Expr>, own: impl Fn(&Expr) -> bool) -> Result<(Vec<Expr>, Vec<Expr>)> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    let mut keys: Vec<Expr> = Vec::new();
    let mut out = Vec::with_capacity(aggs.len());
    for agg in aggs {
        let t = agg.transform_down(|e| {
            let Expr::AggregateFunction(mut f) = e else { return Ok(Transformed::no(e)) };
            let mut changed = false;
            // A pick's key is its second argument; other aggregates' are in ORDER BY.
            let pick_key = f.func.name().starts_with("ehr_pick").then(|| f.params.args.get_mut(1)).flatten();
            for expr in f.params.order_by.iter_mut().map(|s| &mut s.expr).chain(pick_key) {
                if matches!(expr, Expr::Column(_)) || intervals::mentions_interval(expr) || !own(expr) {
                    continue;
                }
                let i = keys.iter().position(|k| k == expr).unwrap_or_else(|| {
                    keys.push(expr.clone());
                    keys.len() - 1
                });
                *expr = col(format!("__sort_key{i}"));
                changed = true;
            }
            Ok(Transformed::new(Expr::AggregateFunction(f), changed, TreeNodeRecursion::Jump))
        })?;
        out.push(t.data);
    }
    let keys = keys.into_iter().enumerate().map(|(i, k)| k.alias(format!("__sort_key{i}"))).collect();
    Ok((out, keys))
}

/// The aggregates with each of `holding` (conditions known to hold on every row)
/// replaced by `true` wherever it appears.
fn assume_true(aggs: Vec<Expr>, holding: Vec<Expr>) -> Result<Vec<Expr>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    if holding.is_empty() {
        return Ok(aggs);
    }
    let strip = |a: Expr| -> Result<Expr> {
        let a = a.transform(|e| Ok(if holding.contains(&e) { Transformed::yes(lit(true)) } else { Transformed::no(e) }))?.data;
        // A filter left with nothing but `true` in it is no filter.
        Ok(a.transform(|e| {
            let Expr::AggregateFunction(mut f) = e else { return Ok(Transformed::no(e)) };
            if let Some(filter) = f.params.filter.take() {
                let rest: Vec<Expr> = split_conjunction(&filter).into_iter().filter(|c| **c != lit(true)).cloned().collect();
                f.params.filter = rest.into_iter().reduce(Expr::and).map(Box::new);
            }
            Ok(Transformed::yes(Expr::AggregateFunction(f)))
        })?
        .data)
    };
    aggs.into_iter().map(strip).collect()
}

/// Each aggregate's filter as its conjuncts, if every aggregate has a filter.
fn filter_parts(aggs: &[Expr]) -> Option<Vec<Vec<Expr>>> {
    let mut filters: Vec<Vec<Expr>> = Vec::new();
    for agg in aggs {
        let agg = match agg {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::AggregateFunction(f) = agg else { return None };
        let parts: Vec<Expr> = split_conjunction(f.params.filter.as_deref()?).into_iter().cloned().collect();
        if !filters.contains(&parts) {
            filters.push(parts);
        }
    }
    Some(filters)
}

/// The conditions every aggregate's filter has, if every aggregate has one.
fn shared_conditions(aggs: &[Expr]) -> Option<Vec<Expr>> {
    let filters = filter_parts(aggs)?;
    Some(filters.first()?.iter().filter(|c| filters.iter().all(|f| f.contains(c))).cloned().collect())
}

/// The disjunction of the aggregates' filters, if every aggregate has one: the
/// conditions all filters share, and then any of the rest. Where the rest are all
/// tests of codelist bits in one mask (see `codesets`), they become one test.
fn any_filter(aggs: &[Expr]) -> Option<Expr> {
    any_of(filter_parts(aggs)?)
}

/// For rows about to be repeated for every interval: the part of [`any_filter`] that
/// a row's own columns (`own`) decide, which can drop rows before they are repeated.
/// None when that keeps every row.
fn own_filter(aggs: &[Expr], own: impl Fn(&str) -> bool) -> Option<Expr> {
    let filters = filter_parts(aggs)?;
    let decided = |c: &Expr| !intervals::mentions_interval(c) && c.column_refs().iter().all(|r| own(&r.name));
    let filters: Vec<Vec<Expr>> = filters.into_iter().map(|f| f.into_iter().filter(decided).collect()).collect();
    if filters.iter().any(|f| f.is_empty()) {
        return None;
    }
    any_of(filters)
}

fn any_of(filters: Vec<Vec<Expr>>) -> Option<Expr> {
    let common: Vec<Expr> = filters[0].iter().filter(|c| filters.iter().all(|f| f.contains(c))).cloned().collect();
    let rest: Vec<Vec<Expr>> = filters.iter().map(|f| f.iter().filter(|c| !common.contains(c)).cloned().collect()).collect();
    // A filter with nothing beyond the shared conditions keeps every row they keep.
    if rest.iter().any(|r| r.is_empty()) {
        return common.into_iter().reduce(Expr::and).or(Some(lit(true)));
    }
    // When every filter tests codelists of one mask among other conditions, the
    // union of those codelists is a condition of its own, tested first: a scan
    // then decodes the rest of the row only for rows with a code of interest.
    let implied = rest.iter().any(|r| r.len() > 1).then(|| codesets::implied_bit_test(&rest)).flatten();
    let alternatives = match merge_date_ranges(&rest) {
        Some(ranges) => ranges.into_iter().reduce(Expr::or),
        None => {
            let alternatives: Vec<Expr> = rest.into_iter().map(|r| r.into_iter().reduce(Expr::and).expect("not empty")).collect();
            codesets::merge_bit_tests(alternatives).into_iter().reduce(Expr::or)
        }
    };
    // Codelist tests first: a scan evaluates the conjuncts in this order, each on
    // the rows the ones before kept, and a codelist keeps far fewer rows than a
    // date range does.
    let (codes, others): (Vec<Expr>, Vec<Expr>) = common.into_iter().chain(implied).chain(alternatives).partition(codesets::is_bit_test);
    codes.into_iter().chain(others).reduce(Expr::and).or(Some(lit(true)))
}

/// Alternatives that are each a date range of one column, `x >= a AND x <= b` (as
/// conjuncts), as the fewest ranges covering the same days: a dataset with a value
/// per month asks for 24 adjacent months, which are one range of two years, tested
/// with two comparisons per row instead of 48.
fn merge_date_ranges(alternatives: &[Vec<Expr>]) -> Option<Vec<Expr>> {
    use datafusion::common::ScalarValue;
    let bound = |e: &Expr| -> Option<(Column, Operator, i32)> {
        let Expr::BinaryExpr(b) = e else { return None };
        match (b.left.as_ref(), b.right.as_ref()) {
            (Expr::Column(c), Expr::Literal(ScalarValue::Date32(Some(d)), _)) => Some((c.clone(), b.op, *d)),
            _ => None,
        }
    };
    let mut column: Option<Column> = None;
    let mut ranges = Vec::with_capacity(alternatives.len());
    for conjuncts in alternatives {
        let [a, b] = conjuncts.as_slice() else { return None };
        let (ca, oa, da) = bound(a)?;
        let (cb, ob, db) = bound(b)?;
        let (lo, hi) = match (oa, ob) {
            (Operator::GtEq, Operator::LtEq) => (da, db),
            (Operator::LtEq, Operator::GtEq) => (db, da),
            _ => return None,
        };
        if ca != cb || column.as_ref().is_some_and(|c| *c != ca) {
            return None;
        }
        column = Some(ca);
        ranges.push((lo, hi));
    }
    let column = column?;
    ranges.sort();
    let mut merged: Vec<(i32, i32)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            // Overlapping or adjacent (the next day) ranges are one range.
            Some(last) if i64::from(lo) <= i64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let day = |d: i32| lit(ScalarValue::Date32(Some(d)));
    Some(merged.into_iter().map(|(lo, hi)| Expr::Column(column.clone()).gt_eq(day(lo)).and(Expr::Column(column.clone()).lt_eq(day(hi)))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ScalarValue;

    fn day(d: i32) -> Expr {
        lit(ScalarValue::Date32(Some(d)))
    }

    fn range(lo: i32, hi: i32) -> Vec<Expr> {
        vec![col("date").gt_eq(day(lo)), col("date").lt_eq(day(hi))]
    }

    #[test]
    fn adjacent_and_overlapping_date_ranges_merge_and_gaps_stay() {
        // Days 0-30 and 31-58 touch, 50-70 overlaps them; 80-90 is apart.
        let merged = merge_date_ranges(&[range(31, 58), range(80, 90), range(0, 30), range(50, 70)]).unwrap();
        let expected = vec![
            col("date").gt_eq(day(0)).and(col("date").lt_eq(day(70))),
            col("date").gt_eq(day(80)).and(col("date").lt_eq(day(90))),
        ];
        assert_eq!(merged, expected);
    }

    #[test]
    fn only_ranges_of_one_column_merge() {
        let other = vec![col("start_date").gt_eq(day(0)), col("start_date").lt_eq(day(9))];
        assert_eq!(merge_date_ranges(&[range(0, 9), other]), None);
        assert_eq!(merge_date_ranges(&[range(0, 9), vec![col("date").gt_eq(day(3))]]), None);
        let strict = vec![col("date").gt(day(0)), col("date").lt_eq(day(9))];
        assert_eq!(merge_date_ranges(&[strict]), None);
    }

    #[test]
    fn conditions_known_to_hold_leave_the_filters() {
        use datafusion::functions_aggregate::expr_fn::count;
        use datafusion::logical_expr::ExprFunctionExt;
        let started = col("start_date").lt_eq(col(intervals::START));
        let coded = col("code").eq(lit("x"));
        let filtered = |f: Expr| count(lit(1)).filter(f).build().unwrap();
        let aggs = vec![
            filtered(started.clone()).alias("a"),
            filtered(started.clone().and(coded.clone())).alias("b"),
            filtered(coded.clone()).alias("c"),
        ];
        let expected = vec![count(lit(1)).alias("a"), filtered(coded.clone()).alias("b"), filtered(coded.clone()).alias("c")];
        assert_eq!(assume_true(aggs.clone(), vec![started]).unwrap(), expected);
        assert_eq!(assume_true(aggs.clone(), vec![]).unwrap(), aggs);
    }

    #[test]
    fn an_expression_is_tested_by_its_columns_only_where_it_is_null_without_them() {
        use datafusion::common::DFSchema;
        let schema = Arc::new(
            DFSchema::try_from(arrow::datatypes::Schema::new(vec![
                Field::new("a", DataType::Date32, true),
                Field::new("b", DataType::Date32, true),
                Field::new(PID, DataType::Int64, false),
            ]))
            .unwrap(),
        );
        use crate::compile::functions::call;
        use datafusion::logical_expr::when;
        let shifted = call("ehr_date_add_days", vec![col("a"), lit(-1i64)]);
        let either = when(col("a").lt(col("b")), col("a")).otherwise(col("b")).unwrap();
        let filled = when(col("a").is_not_null(), col("a")).otherwise(day(0)).unwrap();
        // The key is never null: it is left alone.
        let by_key = col("a").lt_eq(call("ehr_date_add_days", vec![day(0), col(PID)]));
        assert_eq!(null_without_columns(&shifted, &schema).unwrap(), Some(vec!["a".to_string()]));
        assert_eq!(null_without_columns(&either, &schema).unwrap(), Some(vec!["a".into(), "b".into(), "a".into(), "b".into()]));
        assert_eq!(null_without_columns(&filled, &schema).unwrap(), None);
        assert_eq!(null_without_columns(&by_key, &schema).unwrap(), Some(vec!["a".to_string()]));
        assert_eq!(null_without_columns(&day(3), &schema).unwrap(), None);
    }
}
