"""Writes the JSON query models in definitions/ (built node by node, as a front end would)."""
import json, os
class Q:
    def __init__(s): s.nodes = []
    def add(s, n):
        if n in s.nodes: return s.nodes.index(n)
        s.nodes.append(n); return len(s.nodes) - 1
    def t(s, name): return s.add({"op": "SelectTable", "table": name})
    def pt(s, name): return s.add({"op": "SelectPatientTable", "table": name})
    def col(s, f, n): return s.add({"op": "SelectColumn", "source": f, "name": n})
    def v(s, ty, val): return s.add({"op": "Value", "type": ty, "value": val})
    def set(s, ty, vals): return s.add({"op": "Value", "type": ty, "set": vals})
    def f1(s, op, a): return s.add({"op": op, "source": a})
    def f2(s, op, a, b): return s.add({"op": op, "lhs": a, "rhs": b})
    def fn(s, op, xs): return s.add({"op": op, "sources": xs})
    def agg(s, op, a): return s.add({"op": op, "source": a})
    def where(s, f, c): return s.add({"op": "Filter", "source": f, "condition": c})
    def sort(s, f, ks): return s.add({"op": "Sort", "source": f, "sort_by": ks})
    def pick(s, f, pos): return s.add({"op": "PickOneRowPerPatient", "source": f, "position": pos})
    def case(s, cases, default=None): return s.add({"op": "Case", "cases": [[c, v] for c, v in cases], "default": default})
    def doc(s, population, variables, event_tables=None, backend="core"):
        return {"format": "ehrfusion-query-model", "version": 1, "backend": backend, "nodes": s.nodes,
                "dataset": {"population": population, "variables": variables, "event_tables": event_tables or {}}}

