//! Every example of ehrQL's language specification (its `specs.md` and the
//! arithmetic, conversion and sort examples of its spec suite), run through the whole
//! engine: tables written as CSV, read back, compiled and executed.

mod common;

use common::{Q, rows_of, run_model, write_tables};
use ehrfusion::source::Tables;
use serde_json::json;

const COLS: &[&str] = &["i1", "i2", "i3", "b1", "b2", "f1", "f2", "s1", "s2", "d1", "d2", "c1", "m1"];
const TYPES: &[&str] = &["int", "int", "int", "bool", "bool", "float", "float", "str", "str", "date", "date", "SNOMEDCTCode", "ICD10MultiCodeString"];

fn q() -> Q {
    let mut q = Q::new();
    let cols: Vec<(&str, &str)> = COLS.iter().copied().zip(TYPES.iter().copied()).collect();
    q.table("p", "patient", &cols);
    q.table("e", "event", &cols);
    q
}

/// `p` and `e` as the spec names them.
fn p(q: &mut Q) -> usize {
    q.select_patient_table("p")
}
fn e(q: &mut Q) -> usize {
    q.select_table("e")
}

/// Run `value` for every patient in `p` or `e` (or in the given population) and
/// compare with the expected `patient|value` rows.
fn check_with(p_rows: &str, e_rows: &str, build: impl FnOnce(&mut Q) -> usize, population: Option<fn(&mut Q) -> usize>, expected: &str) {
    let mut q = q();
    let value = build(&mut q);
    let pop = match population {
        Some(f) => f(&mut q),
        None => {
            let (pt, et) = (p(&mut q), e(&mut q));
            let (a, b) = (q.agg("Exists", pt), q.agg("Exists", et));
            q.f2("Or", a, b)
        }
    };
    let doc = q.document(pop, &[("v", value)], json!({}));
    let dir = tempfile::tempdir().unwrap();
    let p_rows = if p_rows.is_empty() { "patient" } else { p_rows };
    let e_rows = if e_rows.is_empty() { "patient" } else { e_rows };
    write_tables(dir.path(), &[("p", COLS, p_rows), ("e", COLS, e_rows)]);
    let results = run_model(&doc, Tables::Data(dir.path())).unwrap_or_else(|err| panic!("{err}"));
    let got = rows_of(&results.dataset.batches);
    let want: Vec<Vec<String>> = expected
        .trim()
        .lines()
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(got.len(), want.len(), "rows: got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g[0], w[0], "patient order: got {got:?}, want {want:?}");
        let same = g[1] == w[1]
            || matches!((g[1].parse::<f64>(), w[1].parse::<f64>()), (Ok(a), Ok(b)) if (a - b).abs() <= 1e-9 * b.abs().max(1.0));
        assert!(same, "patient {}: got {:?}, want {:?} (all: {got:?})", g[0], g[1], w[1]);
    }
}

fn check(p_rows: &str, e_rows: &str, build: impl FnOnce(&mut Q) -> usize, expected: &str) {
    check_with(p_rows, e_rows, build, None, expected)
}

// ---- 1 Filtering an event frame ----

const E_I1_B1: &str = "patient|i1|b1\n1|101|T\n1|102|T\n1|103|\n2|201|T\n2|202|\n2|203|F\n3|301|\n3|302|F";
const E_I1_I2: &str = "patient|i1|i2\n1|101|111\n1|102|112\n1|103|113\n2|201|211\n2|202|212\n2|203|213\n3|301|";
const E_SMALL: &str = "patient|i1\n1|101\n1|102\n2|201";

#[test]
fn s1_1_1_where_with_column() {
    check("", E_I1_B1, |q| {
        let t = e(q);
        let b1 = q.col(t, "b1");
        let f = q.filter(t, b1);
        let i1 = q.col(f, "i1");
        q.agg("Sum", i1)
    }, "1|203\n2|201\n3|");
}

#[test]
fn s1_1_2_where_with_expr() {
    check("", E_I1_I2, |q| {
        let t = e(q);
        let (i1, i2) = (q.col(t, "i1"), q.col(t, "i2"));
        let sum = q.f2("Add", i1, i2);
        let c = q.int(413);
        let cond = q.f2("LT", sum, c);
        let f = q.filter(t, cond);
        let fi1 = q.col(f, "i1");
        q.agg("Sum", fi1)
    }, "1|306\n2|201\n3|");
}

#[test]
fn s1_1_3_where_with_constant_true() {
    check("", E_SMALL, |q| {
        let t = e(q);
        let c = q.boolean(true);
        let f = q.filter(t, c);
        q.agg("Count", f)
    }, "1|2\n2|1");
}

#[test]
fn s1_1_4_where_with_constant_false() {
    check("", E_SMALL, |q| {
        let t = e(q);
        let c = q.boolean(false);
        let f = q.filter(t, c);
        q.agg("Count", f)
    }, "1|0\n2|0");
}

#[test]
fn s1_1_5_chain_multiple_wheres() {
    check("", "patient|i1|b1\n1|1|T\n1|2|T\n1|3|F", |q| {
        let t = e(q);
        let i1 = q.col(t, "i1");
        let two = q.int(2);
        let c1 = q.f2("GE", i1, two);
        let f1 = q.filter(t, c1);
        let b1 = q.col(t, "b1");
        let f2 = q.filter(f1, b1);
        let v = q.col(f2, "i1");
        q.agg("Sum", v)
    }, "1|2");
}

#[test]
fn s1_2_1_except_where_with_column() {
    check("", "patient|i1|b1\n1|101|T\n1|102|T\n1|103|\n2|201|T\n2|202|\n2|203|F\n3|301|T\n3|302|T", |q| {
        let t = e(q);
        let b1 = q.col(t, "b1");
        let f = q.except_where(t, b1);
        let i1 = q.col(f, "i1");
        q.agg("Sum", i1)
    }, "1|103\n2|405\n3|");
}

#[test]
fn s1_2_2_except_where_with_expr() {
    check("", E_I1_I2, |q| {
        let t = e(q);
        let (i1, i2) = (q.col(t, "i1"), q.col(t, "i2"));
        let sum = q.f2("Add", i1, i2);
        let c = q.int(413);
        let cond = q.f2("LT", sum, c);
        let f = q.except_where(t, cond);
        let fi1 = q.col(f, "i1");
        q.agg("Sum", fi1)
    }, "1|\n2|405\n3|301");
}

#[test]
fn s1_2_3_except_where_with_constant_true() {
    check("", E_SMALL, |q| {
        let t = e(q);
        let c = q.boolean(true);
        let f = q.except_where(t, c);
        q.agg("Count", f)
    }, "1|0\n2|0");
}

#[test]
fn s1_2_4_except_where_with_constant_false() {
    check("", E_SMALL, |q| {
        let t = e(q);
        let c = q.boolean(false);
        let f = q.except_where(t, c);
        q.agg("Count", f)
    }, "1|2\n2|1");
}

// ---- 2 Picking one row for each patient ----

const E_SORT: &str = "patient|i1\n1|101\n1|102\n1|103\n2|203\n2|202\n2|201";
const E_SORT2: &str = "patient|i1|i2\n1|101|3\n1|102|2\n1|102|1\n2|203|1\n2|202|2\n2|202|3";
const E_SORT_NULLS: &str = "patient|i1\n1|\n1|102\n1|103\n2|203\n2|202\n2|";
const E_SORT_WHERE: &str = "patient|i1|i2\n1|101|1\n1|102|2\n1|103|2\n2|203|1\n2|202|2\n2|201|2";

