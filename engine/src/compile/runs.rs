//! `ehr_runs(x1, .., xn, args..)`: an aggregate over a patient's rows that gives one
//! value per interval of a measure, for rows that each count in a run of
//! consecutive intervals (a registration spanning the intervals' starts, an event
//! before them; see [`Intervals::run`]).
//!
//! Repeating each row for its run and grouping by (patient, interval) hashes one
//! key per repeated row into a table of millions of groups: in the measures
//! workload at 1 M patients that grouping was a third of all compute. Here rows are
//! grouped by patient alone, and the wrapped aggregate (`count`, or a pick) keeps
//! `K` groups of its own per patient, `patient's group * K + interval index`, which
//! each row updates over its run without hashing. The result per patient is a
//! fixed-size list of `K` values, one per interval, which the plan unnests.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Int64Array};
use arrow::datatypes::{DataType, Date32Type, Field, FieldRef};
use datafusion::common::{Result as DFResult, exec_err, not_impl_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility};

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use super::intervals::{Intervals, Limit};
use super::pick::Picks;

/// `inner` evaluated per interval over rows limited to runs of `intervals` by
/// `limits`: its arguments are the limits' compared dates, then `inner`'s own.
pub fn runs_udaf(intervals: Intervals, limits: Vec<Limit>, inner: Arc<AggregateUDF>) -> Arc<AggregateUDF> {
    let name = format!("ehr_runs_{}", inner.name());
    Arc::new(AggregateUDF::new_from_impl(Runs { intervals, limits, inner, name, signature: Signature::variadic_any(Volatility::Immutable) }))
}

/// The intervals, limits and wrapped aggregate of an `ehr_runs` aggregate (None for
/// any other).
pub fn runs_parts(f: &AggregateUDF) -> Option<(&Intervals, &[Limit], &Arc<AggregateUDF>)> {
    let runs = f.inner().downcast_ref::<Runs>()?;
    Some((&runs.intervals, &runs.limits, &runs.inner))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Runs {
    intervals: Intervals,
    limits: Vec<Limit>,
    inner: Arc<AggregateUDF>,
    name: String,
    signature: Signature,
}

/// A list of `k` values of `ty`.
fn list_of(ty: &DataType, k: usize) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new_list_field(ty.clone(), true)), k as i32)
}

impl Runs {
    fn k(&self) -> usize {
        self.intervals.0.len()
    }

    /// The wrapped aggregate's arguments: those after the limits' dates.
    fn inner_args<'a>(&self, args: &AccumulatorArgs<'a>) -> DFResult<AccumulatorArgs<'a>> {
        let n = self.limits.len();
        Ok(AccumulatorArgs {
            return_field: self.inner.return_field(&args.expr_fields[n..])?,
            schema: args.schema,
            ignore_nulls: args.ignore_nulls,
            order_bys: args.order_bys,
            is_reversed: args.is_reversed,
            name: args.name,
            is_distinct: args.is_distinct,
            exprs: &args.exprs[n..],
            expr_fields: &args.expr_fields[n..],
        })
    }

    /// What each slot keeps for the inner aggregate; the one test of whether it is
    /// supported, so that DataFusion never asks for the ungrouped accumulator.
    fn kind(&self, args: &AccumulatorArgs) -> DFResult<Kind> {
        let inner_args = self.inner_args(args)?;
        Ok(match super::pick::pick_first(&self.inner) {
            Some(first) => Kind::Pick(Picks::new(first, inner_args.return_field.data_type())),
            None if self.inner.name() == "count" && inner_args.exprs.len() == 1 && !args.is_distinct => Kind::Count(Vec::new()),
            None => return not_impl_err!("{}: only counts and picks count in runs of intervals", self.name),
        })
    }
}

