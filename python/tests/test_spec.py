"""ehrQL's specification, chapter by chapter, written in ehrQL and run through the
public Python API (the Rust tests check every example through the JSON model)."""

import datetime

from conftest import evaluate

from ehrql import case, codelist_from_csv, days, maximum_of, minimum_of, months, when, years
from ehrql.tables import PatientFrame, Series, table_from_rows

D = datetime.date


# 1 Filtering an event frame
def test_where_with_column(spec_tables):
    p, e = spec_tables
    data = "patient|i1|b1\n1|101|T\n1|102|T\n1|103|\n2|201|T\n2|202|\n2|203|F\n3|301|\n3|302|F"
    assert evaluate(p, e, e.where(e.b1).i1.sum_for_patient(), e_rows=data) == {1: 203, 2: 201, 3: None}


def test_except_where_with_expr(spec_tables):
    p, e = spec_tables
    data = "patient|i1|i2\n1|101|111\n1|102|112\n1|103|113\n2|201|211\n2|202|212\n2|203|213\n3|301|"
    got = evaluate(p, e, e.except_where((e.i1 + e.i2) < 413).i1.sum_for_patient(), e_rows=data)
    assert got == {1: None, 2: 405, 3: 301}


def test_where_with_constants(spec_tables):
    p, e = spec_tables
    data = "patient|i1\n1|101\n1|102\n2|201"
    assert evaluate(p, e, e.where(True).count_for_patient(), e_rows=data) == {1: 2, 2: 1}
    assert evaluate(p, e, e.except_where(True).count_for_patient(), e_rows=data) == {1: 0, 2: 0}


# 2 Picking one row for each patient
def test_sort_and_pick(spec_tables):
    p, e = spec_tables
    data = "patient|i1|i2\n1|101|3\n1|102|2\n1|102|1\n2|203|1\n2|202|2\n2|202|3"
    assert evaluate(p, e, e.sort_by(e.i1, e.i2).first_for_patient().i2, e_rows=data) == {1: 3, 2: 2}
    assert evaluate(p, e, e.sort_by(e.i1, e.i2).last_for_patient().i2, e_rows=data) == {1: 2, 2: 1}


def test_pick_with_nulls(spec_tables):
    p, e = spec_tables
    data = "patient|i1\n1|\n1|102\n1|103\n2|203\n2|202\n2|"
    assert evaluate(p, e, e.sort_by(e.i1).first_for_patient().i1, e_rows=data) == {1: None, 2: None}
    assert evaluate(p, e, e.sort_by(e.i1).last_for_patient().i1, e_rows=data) == {1: 103, 2: 203}


def test_sort_interleaved_with_where(spec_tables):
    p, e = spec_tables
    data = "patient|i1|i2\n1|101|1\n1|102|2\n1|103|2\n2|203|1\n2|202|2\n2|201|2"
    got = evaluate(p, e, e.sort_by(e.i1).where(e.i2 > 1).sort_by(e.i2).first_for_patient().i1, e_rows=data)
    assert got == {1: 102, 2: 201}


# 3 Aggregating frames
def test_exists_and_count(spec_tables):
    p, e = spec_tables
    pr, er = "patient|b1\n1|\n2|\n3|", "patient|b1\n1|\n1|\n2|"
    assert evaluate(p, e, e.exists_for_patient(), pr, er) == {1: True, 2: True, 3: False}
    assert evaluate(p, e, e.count_for_patient(), pr, er) == {1: 2, 2: 1, 3: 0}
    assert evaluate(p, e, p.count_for_patient(), pr, er) == {1: 1, 2: 1, 3: 1}