fn pick(q: &mut Q, keys: &[&str], first: bool, out: &str) -> usize {
    let t = e(q);
    let ks: Vec<usize> = keys.iter().map(|k| q.col(t, k)).collect();
    let s = q.sort(t, &ks);
    let r = if first { q.first(s) } else { q.last(s) };
    q.col(r, out)
}

#[test]
fn s2_1_1_sort_by_column_pick_first() {
    check("", E_SORT, |q| pick(q, &["i1"], true, "i1"), "1|101\n2|201");
}

#[test]
fn s2_1_2_sort_by_column_pick_last() {
    check("", E_SORT, |q| pick(q, &["i1"], false, "i1"), "1|103\n2|203");
}

#[test]
fn s2_2_1_sort_by_multiple_columns_pick_first() {
    check("", E_SORT2, |q| pick(q, &["i1", "i2"], true, "i2"), "1|3\n2|2");
}

#[test]
fn s2_2_2_sort_by_multiple_columns_pick_last() {
    check("", E_SORT2, |q| pick(q, &["i1", "i2"], false, "i2"), "1|2\n2|1");
}

#[test]
fn s2_2_multiple_keys_as_nested_sorts() {
    // sort_by(i1, i2) written as two Sort nodes: the outer one is most significant.
    check("", E_SORT2, |q| {
        let t = e(q);
        let (i1, i2) = (q.col(t, "i1"), q.col(t, "i2"));
        let inner = q.sort(t, &[i2]);
        let outer = q.sort(inner, &[i1]);
        let r = q.first(outer);
        q.col(r, "i2")
    }, "1|3\n2|2");
}

#[test]
fn s2_3_1_sort_by_column_with_nulls_pick_first() {
    check("", E_SORT_NULLS, |q| pick(q, &["i1"], true, "i1"), "1|\n2|");
}

#[test]
fn s2_3_2_sort_by_column_with_nulls_pick_last() {
    check("", E_SORT_NULLS, |q| pick(q, &["i1"], false, "i1"), "1|103\n2|203");
}

#[test]
fn s2_4_1_sort_by_before_where() {
    check("", E_SORT_WHERE, |q| {
        let t = e(q);
        let i1 = q.col(t, "i1");
        let s = q.sort(t, &[i1]);
        let c = q.int(102);
        let cond = q.f2("GT", i1, c);
        let f = q.filter(s, cond);
        let r = q.first(f);
        q.col(r, "i1")
    }, "1|103\n2|201");
}

#[test]
fn s2_4_2_sort_by_interleaved_with_where() {
    check("", E_SORT_WHERE, |q| {
        let t = e(q);
        let (i1, i2) = (q.col(t, "i1"), q.col(t, "i2"));
        let s = q.sort(t, &[i1]);
        let one = q.int(1);
        let cond = q.f2("GT", i2, one);
        let f = q.filter(s, cond);
        let s2 = q.sort(f, &[i2]);
        let r = q.first(s2);
        q.col(r, "i1")
    }, "1|102\n2|201");
}

#[test]
fn sort_extends_to_all_columns_when_underspecified() {
    check("", "patient|i1|i2|i3\n1|100|2|101\n1|100|1|102\n1|100|1|103\n2|100|0|500\n2|100|1|1\n2|101|0|1", |q| {
        pick(q, &["i1", "i2"], true, "i3")
    }, "1|102\n2|500");
}

#[test]
fn sort_by_constant_picks_consistently() {
    check("", "patient|i1|i2\n1|1|5\n1|2|4", |q| {
        let t = e(q);
        let k = q.int(1);
        let s = q.sort(t, &[k]);
        let r = q.last(s);
        let a = q.col(r, "i1");
        let b = q.col(r, "i2");
        q.f2("Add", a, b)
    }, "1|6");
}

// ---- 3 Aggregating event and patient frames ----

const P_B1: &str = "patient|b1\n1|\n2|\n3|";
const E_B1: &str = "patient|b1\n1|\n1|\n2|";

#[test]
fn s3_1_1_exists_for_patient_on_event_frame() {
    check(P_B1, E_B1, |q| { let t = e(q); q.agg("Exists", t) }, "1|T\n2|T\n3|F");
}

#[test]
fn s3_1_2_exists_for_patient_on_patient_frame() {
    check(P_B1, E_B1, |q| { let t = p(q); q.agg("Exists", t) }, "1|T\n2|T\n3|T");
}

#[test]
fn s3_2_1_count_for_patient_on_event_frame() {
    check(P_B1, E_B1, |q| { let t = e(q); q.agg("Count", t) }, "1|2\n2|1\n3|0");
}

#[test]
fn s3_2_2_count_for_patient_on_patient_frame() {
    check(P_B1, E_B1, |q| { let t = p(q); q.agg("Count", t) }, "1|1\n2|1\n3|1");
}

// ---- 4 Aggregating event series ----

const E_MINMAX: &str = "patient|i1\n1|101\n1|102\n1|103\n2|201\n2|\n3|";

fn agg_e(q: &mut Q, op: &str, column: &str) -> usize {
    let t = e(q);
    let c = q.col(t, column);
    q.agg(op, c)
}

#[test]
fn s4_1_1_minimum_for_patient() {
    check("", E_MINMAX, |q| agg_e(q, "Min", "i1"), "1|101\n2|201\n3|");
}

#[test]
fn s4_1_2_maximum_for_patient() {
    check("", E_MINMAX, |q| agg_e(q, "Max", "i1"), "1|103\n2|201\n3|");
}

#[test]
fn s4_2_1_sum_for_patient() {
    check("", "patient|i1\n1|101\n1|102\n1|103\n2|201\n2|\n2|203\n3|", |q| agg_e(q, "Sum", "i1"), "1|306\n2|404\n3|");
}

const E_MEAN: &str = "patient|i1|f1\n1|1|1.1\n1|2|2.1\n1|3|3.1\n2||\n2|2|2.1\n2|3|3.1\n3||";

#[test]
fn s4_3_1_mean_for_patient_integer() {
    check("", E_MEAN, |q| agg_e(q, "Mean", "i1"), "1|2.0\n2|2.5\n3|");
}

#[test]
fn s4_3_2_mean_for_patient_float() {
    check("", E_MEAN, |q| agg_e(q, "Mean", "f1"), "1|2.1\n2|2.6\n3|");
}

const E_DISTINCT: &str = "patient|i1|f1|s1|d1
1|101|1.1|a|2020-01-01
1|102|1.2|b|2020-01-02
1|103|1.5|c|2020-01-03
2|201|2.1|a|2020-02-01
2|201|2.1|a|2020-02-01
2|203|2.5|b|2020-02-02
3|301|3.1|a|2020-03-01
3|301|3.1|a|2020-03-01
3||||
3||||
4||||";

#[test]
fn s4_4_1_count_distinct_for_patient_integer() {
    check("", E_DISTINCT, |q| agg_e(q, "CountDistinct", "i1"), "1|3\n2|2\n3|1\n4|0");
}

#[test]
fn s4_4_2_count_distinct_for_patient_float() {
    check("", E_DISTINCT, |q| agg_e(q, "CountDistinct", "f1"), "1|3\n2|2\n3|1\n4|0");
}

#[test]
fn s4_4_3_count_distinct_for_patient_string() {
    check("", E_DISTINCT, |q| agg_e(q, "CountDistinct", "s1"), "1|3\n2|2\n3|1\n4|0");
}