impl AggregateUDFImpl for Runs {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        Ok(list_of(&self.inner.return_type(&args[self.limits.len()..])?, self.k()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        let inputs = &args.input_fields[self.limits.len()..];
        let inner = self.inner.state_fields(StateFieldsArgs {
            name: args.name,
            input_fields: inputs,
            return_field: self.inner.return_field(inputs)?,
            ordering_fields: args.ordering_fields,
            is_distinct: args.is_distinct,
        })?;
        Ok(inner.iter().map(|f| Arc::new(Field::new(f.name(), list_of(f.data_type(), self.k()), true))).collect())
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        not_impl_err!("{}: only grouped by patient", self.name)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.kind(&args).is_ok()
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn GroupsAccumulator>> {
        let kind = self.kind(&args)?;
        Ok(Box::new(RunsAccumulator { intervals: self.intervals.clone(), limits: self.limits.clone(), kind, groups: 0 }))
    }
}

/// The values kept per (group, interval), at `group * k + interval index`.
#[derive(Debug)]
enum Kind {
    /// `count(x)`: the rows with x not null.
    Count(Vec<i64>),
    /// A pick's candidates (see `pick`), the rows referred to where they came in.
    Pick(Picks),
}

#[derive(Debug)]
struct RunsAccumulator {
    intervals: Intervals,
    limits: Vec<Limit>,
    kind: Kind,
    /// How many (patient) groups there are.
    groups: usize,
}

impl RunsAccumulator {
    fn k(&self) -> usize {
        self.intervals.0.len()
    }

    /// The (row, group * k + interval) pairs of the rows of a batch not filtered out.
    fn pairs(&self, dates: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>) -> DFResult<Vec<(usize, usize)>> {
        let dates: Vec<_> = dates
            .iter()
            .map(|d| d.as_primitive_opt::<Date32Type>())
            .collect::<Option<_>>()
            .ok_or_else(|| datafusion::error::DataFusionError::Execution("ehr_runs: limits compare dates".into()))?;
        let k = self.k();
        let mut pairs = Vec::with_capacity(groups.len() * 2);
        for (row, &group) in groups.iter().enumerate() {
            if filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let (from, to) = self.intervals.run(&self.limits, &dates, row);
            pairs.extend((from..to).map(|i| (row, group * k + i)));
        }
        Ok(pairs)
    }

    /// Our share of `emit_to`, as the number of groups, and the slots' share.
    fn emitting(&mut self, emit_to: EmitTo) -> (usize, EmitTo) {
        let n = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n,
        };
        self.groups -= n;
        let slots = match emit_to {
            EmitTo::All => EmitTo::All,
            EmitTo::First(n) => EmitTo::First(n * self.k()),
        };
        (n, slots)
    }

    /// Values of `n` groups, `k` per group, as lists.
    fn lists(&self, values: ArrayRef, n: usize) -> DFResult<ArrayRef> {
        let k = self.k();
        if values.len() != n * k {
            return exec_err!("ehr_runs: {} values for {n} groups of {k}", values.len());
        }
        let DataType::FixedSizeList(field, size) = list_of(values.data_type(), k) else { unreachable!("list_of gives a fixed-size list") };
        Ok(Arc::new(FixedSizeListArray::try_new(field, size, values, None)?))
    }

    /// The emitted groups' values (and a pick's keys with `with_keys`), `k` per group.
    fn emit(&mut self, emit_to: EmitTo, with_keys: bool) -> DFResult<Vec<ArrayRef>> {
        let (n, slots) = self.emitting(emit_to);
        let flat: Vec<ArrayRef> = match &mut self.kind {
            Kind::Count(counts) => vec![Arc::new(Int64Array::from(slots.take_needed(counts)))],
            Kind::Pick(picks) => {
                let (values, keys) = picks.emit(slots, with_keys)?;
                std::iter::once(values).chain(keys).collect()
            }
        };
        flat.into_iter().map(|v| self.lists(v, n)).collect()
    }
}

impl GroupsAccumulator for RunsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> DFResult<()> {
        self.groups = total;
        let (dates, args) = values.split_at(self.limits.len());
        let pairs = self.pairs(dates, groups, filter)?;
        let slots = total * self.k();
        match &mut self.kind {
            Kind::Count(counts) => {
                counts.resize(slots, 0);
                let counted = &args[0];
                for (row, slot) in pairs {
                    counts[slot] += counted.is_valid(row) as i64;
                }
                Ok(())
            }
            Kind::Pick(picks) => picks.offer_pairs(args, pairs.into_iter(), slots),
        }
    }
    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total: usize) -> DFResult<()> {
        self.groups = total;
        let k = self.k();
        let states: Vec<ArrayRef> = values.iter().map(|v| v.as_fixed_size_list().values().clone()).collect();
        let pairs = groups.iter().enumerate().flat_map(|(row, &g)| (0..k).map(move |i| (row * k + i, g * k + i)));
        match &mut self.kind {
            Kind::Count(counts) => {
                counts.resize(total * k, 0);
                let partial = states[0].as_primitive::<arrow::datatypes::Int64Type>();
                for (at, slot) in pairs {
                    counts[slot] += partial.value(at);
                }
                Ok(())
            }
            Kind::Pick(picks) => picks.offer_pairs(&states, pairs, total * k),
        }
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        Ok(self.emit(emit_to, false)?.remove(0))
    }
    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        self.emit(emit_to, true)
    }
    fn convert_to_state(&self, _values: &[ArrayRef], _filter: Option<&BooleanArray>) -> DFResult<Vec<ArrayRef>> {
        not_impl_err!("ehr_runs: no state of a row alone")
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + match &self.kind {
                Kind::Count(counts) => counts.capacity() * 8,
                Kind::Pick(picks) => picks.size(),
            }
    }
}