def all_operations():
    q = Q()
    pat = q.pt("patients"); ev = q.t("clinical_events"); med = q.t("medications"); reg = q.t("practice_registrations"); dth = q.pt("ons_deaths")
    index = q.v("date", "2020-01-01")
    dob = q.col(pat, "date_of_birth"); sex = q.col(pat, "sex"); dod = q.col(pat, "date_of_death")
    age = q.f2("DateDifferenceInYears", index, dob)
    # population: registered on the index date, alive
    rs, re = q.col(reg, "start_date"), q.col(reg, "end_date")
    spanning = q.where(reg, q.f2("And", q.f2("LE", rs, index), q.f2("Or", q.f2("GT", re, index), q.f1("IsNull", re))))
    registered = q.agg("Exists", spanning)
    alive = q.f2("Or", q.f1("IsNull", dod), q.f2("GT", dod, index))
    population = q.f2("And", registered, alive)
    v = {}
    v["age"] = age
    v["age_months"] = q.f2("DateDifferenceInMonths", index, dob)
    v["age_days"] = q.f2("DateDifferenceInDays", index, dob)
    v["sex"] = sex
    v["birth_year"] = q.f1("YearFromDate", dob)
    v["birth_month"] = q.f1("MonthFromDate", dob)
    v["birth_day"] = q.f1("DayFromDate", dob)
    v["birth_year_start"] = q.f1("ToFirstOfYear", dob)
    evdate, code, num = q.col(ev, "date"), q.col(ev, "snomedct_code"), q.col(ev, "numeric_value")
    diab = q.set("SNOMEDCTCode", ["44054006", "73211009"])
    dx = q.where(ev, q.f2("In", code, diab))
    first_dx = q.pick(q.sort(dx, [q.col(dx, "date")]), "first")
    v["first_diabetes_date"] = q.col(first_dx, "date")
    v["has_diabetes"] = q.agg("Exists", dx)
    v["diabetes_events"] = q.agg("Count", dx)
    v["diabetes_episodes"] = q.add({"op": "CountEpisodes", "source": q.col(dx, "date"), "maximum_gap_days": 90})
    v["distinct_codes"] = q.agg("CountDistinct", code)
    bmi = q.where(ev, q.f2("EQ", code, q.v("SNOMEDCTCode", "60573004")))
    latest_bmi = q.pick(q.sort(bmi, [q.col(bmi, "date"), q.col(bmi, "numeric_value")]), "last")
    v["latest_bmi"] = q.col(latest_bmi, "numeric_value")
    v["latest_bmi_date"] = q.col(latest_bmi, "date")
    v["max_value"] = q.agg("Max", num)
    v["min_value"] = q.agg("Min", num)
    v["mean_value"] = q.agg("Mean", num)
    v["sum_value"] = q.agg("Sum", num)
    v["value_range"] = q.f2("Subtract", q.agg("Max", num), q.agg("Min", num))
    v["rounded_mean"] = q.f1("CastToInt", q.agg("Mean", num))
    v["codes_x_ten"] = q.f2("Multiply", q.agg("Count", ev), q.v("int", 10))
    v["negated_count"] = q.f1("Negate", q.agg("Count", ev))
    v["abs_neg"] = q.f1("Absolute", q.f1("Negate", q.agg("Count", ev)))
    v["count_plus_one"] = q.f2("Add", q.agg("Count", ev), q.v("int", 1))
    v["per_med"] = q.f2("TrueDivide", q.agg("Count", ev), q.agg("Count", med))
    v["per_med_floor"] = q.f2("FloorDivide", q.agg("Count", ev), q.agg("Count", med))
    v["squared"] = q.f2("Power", q.agg("Count", med), q.v("int", 2))
    v["count_as_float"] = q.f1("CastToFloat", q.agg("Count", med))
    v["bool_as_int"] = q.f1("CastToInt", q.agg("Exists", dx))
    v["next_review"] = q.f2("DateAddMonths", q.col(first_dx, "date"), q.v("int", 6))
    v["plus_days"] = q.f2("DateAddDays", q.col(first_dx, "date"), q.v("int", 30))
    v["plus_years"] = q.f2("DateAddYears", dob, q.v("int", 18))
    v["dx_month"] = q.f1("ToFirstOfMonth", q.col(first_dx, "date"))
    v["is_female"] = q.f2("EQ", sex, q.v("str", "female"))
    v["not_male"] = q.f2("NE", sex, q.v("str", "male"))
    v["not_registered_long"] = q.f1("Not", q.f2("GE", age, q.v("int", 65)))
    v["young"] = q.f2("LT", age, q.v("int", 18))
    v["adult"] = q.f2("GT", age, q.v("int", 17))
    v["age_band"] = q.case([(q.f2("LT", age, q.v("int", 18)), q.v("str", "0-17")),
                            (q.f2("LT", age, q.v("int", 65)), q.v("str", "18-64"))], q.v("str", "65+"))
    v["sex_contains_ale"] = q.f2("StringContains", sex, q.v("str", "ale"))
    v["earliest_of"] = q.fn("MinimumOf", [q.col(first_dx, "date"), q.v("date", "2018-01-01")])
    v["latest_of"] = q.fn("MaximumOf", [q.col(first_dx, "date"), dob])
    # staged: events in the 90 days after each patient's first diagnosis
    fd = q.col(first_dx, "date")
    after = q.where(ev, q.f2("And", q.f2("GT", evdate, fd), q.f2("LE", evdate, q.f2("DateAddDays", fd, q.v("int", 90)))))
    v["events_90d_after_dx"] = q.agg("Count", after)
    # medications on dates with a clinical event (CombineAsSet + In)
    ev_dates = q.agg("CombineAsSet", evdate)
    v["meds_on_event_dates"] = q.agg("Count", q.where(med, q.f2("In", q.col(med, "date"), ev_dates)))
    # registrations: the practice on the index date (sort by several keys, last)
    cur = q.pick(q.sort(spanning, [rs, re, q.col(reg, "practice_pseudo_id")]), "last")
    v["practice"] = q.col(cur, "practice_pseudo_id")
    v["registered_since"] = q.col(cur, "start_date")
    v["died_of_mi"] = q.f2("In", q.col(dth, "underlying_cause_of_death"), q.set("ICD10Code", ["I21", "I219"]))
    v["ons_death_date"] = q.col(dth, "date")
    v["in_ons"] = q.agg("Exists", dth)
    inline = q.add({"op": "InlinePatientTable", "name": "cohort_flags", "columns": [{"name": "flag", "type": "str"}, {"name": "weight", "type": "float"}],
                    "rows": [[1, "pilot", 1.5], [2, "pilot", 0.5], [3, None, 2.0], [10, "main", None]]})
    v["inline_flag"] = q.col(inline, "flag")
    v["inline_weight"] = q.col(inline, "weight")
    v["null_value"] = q.v("int", None)
    events = {"diabetes_events": {"date": q.col(dx, "date"), "code": q.col(dx, "snomedct_code")}}
    return q.doc(population, v, events)

def diagnoses():
    q = Q()
    pat = q.pt("patients"); ev = q.t("clinical_events"); dth = q.pt("ons_deaths")
    start, end = q.v("date", "2018-01-01"), q.v("date", "2023-12-31")
    code, date = q.col(ev, "snomedct_code"), q.col(ev, "date")
    asthma = q.set("SNOMEDCTCode", ["195967001", "38341003"])
    in_period = q.f2("And", q.f2("GE", date, start), q.f2("LE", date, end))
    dx = q.where(q.where(ev, q.f2("In", code, asthma)), in_period)
    dob = q.col(pat, "date_of_birth")
    population = q.agg("Exists", dx)
    first = q.pick(q.sort(dx, [q.col(dx, "date")]), "first")
    v = {"sex": q.col(pat, "sex"), "age": q.f2("DateDifferenceInYears", start, dob),
         "first_asthma_date": q.col(first, "date"), "asthma_events": q.agg("Count", dx),
         "died": q.agg("Exists", dth), "death_date": q.col(dth, "date")}
    return q.doc(population, v)

for name, doc in [("all_operations", all_operations()), ("diagnoses", diagnoses())]:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "definitions", f"{name}.json"), "w") as f:
        json.dump(doc, f, indent=1); f.write("\n")
    print(name, len(doc["nodes"]), len(doc["dataset"]["variables"]))
