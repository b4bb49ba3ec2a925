//! Scalar functions with ehrQL's exact semantics where SQL's differ: division by zero
//! gives null, floor division rounds down, month arithmetic rolls a missing day
//! forward to the first of the next month, date differences count whole elapsed
//! units, and set membership ignores nulls in the set.

use std::sync::Arc;

use arrow::array::*;
use arrow::compute::kernels::cmp;
use arrow::datatypes::DataType;
use chrono::{Datelike, NaiveDate};
use datafusion::common::{Result as DFResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::model::types::{date_to_days, days_to_date};

type Kernel = fn(&[ArrayRef]) -> DFResult<ArrayRef>;

/// One ehrQL function: a name, a fixed return type and an array kernel. Arguments
/// arrive already in the engine's canonical Arrow types.
#[derive(Debug)]
pub struct EhrFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    kernel: Kernel,
}

// Names are unique, so they identify a function (function pointers cannot).
impl PartialEq for EhrFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for EhrFunction {}
impl std::hash::Hash for EhrFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for EhrFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array((self.kernel)(&arrays)?))
    }
}

fn udf(name: &'static str, arity: usize, returns: DataType, kernel: Kernel) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(EhrFunction {
        name,
        signature: Signature::any(arity, Volatility::Immutable),
        returns,
        kernel,
    }))
}

/// Our functions of fixed arity: name, arity, return type, kernel.
static FUNCTIONS: [(&str, usize, DataType, Kernel); 22] = [
    ("ehr_true_divide", 2, DataType::Float64, true_divide),
    ("ehr_floor_divide_int", 2, DataType::Int64, floor_divide_int),
    ("ehr_floor_divide_float", 2, DataType::Int64, floor_divide_float),
    ("ehr_power", 2, DataType::Float64, power),
    ("ehr_date_add_days", 2, DataType::Date32, date_add_days),
    ("ehr_date_add_months", 2, DataType::Date32, date_add_months),
    ("ehr_date_add_years", 2, DataType::Date32, date_add_years),
    ("ehr_date_diff_days", 2, DataType::Int64, date_diff_days),
    ("ehr_date_diff_months", 2, DataType::Int64, date_diff_months),
    ("ehr_date_diff_years", 2, DataType::Int64, date_diff_years),
    ("ehr_year", 1, DataType::Int64, year),
    ("ehr_month", 1, DataType::Int64, month),
    ("ehr_day", 1, DataType::Int64, day),
    ("ehr_first_of_year", 1, DataType::Date32, first_of_year),
    ("ehr_first_of_month", 1, DataType::Date32, first_of_month),
    ("ehr_str_contains", 2, DataType::Boolean, str_contains),
    ("ehr_in_set", 2, DataType::Boolean, in_set),
    ("ehr_format_date", 2, DataType::Utf8, format_date),
    ("ehr_count_episodes", 2, DataType::Int64, count_episodes),
    ("ehr_lower_case", 1, DataType::Utf8, lower_case),
    ("ehr_trim_spaces", 1, DataType::Utf8, trim_spaces),
    ("ehr_replace_ignoring_case", 3, DataType::Utf8, replace_ignoring_case),
];

const SORT_KEY: &str = "ehr_sort_key";

/// The function of ours named `name` (also how a plan sent to another process
/// gets its functions back: a name is all they need).
pub fn named(name: &str) -> Option<Arc<ScalarUDF>> {
    if name == super::fill_null::NAME {
        return Some(super::fill_null::udf());
    }
    if name == SORT_KEY {
        return Some(Arc::new(ScalarUDF::new_from_impl(EhrFunction {
            name: SORT_KEY,
            signature: Signature::variadic_any(Volatility::Immutable),
            returns: DataType::Binary,
            kernel: sort_key_kernel,
        })));
    }
    let (name, arity, returns, kernel) = FUNCTIONS.iter().find(|f| f.0 == name)?;
    Some(udf(*name, *arity, returns.clone(), *kernel))
}