# 4 Aggregating event series
def test_series_aggregations(spec_tables):
    p, e = spec_tables
    data = "patient|i1|f1\n1|1|1.1\n1|2|2.1\n1|3|3.1\n2||\n2|2|2.1\n2|3|3.1\n3||"
    assert evaluate(p, e, e.i1.minimum_for_patient(), e_rows=data) == {1: 1, 2: 2, 3: None}
    assert evaluate(p, e, e.i1.maximum_for_patient(), e_rows=data) == {1: 3, 2: 3, 3: None}
    assert evaluate(p, e, e.i1.sum_for_patient(), e_rows=data) == {1: 6, 2: 5, 3: None}
    assert evaluate(p, e, e.i1.mean_for_patient(), e_rows=data) == {1: 2.0, 2: 2.5, 3: None}
    means = evaluate(p, e, e.f1.mean_for_patient(), e_rows=data)
    assert abs(means[1] - 2.1) < 1e-9 and abs(means[2] - 2.6) < 1e-9
    assert evaluate(p, e, e.i1.count_distinct_for_patient(), e_rows=data) == {1: 3, 2: 2, 3: 0}


# 5 Combining series
def test_combining_event_and_patient_series(spec_tables):
    p, e = spec_tables
    got = evaluate(p, e, (e.i1 + p.i1).sum_for_patient(), "patient|i1\n1|101\n2|201", "patient|i1\n1|111\n1|112\n2|211\n2|212")
    assert got == {1: 425, 2: 825}
    got = evaluate(p, e, (1 + e.i1).sum_for_patient(), e_rows="patient|i1\n1|101\n1|102\n2|201\n2|202")
    assert got == {1: 205, 2: 405}


# 6 Operations on all series
def test_equality_and_nulls(spec_tables):
    p, e = spec_tables
    data = "patient|i1|i2\n1|101|101\n2|201|202\n3|301|\n4||"
    assert evaluate(p, e, p.i1 == p.i2, data) == {1: True, 2: False, 3: None, 4: None}
    assert evaluate(p, e, p.i1 != p.i2, data) == {1: False, 2: True, 3: None, 4: None}
    assert evaluate(p, e, p.i1.is_null(), data) == {1: False, 2: False, 3: False, 4: True}
    assert evaluate(p, e, p.i1.when_null_then(0), data) == {1: 101, 2: 201, 3: 301, 4: 0}


def test_containment(spec_tables):
    p, e = spec_tables
    data = "patient|i1\n1|101\n2|201\n3|301\n4|"
    assert evaluate(p, e, p.i1.is_in([101, 301]), data) == {1: True, 2: False, 3: True, 4: None}
    assert evaluate(p, e, p.i1.is_not_in([101, 301]), data) == {1: False, 2: True, 3: False, 4: None}
    assert evaluate(p, e, p.i1.is_in([]), data) == {1: False, 2: False, 3: False, 4: False}
    assert evaluate(p, e, p.i1.map_values({101: "a", 201: "b", 301: "a"}, default="c"), data) == {1: "a", 2: "b", 3: "a", 4: "c"}


def test_is_in_event_series(spec_tables):
    p, e = spec_tables
    pr = "patient|i1\n1|101\n2|201\n3|301\n4|\n5|501\n6|"
    er = "patient|i1\n1|101\n2|201\n2|203\n2|301\n3|333\n3|334\n4|\n4|401\n5|\n5|101"
    got = evaluate(p, e, p.i1.is_in(e.i1), pr, er)
    assert got == {1: True, 2: True, 3: False, 4: None, 5: False, 6: False}


def test_minimum_and_maximum_of(spec_tables):
    p, e = spec_tables
    data = "patient|i1|i2|d1|d2\n1|101|112|2001-01-01|2012-12-12\n2||211||2021-01-01\n3||||"
    assert evaluate(p, e, maximum_of(p.i1, p.i2), data) == {1: 112, 2: 211, 3: None}
    assert evaluate(p, e, minimum_of(p.i1, p.i2, 150), data) == {1: 101, 2: 150, 3: 150}
    assert evaluate(p, e, minimum_of(p.d1, p.d2, "2015-05-05"), data) == {1: D(2001, 1, 1), 2: D(2015, 5, 5), 3: D(2015, 5, 5)}


