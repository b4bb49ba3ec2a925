//! `--index-date-range` in one pass. A study lowered at each index date gives models
//! that differ only in constants (the dates computed from the index date), so the
//! dates' models become one whose differing constants are parameters with a value
//! per date. It runs keyed by (patient, date) as measures run over intervals (see
//! [`crate::compile::intervals`]): each table is read once for all the dates, and
//! each row the dates' filters can share (codelists, say) is tested once.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Field, Int64Type, Schema};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::compile::analyze::scalar;
use crate::compile::intervals::{Intervals, Param};
use crate::compile::{Planner, Providers};
use crate::err;
use crate::error::Result;
use crate::model::measures::EVALUATION_PREFIX;
use crate::model::{Node, QueryModel};
use crate::run::{Prepared, TableResult};

/// Dates whose models have one shape, as one model with parameters.
pub struct Pass {
    /// Positions of the dates (in the list given to [`unify`]).
    pub dates: Vec<usize>,
    pub model: QueryModel,
    pub params: Vec<Param>,
}

impl Pass {
    /// The parameters' values at some of this pass's dates (positions in `dates`).
    pub fn intervals(&self, chosen: &[usize]) -> Result<Intervals> {
        let indexes = arrow::array::UInt32Array::from_iter_values(chosen.iter().map(|&i| i as u32));
        let params = self
            .params
            .iter()
            .map(|p| Ok(Param { name: p.name.clone(), values: arrow::compute::take(p.values.as_ref(), &indexes, None)? }))
            .collect::<Result<Vec<_>>>()?;
        Ok(Intervals::evaluations(chosen.len(), params))
    }
}

/// Group the models by shape (the same nodes but for the values of constants) and
/// make each group one model. Dates normally share one shape; one differs where,
/// say, a date computed from the index date equals a fixed date of the study on
/// that date alone and the two constants were written as one node.
pub fn unify(models: &[QueryModel]) -> Vec<Pass> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, m) in models.iter().enumerate() {
        match groups.iter_mut().find(|g| same_shape(&models[g[0]], m)) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut passes = Vec::new();
    for g in groups {
        match parameterise(models, &g) {
            Some(pass) => passes.push(pass),
            // Constants whose values cannot share a column: each date on its own.
            None => passes.extend(g.into_iter().map(|i| Pass { dates: vec![i], model: models[i].clone(), params: Vec::new() })),
        }
    }
    passes
}

/// (The schema is the backend's, so the same.)
fn same_shape(a: &QueryModel, b: &QueryModel) -> bool {
    a.backend == b.backend
        && a.dataset == b.dataset
        && a.nodes.len() == b.nodes.len()
        && a.nodes.iter().zip(&b.nodes).all(|(x, y)| match (x, y) {
            (Node::Value { ty: tx, .. }, Node::Value { ty: ty_, .. }) => tx == ty_,
            _ => x == y,
        })
}

/// The group's model with each constant that differs between its dates replaced by
/// a parameter.
fn parameterise(models: &[QueryModel], group: &[usize]) -> Option<Pass> {
    let mut model = models[group[0]].clone();
    let mut params = Vec::new();
    if group.len() > 1 {
        for (id, node) in model.nodes.iter_mut().enumerate() {
            let Node::Value { ty, .. } = node else { continue };
            let values: Vec<_> = group
                .iter()
                .map(|&i| match &models[i].nodes[id] {
                    Node::Value { value, .. } => value.clone(),
                    _ => unreachable!("same_shape compared the nodes"),
                })
                .collect();
            if values.iter().all(|v| *v == values[0]) {
                continue;
            }
            let scalars = values.iter().map(|v| scalar(ty, v)).collect::<Result<Vec<_>>>().ok()?;
            let values = ScalarValue::iter_to_array(scalars).ok()?;
            let name = format!("{EVALUATION_PREFIX}{id}");
            *node = Node::Parameter { name: name.clone(), ty: ty.clone() };
            params.push(Param { name, values });
        }
    }
    Some(Pass { dates: group.to_vec(), model, params })
}

/// The study's rows at each of the intervals' dates, in one plan: one table of
/// results per date, each in patient order.
pub async fn execute(ctx: &SessionContext, prepared: &Prepared, iv: &Intervals, providers: &Providers) -> Result<Vec<TableResult>> {
    if !prepared.analysis.event_tables.is_empty() {
        return Err(err!("a study has no event-level tables"));
    }
    let mut planner = Planner::new(&prepared.analysis, providers).for_intervals(iv.clone()).all_tables_patients(prepared.patients_from_all_tables);
    planner.materialise_stages(ctx).await?;
    let batches = crate::run::collect_with_metrics(ctx, planner.measure_rows_plan()?, "study rows at every index date").await?;
    let columns = prepared.dataset_columns();
    split_by_date(batches, iv.len() as usize)?
        .into_iter()
        .map(|batch| Ok(TableResult { name: "dataset".into(), columns: columns.clone(), batches: batch.into_iter().collect() }))
        .collect()
}

