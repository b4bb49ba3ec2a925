//! Planning: turn an [`Analysis`] into DataFusion logical plans, stage by stage.
//!
//! Stage k's event passes read the patient-level values of stages before k, which are
//! materialised in memory (one row per patient) before stage k is planned. Within a
//! stage each source appears once, so each table is scanned once per stage. Sources
//! are combined with full outer joins on `patient_id`, and the population then keeps
//! the patients who appear in a table the population uses and satisfy it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;

use super::analyze::{Analysis, EventTable, Source, SourceKind};
use super::codesets;
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
}

impl<'a> Planner<'a> {
    pub fn new(analysis: &'a Analysis, providers: &'a Providers) -> Self {
        Planner { analysis, providers, materialised: Vec::new(), patients: PatientRange::default() }
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

    /// Scan a table's rows for the planned patients.
    fn table_rows(&self, table: &str) -> Result<LogicalPlanBuilder> {
        let b = self.scan(table, self.provider(table)?)?;
        let PatientRange { first, end } = self.patients;
        let bounds = first.map(|f| col("patient_id").gt_eq(lit(f))).into_iter().chain(end.map(|e| col("patient_id").lt(lit(e))));
        Ok(match bounds.reduce(Expr::and) {
            Some(f) => b.filter(f)?,
            None => b,
        })
    }

    /// Scan an event table, joined to the values of earlier stages when it needs them.
    fn event_rows(&self, table: &str, stage: usize) -> Result<LogicalPlanBuilder> {
        let b = self.table_rows(table)?;
        if stage == 0 {
            return Ok(b);
        }
        let values = self.materialised.get(stage - 1).ok_or_else(|| err!("stage {stage} planned before it was materialised"))?;
        let values = self.scan(&format!("__stage{stage}"), values)?.build()?;
        Ok(b.join(values, JoinType::Left, (vec![Column::from_name("patient_id")], vec![Column::from_name(PID)]), None)?)
    }

    fn source_plan(&self, s: &Source) -> Result<LogicalPlan> {
        let mut out = vec![col("patient_id").alias(PID), lit(true).alias(s.presence.as_str())];
        Ok(match &s.kind {
            SourceKind::PatientTable | SourceKind::Inline(_) => {
                out.extend(s.columns.iter().map(|(name, e)| e.clone().alias(name.as_str())));
                self.table_rows(&s.table)?.project(out)?.build()?
            }
            SourceKind::Events => {
                let aggs: Vec<Expr> = s.columns.iter().map(|(name, e)| e.clone().alias(name.as_str())).collect();
                let (aggs, masks) = codesets::rewrite(aggs)?;
                out.extend(s.columns.iter().map(|(name, _)| col(name.as_str())));
                let mut rows = self.event_rows(&s.table, s.stage)?;
                if !masks.is_empty() {
                    let mut columns: Vec<Expr> = rows.schema().columns().into_iter().map(Expr::Column).collect();
                    columns.extend(masks);
                    rows = rows.project(columns)?;
                }
                // A row that no value's filter keeps cannot change any value, so such
                // rows are dropped before grouping. If this pass also says which
                // patients the table has, that comes from a grouping of patient ids
                // alone, which is far cheaper than the values over every row.
                let Some(any) = any_filter(&aggs) else {
                    return Ok(rows.aggregate(vec![col("patient_id")], aggs)?.project(out)?.build()?);
                };
                let values = rows.filter(any)?.aggregate(vec![col("patient_id")], aggs)?;
                if !self.analysis.universe.contains(&s.presence) {
                    return Ok(values.project(out)?.build()?);
                }
                let values = values.project(std::iter::once(col("patient_id").alias(PID)).chain(s.columns.iter().map(|(n, _)| col(n.as_str()))))?;
                let present = self
                    .table_rows(&s.table)?
                    .aggregate(vec![col("patient_id")], Vec::<Expr>::new())?
                    .project(vec![col("patient_id").alias(PID), lit(true).alias(s.presence.as_str())])?;
                outer_join_all(vec![present.build()?, values.build()?])?
            }
        })
    }

    /// All patient-level values through `stage`: the materialised earlier stages plus
    /// this stage's sources, joined on patient_id.
    fn frame_through(&self, stage: usize) -> Result<LogicalPlan> {
        let mut plans = Vec::new();
        if stage > 0 {
            plans.push(self.scan(&format!("__stage{stage}"), &self.materialised[stage - 1])?.build()?);
        }
        for s in self.analysis.sources.iter().filter(|s| s.stage == stage) {
            plans.push(self.source_plan(s)?);
        }
        outer_join_all(plans)
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
        let considered = self
            .analysis
            .universe
            .iter()
            .map(|p| col(p.as_str()).is_not_null())
            .reduce(|a, b| a.or(b))
            .ok_or_else(|| err!("the population uses no table"))?;
        let keep = considered.and(self.analysis.population.clone().is_true());
        Ok(LogicalPlanBuilder::from(frame)
            .filter(keep)?
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

/// Full outer join plans that each have one row per patient and a `__pid` column.
fn outer_join_all(plans: Vec<LogicalPlan>) -> Result<LogicalPlan> {
    let mut plans = plans.into_iter();
    let mut acc = plans.next().ok_or_else(|| err!("nothing to join"))?;
    for right in plans {
        let l = LogicalPlanBuilder::from(acc).alias("l")?.build()?;
        let r = LogicalPlanBuilder::from(right).alias("r")?.build()?;
        let joined = LogicalPlanBuilder::from(l).join(
            r,
            JoinType::Full,
            (vec![Column::new(Some("l"), PID)], vec![Column::new(Some("r"), PID)]),
            None,
        )?;
        let mut out = vec![
            coalesce(vec![Expr::Column(Column::new(Some("l"), PID)), Expr::Column(Column::new(Some("r"), PID))]).alias(PID),
        ];
        for (q, f) in joined.schema().iter() {
            if f.name() != PID {
                out.push(Expr::Column(Column::new(q.cloned(), f.name())));
            }
        }
        acc = joined.project(out)?.build()?;
    }
    Ok(acc)
}

/// Run a plan and keep its result in memory as a table.
pub async fn materialise(ctx: &SessionContext, plan: LogicalPlan) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// An empty table with a plan's schema, standing in for a stage when explaining.
pub fn placeholder(plan: &LogicalPlan) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

/// The disjunction of the aggregates' filters, if every aggregate has one: the
/// conditions all filters share, and then any of the rest. Where the rest are all
/// tests of codelist bits in one mask (see `codesets`), they become one test.
fn any_filter(aggs: &[Expr]) -> Option<Expr> {
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
    let common: Vec<Expr> = filters[0].iter().filter(|c| filters.iter().all(|f| f.contains(c))).cloned().collect();
    let rest: Vec<Option<Expr>> = filters.iter().map(|f| f.iter().filter(|c| !common.contains(c)).cloned().reduce(Expr::and)).collect();
    // A filter with nothing beyond the shared conditions keeps every row they keep.
    let rest = rest.into_iter().collect::<Option<Vec<Expr>>>().map(|r| codesets::merge_bit_tests(r).into_iter().reduce(Expr::or));
    common.into_iter().chain(rest.flatten()).reduce(Expr::and).or(Some(lit(true)))
}