# 7 Boolean series
def test_logic(spec_tables):
    p, e = spec_tables
    data = "patient|b1|b2\n1|T|T\n2|T|\n3|T|F\n4||T\n5||\n6||F\n7|F|T\n8|F|\n9|F|F"
    assert evaluate(p, e, p.b1 & p.b2, data) == {1: True, 2: None, 3: False, 4: None, 5: None, 6: False, 7: False, 8: False, 9: False}
    assert evaluate(p, e, p.b1 | p.b2, data) == {1: True, 2: True, 3: True, 4: True, 5: None, 6: None, 7: True, 8: None, 9: False}
    assert evaluate(p, e, (~p.b1).as_int(), data)[1] == 0


# 8 Integer series
def test_arithmetic(spec_tables):
    p, e = spec_tables
    data = "patient|i1|i2\n1|101|111\n2|201|\n3|-4|3\n4|5|0"
    assert evaluate(p, e, -p.i2, data) == {1: -111, 2: None, 3: -3, 4: 0}
    assert evaluate(p, e, p.i1 * p.i2, data)[1] == 11211
    assert evaluate(p, e, p.i1 // p.i2, data) == {1: 0, 2: None, 3: -2, 4: None}
    assert evaluate(p, e, p.i1 / p.i2, data)[4] is None
    assert evaluate(p, e, p.i1 < p.i2, data) == {1: True, 2: None, 3: True, 4: False}


def test_float_conversion(spec_tables):
    p, e = spec_tables
    data = "patient|i1|f1\n1|1|1.0\n2|42|32.3\n4|-4|-6.7\n5||"
    assert evaluate(p, e, p.f1.as_int(), data) == {1: 1, 2: 32, 4: -6, 5: None}
    got = evaluate(p, e, p.f1 + p.i1.as_float(), data)
    assert abs(got[2] - 74.3) < 1e-9 and got[5] is None


# 9 Codes
def test_codes(tmp_path):
    from ehrql import create_dataset
    from ehrql.tables.core import clinical_events, patients

    import ehrfusion

    path = tmp_path / "codelist.csv"
    path.write_text("code,term,cat\n123000,one,cat1\n789000,seven,cat2\n")
    codelist = codelist_from_csv(path, column="code", category_column="cat")
    ds = create_dataset()
    ds.define_population(patients.exists_for_patient())
    last = clinical_events.sort_by(clinical_events.date).last_for_patient()
    ds.hit = last.snomedct_code.is_in(codelist)
    ds.category = last.snomedct_code.to_category(codelist)
    t = ehrfusion.run(ds, tables={
        "patients": [(1, "1980-01-01", "male", None), (2, "1980-01-01", "male", None), (3, "1980-01-01", "male", None)],
        "clinical_events": [(1, "2020-01-01", "123000", None), (2, "2020-01-01", "456000", None), (3, "2020-01-01", "789000", None)],
    })
    assert t.column("hit").to_pylist() == [True, False, True]
    assert t.column("category").to_pylist() == ["cat1", None, "cat2"]


# 10 Multi-code strings
def test_multi_code_strings():
    from ehrql import create_dataset
    from ehrql.tables.tpp import apcs, patients

    import ehrfusion

    ds = create_dataset()
    ds.define_population(patients.exists_for_patient())
    ds.m06 = apcs.where(apcs.all_diagnoses.contains("M06")).exists_for_patient()
    ds.any = apcs.where(apcs.all_diagnoses.contains_any_of(["M069", "A429"])).exists_for_patient()
    t = ehrfusion.run(ds, tables={
        "patients": [(i, "1980-01-01", "male", None) for i in (1, 2, 3)],
        "apcs": [
            {"patient_id": 1, "apcs_ident": 1, "all_diagnoses": "||E119 ,J849 ,M069 ||I801 ,I802"},
            {"patient_id": 2, "apcs_ident": 2, "all_diagnoses": "||T202 ,A429 ||A429 ,A420, J170"},
            {"patient_id": 3, "apcs_ident": 3, "all_diagnoses": "||M139 ,E220 ,M145, M060"},
        ],
    })
    assert t.column("m06").to_pylist() == [True, False, True]
    assert t.column("any").to_pylist() == [True, True, False]


# 11 Case expressions
def test_case(spec_tables):
    p, e = spec_tables
    data = "patient|i1\n1|6\n2|7\n3|8\n4|9\n5|"
    got = evaluate(p, e, case(when(p.i1 < 8).then(p.i1), when(p.i1 > 8).then(100), otherwise=0), data)
    assert got == {1: 6, 2: 7, 3: 0, 4: 100, 5: 0}
    got = evaluate(p, e, case(when(p.i1 < 8).then(None), when(p.i1 > 8).then(100), otherwise=200), data)
    assert got == {1: None, 2: None, 3: 200, 4: 100, 5: 200}
    assert evaluate(p, e, when(p.i1 < 8).then(p.i1).otherwise(100), data) == {1: 6, 2: 7, 3: 100, 4: 100, 5: 100}


# 12 Dates
def test_date_parts_and_arithmetic(spec_tables):
    p, e = spec_tables
    data = "patient|d1|i1\n1|1990-01-02|100\n2|2000-03-04|200\n3||"
    assert evaluate(p, e, p.d1.year, data) == {1: 1990, 2: 2000, 3: None}
    assert evaluate(p, e, p.d1 + days(p.i1), data) == {1: D(1990, 4, 12), 2: D(2000, 9, 20), 3: None}
    assert evaluate(p, e, p.d1 - days(p.i1), data) == {1: D(1989, 9, 24), 2: D(1999, 8, 17), 3: None}
    assert evaluate(p, e, days(100) + p.d1, data)[1] == D(1990, 4, 12)
    assert evaluate(p, e, p.d1.to_first_of_month(), data)[2] == D(2000, 3, 1)


def test_months_and_years_roll_forward(spec_tables):
    p, e = spec_tables
    data = "patient|d1|i1\n1|2003-01-29|1\n2|2004-01-29|1\n5|2004-03-31|-1"
    assert evaluate(p, e, p.d1 + months(p.i1), data) == {1: D(2003, 3, 1), 2: D(2004, 2, 29), 5: D(2004, 3, 1)}
    data = "patient|d1|i1\n3|2004-02-29|1\n5|2004-02-29|4"
    assert evaluate(p, e, p.d1 + years(p.i1), data) == {3: D(2005, 3, 1), 5: D(2008, 2, 29)}


def test_date_differences(spec_tables):
    p, e = spec_tables
    data = "patient|d1\n1|2020-02-29\n2|2020-02-28\n3|2019-01-01\n4|2021-03-01\n5|2023-01-01\n6|"
    got = evaluate(p, e, (D(2021, 2, 28) - p.d1).years, data)
    assert got == {1: 0, 2: 1, 3: 2, 4: -1, 5: -2, 6: None}
    assert evaluate(p, e, (p.d1 - "1980-01-20").years, "patient|d1\n1|1990-01-30\n2|1970-01-15") == {1: 10, 2: -11}
    data = "patient|d1|d2\n1|2000-02-28|2000-01-30\n8|2005-02-28|2004-02-29"
    assert evaluate(p, e, (p.d1 - p.d2).months, data) == {1: 0, 8: 11}
    assert evaluate(p, e, (p.d1 - p.d2).days, data) == {1: 29, 8: 365}


def test_date_comparisons(spec_tables):
    p, e = spec_tables
    data = "patient|d1\n1|2010-01-01\n2|2010-01-02\n3|2010-01-03\n4|2010-01-04\n5|2010-01-05\n6|"
    got = evaluate(p, e, p.d1.is_on_or_between(D(2010, 1, 2), "2010-01-04"), data)
    assert got == {1: False, 2: True, 3: True, 4: True, 5: False, 6: None}
    got = evaluate(p, e, p.d1.is_between_but_not_on("2010-01-02", "2010-01-04"), data)
    assert got == {1: False, 2: False, 3: True, 4: False, 5: False, 6: None}
    assert evaluate(p, e, p.d1.is_during((D(2010, 1, 2), D(2010, 1, 4))), data)[4] is True
    assert evaluate(p, e, p.d1.is_before("2010-01-03"), data)[2] is True


def test_count_episodes(spec_tables):
    p, e = spec_tables
    data = "patient|d1\n1|2020-01-01\n1|2020-01-04\n1|2020-01-06\n1|2020-01-10\n1|2020-01-12\n2|2020-01-01\n3|\n4|2020-01-10\n4|\n4|2020-01-01"
    assert evaluate(p, e, e.d1.count_episodes_for_patient(days(3)), e_rows=data) == {1: 2, 2: 1, 3: 0, 4: 2}


# 13 Strings
def test_string_contains(spec_tables):
    p, e = spec_tables
    data = "patient|s1|s2\n1|ab|ab\n2|cd12|cd\n5|i j|ij\n6|KL|kl\n7||mn\n8|ab|"
    assert evaluate(p, e, p.s1.contains(p.s2), data) == {1: True, 2: True, 5: False, 6: False, 7: None, 8: None}
    assert evaluate(p, e, p.s1.contains("b"), data)[1] is True


# 14 Population
def test_population(spec_tables):
    p, e = spec_tables
    got = evaluate(p, e, e.exists_for_patient(), "patient|i1\n1|10\n2|20\n3|0", "patient|i1\n1|101\n1|102\n3|301\n4|401", population=p.i1 > 0)
    assert got == {1: True, 2: False}


# 15 Inline tables
def test_table_from_rows(spec_tables):
    p, e = spec_tables

    @table_from_rows([(1, 100), (3, 300)])
    class t(PatientFrame):
        n = Series(int)

    assert evaluate(p, e, p.i1 + t.n, "patient|i1\n1|10\n2|20\n3|30") == {1: 110, 2: None, 3: 330}


# Populations that need a table's rows (the engine then joins from that table)
def test_populations_that_need_a_tables_rows(spec_tables):
    p, e = spec_tables
    pr = "patient|i1\n1|1\n2|2\n3|\n4|4"
    er = "patient|i1|b1\n2|10|T\n2|20|F\n3|30|F\n5|50|T"

    def patients(population, series=None):
        return evaluate(p, e, p.i1 if series is None else series, pr, er, population=population)

    # needs e's matching rows: patient 5 is in e only, so has no p.i1
    assert patients(e.where(e.b1).exists_for_patient()) == {2: 2, 5: None}
    assert patients(e.where(e.b1).exists_for_patient() & p.exists_for_patient()) == {2: 2}
    # needs p's rows only; values from e are null (sum) where a patient has none
    assert patients(p.i1 > 1, e.i1.sum_for_patient()) == {2: 30, 4: None}
    # a negation, a count that may be zero, an "or", and a null test need no rows
    assert patients(p.exists_for_patient() & ~e.where(e.b1).exists_for_patient()) == {1: 1, 3: None, 4: 4}
    assert patients(e.where(e.b1).count_for_patient() >= 0) == {2: 2, 3: None, 5: None}
    assert patients(e.where(e.i1 > 15).exists_for_patient() | p.i1.is_null()) == {2: 2, 3: None, 5: None}
    last_b1 = e.sort_by(e.i1).last_for_patient().b1
    assert patients(last_b1.is_null() & p.exists_for_patient()) == {1: 1, 4: 4}