/// Plans a grouping by patient with `ehr_runs` aggregates in one phase: the rows
/// are hash-partitioned by patient and each partition grouped once. In two phases
/// the partial groups' states, `k` values and keys per patient, were gathered and
/// merged again: at 1 M patients and 60 intervals that took longer than the
/// grouping itself.
#[derive(Debug, Default)]
pub struct OnePhaseRuns;

impl PhysicalOptimizerRule for OnePhaseRuns {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(one) = one_phase(&node)? else { return Ok(Transformed::no(node)) };
            Ok(Transformed::yes(one))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "one_phase_runs"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The one-phase form of a final grouping over a repartition of a partial one with
/// `ehr_runs` aggregates, if `node` is that.
fn one_phase(node: &Arc<dyn ExecutionPlan>) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
    let Some(last) = node.downcast_ref::<AggregateExec>() else { return Ok(None) };
    if *last.mode() != AggregateMode::FinalPartitioned {
        return Ok(None);
    }
    let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else { return Ok(None) };
    let Some(partial) = repartition.input().downcast_ref::<AggregateExec>() else { return Ok(None) };
    let runs = |a: &AggregateExec| a.aggr_expr().iter().any(|e| runs_parts(e.fun()).is_some());
    if *partial.mode() != AggregateMode::Partial || !runs(partial) || partial.group_expr().has_grouping_set() {
        return Ok(None);
    }
    let Partitioning::Hash(_, n) = repartition.partitioning() else { return Ok(None) };
    let keys = partial.group_expr().input_exprs();
    let rows = Arc::new(RepartitionExec::try_new(partial.input().clone(), Partitioning::Hash(keys, *n))?);
    let one = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        partial.group_expr().clone(),
        partial.aggr_expr().to_vec(),
        partial.filter_expr().to_vec(),
        rows,
        partial.input_schema(),
    )?;
    // Only where it gives the same columns as the two phases.
    Ok((one.schema() == last.schema()).then(|| Arc::new(one) as Arc<dyn ExecutionPlan>))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, Date32Array, StringArray};
    use datafusion::logical_expr::{Operator, col};

    /// Intervals starting on days 0, 10 and 20; a row counts in those whose start
    /// is on or after its `start` and before its `end` (a missing end: open).
    fn runs(kind: Kind) -> RunsAccumulator {
        let limits = vec![
            Limit { x: col("start"), op: Operator::LtEq, end: false, null_holds: false },
            Limit { x: col("end"), op: Operator::Gt, end: false, null_holds: true },
        ];
        RunsAccumulator { intervals: Intervals::new(&[(10, 19), (0, 9), (20, 29)]), limits, kind, groups: 0 }
    }

    struct Rows {
        groups: Vec<usize>,
        start: Vec<Option<i32>>,
        end: Vec<Option<i32>>,
        value: Vec<Option<&'static str>>,
        key: Vec<u8>,
        keep: Vec<Option<bool>>,
    }

    fn rows() -> Rows {
        Rows {
            groups: vec![0, 0, 1, 1, 2, 0, 1, 2],
            start: vec![Some(0), Some(5), Some(12), None, Some(-3), Some(20), Some(0), Some(30)],
            end: vec![None, Some(15), Some(21), None, Some(10), Some(25), Some(10), None],
            value: vec![Some("a"), Some("b"), None, Some("d"), Some("e"), Some("f"), Some("g"), Some("h")],
            key: vec![1, 9, 3, 4, 5, 6, 2, 8],
            keep: vec![Some(true), Some(true), Some(true), Some(true), Some(true), None, Some(true), Some(true)],
        }
    }

    fn inputs(r: &Rows, with_key: bool) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(r.start.clone())), Arc::new(Date32Array::from(r.end.clone())), Arc::new(StringArray::from(r.value.clone()))];
        if with_key {
            out.push(Arc::new(BinaryArray::from_iter_values(r.key.iter().map(|k| [*k]))));
        }
        out
    }

    /// Brute force, per (group, interval start): the rows that count there.
    fn counting(r: &Rows, group: usize, start: i32) -> Vec<usize> {
        (0..r.groups.len())
            .filter(|&i| r.groups[i] == group && r.keep[i] == Some(true))
            .filter(|&i| r.start[i].is_some_and(|s| s <= start) && r.end[i].is_none_or(|e| e > start))
            .collect()
    }

    fn list_values(a: &ArrayRef) -> ArrayRef {
        a.as_fixed_size_list().values().clone()
    }

    #[test]
    fn counts_and_picks_per_interval_match_repeating_the_rows() {
        let r = rows();
        let filter = BooleanArray::from(r.keep.clone());
        let starts = [0, 10, 20];
        let mut counts = runs(Kind::Count(Vec::new()));
        counts.update_batch(&inputs(&r, false), &r.groups, Some(&filter), 3).unwrap();
        let mut picks = runs(Kind::Pick(Picks::new(false, &DataType::Utf8)));
        picks.update_batch(&inputs(&r, true), &r.groups, Some(&filter), 3).unwrap();

        let got_counts = list_values(&counts.evaluate(EmitTo::All).unwrap());
        let got_picks = list_values(&picks.evaluate(EmitTo::All).unwrap());
        for g in 0..3 {
            for (i, start) in starts.iter().enumerate() {
                let rows = counting(&r, g, *start);
                // count(value) counts the rows whose value is not null.
                let valued = rows.iter().filter(|&&row| r.value[row].is_some()).count();
                assert_eq!(got_counts.as_primitive::<arrow::datatypes::Int64Type>().value(g * 3 + i), valued as i64, "count of group {g} at {start}");
                let best = rows.iter().max_by_key(|&&row| r.key[row]).and_then(|&row| r.value[row]);
                let got = got_picks.as_string::<i32>();
                assert_eq!(got.is_valid(g * 3 + i).then(|| got.value(g * 3 + i)), best, "pick of group {g} at {start}");
            }
        }
        // Group 0 counts rows 0 and 1 at day 0 and 10 (row 5 is filtered out).
        assert_eq!(got_counts.as_primitive::<arrow::datatypes::Int64Type>().values()[..3], [1, 2, 1]);
    }

    #[test]
    fn states_merge_and_partial_emits_keep_each_groups_intervals() {
        let r = rows();
        let mut one = runs(Kind::Pick(Picks::new(true, &DataType::Utf8)));
        one.update_batch(&inputs(&r, true), &r.groups, None, 3).unwrap();
        let state = one.state(EmitTo::All).unwrap();
        assert_eq!(state.len(), 2);
        // Merged into groups 2, 0, 1, then emitted one group at a time.
        let mut merged = runs(Kind::Pick(Picks::new(true, &DataType::Utf8)));
        merged.merge_batch(&state, &[2, 0, 1], 3).unwrap();
        let first = list_values(&merged.evaluate(EmitTo::First(1)).unwrap());
        let rest = list_values(&merged.evaluate(EmitTo::All).unwrap());
        assert_eq!((first.len(), rest.len()), (3, 6));
        let text = |a: &ArrayRef| crate::output::format::column_text(a.as_ref()).unwrap();
        let some = |v: &str| Some(v.to_string());
        // Merged group 0 is the rows' group 1: row 6 at day 0, nobody at 10, and at
        // 20 row 2, whose value is null (row 3, without a start, counts nowhere).
        assert_eq!(text(&first), [some("g"), None, None]);
        // Then the rows' group 2 (row 4 at day 0), and group 0: row 0, the least key
        // at each start, row 5 unfiltered here.
        assert_eq!(text(&rest), [some("e"), None, None, some("a"), some("a"), some("a")]);
    }
}