/// Keyed rows (date index, patient, variables...) as one batch of dataset rows
/// (patient_id, variables...) per date, sorted by patient (None for a date with no
/// rows). Only the two key columns are sorted; each column is then gathered once.
/// Dates are split side by side (on rayon's threads).
fn split_by_date(batches: Vec<RecordBatch>, dates: usize) -> Result<Vec<Option<RecordBatch>>> {
    let mut rows: Vec<Vec<(i64, usize, usize)>> = vec![Vec::new(); dates];
    for (b, batch) in batches.iter().enumerate() {
        let index = batch.column(0).as_primitive::<Int64Type>();
        let patient = batch.column(1).as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            rows[index.value(r) as usize].push((patient.value(r), b, r));
        }
    }
    let Some(first) = batches.first() else { return Ok(vec![None; dates]) };
    let schema = first.schema();
    let mut fields: Vec<Field> = vec![Field::new("patient_id", schema.field(1).data_type().clone(), false)];
    fields.extend(schema.fields().iter().skip(2).map(|f| f.as_ref().clone().with_nullable(true)));
    let out_schema = Arc::new(Schema::new(fields));
    let sources: Vec<Vec<&dyn Array>> = (1..schema.fields().len()).map(|c| batches.iter().map(|b| b.column(c).as_ref()).collect()).collect();
    use rayon::prelude::*;
    rows.into_par_iter()
        .map(|mut date_rows| {
            if date_rows.is_empty() {
                return Ok(None);
            }
            date_rows.sort_unstable_by_key(|&(patient, _, _)| patient);
            let picks: Vec<(usize, usize)> = date_rows.iter().map(|&(_, b, r)| (b, r)).collect();
            let columns = sources.iter().map(|arrays| arrow::compute::interleave(arrays, &picks)).collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            Ok(Some(RecordBatch::try_new(out_schema.clone(), columns)?))
        })
        .collect()
}

/// Keyed (patient, date) rows one pass may hold: its results stay in memory until
/// every date's file is written, so a long range over many patients runs as
/// several passes of as many dates as fit.
const ROWS_PER_PASS: usize = 3_000_000;

/// How many dates one pass takes, from the number of patients in the data.
pub async fn dates_per_pass(ctx: &SessionContext, providers: &Providers) -> Result<usize> {
    let Some(patients) = providers.get("patients") else { return Ok(usize::MAX) };
    let n = ctx.read_table(patients.clone())?.count().await?;
    Ok((ROWS_PER_PASS / n.max(1)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::json;

    /// `registered_as_of` and `age_as_of` at an index date, as the Python lowering
    /// writes them; `extra` adds a node after the date.
    fn study_at(date: &str, age_as_of: &str) -> QueryModel {
        let text = r#"{"format":"ehrfusion-query-model","version":1,"backend":"tpp","tables":{},"nodes":[
            {"op":"SelectPatientTable","table":"patients"},{"op":"Exists","source":0},
            {"op":"SelectTable","table":"practice_registrations"},{"op":"SelectColumn","source":2,"name":"start_date"},
            {"op":"Value","type":"date","value":"DATE"},{"op":"LE","lhs":3,"rhs":4},
            {"op":"SelectColumn","source":2,"name":"end_date"},{"op":"GT","lhs":6,"rhs":4},{"op":"IsNull","source":6},
            {"op":"Or","lhs":7,"rhs":8},{"op":"And","lhs":5,"rhs":9},{"op":"Filter","source":2,"condition":10},
            {"op":"Exists","source":11},{"op":"And","lhs":1,"rhs":12},{"op":"SelectColumn","source":0,"name":"date_of_birth"},
            {"op":"Value","type":"date","value":"AGE_AS_OF"},{"op":"DateDifferenceInYears","lhs":15,"rhs":14}],
            "dataset":{"population":13,"variables":{"age":16},"event_tables":{}}}"#;
        json::parse(&text.replace("DATE", date).replace("AGE_AS_OF", age_as_of)).unwrap()
    }

    #[test]
    fn dates_differing_in_constants_become_one_pass_with_a_parameter_per_constant() {
        let models = [study_at("2020-01-01", "2020-01-01"), study_at("2020-02-01", "2020-02-01"), study_at("2020-03-01", "2019-12-31")];
        let passes = unify(&models);
        assert_eq!(passes.len(), 1);
        let pass = &passes[0];
        assert_eq!(pass.dates, vec![0, 1, 2]);
        let names: Vec<&str> = pass.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["__evaluation_4", "__evaluation_15"]);
        assert!(matches!(&pass.model.nodes[4], Node::Parameter { name, .. } if name == "__evaluation_4"));
        // Nodes equal at every date stay constants.
        assert!(matches!(pass.model.nodes[3], Node::SelectColumn { .. }));
        let days = |p: &Param| p.values.as_primitive::<arrow::datatypes::Date32Type>().values().to_vec();
        assert_eq!(days(&pass.params[0]), vec![18262, 18293, 18322]);
        assert_eq!(days(&pass.params[1]), vec![18262, 18293, 18261]);
        // The parameters of some of the dates, in the order asked for.
        let iv = pass.intervals(&[2, 0]).unwrap();
        assert_eq!(iv.len(), 2);
        assert_eq!(days(&iv.1[0]), vec![18322, 18262]);
    }

    #[test]
    fn a_date_whose_model_has_another_shape_runs_apart() {
        let mut other = study_at("2020-02-01", "2020-02-01");
        other.nodes[16] = Node::Function { function: crate::model::Function::DateDifferenceInMonths, args: vec![15, 14] };
        let models = [study_at("2020-01-01", "2020-01-01"), other, study_at("2020-03-01", "2020-03-01")];
        let passes = unify(&models);
        let dates: Vec<Vec<usize>> = passes.iter().map(|p| p.dates.clone()).collect();
        assert_eq!(dates, vec![vec![0, 2], vec![1]]);
        assert!(passes[1].params.is_empty());
        assert_eq!(passes[1].model.nodes, models[1].nodes);
    }
}
