//! `ehr_pick_first(value, key)` / `ehr_pick_last(value, key)`: the value on the row
//! with the smallest / largest binary sort key of each group (see
//! `functions::sort_key`), the aggregate behind `first_for_patient()` and
//! `last_for_patient()`.
//!
//! DataFusion's `first_value(.. ORDER BY ..)` gives the same answer, but keeps each
//! group's ordering as `ScalarValue`s and compares them one by one. Here a group's
//! pick is a reference (batch, row) into the input arrays it came from, which are
//! kept; comparing is a `memcmp` of two keys, and the results are gathered with one
//! `interleave`, whatever the column's type. Kept arrays are compacted to one row
//! per group once they hold more than twice as many rows as there are groups.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, new_null_array};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility};

/// The aggregate for a pick: `first` keeps the smallest key, otherwise the largest.
pub fn pick_udaf(first: bool) -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(Pick { first, signature: Signature::any(2, Volatility::Immutable) }))
}

/// The pick aggregate named `name` (how one gets back from a plan sent to another
/// process), or None when no pick has that name.
pub fn pick_named(name: &str) -> Option<Arc<AggregateUDF>> {
    match name {
        "ehr_pick_first" => Some(pick_udaf(true)),
        "ehr_pick_last" => Some(pick_udaf(false)),
        _ => None,
    }
}

/// Whether `f` is a pick aggregate.
pub fn is_pick(f: &AggregateUDF) -> bool {
    f.inner().downcast_ref::<Pick>().is_some()
}

/// Whether `f` is a pick of the smallest key (`Some(true)`) or the largest.
pub fn pick_first(f: &AggregateUDF) -> Option<bool> {
    f.inner().downcast_ref::<Pick>().map(|p| p.first)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Pick {
    first: bool,
    signature: Signature,
}

impl AggregateUDFImpl for Pick {
    fn name(&self) -> &str {
        if self.first { "ehr_pick_first" } else { "ehr_pick_last" }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        Ok(args[0].clone())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[value]", args.name), args.return_type().clone(), true)),
            Arc::new(Field::new(format!("{}[key]", args.name), DataType::Binary, true)),
        ])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        Ok(Box::new(Single(Picks::new(self.first, args.return_field.data_type()))))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Picks::new(self.first, args.return_field.data_type())))
    }
}

/// Where a group's pick is: (batch, row) in the kept arrays. Batch 0 is one null
/// row, the place of groups with no row yet.
type Slot = (u32, u32);
const NONE: Slot = (0, 0);

#[derive(Debug)]
pub(super) struct Picks {
    first: bool,
    ty: DataType,
    values: Vec<ArrayRef>,
    keys: Vec<BinaryArray>,
    kept_rows: usize,
    slots: Vec<Slot>,
}

impl Picks {
    pub(super) fn new(first: bool, ty: &DataType) -> Picks {
        let mut picks = Picks { first, ty: ty.clone(), values: vec![], keys: vec![], kept_rows: 0, slots: vec![] };
        picks.clear();
        picks
    }

    fn clear(&mut self) {
        self.values = vec![new_null_array(&self.ty, 1)];
        self.keys = vec![BinaryArray::new_null(1)];
        self.kept_rows = 0;
    }

    /// Offer every row (value, key) not filtered out to its group's slot.
    fn offer(&mut self, values: &[ArrayRef], groups: impl Fn(usize) -> usize, filter: Option<&BooleanArray>, total: usize) -> DFResult<()> {
        let rows = (0..values[1].len()).filter(|&row| filter.is_none_or(|f| f.is_valid(row) && f.value(row)));
        self.offer_pairs(values, rows.map(|row| (row, groups(row))), total)
    }

    /// Offer rows (value, key) to groups: each (row, group) pair, a row to any
    /// number of groups. Rows with a null key are no candidates.
    pub(super) fn offer_pairs(&mut self, values: &[ArrayRef], pairs: impl Iterator<Item = (usize, usize)>, total: usize) -> DFResult<()> {
        self.slots.resize(total, NONE);
        let batch = u32::try_from(self.values.len()).map_err(|_| datafusion::error::DataFusionError::Internal("too many batches".into()))?;
        // Kept first, so that a row can be compared with an earlier row of its batch.
        let rows = values[1].len();
        self.values.push(values[0].clone());
        self.keys.push(values[1].as_binary::<i32>().clone());
        let keys = &self.keys[batch as usize];
        let mut used = false;
        for (row, group) in pairs {
            if keys.is_null(row) {
                continue;
            }
            let (b, r) = self.slots[group];
            let better = (b, r) == NONE || {
                let (new, old) = (keys.value(row), self.keys[b as usize].value(r as usize));
                if self.first { new < old } else { new > old }
            };
            if better {
                self.slots[group] = (batch, row as u32);
                used = true;
            }
        }
        if !used {
            self.values.pop();
            self.keys.pop();
        } else {
            self.kept_rows += rows;
            if self.kept_rows > 2 * self.slots.len() + 65_536 {
                self.compact()?;
            }
        }
        Ok(())
    }