#[test]
fn s4_4_4_count_distinct_for_patient_date() {
    check("", E_DISTINCT, |q| agg_e(q, "CountDistinct", "d1"), "1|3\n2|2\n3|1\n4|0");
}

// ---- 5 Combining series ----

#[test]
fn s5_1_1_patient_series_and_patient_series() {
    check("patient|i1|i2\n1|101|102\n2|201|202", "", |q| {
        let t = p(q);
        let (a, b) = (q.col(t, "i1"), q.col(t, "i2"));
        q.f2("Add", a, b)
    }, "1|203\n2|403");
}

#[test]
fn s5_2_1_patient_series_and_value() {
    check("patient|i1\n1|101\n2|201", "", |q| {
        let t = p(q);
        let a = q.col(t, "i1");
        let one = q.int(1);
        q.f2("Add", a, one)
    }, "1|102\n2|202");
}

#[test]
fn s5_2_2_value_and_patient_series() {
    check("patient|i1\n1|101\n2|201", "", |q| {
        let t = p(q);
        let a = q.col(t, "i1");
        let one = q.int(1);
        q.f2("Add", one, a)
    }, "1|102\n2|202");
}

const E_COMBINE: &str = "patient|i1|i2|s1\n1|101|111|b\n1|102|112|a\n2|201|211|b\n2|202|212|a";

#[test]
fn s5_3_1_event_series_and_event_series() {
    check("", E_COMBINE, |q| {
        let t = e(q);
        let (a, b) = (q.col(t, "i1"), q.col(t, "i2"));
        let s = q.f2("Add", a, b);
        q.agg("Sum", s)
    }, "1|426\n2|826");
}

#[test]
fn s5_3_2_event_series_and_sorted_event_series() {
    check("", E_COMBINE, |q| {
        let t = e(q);
        let a = q.col(t, "i1");
        let s1 = q.col(t, "s1");
        let sorted = q.sort(t, &[s1]);
        let b = q.col(sorted, "i2");
        let s = q.f2("Add", a, b);
        q.agg("Min", s)
    }, "1|212\n2|412");
}

const P_I1: &str = "patient|i1\n1|101\n2|201";
const E_I1: &str = "patient|i1\n1|111\n1|112\n2|211\n2|212";

#[test]
fn s5_4_1_event_series_and_patient_series() {
    check(P_I1, E_I1, |q| {
        let (et, pt) = (e(q), p(q));
        let (a, b) = (q.col(et, "i1"), q.col(pt, "i1"));
        let s = q.f2("Add", a, b);
        q.agg("Sum", s)
    }, "1|425\n2|825");
}

#[test]
fn s5_4_2_patient_series_and_event_series() {
    check(P_I1, E_I1, |q| {
        let (et, pt) = (e(q), p(q));
        let (a, b) = (q.col(pt, "i1"), q.col(et, "i1"));
        let s = q.f2("Add", a, b);
        q.agg("Sum", s)
    }, "1|425\n2|825");
}

const E_VALUE: &str = "patient|i1\n1|101\n1|102\n2|201\n2|202";

#[test]
fn s5_5_1_event_series_and_value() {
    check("", E_VALUE, |q| {
        let t = e(q);
        let a = q.col(t, "i1");
        let one = q.int(1);
        let s = q.f2("Add", a, one);
        q.agg("Sum", s)
    }, "1|205\n2|405");
}

#[test]
fn s5_5_2_value_and_event_series() {
    check("", E_VALUE, |q| {
        let t = e(q);
        let a = q.col(t, "i1");
        let one = q.int(1);
        let s = q.f2("Add", one, a);
        q.agg("Sum", s)
    }, "1|205\n2|405");
}

// ---- 6 Operations on all series ----

const P_EQ: &str = "patient|i1|i2\n1|101|101\n2|201|202\n3|301|\n4||";

fn p2(q: &mut Q, op: &str, a: &str, b: &str) -> usize {
    let t = p(q);
    let (x, y) = (q.col(t, a), q.col(t, b));
    q.f2(op, x, y)
}

#[test]
fn s6_1_1_equals() {
    check(P_EQ, "", |q| p2(q, "EQ", "i1", "i2"), "1|T\n2|F\n3|\n4|");
}

#[test]
fn s6_1_2_not_equals() {
    check(P_EQ, "", |q| p2(q, "NE", "i1", "i2"), "1|F\n2|T\n3|\n4|");
}

#[test]
fn s6_1_3_is_null() {
    check(P_EQ, "", |q| { let t = p(q); let c = q.col(t, "i1"); q.f1("IsNull", c) }, "1|F\n2|F\n3|F\n4|T");
}

#[test]
fn s6_1_4_is_not_null() {
    check(P_EQ, "", |q| {
        let t = p(q);
        let c = q.col(t, "i1");
        let n = q.f1("IsNull", c);
        q.f1("Not", n)
    }, "1|T\n2|T\n3|T\n4|F");
}

const P_IN: &str = "patient|i1\n1|101\n2|201\n3|301\n4|";

fn is_in(q: &mut Q, values: serde_json::Value, negate: bool) -> usize {
    let t = p(q);
    let c = q.col(t, "i1");
    let s = q.set("int", values);
    let r = q.f2("In", c, s);
    if negate { q.f1("Not", r) } else { r }
}

#[test]
fn s6_2_1_is_in() {
    check(P_IN, "", |q| is_in(q, json!([101, 301]), false), "1|T\n2|F\n3|T\n4|");
}

#[test]
fn s6_2_2_is_not_in() {
    check(P_IN, "", |q| is_in(q, json!([101, 301]), true), "1|F\n2|T\n3|F\n4|");
}

#[test]
fn s6_2_3_is_in_empty_list() {
    check(P_IN, "", |q| is_in(q, json!([]), false), "1|F\n2|F\n3|F\n4|F");
}

#[test]
fn s6_2_4_is_not_in_empty_list() {
    check(P_IN, "", |q| is_in(q, json!([]), true), "1|T\n2|T\n3|T\n4|T");
}

const P_IN_SERIES: &str = "patient|i1\n1|101\n2|201\n3|301\n4|\n5|501\n6|";
const E_IN_SERIES: &str = "patient|i1\n1|101\n2|201\n2|203\n2|301\n3|333\n3|334\n4|\n4|401\n5|\n5|101";

fn in_series(q: &mut Q, negate: bool) -> usize {
    let (pt, et) = (p(q), e(q));
    let (a, b) = (q.col(pt, "i1"), q.col(et, "i1"));
    let set = q.agg("CombineAsSet", b);
    let r = q.f2("In", a, set);
    if negate { q.f1("Not", r) } else { r }
}

#[test]
fn s6_3_1_is_in_series() {
    check(P_IN_SERIES, E_IN_SERIES, |q| in_series(q, false), "1|T\n2|T\n3|F\n4|\n5|F\n6|F");
}

#[test]
fn s6_3_2_is_not_in_series() {
    check(P_IN_SERIES, E_IN_SERIES, |q| in_series(q, true), "1|F\n2|F\n3|T\n4|\n5|T\n6|T");
}

#[test]
fn s6_4_1_map_values() {
    // map_values lowers to a case over equality tests.
    check(P_IN, "", |q| {
        let t = p(q);
        let c = q.col(t, "i1");
        let mut cases = Vec::new();
        for (k, v) in [(101, "a"), (201, "b"), (301, "a")] {
            let key = q.int(k);
            let cond = q.f2("EQ", c, key);
            let val = q.str(v);
            cases.push((cond, Some(val)));
        }
        let default = q.str("c");
        q.case(&cases, Some(default))
    }, "1|a\n2|b\n3|a\n4|c");
}

