//! Measures over many intervals in one pass. Each row of a plan is keyed by
//! (patient, interval), written as one integer `patient_id * K + i` for the K
//! intervals, so the rest of the compiler keeps one key column. Tables are read once:
//! a table's rows are repeated for every interval, or, where every value read from
//! the table keeps only rows dated inside the interval, each row goes to the one
//! interval its date falls in (intervals are sorted and, for this, must not overlap).
//!
//! The same keying runs a dataset at several evaluations whose definitions differ
//! only in constants (a cohort-extractor study at each index date): each constant
//! that differs is a parameter, with one value per evaluation, read from the key
//! as the interval's bounds are.

use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::{Result as DFResult, exec_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col,
};

use crate::error::Result;

/// Columns a keyed row carries: the interval's index and its bounds.
pub const INDEX: &str = "__interval";
pub const START: &str = "__interval_start";
pub const END: &str = "__interval_end";

/// The intervals of a group of measures, sorted and distinct, and the values the
/// parameters take in each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Intervals(pub Arc<Vec<(i32, i32)>>, pub Arc<Vec<Param>>);

/// A value fixed for each evaluation: one value per interval, in their order.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub values: ArrayRef,
}

impl PartialEq for Param {
    fn eq(&self, other: &Param) -> bool {
        self.name == other.name && self.values.as_ref() == other.values.as_ref()
    }
}

impl Eq for Param {}

impl std::hash::Hash for Param {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.values.len().hash(state);
    }
}

/// The column a keyed row carries for parameter `name`.
pub fn param_column(name: &str) -> String {
    format!("{PARAM_PREFIX}{name}")
}

const PARAM_PREFIX: &str = "__param_";

impl Intervals {
    pub fn new(intervals: &[(i32, i32)]) -> Intervals {
        let mut v = intervals.to_vec();
        v.sort();
        v.dedup();
        Intervals(Arc::new(v), Arc::new(Vec::new()))
    }

    /// `k` evaluations told apart only by parameters (each with `k` values); their
    /// bounds are placeholders no expression reads.
    pub fn evaluations(k: usize, params: Vec<Param>) -> Intervals {
        Intervals(Arc::new((0..k as i32).map(|i| (i, i)).collect()), Arc::new(params))
    }