    /// Gather the picked (value, key) of the given slots.
    fn gather(&self, slots: &[Slot]) -> DFResult<(ArrayRef, ArrayRef)> {
        let at = positions(slots);
        let keys: Vec<&dyn Array> = self.keys.iter().map(|a| a as &dyn Array).collect();
        Ok((self.gather_values(&at)?, interleave(&keys, &at)?))
    }

    /// Gather the picked values only (a final result needs no keys).
    fn gather_values(&self, at: &[(usize, usize)]) -> DFResult<ArrayRef> {
        let values: Vec<&dyn Array> = self.values.iter().map(|a| a.as_ref()).collect();
        Ok(interleave(&values, at)?)
    }

    /// Keep only the picked rows: one array of one row per group.
    fn compact(&mut self) -> DFResult<()> {
        let (values, keys) = self.gather(&self.slots)?;
        self.clear();
        self.kept_rows = values.len();
        self.values.push(values);
        self.keys.push(keys.as_binary::<i32>().clone());
        for (g, slot) in self.slots.iter_mut().enumerate() {
            if *slot != NONE {
                *slot = (1, g as u32);
            }
        }
        Ok(())
    }

    /// The picks of the groups emitted: (value, key), or the value alone (and a
    /// null key) when `with_keys` is false.
    pub(super) fn emit(&mut self, emit_to: EmitTo, with_keys: bool) -> DFResult<(ArrayRef, Option<ArrayRef>)> {
        let slots = emit_to.take_needed(&mut self.slots);
        let out = if with_keys {
            let (values, keys) = self.gather(&slots)?;
            (values, Some(keys))
        } else {
            (self.gather_values(&positions(&slots))?, None)
        };
        if self.slots.is_empty() {
            self.clear();
        }
        Ok(out)
    }
}

fn positions(slots: &[Slot]) -> Vec<(usize, usize)> {
    slots.iter().map(|&(b, r)| (b as usize, r as usize)).collect()
}