#[test]
fn s6_5_1_when_null_then_integer_column() {
    check(P_IN, "", |q| {
        let t = p(q);
        let c = q.col(t, "i1");
        let null = q.f1("IsNull", c);
        let zero = q.int(0);
        q.case(&[(null, Some(zero))], Some(c))
    }, "1|101\n2|201\n3|301\n4|0");
}

#[test]
fn s6_5_2_when_null_then_boolean_column() {
    check(P_IN, "", |q| {
        let r = is_in(q, json!([101, 201]), false);
        let null = q.f1("IsNull", r);
        let f = q.boolean(false);
        q.case(&[(null, Some(f))], Some(r))
    }, "1|T\n2|T\n3|F\n4|F");
}

const P_MM: &str = "patient|i1|i2|d1|d2|s1|s2|f1|f2
1|101|112|2001-01-01|2012-12-12|a|d|1.01|1.12
2||211||2021-01-01||f||2.11
3||||||||";

fn of_p(q: &mut Q, op: &str, a: &str, b: &str, extra: Option<(&str, serde_json::Value)>) -> usize {
    let t = p(q);
    let mut args = vec![q.col(t, a), q.col(t, b)];
    if let Some((ty, v)) = extra {
        args.push(q.value(ty, v));
    }
    q.fnn(op, &args)
}

#[test]
fn s6_6_1_maximum_of_two_integer_patient_series() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "i1", "i2", None), "1|112\n2|211\n3|");
}
#[test]
fn s6_6_2_minimum_of_two_integer_patient_series() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "i1", "i2", None), "1|101\n2|211\n3|");
}
#[test]
fn s6_6_3_minimum_of_two_integer_patient_series_and_a_value() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "i1", "i2", Some(("int", json!(150)))), "1|101\n2|150\n3|150");
}
#[test]
fn s6_6_4_maximum_of_two_integer_patient_series_and_a_value() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "i1", "i2", Some(("int", json!(150)))), "1|150\n2|211\n3|150");
}
#[test]
fn s6_6_5_minimum_of_two_date_patient_series() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "d1", "d2", None), "1|2001-01-01\n2|2021-01-01\n3|");
}
#[test]
fn s6_6_6_maximum_of_two_date_patient_series() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "d1", "d2", None), "1|2012-12-12\n2|2021-01-01\n3|");
}
#[test]
fn s6_6_7_minimum_of_two_date_patient_series_and_a_date() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "d1", "d2", Some(("date", json!("2015-05-05")))), "1|2001-01-01\n2|2015-05-05\n3|2015-05-05");
}
#[test]
fn s6_6_8_maximum_of_two_date_patient_series_and_a_date() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "d1", "d2", Some(("date", json!("2015-05-05")))), "1|2015-05-05\n2|2021-01-01\n3|2015-05-05");
}
#[test]
fn s6_6_11_maximum_of_two_float_patient_series() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "f1", "f2", None), "1|1.12\n2|2.11\n3|");
}
#[test]
fn s6_6_12_minimum_of_two_float_patient_series() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "f1", "f2", None), "1|1.01\n2|2.11\n3|");
}
#[test]
fn s6_6_13_minimum_of_two_float_patient_series_and_a_value() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "f1", "f2", Some(("float", json!(1.5)))), "1|1.01\n2|1.5\n3|1.5");
}
#[test]
fn s6_6_14_maximum_of_two_float_patient_series_and_a_value() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "f1", "f2", Some(("float", json!(1.5)))), "1|1.5\n2|2.11\n3|1.5");
}
#[test]
fn s6_6_15_maximum_of_two_string_patient_series() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "s1", "s2", None), "1|d\n2|f\n3|");
}
#[test]
fn s6_6_16_minimum_of_two_string_patient_series() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "s1", "s2", None), "1|a\n2|f\n3|");
}
#[test]
fn s6_6_17_minimum_of_two_string_patient_series_and_a_value() {
    check(P_MM, "", |q| of_p(q, "MinimumOf", "s1", "s2", Some(("str", json!("e")))), "1|a\n2|e\n3|e");
}
#[test]
fn s6_6_18_maximum_of_two_string_patient_series_and_a_value() {
    check(P_MM, "", |q| of_p(q, "MaximumOf", "s1", "s2", Some(("str", json!("e")))), "1|e\n2|f\n3|e");
}
#[test]
fn s6_6_19_maximum_of_integer_values() {
    check(P_MM, "", |q| {
        let (a, b, c) = (q.int(1), q.int(2), q.int(3));
        q.fnn("MaximumOf", &[a, b, c])
    }, "1|3\n2|3\n3|3");
}

const E_MM: &str = "patient|i1|i2|d1|d2|s1|s2|f1|f2
1|101|111|2001-01-01|2002-02-02|a|b|1.01|1.11
1|102|112|2011-11-11|2012-12-12|c|d|1.02|1.12
2||211||2021-01-01||f||2.11
3||||||||";

fn of_e(q: &mut Q, op: &str, a: &str, b: &str, extra: Option<(&str, serde_json::Value)>) -> usize {
    let t = e(q);
    let mut args = vec![q.col(t, a), q.col(t, b)];
    if let Some((ty, v)) = extra {
        args.push(q.value(ty, v));
    }
    let s = q.fnn(op, &args);
    q.agg(if op == "MaximumOf" { "Max" } else { "Min" }, s)
}

#[test]
fn s6_7_1_maximum_of_two_integer_event_series() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "i1", "i2", None), "1|112\n2|211\n3|");
}
#[test]
fn s6_7_2_minimum_of_two_integer_event_series() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "i1", "i2", None), "1|101\n2|211\n3|");
}
#[test]
fn s6_7_3_minimum_of_two_integer_event_series_and_a_value() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "i1", "i2", Some(("int", json!(150)))), "1|101\n2|150\n3|150");
}
#[test]
fn s6_7_4_maximum_of_two_integer_event_series_and_a_value() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "i1", "i2", Some(("int", json!(150)))), "1|150\n2|211\n3|150");
}
#[test]
fn s6_7_5_minimum_of_two_date_event_series() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "d1", "d2", None), "1|2001-01-01\n2|2021-01-01\n3|");
}
#[test]
fn s6_7_6_maximum_of_two_date_event_series() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "d1", "d2", None), "1|2012-12-12\n2|2021-01-01\n3|");
}
#[test]
fn s6_7_7_minimum_of_two_date_event_series_and_a_date() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "d1", "d2", Some(("date", json!("2015-05-05")))), "1|2001-01-01\n2|2015-05-05\n3|2015-05-05");
}
#[test]
fn s6_7_8_maximum_of_two_date_event_series_and_a_date() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "d1", "d2", Some(("date", json!("2015-05-05")))), "1|2015-05-05\n2|2021-01-01\n3|2015-05-05");
}
#[test]
fn s6_7_11_maximum_of_two_float_event_series() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "f1", "f2", None), "1|1.12\n2|2.11\n3|");
}
#[test]
fn s6_7_12_minimum_of_two_float_event_series() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "f1", "f2", None), "1|1.01\n2|2.11\n3|");
}
#[test]
fn s6_7_13_minimum_of_two_float_event_series_and_a_value() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "f1", "f2", Some(("float", json!(1.5)))), "1|1.01\n2|1.5\n3|1.5");
}
#[test]
fn s6_7_14_maximum_of_two_float_event_series_and_a_value() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "f1", "f2", Some(("float", json!(1.5)))), "1|1.5\n2|2.11\n3|1.5");
}
#[test]
fn s6_7_15_minimum_of_two_float_event_series_and_a_whole_value() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "f1", "f2", Some(("float", json!(2.0)))), "1|1.01\n2|2\n3|2");
}
#[test]
fn s6_7_16_maximum_of_two_float_event_series_and_a_whole_value() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "f1", "f2", Some(("float", json!(2.0)))), "1|2\n2|2.11\n3|2");
}
#[test]
fn s6_7_17_maximum_of_two_string_event_series() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "s1", "s2", None), "1|d\n2|f\n3|");
}
#[test]
fn s6_7_18_minimum_of_two_string_event_series() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "s1", "s2", None), "1|a\n2|f\n3|");
}
#[test]
fn s6_7_19_minimum_of_two_string_event_series_and_a_value() {
    check("", E_MM, |q| of_e(q, "MinimumOf", "s1", "s2", Some(("str", json!("e")))), "1|a\n2|e\n3|e");
}
#[test]
fn s6_7_20_maximum_of_two_string_event_series_and_a_value() {
    check("", E_MM, |q| of_e(q, "MaximumOf", "s1", "s2", Some(("str", json!("e")))), "1|e\n2|f\n3|e");
}
#[test]
fn s6_7_21_maximum_of_nested_aggregate() {
    check("", E_MM, |q| {
        let t = e(q);
        let (s1, s2) = (q.col(t, "s1"), q.col(t, "s2"));
        let (a, b) = (q.agg("CountDistinct", s1), q.agg("CountDistinct", s2));
        q.fnn("MaximumOf", &[a, b])
    }, "1|2\n2|1\n3|0");
}
#[test]
fn s6_7_22_maximum_of_nested_aggregate_and_column_and_a_value() {
    check("", E_MM, |q| {
        let t = e(q);
        let (s1, i1) = (q.col(t, "s1"), q.col(t, "i1"));
        let a = q.agg("CountDistinct", s1);
        let one = q.int(1);
        let m = q.fnn("MaximumOf", &[a, i1, one]);
        q.agg("Max", m)
    }, "1|102\n2|1\n3|1");
}