/// Whether `f` is one of the functions [`named`] builds.
pub fn is_named(f: &ScalarUDF) -> bool {
    f.inner().downcast_ref::<EhrFunction>().is_some() || f.inner().downcast_ref::<super::fill_null::FillNull>().is_some()
}

/// Call a named ehrQL function on argument expressions.
pub fn call(name: &'static str, args: Vec<Expr>) -> Expr {
    named(name).unwrap_or_else(|| panic!("no ehrQL function named {name}")).call(args)
}

/// One binary key per row whose byte order is the order of the given sort keys
/// (each ascending, nulls first), so a pick compares one value instead of many.
pub fn sort_key(keys: Vec<Expr>) -> Expr {
    call(SORT_KEY, keys)
}

fn sort_key_kernel(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    use arrow::row::{RowConverter, SortField};
    let fields = args.iter().map(|a| SortField::new(a.data_type().clone())).collect();
    let converter = RowConverter::new(fields)?;
    let rows = converter.convert_columns(args)?;
    let mut out = BinaryBuilder::with_capacity(rows.num_rows(), rows.size());
    for row in rows.iter() {
        out.append_value(row.as_ref());
    }
    Ok(Arc::new(out.finish()))
}

fn as_f64(a: &ArrayRef) -> DFResult<&Float64Array> {
    a.as_any().downcast_ref().map_or_else(|| exec_err!("expected float64, got {}", a.data_type()), Ok)
}
fn as_i64(a: &ArrayRef) -> DFResult<&Int64Array> {
    a.as_any().downcast_ref().map_or_else(|| exec_err!("expected int64, got {}", a.data_type()), Ok)
}
fn as_date(a: &ArrayRef) -> DFResult<&Date32Array> {
    a.as_any().downcast_ref().map_or_else(|| exec_err!("expected date32, got {}", a.data_type()), Ok)
}
fn as_str(a: &ArrayRef) -> DFResult<&StringArray> {
    a.as_any().downcast_ref().map_or_else(|| exec_err!("expected utf8, got {}", a.data_type()), Ok)
}

fn binary<A, B, T, O>(a: A, b: B, f: impl Fn(A::Item, B::Item) -> Option<T>) -> O
where
    A: ArrayAccessor + Copy,
    B: ArrayAccessor + Copy,
    O: FromIterator<Option<T>>,
{
    (0..a.len())
        .map(|i| if a.is_null(i) || b.is_null(i) { None } else { f(a.value(i), b.value(i)) })
        .collect()
}

fn true_divide(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (a, b) = (as_f64(&args[0])?, as_f64(&args[1])?);
    let out: Float64Array = (0..a.len())
        .map(|i| if a.is_null(i) || b.is_null(i) || b.value(i) == 0.0 { None } else { Some(a.value(i) / b.value(i)) })
        .collect();
    Ok(Arc::new(out))
}

fn floor_divide_int(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (a, b) = (as_i64(&args[0])?, as_i64(&args[1])?);
    let out: Int64Array = (0..a.len())
        .map(|i| {
            if a.is_null(i) || b.is_null(i) || b.value(i) == 0 {
                return None;
            }
            let (x, y) = (a.value(i), b.value(i));
            let q = x.checked_div(y)?;
            // Truncation rounds towards zero; floor division rounds down.
            Some(if x % y != 0 && ((x < 0) != (y < 0)) { q - 1 } else { q })
        })
        .collect();
    Ok(Arc::new(out))
}

fn floor_divide_float(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (a, b) = (as_f64(&args[0])?, as_f64(&args[1])?);
    let out: Int64Array = (0..a.len())
        .map(|i| {
            if a.is_null(i) || b.is_null(i) || b.value(i) == 0.0 {
                return None;
            }
            let q = (a.value(i) / b.value(i)).floor();
            (q.is_finite() && q.abs() < 9.2e18).then_some(q as i64)
        })
        .collect();
    Ok(Arc::new(out))
}