impl GroupsAccumulator for Picks {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> DFResult<()> {
        self.offer(values, |row| groups[row], filter, total)
    }
    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total: usize) -> DFResult<()> {
        self.offer(values, |row| groups[row], None, total)
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        // Measures pick a value for millions of (patient, interval) groups: their
        // binary keys are not copied only to be dropped.
        Ok(self.emit(emit_to, false)?.0)
    }
    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        let (values, keys) = self.emit(emit_to, true)?;
        Ok(vec![values, keys.expect("gathered with keys")])
    }
    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> DFResult<Vec<ArrayRef>> {
        // Each row its own group: a row filtered out has no key.
        let keys = match filter {
            None => values[1].clone(),
            Some(f) => {
                let keep = arrow::compute::and(&arrow::compute::is_not_null(f)?, f)?;
                arrow::compute::nullif(&values[1], &arrow::compute::not(&keep)?)?
            }
        };
        Ok(vec![values[0].clone(), keys])
    }
    fn size(&self) -> usize {
        let kept: usize = self.values.iter().map(|a| a.get_array_memory_size()).sum::<usize>()
            + self.keys.iter().map(|a| a.get_array_memory_size()).sum::<usize>();
        kept + self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

/// The same for an aggregate without groups: one group.
#[derive(Debug)]
struct Single(Picks);

impl Accumulator for Single {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        self.0.offer(values, |_| 0, None, 1)
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DFResult<()> {
        self.update_batch(states)
    }
    fn state(&mut self) -> DFResult<Vec<ScalarValue>> {
        self.0.slots.resize(1, NONE);
        let (values, keys) = self.0.gather(&self.0.slots)?;
        Ok(vec![ScalarValue::try_from_array(&values, 0)?, ScalarValue::try_from_array(&keys, 0)?])
    }
    fn evaluate(&mut self) -> DFResult<ScalarValue> {
        self.0.slots.resize(1, NONE);
        let (values, _) = self.0.gather(&self.0.slots)?;
        ScalarValue::try_from_array(&values, 0)
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + GroupsAccumulator::size(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::Int32Type;

    fn keys(k: &[u8]) -> ArrayRef {
        Arc::new(BinaryArray::from_iter_values(k.iter().map(|b| [*b])))
    }

    #[test]
    fn picks_the_least_or_greatest_key_of_each_group() {
        let values: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("c"), Some("d"), Some("e")]));
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(true), None, Some(false)]);
        for (first, want) in [(true, [Some("a"), None, None]), (false, [Some("c"), None, None])] {
            let mut picks = Picks::new(first, &DataType::Utf8);
            // groups 0 and 1; group 2 gets only filtered-out rows
            picks.update_batch(&[values.clone(), keys(&[5, 7, 9, 1, 0])], &[0, 1, 0, 2, 2], Some(&filter), 3).unwrap();
            let got = picks.evaluate(EmitTo::All).unwrap();
            assert_eq!(got.as_string::<i32>().iter().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn states_merge_and_kept_rows_are_compacted() {
        // 200 batches of 1000 rows over 50 groups: compaction runs, and the answer is
        // the brute-force one, also after a state/merge round trip.
        let groups = 50;
        let mut picks = Picks::new(false, &DataType::Int64);
        let mut best: Vec<Option<(Vec<u8>, i64)>> = vec![None; groups];
        for b in 0..200u64 {
            let n = 1000;
            let v: Vec<i64> = (0..n).map(|i| (b * 1000 + i) as i64).collect();
            let k: Vec<Vec<u8>> = (0..n).map(|i| ((b * 7919 + i * 104_729) % 1_000_003).to_be_bytes().to_vec()).collect();
            let g: Vec<usize> = (0..n as usize).map(|i| (i * 31 + b as usize) % groups).collect();
            for i in 0..n as usize {
                if best[g[i]].as_ref().is_none_or(|(bk, _)| &k[i] > bk) {
                    best[g[i]] = Some((k[i].clone(), v[i]));
                }
            }
            let kk: ArrayRef = Arc::new(BinaryArray::from_iter_values(k.iter()));
            picks.update_batch(&[Arc::new(Int64Array::from(v)), kk], &g, None, groups).unwrap();
            assert!(picks.kept_rows <= 2 * groups + 65_536 + 1000);
        }
        let state = picks.state(EmitTo::All).unwrap();
        let mut merged = Picks::new(false, &DataType::Int64);
        merged.merge_batch(&state, &(0..groups).collect::<Vec<_>>(), groups).unwrap();
        let got = merged.evaluate(EmitTo::All).unwrap();
        let want: Vec<Option<i64>> = best.iter().map(|b| b.as_ref().map(|(_, v)| *v)).collect();
        assert_eq!(got.as_primitive::<arrow::datatypes::Int64Type>().iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn dictionaries_and_partial_emits_keep_their_type() {
        let values: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::from_iter(["x", "y", "z"]));
        let ty = values.data_type().clone();
        let mut picks = Picks::new(true, &ty);
        picks.update_batch(&[values, keys(&[3, 2, 1])], &[0, 1, 1], None, 2).unwrap();
        let head = picks.evaluate(EmitTo::First(1)).unwrap();
        assert_eq!(head.data_type(), &ty);
        let rest = picks.evaluate(EmitTo::All).unwrap();
        let text = |a: &ArrayRef| crate::output::format::column_text(a.as_ref()).unwrap();
        assert_eq!((text(&head), text(&rest)), (vec![Some("x".to_string())], vec![Some("z".to_string())]));
    }

    #[test]
    fn one_group_without_group_by() {
        let mut single = Single(Picks::new(true, &DataType::Utf8));
        assert_eq!(single.evaluate().unwrap(), ScalarValue::Utf8(None));
        single.update_batch(&[Arc::new(StringArray::from(vec!["b", "a"])), keys(&[2, 1])]).unwrap();
        single.update_batch(&[Arc::new(StringArray::from(vec!["c"])), keys(&[3])]).unwrap();
        assert_eq!(single.evaluate().unwrap(), ScalarValue::Utf8(Some("a".into())));
    }
}
