//! Values and the row-at-a-time functions of ehrQL's in-memory engine: nulls propagate
//! through every function except the logical ones, `IsNull`, `In`, `Case` and the
//! null-ignoring `MinimumOf` / `MaximumOf`.

use std::cmp::Ordering;

use chrono::{Datelike, NaiveDate};
use ehrfusion::model::nodes::Function;

use super::dates;

#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Date(NaiveDate),
    /// A patient's `CombineAsSet`, or a `Value` set: distinct non-null values.
    Set(Vec<V>),
}

impl V {
    pub fn is_null(&self) -> bool {
        matches!(self, V::Null)
    }

    fn int(&self) -> i64 {
        match self {
            V::Int(i) => *i,
            other => panic!("expected an int, found {other:?}"),
        }
    }

    fn date(&self) -> NaiveDate {
        match self {
            V::Date(d) => *d,
            other => panic!("expected a date, found {other:?}"),
        }
    }

    fn number(&self) -> f64 {
        match self {
            V::Int(i) => *i as f64,
            V::Float(f) => *f,
            other => panic!("expected a number, found {other:?}"),
        }
    }
}

/// ehrQL's sort order: nulls first, then values ascending.
pub fn order(a: &V, b: &V) -> Ordering {
    match (a, b) {
        (V::Null, V::Null) => Ordering::Equal,
        (V::Null, _) => Ordering::Less,
        (_, V::Null) => Ordering::Greater,
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::Int(x), V::Int(y)) => x.cmp(y),
        // As Python compares: -0.0 equals 0.0. No function gives NaN.
        (V::Float(x), V::Float(y)) => x.partial_cmp(y).expect("NaN"),
        (V::Str(x), V::Str(y)) => x.cmp(y),
        (V::Date(x), V::Date(y)) => x.cmp(y),
        _ => panic!("cannot order {a:?} and {b:?}"),
    }
}

/// Apply a function to one row's arguments.
pub fn apply(function: Function, args: &[V]) -> V {
    use Function::*;
    match function {
        And => and(&args[0], &args[1]),
        Or => or(&args[0], &args[1]),
        Not => match &args[0] {
            V::Bool(b) => V::Bool(!b),
            _ => V::Null,
        },
        IsNull => V::Bool(args[0].is_null()),
        In => is_in(&args[0], &args[1]),
        MinimumOf => extreme(args, Ordering::Less),
        MaximumOf => extreme(args, Ordering::Greater),
        _ if args.iter().any(V::is_null) => V::Null,
        _ => strict(function, args),
    }
}

fn and(a: &V, b: &V) -> V {
    match (a, b) {
        (V::Bool(false), _) | (_, V::Bool(false)) => V::Bool(false),
        (V::Bool(true), V::Bool(true)) => V::Bool(true),
        _ => V::Null,
    }
}

fn or(a: &V, b: &V) -> V {
    match (a, b) {
        (V::Bool(true), _) | (_, V::Bool(true)) => V::Bool(true),
        (V::Bool(false), V::Bool(false)) => V::Bool(false),
        _ => V::Null,
    }
}

/// An empty set contains nothing, not even an unknown value.
fn is_in(value: &V, set: &V) -> V {
    let V::Set(members) = set else { panic!("In needs a set, found {set:?}") };
    if members.is_empty() {
        V::Bool(false)
    } else if value.is_null() {
        V::Null
    } else {
        V::Bool(members.contains(value))
    }
}

fn extreme(args: &[V], wanted: Ordering) -> V {
    let mut best: Option<&V> = None;
    for v in args.iter().filter(|v| !v.is_null()) {
        if best.is_none_or(|b| order(v, b) == wanted) {
            best = Some(v);
        }
    }
    best.cloned().unwrap_or(V::Null)
}