    pub fn len(&self) -> i64 {
        self.0.len() as i64
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether no day is in two intervals (so a date picks at most one).
    pub fn disjoint(&self) -> bool {
        self.0.windows(2).all(|w| w[0].1 < w[1].0)
    }

    /// The table of intervals: index, start and end.
    pub fn table(&self) -> Result<Arc<dyn TableProvider>> {
        let mut fields = vec![
            Field::new(INDEX, DataType::Int64, false),
            Field::new(START, DataType::Date32, false),
            Field::new(END, DataType::Date32, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..self.len())),
            Arc::new(Date32Array::from_iter_values(self.0.iter().map(|i| i.0))),
            Arc::new(Date32Array::from_iter_values(self.0.iter().map(|i| i.1))),
        ];
        for p in self.1.iter() {
            fields.push(Field::new(param_column(&p.name), p.values.data_type().clone(), true));
            columns.push(p.values.clone());
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }

    /// The key of (patient, interval).
    pub fn key(&self, patient_id: Expr, index: Expr) -> Expr {
        patient_id * datafusion::logical_expr::lit(self.len()) + index
    }

    /// The interval index, start or end of a key.
    pub fn of_key(&self, key: Expr, part: Part) -> Expr {
        udf(IntervalFunction { intervals: self.clone(), part, signature: Signature::any(1, Volatility::Immutable) }).call(vec![key])
    }

    /// The interval a date falls in, with the bounds narrowed by `shift` days at each
    /// end (1 for a strict comparison); null when none.
    pub fn bucket(&self, date: Expr, shift: (i32, i32)) -> Expr {
        let part = Part::Bucket(shift.0, shift.1);
        udf(IntervalFunction { intervals: self.clone(), part, signature: Signature::any(1, Volatility::Immutable) }).call(vec![date])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Index,
    Start,
    End,
    /// The index of the interval holding a date (shifted bounds, see [`Intervals::bucket`]).
    Bucket(i32, i32),
    /// The value of the parameter at this position in the list.
    Param(usize),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalFunction {
    intervals: Intervals,
    part: Part,
    signature: Signature,
}

fn udf(f: IntervalFunction) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(f))
}

impl ScalarUDFImpl for IntervalFunction {
    fn name(&self) -> &str {
        match self.part {
            Part::Index => "ehr_interval_index",
            Part::Start => "ehr_interval_start",
            Part::End => "ehr_interval_end",
            Part::Bucket(..) => "ehr_interval_of_date",
            Part::Param(_) => "ehr_interval_parameter",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(match self.part {
            Part::Index | Part::Bucket(..) => DataType::Int64,
            Part::Start | Part::End => DataType::Date32,
            Part::Param(j) => self.intervals.1[j].values.data_type().clone(),
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let input = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let iv = &self.intervals.0;
        let k = iv.len() as i64;
        let out: ArrayRef = match self.part {
            Part::Bucket(lo, hi) => {
                let Some(dates) = input.as_any().downcast_ref::<Date32Array>() else {
                    return exec_err!("ehr_interval_of_date: expected dates, got {}", input.data_type());
                };
                Arc::new(dates.iter().map(|d| d.and_then(|d| find(iv, d, lo, hi))).collect::<Int64Array>())
            }
            part => {
                let Some(keys) = input.as_any().downcast_ref::<Int64Array>() else {
                    return exec_err!("{}: expected int64 keys, got {}", self.name(), input.data_type());
                };
                let index = |key: i64| key.rem_euclid(k);
                if let Part::Param(j) = part {
                    let indexes = keys.unary::<_, arrow::datatypes::Int64Type>(index);
                    return Ok(ColumnarValue::Array(arrow::compute::take(self.intervals.1[j].values.as_ref(), &indexes, None)?));
                }
                match part {
                    Part::Index => Arc::new(keys.unary::<_, arrow::datatypes::Int64Type>(index)),
                    Part::Start => Arc::new(keys.unary::<_, arrow::datatypes::Date32Type>(|key| iv[index(key) as usize].0)),
                    _ => Arc::new(keys.unary::<_, arrow::datatypes::Date32Type>(|key| iv[index(key) as usize].1)),
                }
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// The interval (of disjoint, sorted intervals) with `start + lo <= d <= end - hi`.
fn find(intervals: &[(i32, i32)], d: i32, lo: i32, hi: i32) -> Option<i64> {
    // The last interval starting on or before d - lo is the only candidate.
    let i = intervals.partition_point(|iv| iv.0 + lo <= d).checked_sub(1)?;
    (d <= intervals[i].1 - hi).then_some(i as i64)
}

/// If `conditions` (all of which a row must meet) bound an expression `x` of the
/// row by the interval's start and end (`x >= start` or `x > start`, and `x <= end`
/// or `x < end`, either way round), that `x` and how much each comparison narrows
/// the interval.
pub fn bound_by_interval(conditions: &[Expr]) -> Option<(Expr, (i32, i32))> {
    let mut lower: Vec<(Expr, i32)> = Vec::new();
    let mut upper: Vec<(Expr, i32)> = Vec::new();
    for c in conditions {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else { continue };
        let is = |e: &Expr, name: &str| *e == col(name);
        // Written as x OP bound.
        let (x, op, bound) = if is(right, START) || is(right, END) {
            (left.as_ref(), *op, right.as_ref())
        } else if is(left, START) || is(left, END) {
            let flipped = match op {
                Operator::Lt => Operator::Gt,
                Operator::LtEq => Operator::GtEq,
                Operator::Gt => Operator::Lt,
                Operator::GtEq => Operator::LtEq,
                _ => continue,
            };
            (right.as_ref(), flipped, left.as_ref())
        } else {
            continue;
        };
        if mentions_interval(x) {
            continue;
        }
        match (op, is(bound, START)) {
            (Operator::GtEq, true) => lower.push((x.clone(), 0)),
            (Operator::Gt, true) => lower.push((x.clone(), 1)),
            (Operator::LtEq, false) => upper.push((x.clone(), 0)),
            (Operator::Lt, false) => upper.push((x.clone(), 1)),
            _ => {}
        }
    }
    lower.into_iter().find_map(|(x, lo)| upper.iter().find(|(y, _)| *y == x).map(|(_, hi)| (x, (lo, *hi))))
}

/// Whether an expression reads the interval's columns.
pub fn mentions_interval(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|n| {
        if let Expr::Column(c) = n {
            if c.name == START || c.name == END || c.name == INDEX || c.name.starts_with(PARAM_PREFIX) {
                found = true;
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

use datafusion::common::tree_node::TreeNode;

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn a_date_finds_its_interval() {
        let iv = [(0, 30), (31, 59), (60, 90)];
        assert_eq!(find(&iv, 0, 0, 0), Some(0));
        assert_eq!(find(&iv, 31, 0, 0), Some(1));
        assert_eq!(find(&iv, 90, 0, 0), Some(2));
        assert_eq!(find(&iv, 91, 0, 0), None);
        assert_eq!(find(&iv, -1, 0, 0), None);
        // Strict bounds: after the start and before the end.
        assert_eq!(find(&iv, 31, 1, 1), None);
        assert_eq!(find(&iv, 32, 1, 1), Some(1));
        assert_eq!(find(&iv, 59, 1, 1), None);
        // Gaps between intervals hold no date.
        assert_eq!(find(&[(0, 5), (10, 20)], 7, 0, 0), None);
    }
}