fn power(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (a, b) = (as_f64(&args[0])?, as_f64(&args[1])?);
    let out: Float64Array = binary(a, b, |x: f64, y: f64| {
        // 0 to a negative power is a division by zero; non-finite results have no value.
        if x == 0.0 && y < 0.0 {
            return None;
        }
        let r = x.powf(y);
        r.is_finite().then_some(r)
    });
    Ok(Arc::new(out))
}

fn map_dates(a: &Date32Array, f: impl Fn(NaiveDate) -> Option<NaiveDate>) -> Date32Array {
    a.iter().map(|d| d.and_then(days_to_date).and_then(&f).map(date_to_days)).collect()
}

fn date_int(args: &[ArrayRef], f: fn(NaiveDate, i64) -> Option<NaiveDate>) -> DFResult<ArrayRef> {
    let (a, n) = (as_date(&args[0])?, as_i64(&args[1])?);
    let out: Date32Array = (0..a.len())
        .map(|i| {
            if a.is_null(i) || n.is_null(i) {
                return None;
            }
            days_to_date(a.value(i)).and_then(|d| f(d, n.value(i))).map(date_to_days)
        })
        .collect();
    Ok(Arc::new(out))
}

fn date_add_days(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_int(args, |d, n| d.checked_add_signed(chrono::Duration::try_days(n)?))
}

/// Add months the way ehrQL does: when the day does not exist in the target month,
/// the result is the first day of the following month (31 Jan + 1 month = 1 Mar).
pub fn add_months(d: NaiveDate, n: i64) -> Option<NaiveDate> {
    let total = i64::from(d.year()) * 12 + i64::from(d.month0()) + n;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = total.rem_euclid(12) as u32 + 1;
    NaiveDate::from_ymd_opt(year, month, d.day()).or_else(|| {
        let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        NaiveDate::from_ymd_opt(y, m, 1)
    })
}

fn date_add_months(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_int(args, add_months)
}

fn date_add_years(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_int(args, |d, n| add_months(d, n.checked_mul(12)?))
}

fn date_diff(args: &[ArrayRef], f: fn(NaiveDate, NaiveDate) -> i64) -> DFResult<ArrayRef> {
    let (a, b) = (as_date(&args[0])?, as_date(&args[1])?);
    let out: Int64Array = binary(a, b, |x: i32, y: i32| Some(f(days_to_date(x)?, days_to_date(y)?)));
    Ok(Arc::new(out))
}

fn date_diff_days(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_diff(args, |end, start| (end - start).num_days())
}

/// Whole months elapsed from `start` to `end` (negative when `end` is earlier).
pub fn months_between(end: NaiveDate, start: NaiveDate) -> i64 {
    let months = (i64::from(end.year()) - i64::from(start.year())) * 12 + i64::from(end.month()) - i64::from(start.month());
    if end.day() < start.day() { months - 1 } else { months }
}

/// Whole years elapsed from `start` to `end`, as an age is counted.
pub fn years_between(end: NaiveDate, start: NaiveDate) -> i64 {
    let years = i64::from(end.year()) - i64::from(start.year());
    if (end.month(), end.day()) < (start.month(), start.day()) { years - 1 } else { years }
}

fn date_diff_months(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_diff(args, months_between)
}

fn date_diff_years(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    // Ages over every (patient, interval) row of a measure: the calendar date comes
    // from plain integer arithmetic, not through chrono, wherever chrono would accept it.
    let (a, b) = (as_date(&args[0])?, as_date(&args[1])?);
    let in_range = |d: &Date32Array| d.values().iter().all(|v| CIVIL_RANGE.contains(v));
    if in_range(a) && in_range(b) {
        return Ok(Arc::new(whole_years(a, b)));
    }
    let out: Int64Array = binary(a, b, |end: i32, start: i32| {
        if !CIVIL_RANGE.contains(&end) || !CIVIL_RANGE.contains(&start) {
            return Some(years_between(days_to_date(end)?, days_to_date(start)?));
        }
        let ((ey, em, ed), (sy, sm, sd)) = (civil(end), civil(start));
        let years = ey - sy;
        Some(if (em, ed) < (sm, sd) { years - 1 } else { years })
    });
    Ok(Arc::new(out))
}