/// Functions whose arguments are all non-null.
fn strict(function: Function, args: &[V]) -> V {
    use Function::*;
    let (a, b) = (&args[0], args.get(1));
    let compare = || order(a, b.unwrap());
    match function {
        EQ => V::Bool(compare() == Ordering::Equal),
        NE => V::Bool(compare() != Ordering::Equal),
        LT => V::Bool(compare() == Ordering::Less),
        LE => V::Bool(compare() != Ordering::Greater),
        GT => V::Bool(compare() == Ordering::Greater),
        GE => V::Bool(compare() != Ordering::Less),
        Negate | Absolute | Add | Subtract | Multiply => arithmetic(function, a, b),
        TrueDivide => true_divide(a.number(), b.unwrap().number()),
        FloorDivide => floor_divide(a, b.unwrap()),
        Power => power(a.number(), b.unwrap().number()),
        CastToInt => cast_to_int(a),
        CastToFloat => V::Float(a.number()),
        DateAddDays => date_in_range(dates::add_days(a.date(), b.unwrap().int())),
        DateAddMonths => date_in_range(dates::add_months(a.date(), b.unwrap().int())),
        DateAddYears => date_in_range(dates::add_years(a.date(), b.unwrap().int())),
        DateDifferenceInDays => V::Int(dates::difference_in_days(a.date(), b.unwrap().date())),
        DateDifferenceInMonths => V::Int(dates::difference_in_months(a.date(), b.unwrap().date())),
        DateDifferenceInYears => V::Int(dates::difference_in_years(a.date(), b.unwrap().date())),
        YearFromDate => V::Int(a.date().year() as i64),
        MonthFromDate => V::Int(a.date().month() as i64),
        DayFromDate => V::Int(a.date().day() as i64),
        ToFirstOfYear => V::Date(dates::first_of_year(a.date())),
        ToFirstOfMonth => V::Date(dates::first_of_month(a.date())),
        StringContains => match (a, b.unwrap()) {
            (V::Str(s), V::Str(part)) => V::Bool(s.contains(part.as_str())),
            other => panic!("StringContains of {other:?}"),
        },
        other => panic!("the reference evaluator does not implement {}", other.name()),
    }
}

/// Dates far outside the generator's range are not expected.
fn date_in_range(d: Option<NaiveDate>) -> V {
    V::Date(d.expect("date arithmetic out of range"))
}

fn arithmetic(function: Function, a: &V, b: Option<&V>) -> V {
    use Function::*;
    match (function, a, b) {
        (Negate, V::Int(x), _) => V::Int(-x),
        (Negate, V::Float(x), _) => V::Float(-x),
        (Absolute, V::Int(x), _) => V::Int(x.abs()),
        (Absolute, V::Float(x), _) => V::Float(x.abs()),
        (Add, V::Int(x), Some(V::Int(y))) => V::Int(x + y),
        (Subtract, V::Int(x), Some(V::Int(y))) => V::Int(x - y),
        (Multiply, V::Int(x), Some(V::Int(y))) => V::Int(x * y),
        (Add, V::Float(x), Some(V::Float(y))) => V::Float(x + y),
        (Subtract, V::Float(x), Some(V::Float(y))) => V::Float(x - y),
        (Multiply, V::Float(x), Some(V::Float(y))) => V::Float(x * y),
        other => panic!("bad arithmetic {other:?}"),
    }
}

fn true_divide(x: f64, y: f64) -> V {
    if y == 0.0 { V::Null } else { V::Float(x / y) }
}

/// Python's `//` rounds towards negative infinity, for ints and floats alike; ehrQL
/// then makes the result an int.
fn floor_divide(a: &V, b: &V) -> V {
    match (a, b) {
        (_, V::Int(0)) => V::Null,
        (V::Int(x), V::Int(y)) => {
            let (q, r) = (x / y, x % y);
            V::Int(if r != 0 && (r < 0) != (*y < 0) { q - 1 } else { q })
        }
        (V::Float(_), V::Float(y)) if *y == 0.0 => V::Null,
        (V::Float(x), V::Float(y)) => V::Int((x / y).floor() as i64),
        other => panic!("bad floor division {other:?}"),
    }
}

/// Null where Python raises (zero to a negative power) or gives a complex number.
fn power(x: f64, y: f64) -> V {
    let p = x.powf(y);
    if x == 0.0 && y < 0.0 || !p.is_finite() { V::Null } else { V::Float(p) }
}

fn cast_to_int(a: &V) -> V {
    match a {
        V::Int(i) => V::Int(*i),
        V::Bool(b) => V::Int(*b as i64),
        V::Float(f) => V::Int(f.trunc() as i64),
        other => panic!("CastToInt of {other:?}"),
    }
}
