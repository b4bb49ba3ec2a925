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
use datafusion::common::{Result as DFResult, ScalarValue, exec_err};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col, lit,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Part {
    Index,
    /// The patient's id.
    Patient,
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
            Part::Patient => "ehr_interval_patient",
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
            Part::Index | Part::Patient | Part::Bucket(..) => DataType::Int64,
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
                let split = Split::new(k);
                let index = |key: i64| split.index(key);
                if let Part::Param(j) = part {
                    let indexes = keys.unary::<_, arrow::datatypes::Int64Type>(index);
                    return Ok(ColumnarValue::Array(arrow::compute::take(self.intervals.1[j].values.as_ref(), &indexes, None)?));
                }
                match part {
                    Part::Index => Arc::new(keys.unary::<_, arrow::datatypes::Int64Type>(index)),
                    Part::Patient => Arc::new(keys.unary::<_, arrow::datatypes::Int64Type>(|key| split.patient(key))),
                    Part::Start => Arc::new(keys.unary::<_, arrow::datatypes::Date32Type>(|key| iv[index(key) as usize].0)),
                    _ => Arc::new(keys.unary::<_, arrow::datatypes::Date32Type>(|key| iv[index(key) as usize].1)),
                }
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Splits keys `patient * k + index` into their parts. Every keyed row pays for
/// this, and a 64-bit division by a number known only at run time is slow, so the
/// quotient is estimated in floating point and corrected by one step.
struct Split {
    k: i64,
    inverse: f64,
}

impl Split {
    /// Keys below this are exact as f64, so the estimate is off by at most one.
    const EXACT: i64 = 1 << 52;

    fn new(k: i64) -> Split {
        Split { k, inverse: 1.0 / k as f64 }
    }

    fn patient(&self, key: i64) -> i64 {
        if !(0..Self::EXACT).contains(&key) {
            return key.div_euclid(self.k);
        }
        let q = (key as f64 * self.inverse) as i64;
        let r = key - q * self.k;
        if r < 0 {
            q - 1
        } else if r >= self.k {
            q + 1
        } else {
            q
        }
    }

    fn index(&self, key: i64) -> i64 {
        key - self.patient(key) * self.k
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

/// A condition of a row on one interval bound: the row counts only in intervals
/// whose start (or, with `end`, end) `b` has `x op b`. With `null_holds`, a row whose
/// `x` is null counts in every interval (`... OR x IS NULL`); else in none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limit {
    pub x: Expr,
    pub op: Operator,
    pub end: bool,
    pub null_holds: bool,
}

impl Limit {
    /// The limit as another process rebuilds it: (operator, on the end bound, null
    /// holds). The compared value is the function's argument there.
    pub fn portable(&self) -> (String, bool, bool) {
        (self.op.to_string(), self.end, self.null_holds)
    }

    /// The limit [`Limit::portable`] gave; its `x` is a placeholder, as the kernels
    /// read the compared values from their arguments, never from `x`.
    pub fn from_portable((op, end, null_holds): (String, bool, bool)) -> DFResult<Limit> {
        let op = match op.as_str() {
            "<" => Operator::Lt,
            "<=" => Operator::LtEq,
            ">" => Operator::Gt,
            ">=" => Operator::GtEq,
            "=" => Operator::Eq,
            other => return exec_err!("no interval limit compares with {other}"),
        };
        Ok(Limit { x: lit(ScalarValue::Null), op, end, null_holds })
    }
}

/// The limits among `conditions` (all of which a row must meet) that give each row
/// a run of consecutive intervals: every start limit (intervals are sorted by
/// start), and end limits when ends rise with starts. Found in each spelling ehrQL
/// writes: `x OP bound` either way round, `NOT (x OP bound)`, and with `OR x IS
/// NULL` or `OR (x OP bound) IS NULL` (as `except_where` writes its condition).
/// Each comes with the condition it was read from: a row repeated only for the
/// intervals its limits allow meets those conditions in every interval it is given,
/// so they need no testing after.
pub fn limiting_conditions(conditions: &[Expr], iv: &Intervals) -> Vec<(Expr, Limit)> {
    let ends_rise = iv.0.windows(2).all(|w| w[0].1 <= w[1].1);
    conditions.iter().filter_map(|c| Some((c.clone(), limit(c)?))).filter(|(_, l)| ends_rise || !l.end).collect()
}

fn limit(c: &Expr) -> Option<Limit> {
    match c {
        Expr::Not(inner) => {
            let l = limit(inner).filter(|l| !l.null_holds)?;
            let op = l.op.negate().filter(|o| matches!(o, Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq))?;
            Some(Limit { op, ..l })
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let (l, other) = match (limit(left), limit(right)) {
                (Some(l), None) => (l, right.as_ref()),
                (None, Some(l)) => (l, left.as_ref()),
                _ => return None,
            };
            // `x IS NULL`, or a comparison of the same x with a bound being null.
            let Expr::IsNull(tested) = other else { return None };
            let same_x = *tested.as_ref() == l.x || limit(tested).is_some_and(|t| t.x == l.x && !t.null_holds);
            (same_x && !l.null_holds).then_some(Limit { null_holds: true, ..l })
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let is_bound = |e: &Expr| *e == col(START) || *e == col(END);
            let (x, op, bound) = if is_bound(right) {
                (left.as_ref(), *op, right.as_ref())
            } else if is_bound(left) {
                (right.as_ref(), op.swap()?, left.as_ref())
            } else {
                return None;
            };
            let compares = matches!(op, Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq | Operator::Eq);
            (compares && !mentions_interval(x)).then(|| Limit { x: x.clone(), op, end: *bound == col(END), null_holds: false })
        }
        _ => None,
    }
}

impl Intervals {
    /// For each row, the indexes of the intervals its limits allow, as a list (null
    /// when none): `x` of each limit, in order, are the function's arguments.
    pub fn span(&self, limits: &[Limit]) -> Expr {
        let f = SpanFunction { intervals: self.clone(), limits: limits.to_vec(), signature: Signature::any(limits.len(), Volatility::Immutable) };
        Arc::new(ScalarUDF::new_from_impl(f)).call(limits.iter().map(|l| l.x.clone()).collect())
    }

    /// The run of interval indexes `[from, to)` that every limit allows for row
    /// `row`, given each limit's compared dates; empty (`from >= to`) when none.
    pub fn run(&self, limits: &[Limit], dates: &[&Date32Array], row: usize) -> (usize, usize) {
        let (mut from, mut to) = (0, self.0.len());
        for (l, d) in limits.iter().zip(dates) {
            let (a, b) = if d.is_null(row) {
                if l.null_holds { (0, self.0.len()) } else { (0, 0) }
            } else {
                self.allowed(l, d.value(row))
            };
            from = from.max(a);
            to = to.min(b);
        }
        (from, to)
    }

    /// The run of interval indexes `[from, to)` whose bound `b` has `x op b`.
    fn allowed(&self, l: &Limit, x: i32) -> (usize, usize) {
        let bound = |i: &(i32, i32)| if l.end { i.1 } else { i.0 };
        let iv = &self.0;
        let below = iv.partition_point(|i| bound(i) < x);
        let through = iv.partition_point(|i| bound(i) <= x);
        match l.op {
            Operator::LtEq => (below, iv.len()),
            Operator::Lt => (through, iv.len()),
            Operator::GtEq => (0, through),
            Operator::Gt => (0, below),
            _ => (below, through),
        }
    }
}

/// What an interval function computes, without its intervals: with
/// [`interval_function_of`], how one travels to another process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum IntervalUse {
    Part(Part),
    /// The limits of `ehr_intervals_allowed`, each as (operator, on the end bound,
    /// null holds); the compared values are the function's arguments.
    Allowed(Vec<(String, bool, bool)>),
}

/// The intervals and use of an interval function (None for other functions).
pub fn interval_function_use(f: &ScalarUDF) -> Option<(&Intervals, IntervalUse)> {
    if let Some(f) = f.inner().downcast_ref::<IntervalFunction>() {
        return Some((&f.intervals, IntervalUse::Part(f.part)));
    }
    let f = f.inner().downcast_ref::<SpanFunction>()?;
    Some((&f.intervals, IntervalUse::Allowed(f.limits.iter().map(Limit::portable).collect())))
}

/// The interval function of `how` over `intervals`.
pub fn interval_function_of(intervals: Intervals, how: IntervalUse) -> DFResult<ScalarUDF> {
    Ok(match how {
        IntervalUse::Part(part) => ScalarUDF::new_from_impl(IntervalFunction { intervals, part, signature: Signature::any(1, Volatility::Immutable) }),
        IntervalUse::Allowed(limits) => {
            let limits = limits.into_iter().map(Limit::from_portable).collect::<DFResult<Vec<_>>>()?;
            let signature = Signature::any(limits.len(), Volatility::Immutable);
            ScalarUDF::new_from_impl(SpanFunction { intervals, limits, signature })
        }
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SpanFunction {
    intervals: Intervals,
    limits: Vec<Limit>,
    signature: Signature,
}

impl ScalarUDFImpl for SpanFunction {
    fn name(&self) -> &str {
        "ehr_intervals_allowed"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::new_list(DataType::Int64, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let mut dates = Vec::with_capacity(columns.len());
        for c in &columns {
            let Some(d) = c.as_any().downcast_ref::<Date32Array>() else {
                return exec_err!("ehr_intervals_allowed: expected dates, got {}", c.data_type());
            };
            dates.push(d);
        }
        let rows = args.number_rows;
        let mut out = ListBuilder::with_capacity(Int64Builder::new(), rows);
        for row in 0..rows {
            let (from, to) = self.intervals.run(&self.limits, &dates, row);
            if from < to {
                out.values().extend((from..to).map(|i| Some(i as i64)));
                out.append(true);
            } else {
                out.append(false);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
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
    use super::*;
    use datafusion::logical_expr::not;

    fn limit(x: &str, op: Operator, end: bool, null_holds: bool) -> Limit {
        Limit { x: col(x), op, end, null_holds }
    }

    #[test]
    fn a_limit_allows_a_run_of_intervals() {
        let iv = Intervals::new(&[(0, 30), (31, 59), (60, 90)]);
        let allowed = |op, end, x| iv.allowed(&limit("d", op, end, false), x);
        // d <= start: the intervals starting on or after d.
        assert_eq!(allowed(Operator::LtEq, false, 31), (1, 3));
        assert_eq!(allowed(Operator::LtEq, false, -5), (0, 3));
        assert_eq!(allowed(Operator::LtEq, false, 91), (3, 3));
        assert_eq!(allowed(Operator::Lt, false, 31), (2, 3));
        // d >= start: those starting on or before d.
        assert_eq!(allowed(Operator::GtEq, false, 31), (0, 2));
        assert_eq!(allowed(Operator::Gt, false, 31), (0, 1));
        assert_eq!(allowed(Operator::Eq, false, 31), (1, 2));
        assert_eq!(allowed(Operator::Eq, false, 32), (2, 2));
        // d <= end, d > end.
        assert_eq!(allowed(Operator::LtEq, true, 59), (1, 3));
        assert_eq!(allowed(Operator::Gt, true, 59), (0, 1));
    }

    #[test]
    fn limits_are_found_in_every_spelling() {
        let limits = |conditions: &[Expr], iv: &Intervals| -> Vec<Limit> { limiting_conditions(conditions, iv).into_iter().map(|(_, l)| l).collect() };
        let iv = Intervals::new(&[(0, 30), (31, 59)]);
        let start = || col(START);
        let lt = col("e").lt(start());
        let cases = [
            (col("d").lt_eq(start()), Some(limit("d", Operator::LtEq, false, false))),
            (start().gt_eq(col("d")), Some(limit("d", Operator::LtEq, false, false))),
            (col("d").gt(col(END)), Some(limit("d", Operator::Gt, true, false))),
            (not(lt.clone()), Some(limit("e", Operator::GtEq, false, false))),
            // except_where(e < start) and its shorter spelling
            (not(lt.clone()).or(lt.clone().is_null()), Some(limit("e", Operator::GtEq, false, true))),
            (col("e").is_null().or(col("e").gt_eq(start())), Some(limit("e", Operator::GtEq, false, true))),
            // not limits: a null test of another column, an inequality, no bound
            (col("e").gt_eq(start()).or(col("f").is_null()), None),
            (not(col("e").eq(start())), None),
            (col("e").not_eq(start()), None),
            (col("e").lt(col("f")), None),
            (col(START).lt(col(END)), None),
        ];
        for (condition, expected) in cases {
            assert_eq!(limits(std::slice::from_ref(&condition), &iv).into_iter().next(), expected, "{condition}");
        }
        // End limits only where ends rise with starts.
        let overlapping = Intervals::new(&[(0, 90), (31, 59)]);
        assert!(limits(&[col("d").lt_eq(col(END))], &overlapping).is_empty());
        assert_eq!(limits(&[col("d").lt_eq(col(START))], &overlapping).len(), 1);
    }

    #[test]
    fn keys_split_into_patient_and_interval() {
        for k in [1, 2, 7, 60, 120, 1000, 4097] {
            let split = Split::new(k);
            let patients = [0, 1, 2, 99, 31_675, 1 << 20, 999_999_937, (1 << 52) / k - 1, (1 << 52) / k, i64::MAX / k - 1];
            for &p in &patients {
                for i in [0, k / 2, k - 1] {
                    let key = p * k + i;
                    assert_eq!((split.patient(key), split.index(key)), (p, i), "key {key} with k {k}");
                }
            }
            // Negative keys (never made, but not mis-split either).
            assert_eq!((split.patient(-1), split.index(-1)), ((-1i64).div_euclid(k), (-1i64).rem_euclid(k)));
        }
    }

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