// ---- 7 Operations on boolean series ----

#[test]
fn s7_1_1_not() {
    check("patient|b1\n1|T\n2|\n3|F", "", |q| { let t = p(q); let b = q.col(t, "b1"); q.f1("Not", b) }, "1|F\n2|\n3|T");
}

const P_LOGIC: &str = "patient|b1|b2\n1|T|T\n2|T|\n3|T|F\n4||T\n5||\n6||F\n7|F|T\n8|F|\n9|F|F";

#[test]
fn s7_1_2_and() {
    check(P_LOGIC, "", |q| p2(q, "And", "b1", "b2"), "1|T\n2|\n3|F\n4|\n5|\n6|F\n7|F\n8|F\n9|F");
}

#[test]
fn s7_1_3_or() {
    check(P_LOGIC, "", |q| p2(q, "Or", "b1", "b2"), "1|T\n2|T\n3|T\n4|T\n5|\n6|\n7|T\n8|\n9|F");
}

#[test]
fn s7_2_1_bool_as_int() {
    check("patient|b1\n1|T\n2|\n3|F", "", |q| { let t = p(q); let b = q.col(t, "b1"); q.f1("CastToInt", b) }, "1|1\n2|\n3|0");
}

// ---- 8 Operations on integer series ----

const P_ARITH: &str = "patient|i1|i2\n1|101|111\n2|201|";

#[test]
fn s8_1_1_negate() {
    check(P_ARITH, "", |q| { let t = p(q); let c = q.col(t, "i2"); q.f1("Negate", c) }, "1|-111\n2|");
}
#[test]
fn s8_1_2_add() {
    check(P_ARITH, "", |q| p2(q, "Add", "i1", "i2"), "1|212\n2|");
}
#[test]
fn s8_1_3_subtract() {
    check(P_ARITH, "", |q| p2(q, "Subtract", "i1", "i2"), "1|-10\n2|");
}
#[test]
fn s8_1_4_multiply() {
    check(P_ARITH, "", |q| p2(q, "Multiply", "i1", "i2"), "1|11211\n2|");
}
#[test]
fn s8_1_5_multiply_with_constant() {
    check(P_ARITH, "", |q| { let t = p(q); let c = q.col(t, "i2"); let ten = q.int(10); q.f2("Multiply", ten, c) }, "1|1110\n2|");
}
#[test]
fn absolute_of_int_and_float() {
    check("patient|i1|f1\n1|-3|-2.5\n2|4|1.5\n3||", "", |q| {
        let t = p(q);
        let (i, f) = (q.col(t, "i1"), q.col(t, "f1"));
        let (ai, af) = (q.f1("Absolute", i), q.f1("Absolute", f));
        let ai = q.f1("CastToFloat", ai);
        q.f2("Add", ai, af)
    }, "1|5.5\n2|5.5\n3|");
}

const P_CMP: &str = "patient|i1|i2\n1|101|201\n2|201|201\n3|301|201\n4||201";

#[test]
fn s8_2_1_less_than() {
    check(P_CMP, "", |q| p2(q, "LT", "i1", "i2"), "1|T\n2|F\n3|F\n4|");
}
#[test]
fn s8_2_2_less_than_or_equal_to() {
    check(P_CMP, "", |q| p2(q, "LE", "i1", "i2"), "1|T\n2|T\n3|F\n4|");
}
#[test]
fn s8_2_3_greater_than() {
    check(P_CMP, "", |q| p2(q, "GT", "i1", "i2"), "1|F\n2|F\n3|T\n4|");
}
#[test]
fn s8_2_4_greater_than_or_equal_to() {
    check(P_CMP, "", |q| p2(q, "GE", "i1", "i2"), "1|F\n2|T\n3|T\n4|");
}

const P_DIV: &str = "patient|i1|i2\n1|101|111\n2|-1|2\n3|-4|3\n4||201\n5|5|0";

#[test]
fn truedivide() {
    check(P_DIV, "", |q| p2(q, "TrueDivide", "i1", "i2"), &format!("1|{}\n2|-0.5\n3|{}\n4|\n5|", 101.0 / 111.0, -4.0 / 3.0));
}
#[test]
fn truedivide_by_constant() {
    check(P_DIV, "", |q| { let t = p(q); let a = q.col(t, "i1"); let c = q.int(10); q.f2("TrueDivide", a, c) }, "1|10.1\n2|-0.1\n3|-0.4\n4|\n5|0.5");
}
#[test]
fn truedivide_constant_by_series() {
    check(P_DIV, "", |q| { let t = p(q); let a = q.col(t, "i1"); let c = q.int(10); q.f2("TrueDivide", c, a) }, &format!("1|{}\n2|-10.0\n3|-2.5\n4|\n5|2.0", 10.0 / 101.0));
}
#[test]
fn floordivide() {
    check(P_DIV, "", |q| p2(q, "FloorDivide", "i1", "i2"), "1|0\n2|-1\n3|-2\n4|\n5|");
}
#[test]
fn floordivide_by_constant() {
    check(P_DIV, "", |q| { let t = p(q); let a = q.col(t, "i1"); let c = q.int(10); q.f2("FloorDivide", a, c) }, "1|10\n2|-1\n3|-1\n4|\n5|0");
}
#[test]
fn floordivide_floats() {
    check("patient|f1|f2\n1|7.5|2.0\n2|-7.5|2.0\n3|1.0|0.0", "", |q| p2(q, "FloorDivide", "f1", "f2"), "1|3\n2|-4\n3|");
}