/// Whole years from each start to its end, every value in [`CIVIL_RANGE`] (values
/// under nulls included: they are computed and then masked). A row's date is
/// usually its neighbour's (a patient's birth date over each interval, an interval
/// start over each patient), so the calendar date of the previous value is reused.
fn whole_years(ends: &Date32Array, starts: &Date32Array) -> Int64Array {
    let month_day = |days: i32| {
        let (y, m, d) = civil(days);
        (y, m * 32 + d)
    };
    let (mut last_end, mut last_start) = ((i32::MIN, (0, 0)), (i32::MIN, (0, 0)));
    let years: Vec<i64> = ends
        .values()
        .iter()
        .zip(starts.values().iter())
        .map(|(&end, &start)| {
            if end != last_end.0 {
                last_end = (end, month_day(end));
            }
            if start != last_start.0 {
                last_start = (start, month_day(start));
            }
            let ((ey, emd), (sy, smd)) = (last_end.1, last_start.1);
            ey - sy - i64::from(emd < smd)
        })
        .collect();
    Int64Array::new(years.into(), arrow::buffer::NullBuffer::union(ends.nulls(), starts.nulls()))
}

/// Days from 1970-01-01 for which [`civil`] is used (well inside chrono's range).
const CIVIL_RANGE: std::ops::RangeInclusive<i32> = -50_000_000..=50_000_000;

/// The (year, month, day) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar. Counts from 0000-03-01 so that a leap day ends each year,
/// then splits the count into 400-year eras (146,097 days each), years in the era,
/// and five-month cycles of 153 days from March.
fn civil(days: i32) -> (i64, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = (if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 }) as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn date_part(args: &[ArrayRef], f: fn(NaiveDate) -> i64) -> DFResult<ArrayRef> {
    let a = as_date(&args[0])?;
    let out: Int64Array = a.iter().map(|d| d.and_then(days_to_date).map(f)).collect();
    Ok(Arc::new(out))
}

fn year(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_part(args, |d| i64::from(d.year()))
}
fn month(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_part(args, |d| i64::from(d.month()))
}
fn day(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    date_part(args, |d| i64::from(d.day()))
}
fn first_of_year(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    Ok(Arc::new(map_dates(as_date(&args[0])?, |d| d.with_ordinal(1))))
}
fn first_of_month(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    Ok(Arc::new(map_dates(as_date(&args[0])?, |d| d.with_day(1))))
}

fn str_contains(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (a, b) = (as_str(&args[0])?, as_str(&args[1])?);
    let out: BooleanArray = binary(a, b, |x: &str, y: &str| Some(x.contains(y)));
    Ok(Arc::new(out))
}