const P_POW: &str = "patient|f1|f2\n1|2|111\n2|120|-2\n3|-101|10\n4|-10|-1\n5|-10|\n6||-10\n7|0|-20\n8|-20|0";

#[test]
fn power() {
    let want = format!(
        "1|{}\n2|{}\n3|{}\n4|-0.1\n5|\n6|\n7|\n8|1.0",
        2f64.powi(111),
        120f64.powi(-2),
        (-101f64).powi(10)
    );
    check(P_POW, "", |q| p2(q, "Power", "f1", "f2"), &want);
}
#[test]
fn power_of_constant() {
    check(P_POW, "", |q| { let t = p(q); let a = q.col(t, "f1"); let ten = q.float(10.0); q.f2("Power", ten, a) }, &format!(
        "1|100.0\n2|{}\n3|{}\n4|{}\n5|{}\n6|\n7|1.0\n8|{}", 10f64.powi(120), 10f64.powi(-101), 10f64.powi(-10), 10f64.powi(-10), 10f64.powi(-20)
    ));
}

const P_CONV: &str = "patient|i1|f1\n1|1|1.0\n2|42|32.3\n3|3|5.8\n4|-4|-6.7\n5||-6.2\n6||";

#[test]
fn float_as_int_rounds_towards_zero() {
    check(P_CONV, "", |q| { let t = p(q); let f = q.col(t, "f1"); q.f1("CastToInt", f) }, "1|1\n2|32\n3|5\n4|-6\n5|-6\n6|");
}
#[test]
fn add_float_to_int_as_float() {
    check(P_CONV, "", |q| {
        let t = p(q);
        let (f, i) = (q.col(t, "f1"), q.col(t, "i1"));
        let fi = q.f1("CastToFloat", i);
        q.f2("Add", f, fi)
    }, "1|2.0\n2|74.3\n3|8.8\n4|-10.7\n5|\n6|");
}

// ---- 9 Codes ----

const P_CODES: &str = "patient|c1\n1|123000\n2|456000\n3|789000\n4|";

fn code_in(q: &mut Q, negate: bool) -> usize {
    let t = p(q);
    let c = q.col(t, "c1");
    let s = q.set("SNOMEDCTCode", json!(["123000", "789000"]));
    let r = q.f2("In", c, s);
    if negate { q.f1("Not", r) } else { r }
}

#[test]
fn s9_1_1_is_in() {
    check(P_CODES, "", |q| code_in(q, false), "1|T\n2|F\n3|T\n4|");
}
#[test]
fn s9_1_2_is_not_in() {
    check(P_CODES, "", |q| code_in(q, true), "1|F\n2|T\n3|F\n4|");
}
#[test]
fn s9_1_3_is_in_codelist() {
    check(P_CODES, "", |q| code_in(q, false), "1|T\n2|F\n3|T\n4|");
}
#[test]
fn s9_2_1_map_codes_to_categories() {
    check(P_CODES, "", |q| {
        let t = p(q);
        let c = q.col(t, "c1");
        let (s1, s2) = (q.set("SNOMEDCTCode", json!(["123000"])), q.set("SNOMEDCTCode", json!(["789000"])));
        let (in1, in2) = (q.f2("In", c, s1), q.f2("In", c, s2));
        let (v1, v2) = (q.str("cat1"), q.str("cat2"));
        q.case(&[(in1, Some(v1)), (in2, Some(v2))], None)
    }, "1|cat1\n2|\n3|cat2\n4|");
}

// ---- 10 Multi-code strings ----

/// The multi-code strings contain `|`, so these rows separate cells with `;`.
const P_MULTI: &str = "patient;m1
1;||E119 ,J849 ,M069 ||I801 ,I802
2;||T202 ,A429 ||A429 ,A420, J170
3;||M139 ,E220 ,M145, M060
4;";

fn multi(q: &mut Q, code: &str) -> usize {
    let t = p(q);
    let m = q.col(t, "m1");
    let c = q.value("ICD10Code", json!(code));
    q.f2("StringContains", m, c)
}

#[test]
fn s10_1_1_contains_code_prefix() {
    check(P_MULTI, "", |q| multi(q, "M06"), "1|T\n2|F\n3|T\n4|");
}
#[test]
fn s10_1_2_contains_code() {
    check(P_MULTI, "", |q| multi(q, "M069"), "1|T\n2|F\n3|F\n4|");
}
#[test]
fn s10_1_3_contains_any_of_codelist() {
    check(P_MULTI, "", |q| {
        let a = multi(q, "M069");
        let b = multi(q, "A429");
        q.f2("Or", a, b)
    }, "1|T\n2|T\n3|F\n4|");
}

// ---- 11 Case expressions ----

const P_CASE: &str = "patient|i1\n1|6\n2|7\n3|8\n4|9\n5|";

fn lt8_gt8(q: &mut Q) -> (usize, usize, usize) {
    let t = p(q);
    let i1 = q.col(t, "i1");
    let eight = q.int(8);
    (i1, q.f2("LT", i1, eight), q.f2("GT", i1, eight))
}

#[test]
fn s11_1_1_case_with_expression() {
    check(P_CASE, "", |q| {
        let (i1, lt, gt) = lt8_gt8(q);
        let h = q.int(100);
        q.case(&[(lt, Some(i1)), (gt, Some(h))], None)
    }, "1|6\n2|7\n3|\n4|100\n5|");
}
#[test]
fn s11_1_2_case_with_default() {
    check(P_CASE, "", |q| {
        let (i1, lt, gt) = lt8_gt8(q);
        let (h, z) = (q.int(100), q.int(0));
        q.case(&[(lt, Some(i1)), (gt, Some(h))], Some(z))
    }, "1|6\n2|7\n3|0\n4|100\n5|0");
}
#[test]
fn s11_1_3_case_with_boolean_column() {
    check("patient|i1|b1\n1|6|T\n2|7|F\n3|9|F\n4||", "", |q| {
        let t = p(q);
        let (i1, b1) = (q.col(t, "i1"), q.col(t, "b1"));
        let eight = q.int(8);
        let gt = q.f2("GT", i1, eight);
        let h = q.int(100);
        q.case(&[(b1, Some(i1)), (gt, Some(h))], None)
    }, "1|6\n2|\n3|100\n4|");
}
#[test]
fn s11_1_4_case_with_explicit_null() {
    check(P_CASE, "", |q| {
        let (_, lt, gt) = lt8_gt8(q);
        let (h, d) = (q.int(100), q.int(200));
        q.case(&[(lt, None), (gt, Some(h))], Some(d))
    }, "1|\n2|\n3|200\n4|100\n5|200");
}
#[test]
fn s11_2_1_when_with_expression() {
    check("patient|i1\n1|6\n2|7\n3|8\n4|", "", |q| {
        let (i1, lt, _) = lt8_gt8(q);
        let h = q.int(100);
        q.case(&[(lt, Some(i1))], Some(h))
    }, "1|6\n2|7\n3|100\n4|100");
}
#[test]
fn s11_2_2_when_with_boolean_column() {
    check("patient|i1|b1\n1|6|T\n2|7|F\n3||", "", |q| {
        let t = p(q);
        let (i1, b1) = (q.col(t, "i1"), q.col(t, "b1"));
        let h = q.int(100);
        q.case(&[(b1, Some(i1))], Some(h))
    }, "1|6\n2|100\n3|100");
}

// ---- 12 Dates ----

const P_DATES: &str = "patient|d1|i1\n1|1990-01-02|100\n2|2000-03-04|200\n3||";

fn date_fn(q: &mut Q, op: &str) -> usize {
    let t = p(q);
    let d = q.col(t, "d1");
    q.f1(op, d)
}

#[test]
fn s12_1_1_get_year() {
    check(P_DATES, "", |q| date_fn(q, "YearFromDate"), "1|1990\n2|2000\n3|");
}
#[test]
fn s12_1_2_get_month() {
    check(P_DATES, "", |q| date_fn(q, "MonthFromDate"), "1|1\n2|3\n3|");
}
#[test]
fn s12_1_3_get_day() {
    check(P_DATES, "", |q| date_fn(q, "DayFromDate"), "1|2\n2|4\n3|");
}
// cohort-extractor's written dates (not part of ehrQL's spec): text cut to a format.
#[test]
fn cohort_format_date() {
    for (format, expected) in [("YYYY", "1|1990\n2|2000\n3|2020\n4|"), ("YYYY-MM", "1|1990-01\n2|2000-12\n3|2020-12\n4|"), ("YYYY-MM-DD", "1|1990-01-01\n2|2000-12-15\n3|2020-12-31\n4|")] {
        check("patient|d1\n1|1990-01-01\n2|2000-12-15\n3|2020-12-31\n4|", "", |q| {
            let t = p(q);
            let d = q.col(t, "d1");
            let f = q.str(format);
            q.f2("FormatDate", d, f)
        }, expected);
    }
}

#[test]
fn s12_1_4_to_first_of_year() {
    check("patient|d1\n1|1990-01-01\n2|2000-12-15\n3|2020-12-31\n4|", "", |q| date_fn(q, "ToFirstOfYear"), "1|1990-01-01\n2|2000-01-01\n3|2020-01-01\n4|");
}
#[test]
fn s12_1_5_to_first_of_month() {
    check("patient|d1\n1|1990-01-01\n2|1990-01-31\n3|", "", |q| date_fn(q, "ToFirstOfMonth"), "1|1990-01-01\n2|1990-01-01\n3|");
}

fn date_int(q: &mut Q, op: &str, negate: bool) -> usize {
    let t = p(q);
    let (d, i) = (q.col(t, "d1"), q.col(t, "i1"));
    let i = if negate { q.f1("Negate", i) } else { i };
    q.f2(op, d, i)
}