/// A date as text cut to a format (cohort-extractor's dates): `YYYY`, `YYYY-MM` or
/// `YYYY-MM-DD`.
fn format_date(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let Some(dates) = args[0].as_any().downcast_ref::<Date32Array>() else {
        return exec_err!("ehr_format_date expects a date, got {}", args[0].data_type());
    };
    let formats = as_str(&args[1])?;
    let mut out = StringBuilder::with_capacity(dates.len(), dates.len() * 10);
    for i in 0..dates.len() {
        if dates.is_null(i) || formats.is_null(i) {
            out.append_null();
            continue;
        }
        let width = match formats.value(i) {
            "YYYY" => 4,
            "YYYY-MM" => 7,
            "YYYY-MM-DD" => 10,
            other => return exec_err!("unknown date format '{other}' (use YYYY, YYYY-MM or YYYY-MM-DD)"),
        };
        match days_to_date(dates.value(i)) {
            Some(d) => out.append_value(&d.format("%Y-%m-%d").to_string()[..width]),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Text in lower case (cohort-extractor's TPP queries match text ignoring case).
fn lower_case(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let out: StringArray = as_str(&args[0])?.iter().map(|x| x.map(str::to_lowercase)).collect();
    Ok(Arc::new(out))
}

/// Text without leading or trailing spaces, as SQL Server's `LTRIM(RTRIM(..))`
/// (spaces only, not tabs or newlines).
fn trim_spaces(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let out: StringArray = as_str(&args[0])?.iter().map(|x| x.map(|t| t.trim_matches(' '))).collect();
    Ok(Arc::new(out))
}

/// SQL Server's `REPLACE(text, from, to)` under TPP's case-insensitive collation:
/// every non-overlapping match of `from`, in any case, becomes `to`.
fn replace_ignoring_case(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (text, from, to) = (as_str(&args[0])?, as_str(&args[1])?, as_str(&args[2])?);
    let out: StringArray = (0..text.len())
        .map(|i| {
            if text.is_null(i) || from.is_null(i) || to.is_null(i) {
                return None;
            }
            Some(replace_any_case(text.value(i), from.value(i), to.value(i)))
        })
        .collect();
    Ok(Arc::new(out))
}

fn replace_any_case(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_string();
    }
    let (lower_text, lower_from) = (text.to_lowercase(), from.to_lowercase());
    // Byte offsets agree between `text` and its lower case only when lowering
    // keeps every character's width; otherwise fall back to matching as given.
    if lower_text.len() != text.len() || lower_from.len() != from.len() {
        return text.replace(from, to);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, _) in lower_text.match_indices(&lower_from) {
        if !text.is_char_boundary(start) {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(to);
        at = start + from.len();
    }
    out.push_str(&text[at..]);
    out
}

/// `value IN set` as ehrQL defines it: an empty (or missing) set contains nothing,
/// not even null; otherwise a null value gives null; nulls in the set are ignored.
fn in_set(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let (values, sets) = (&args[0], &args[1]);
    let Some(sets) = sets.as_any().downcast_ref::<ListArray>() else {
        return exec_err!("ehr_in_set expects a list, got {}", sets.data_type());
    };
    let mut out = BooleanBuilder::with_capacity(values.len());
    for i in 0..values.len() {
        let set = if sets.is_null(i) { None } else { Some(sets.value(i)) };
        let non_empty = set.as_ref().is_some_and(|s| s.len() > s.null_count());
        if !non_empty {
            out.append_value(false);
        } else if values.is_null(i) {
            out.append_null();
        } else {
            let needle = Scalar::new(values.slice(i, 1));
            let hits = cmp::eq(set.as_ref().unwrap(), &needle)?;
            out.append_value(hits.true_count() > 0);
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Count runs of dates in which each date is within `gap` days of the previous one.
fn count_episodes(args: &[ArrayRef]) -> DFResult<ArrayRef> {
    let Some(lists) = args[0].as_any().downcast_ref::<ListArray>() else {
        return exec_err!("ehr_count_episodes expects a list, got {}", args[0].data_type());
    };
    let gaps = as_i64(&args[1])?;
    let mut out = Int64Builder::with_capacity(lists.len());
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.append_value(0);
            continue;
        }
        let item = lists.value(i);
        let dates = as_date(&item)?;
        let mut days: Vec<i32> = dates.iter().flatten().collect();
        days.sort_unstable();
        let gap = gaps.value(i);
        let episodes = days.windows(2).filter(|w| i64::from(w[1] - w[0]) > gap).count() + usize::from(!days.is_empty());
        out.append_value(episodes as i64);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn replace_matches_any_case_as_tpp_collation() {
        assert_eq!(replace_any_case("Casirivimab and imdevimab", " and ", ","), "Casirivimab,imdevimab");
        assert_eq!(replace_any_case("A AND b and C", " and ", "+"), "A+b+C");
        assert_eq!(replace_any_case("aaa", "aa", "b"), "ba");
        assert_eq!(replace_any_case("nothing here", "xyz", "-"), "nothing here");
        assert_eq!(replace_any_case("keep", "", "-"), "keep");
        let texts: ArrayRef = Arc::new(StringArray::from(vec![Some("  Sotrovimab "), None, Some("\tx ")]));
        let trimmed = trim_spaces(&[texts.clone()]).unwrap();
        assert_eq!(as_str(&trimmed).unwrap().iter().collect::<Vec<_>>(), vec![Some("Sotrovimab"), None, Some("\tx")]);
        let lowered = lower_case(&[texts]).unwrap();
        assert_eq!(as_str(&lowered).unwrap().value(0), "  sotrovimab ");
    }

    #[test]
    fn months_roll_forward_past_missing_days() {
        assert_eq!(add_months(d("2003-01-29"), 1), Some(d("2003-03-01")));
        assert_eq!(add_months(d("2004-01-29"), 1), Some(d("2004-02-29")));
        assert_eq!(add_months(d("2004-03-31"), -1), Some(d("2004-03-01")));
        assert_eq!(add_months(d("2000-10-31"), -11), Some(d("1999-12-01")));
        assert_eq!(add_months(d("2000-12-15"), 1), Some(d("2001-01-15")));
    }

    #[test]
    fn civil_dates_match_chrono() {
        let days = (-800_000..800_000).step_by(7).chain([-719_468, -719_469, 0, 59, 60, 11_016, 10_956, 49_999_999, -49_999_999]);
        for day in days {
            let date = days_to_date(day).unwrap();
            assert_eq!(civil(day), (i64::from(date.year()), date.month(), date.day()), "day {day}");
        }
        // Every day around leap years and century boundaries.
        for day in (-25_000..25_000).chain(10_900..11_100) {
            let date = days_to_date(day).unwrap();
            assert_eq!(civil(day), (i64::from(date.year()), date.month(), date.day()), "day {day}");
        }
    }

    #[test]
    fn elapsed_years_agree_with_and_without_chrono() {
        let diff = |end: i32, start: i32| {
            let out = date_diff_years(&[Arc::new(Date32Array::from(vec![end])), Arc::new(Date32Array::from(vec![start]))]).unwrap();
            out.as_primitive::<arrow::datatypes::Int64Type>().value(0)
        };
        for (end, start) in [(18_686, 11_016), (18_686, 18_687), (0, -1), (11_016, 11_016 - 366), (19_000, -700_000), (60_000_000, 0)] {
            assert_eq!(diff(end, start), years_between(days_to_date(end).unwrap(), days_to_date(start).unwrap()), "{end} {start}");
        }
    }

    #[test]
    fn elapsed_years_over_arrays_reuse_neighbours_and_keep_nulls() {
        // Births repeated over interval starts, as a measure's rows are, with nulls
        // on either side and leap days.
        let births = [Some(11_016), Some(11_016), Some(11_016), None, Some(10_956), Some(-700_000), Some(-700_000), Some(19_000)];
        let ends = [Some(18_686), Some(18_687), None, Some(18_686), Some(18_686), Some(18_686), Some(10_956), Some(18_993)];
        let out = date_diff_years(&[Arc::new(Date32Array::from(ends.to_vec())), Arc::new(Date32Array::from(births.to_vec()))]).unwrap();
        let out = out.as_primitive::<arrow::datatypes::Int64Type>();
        let expected: Vec<Option<i64>> = ends
            .iter()
            .zip(births)
            .map(|(e, b)| Some(years_between(days_to_date((*e)?).unwrap(), days_to_date(b?).unwrap())))
            .collect();
        assert_eq!(out.iter().collect::<Vec<_>>(), expected);
        assert_eq!(out.null_count(), 2);
    }

    #[test]
    fn elapsed_units_count_whole_periods() {
        assert_eq!(years_between(d("2021-02-28"), d("2020-02-29")), 0);
        assert_eq!(years_between(d("2021-02-28"), d("2023-01-01")), -2);
        assert_eq!(months_between(d("2005-02-28"), d("2004-02-29")), 11);
        assert_eq!(months_between(d("1999-12-26"), d("2000-01-27")), -2);
    }
}