#[test]
fn s12_1_6_add_days() {
    check(P_DATES, "", |q| date_int(q, "DateAddDays", false), "1|1990-04-12\n2|2000-09-20\n3|");
}
#[test]
fn s12_1_7_subtract_days() {
    check(P_DATES, "", |q| date_int(q, "DateAddDays", true), "1|1989-09-24\n2|1999-08-17\n3|");
}
#[test]
fn s12_1_8_add_months() {
    check("patient|d1|i1\n1|2003-01-29|1\n2|2004-01-29|1\n3|2003-01-31|1\n4|2004-01-31|1\n5|2004-03-31|-1\n6|2000-10-31|11\n7|2000-10-31|-11", "",
        |q| date_int(q, "DateAddMonths", false),
        "1|2003-03-01\n2|2004-02-29\n3|2003-03-01\n4|2004-03-01\n5|2004-03-01\n6|2001-10-01\n7|1999-12-01");
}
#[test]
fn s12_1_9_add_years() {
    check("patient|d1|i1\n1|2000-06-15|5\n2|2000-06-15|-5\n3|2004-02-29|1\n4|2004-02-29|-1\n5|2004-02-29|4\n6|2004-02-29|-4\n7|2003-03-01|1", "",
        |q| date_int(q, "DateAddYears", false),
        "1|2005-06-15\n2|1995-06-15\n3|2005-03-01\n4|2003-03-01\n5|2008-02-29\n6|2000-02-29\n7|2004-03-01");
}
#[test]
fn s12_1_10_add_date_to_duration() {
    check(P_DATES, "", |q| { let t = p(q); let d = q.col(t, "d1"); let n = q.int(100); q.f2("DateAddDays", d, n) }, "1|1990-04-12\n2|2000-06-12\n3|");
}
#[test]
fn s12_1_11_difference_between_dates_in_years() {
    check("patient|d1\n1|2020-02-29\n2|2020-02-28\n3|2019-01-01\n4|2021-03-01\n5|2023-01-01\n6|", "", |q| {
        let t = p(q);
        let d = q.col(t, "d1");
        let c = q.date("2021-02-28");
        q.f2("DateDifferenceInYears", c, d)
    }, "1|0\n2|1\n3|2\n4|-1\n5|-2\n6|");
}
#[test]
fn s12_1_12_difference_between_dates_in_months() {
    check("patient|d1|d2
1|2000-02-28|2000-01-30
2|2000-03-01|2000-01-30
3|2000-03-28|2000-02-28
4|2000-03-30|2000-01-30
5|2000-02-27|2000-01-30
6|2000-01-27|2000-01-30
7|1999-12-26|2000-01-27
8|2005-02-28|2004-02-29
9|2010-01-01|2000-01-01
10|2000-01-01|", "", |q| p2(q, "DateDifferenceInMonths", "d1", "d2"), "1|0\n2|1\n3|1\n4|2\n5|0\n6|-1\n7|-2\n8|11\n9|120\n10|");
}
#[test]
fn s12_1_13_difference_between_dates_in_days() {
    check("patient|d1|d2\n1|2000-01-01|2000-01-01\n2|2000-03-01|2000-01-01\n3|2001-03-01|2001-01-01\n4|1999-12-31|2001-01-01", "",
        |q| p2(q, "DateDifferenceInDays", "d1", "d2"), "1|0\n2|60\n3|59\n4|-367");
}
#[test]
fn s12_1_14_reversed_date_differences() {
    check("patient|d1\n1|1990-01-30\n2|1970-01-15", "", |q| {
        let t = p(q);
        let d = q.col(t, "d1");
        let c = q.date("1980-01-20");
        q.f2("DateDifferenceInYears", d, c)
    }, "1|10\n2|-11");
}

fn static_date_plus(q: &mut Q, op: &str) -> usize {
    let t = p(q);
    let i = q.col(t, "i1");
    let d = q.date("2000-01-01");
    q.f2(op, d, i)
}

#[test]
fn s12_1_15_add_days_to_static_date() {
    check("patient|i1\n1|10\n2|-10", "", |q| static_date_plus(q, "DateAddDays"), "1|2000-01-11\n2|1999-12-22");
}
#[test]
fn s12_1_16_add_months_to_static_date() {
    check("patient|i1\n1|10\n2|-10", "", |q| static_date_plus(q, "DateAddMonths"), "1|2000-11-01\n2|1999-03-01");
}
#[test]
fn s12_1_17_add_years_to_static_date() {
    check("patient|i1\n1|10\n2|-10", "", |q| static_date_plus(q, "DateAddYears"), "1|2010-01-01\n2|1990-01-01");
}

const P_DCMP: &str = "patient|d1\n1|1990-01-01\n2|2000-01-01\n3|2010-01-01\n4|";

fn date_cmp(q: &mut Q, op: &str, d: &str) -> usize {
    let t = p(q);
    let c = q.col(t, "d1");
    let v = q.date(d);
    q.f2(op, c, v)
}

#[test]
fn s12_2_1_is_before() {
    check(P_DCMP, "", |q| date_cmp(q, "LT", "2000-01-01"), "1|T\n2|F\n3|F\n4|");
}
#[test]
fn s12_2_2_is_on_or_before() {
    check(P_DCMP, "", |q| date_cmp(q, "LE", "2000-01-01"), "1|T\n2|T\n3|F\n4|");
}
#[test]
fn s12_2_3_is_after() {
    check(P_DCMP, "", |q| date_cmp(q, "GT", "2000-01-01"), "1|F\n2|F\n3|T\n4|");
}
#[test]
fn s12_2_4_is_on_or_after() {
    check(P_DCMP, "", |q| date_cmp(q, "GE", "2000-01-01"), "1|F\n2|T\n3|T\n4|");
}
#[test]
fn s12_2_5_is_in() {
    check(P_DCMP, "", |q| {
        let t = p(q);
        let c = q.col(t, "d1");
        let s = q.set("date", json!(["2010-01-01", "1900-01-01"]));
        q.f2("In", c, s)
    }, "1|F\n2|F\n3|T\n4|");
}
#[test]
fn s12_2_6_is_not_in() {
    check(P_DCMP, "", |q| {
        let t = p(q);
        let c = q.col(t, "d1");
        let s = q.set("date", json!(["2010-01-01", "1900-01-01"]));
        let r = q.f2("In", c, s);
        q.f1("Not", r)
    }, "1|T\n2|T\n3|F\n4|");
}

const P_BETWEEN: &str = "patient|d1\n1|2010-01-01\n2|2010-01-02\n3|2010-01-03\n4|2010-01-04\n5|2010-01-05\n6|";

fn between(q: &mut Q, lo: &str, hi: &str, inclusive: bool) -> usize {
    let (a, b) = if inclusive { ("GE", "LE") } else { ("GT", "LT") };
    let x = date_cmp(q, a, lo);
    let y = date_cmp(q, b, hi);
    q.f2("And", x, y)
}

#[test]
fn s12_2_7_is_between_but_not_on() {
    check(P_BETWEEN, "", |q| between(q, "2010-01-02", "2010-01-04", false), "1|F\n2|F\n3|T\n4|F\n5|F\n6|");
}
#[test]
fn s12_2_8_is_on_or_between() {
    check(P_BETWEEN, "", |q| between(q, "2010-01-02", "2010-01-04", true), "1|F\n2|T\n3|T\n4|T\n5|F\n6|");
}
#[test]
fn s12_2_9_is_during() {
    check(P_BETWEEN, "", |q| between(q, "2010-01-02", "2010-01-04", true), "1|F\n2|T\n3|T\n4|T\n5|F\n6|");
}
#[test]
fn s12_2_10_is_on_or_between_backwards() {
    check(P_BETWEEN, "", |q| between(q, "2010-01-04", "2010-01-02", true), "1|F\n2|F\n3|F\n4|F\n5|F\n6|");
}

const P_DTYPES: &str = "patient|d1|d2\n1|1990-01-01|1980-01-01\n2|2000-01-01|1980-01-01\n3|2010-01-01|2020-01-01\n4||2020-01-01";

#[test]
fn s12_3_1_accepts_python_date_object() {
    check(P_DTYPES, "", |q| date_cmp(q, "LT", "2000-01-20"), "1|T\n2|T\n3|F\n4|");
}
#[test]
fn s12_3_2_accepts_iso_formated_date_string() {
    check(P_DTYPES, "", |q| date_cmp(q, "LT", "2000-01-20"), "1|T\n2|T\n3|F\n4|");
}
#[test]
fn s12_3_3_accepts_another_date_series() {
    check(P_DTYPES, "", |q| p2(q, "LT", "d1", "d2"), "1|F\n2|F\n3|T\n4|");
}

#[test]
fn s12_4_1_count_episodes() {
    check("", "patient|d1\n1|2020-01-01\n1|2020-01-04\n1|2020-01-06\n1|2020-01-10\n1|2020-01-12\n2|2020-01-01\n3|\n4|2020-01-10\n4|\n4|\n4|2020-01-01", |q| {
        let t = e(q);
        let d = q.col(t, "d1");
        q.count_episodes(d, 3)
    }, "1|2\n2|1\n3|0\n4|2");
}

// ---- 13 Strings ----

#[test]
fn s13_1_1_contains_fixed_value() {
    check("patient|s1\n1|ab\n2|ab12\n3|12ab\n4|12ab45\n5|a b\n6|AB\n7|", "", |q| {
        let t = p(q);
        let s = q.col(t, "s1");
        let v = q.str("ab");
        q.f2("StringContains", s, v)
    }, "1|T\n2|T\n3|T\n4|T\n5|F\n6|F\n7|");
}
#[test]
fn s13_1_2_contains_fixed_value_with_special_characters() {
    check("patient|s1\n1|/a%b_\n2|/ab_\n3|/a%bc\n4|a%b_", "", |q| {
        let t = p(q);
        let s = q.col(t, "s1");
        let v = q.str("/a%b_");
        q.f2("StringContains", s, v)
    }, "1|T\n2|F\n3|F\n4|F");
}
#[test]
fn s13_1_3_contains_value_from_column() {
    check("patient|s1|s2\n1|ab|ab\n2|cd12|cd\n3|12ef|ef\n4|12gh45|gh\n5|i j|ij\n6|KL|kl\n7||mn\n8|ab|", "",
        |q| p2(q, "StringContains", "s1", "s2"), "1|T\n2|T\n3|T\n4|T\n5|F\n6|F\n7|\n8|");
}
#[test]
fn s13_1_4_contains_value_from_column_with_special_characters() {
    check("patient|s1|s2\n1|/a%b_|/a%b_\n2|/ab_|/a%b_\n3|/a%bc|/a%b_\n4|a%b_|/a%b_", "",
        |q| p2(q, "StringContains", "s1", "s2"), "1|T\n2|F\n3|F\n4|F");
}

// ---- 14 Population ----

#[test]
fn s14_1_1_population_with_single_table() {
    check_with("patient|b1|i1\n1|F|10\n2|T|20\n3|F|30", "", |q| { let t = p(q); q.col(t, "i1") }, Some(|q| {
        let t = p(q);
        let b = q.col(t, "b1");
        q.f1("Not", b)
    }), "1|10\n3|30");
}
#[test]
fn s14_1_2_population_with_multiple_tables() {
    check_with("patient|i1\n1|10\n2|20\n3|0", "patient|i1\n1|101\n1|102\n3|301\n4|401", |q| { let t = e(q); q.agg("Exists", t) }, Some(|q| {
        let t = p(q);
        let i = q.col(t, "i1");
        let z = q.int(0);
        q.f2("GT", i, z)
    }), "1|T\n2|F");
}
#[test]
fn s14_1_3_case_with_case_expression() {
    check_with("patient|i1\n1|6\n2|7\n3|9\n4|", "", |q| { let t = p(q); q.col(t, "i1") }, Some(|q| {
        let t = p(q);
        let i = q.col(t, "i1");
        let eight = q.int(8);
        let (le, gt) = (q.f2("LE", i, eight), q.f2("GT", i, eight));
        let (yes, no) = (q.boolean(true), q.boolean(false));
        q.case(&[(le, Some(yes)), (gt, Some(no))], None)
    }), "1|6\n2|7");
}

// ---- 15 Inline tables ----

#[test]
fn s15_1_1_table_from_rows() {
    check("patient|i1\n1|10\n2|20\n3|30", "", |q| {
        let t = p(q);
        let i = q.col(t, "i1");
        let inline = q.add(json!({"op": "InlinePatientTable", "name": "t", "columns": [{"name": "n", "type": "int"}], "rows": [[1, 100], [3, 300]]}));
        let n = q.col(inline, "n");
        q.f2("Add", i, n)
    }, "1|110\n2|\n3|330");
}
