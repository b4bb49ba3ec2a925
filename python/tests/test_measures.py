"""Measures (`generate-measures`, `run_measures`) give the outputs ehrQL itself wrote
for the definitions in testdata/measures, over the same tables: CSV byte for byte,
one file per measure, Arrow by schema and values; and every misuse fails with
ehrQL's message and exit status. (The goldens were written by the reference; see
testdata/measures/README.md.)"""

import csv
import datetime
import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

import ehrfusion

REPO = Path(__file__).resolve().parents[2]
MEASURES = REPO / "testdata" / "measures"
BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))
CASES = json.loads((MEASURES / "cases.json").read_text())
OUTPUTS = [(c, expected, given) for c in CASES for expected, given in c["outputs"].items()]


def generate(case_dir, *args):
    return subprocess.run([BIN, "generate-measures", *map(str, args)], cwd=case_dir, capture_output=True, text=True)


@pytest.mark.parametrize("case,expected,given", OUTPUTS, ids=[f"{c['case']}:{g}" for c, _, g in OUTPUTS])
def test_outputs_are_the_references(tmp_path, case, expected, given):
    case_dir = MEASURES / case["case"]
    target = tmp_path / given
    result = generate(case_dir, "measures.py", "--dummy-tables", case["tables"], "--output", target, *case["args"])
    assert result.returncode == 0, result.stderr
    golden = case_dir / expected
    if expected.endswith("/"):
        written = tmp_path / given.split(":")[0]
        assert sorted(os.listdir(written)) == sorted(os.listdir(golden))
        for name in os.listdir(golden):
            assert (written / name).read_bytes() == (golden / name).read_bytes(), name
    elif expected.endswith(".arrow"):
        ours, theirs = pa.ipc.open_file(target).read_all(), pa.ipc.open_file(golden).read_all()
        assert ours.schema.equals(theirs.schema), f"{ours.schema}\n---\n{theirs.schema}"
        assert ours.equals(theirs)
    else:
        assert target.read_bytes() == golden.read_bytes()


def test_console_output_is_the_combined_csv():
    case = CASES[0]
    case_dir = MEASURES / case["case"]
    result = generate(case_dir, "measures.py", "--dummy-tables", case["tables"])
    assert result.returncode == 0, result.stderr
    golden = (case_dir / "expected" / "measures.csv").read_bytes().decode()
    assert result.stdout.replace("\r\n", "\n") == golden.replace("\r\n", "\n")


ERRORS = json.loads((MEASURES / "errors" / "expected.json").read_text())


def _message(text):
    """ehrQL's message without its exception's module prefix, on one line."""
    text = " ".join(text.split())
    return re.sub(r"^ehrql\.", "", text)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_misuse_fails_as_in_ehrql(name):
    expected = ERRORS[name]
    result = generate(MEASURES / "errors", name, "--dummy-tables", "../../data/csv")
    assert result.returncode == expected["exit"], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert _message(expected["error"]) in lines[0]
    # The definition's own line is named where the mistake is on one.
    if not expected["error"].startswith(("Did not find", "'measures'", "No measures")):
        assert re.search(rf"{re.escape(name)}, line \d+: ", lines[0]), lines[0]


def test_python_api_gives_the_same_rows(monkeypatch):
    case = next(c for c in CASES if c["case"] == "c13_shared_groups")
    case_dir = MEASURES / case["case"]
    monkeypatch.chdir(case_dir)
    table = ehrfusion.run_measures("measures.py", dummy_tables=case_dir / case["tables"])
    with open(case_dir / "expected" / "measures.csv", newline="") as f:
        golden = list(csv.reader(f))
    assert table.column_names == golden[0]

    def text(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "T" if v else "F"
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, datetime.date):
            return v.isoformat()
        return str(v)

    assert [[text(v) for v in row.values()] for row in table.to_pylist()] == golden[1:]
    polars_frame = ehrfusion.run_measures("measures.py", dummy_tables=case_dir / case["tables"], output="polars")
    assert polars_frame.height == len(golden) - 1


def definition(tmp_path, body):
    path = tmp_path / "measures.py"
    path.write_text(textwrap.dedent(body))
    return path


HEADER = """\
    from ehrql import INTERVAL, create_measures, months
    from ehrql.tables.core import clinical_events, patients
    measures = create_measures()
"""


def test_in_memory_tables_null_groups_and_sums(tmp_path):
    # Two months; a null group value (a man's, here) is a group of its own; an int
    # numerator with nulls sums them as 0; a group with nobody in it in an interval
    # gives no row. (sex itself may not be null: the tables are checked.)
    path = definition(tmp_path, HEADER + """\
    from ehrql import case, when
    measures.configure_disclosure_control(enabled=False)
    events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
    measures.define_measure(
        "events",
        numerator=events.count_for_patient() - 1,
        denominator=events.exists_for_patient(),
        group_by={"sex": case(when(patients.sex == "female").then("female"))},
        intervals=months(2).starting_on("2020-01-01"),
    )
    """)
    d = datetime.date
    tables = {
        "patients": [(1, d(1980, 1, 1), "female", None), (2, d(1990, 1, 1), "male", None), (3, d(1970, 1, 1), "female", None)],
        "clinical_events": [
            (1, d(2020, 1, 5), "123", None),
            (1, d(2020, 1, 6), "123", None),
            (2, d(2020, 1, 7), "123", None),
            (3, d(2020, 2, 1), "123", None),
            (3, d(2020, 2, 2), "123", None),
            (3, d(2020, 2, 3), "123", None),
        ],
    }
    rows = ehrfusion.run_measures(path, tables=tables).to_pylist()
    got = [(r["interval_start"].month, r["sex"], r["numerator"], r["denominator"], r["ratio"]) for r in rows]
    assert got == [(1, "female", 1, 1, 1.0), (1, None, 0, 1, 0.0), (2, "female", 2, 1, 2.0)]


def test_disclosure_control_rounds_and_suppresses(tmp_path):
    path = definition(tmp_path, HEADER + """\
    import datetime
    measures.define_measure(
        "events",
        numerator=clinical_events.where(clinical_events.date.is_during(INTERVAL)).count_for_patient(),
        denominator=patients.exists_for_patient(),
        intervals=[(datetime.date(2020, 1, 1), datetime.date(2020, 12, 31))],
    )
    """)
    d = datetime.date
    patients = [(i, d(1980, 1, 1), "male", None) for i in range(1, 13)]
    events = [(1, d(2020, 3, 1), "1", None)] * 7
    rows = ehrfusion.run_measures(path, tables={"patients": patients, "clinical_events": events}).to_pylist()
    # 7 events is suppressed to 0; 12 patients round to 10.
    assert [(r["numerator"], r["denominator"], r["ratio"]) for r in rows] == [(0, 10, 0.0)]
    events = [(1, d(2020, 3, 1), "1", None)] * 13
    rows = ehrfusion.run_measures(path, tables={"patients": patients[:5], "clinical_events": events}).to_pylist()
    # 13 rounds to 15; 5 patients are suppressed, so the ratio is empty.
    assert [(r["numerator"], r["denominator"], r["ratio"]) for r in rows] == [(15, 0, None)]


def test_dummy_data_honours_the_population_size(tmp_path):
    path = definition(tmp_path, HEADER + """\
    measures.configure_disclosure_control(enabled=False)
    measures.configure_dummy_data(population_size=40)
    measures.define_measure(
        "alive",
        numerator=clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient(),
        denominator=patients.exists_for_patient(),
        intervals=months(3).starting_on("2021-01-01"),
    )
    """)
    out = tmp_path / "out.csv"
    result = generate(tmp_path, path.name, "--output", out)
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["interval_start"] for r in rows] == ["2021-01-01", "2021-02-01", "2021-03-01"]
    assert all(int(r["denominator"]) == 40 for r in rows)


def test_dummy_data_file_is_checked_and_disclosure_controlled(tmp_path):
    case_dir = MEASURES / "c01_basic_sex"
    good = tmp_path / "dummy.csv"
    good.write_text(
        "measure,interval_start,interval_end,ratio,numerator,denominator,sex\n"
        "target_rx_by_sex,2016-01-01,2016-12-31,0.5,5,10,male\n"
    )
    out = tmp_path / "out.csv"
    result = generate(case_dir, "measures.py", "--dummy-data-file", good, "--output", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[1] == "target_rx_by_sex,2016-01-01,2016-12-31,0.5,5,10,male"
    bad = tmp_path / "bad.csv"
    bad.write_text("measure,interval_start,interval_end,ratio,numerator,denominator,sex\nother,2016-01-01,2016-12-31,,1,2,male\n")
    result = generate(case_dir, "measures.py", "--dummy-data-file", bad, "--output", tmp_path / "out2.csv")
    assert result.returncode == 11 and "'other' is not one of its values" in result.stderr
    assert not (tmp_path / "out2.csv").exists()
    missing = tmp_path / "missing.csv"
    missing.write_text("measure,interval_start\n")
    result = generate(case_dir, "measures.py", "--dummy-data-file", missing)
    assert result.returncode == 11 and "Missing columns: interval_end, ratio, numerator, denominator, sex" in result.stderr


def test_explain_says_how_each_table_is_read(tmp_path):
    def explain(denominator, imports=""):
        # Events in the interval over 12 months, against the given denominator.
        path = definition(tmp_path, HEADER + imports + f"""\
    measures.define_measure(
        "in_interval",
        numerator=clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient(),
        denominator={denominator},
        intervals=months(12).starting_on("2021-01-01"),
    )
    """)
        result = subprocess.run([BIN, "explain", path.name], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    shown = explain("clinical_events.where(clinical_events.date.is_on_or_before(INTERVAL.end_date)).count_for_patient() > 0")
    assert "over 12 intervals, in one pass" in shown
    # Both values keep only events dated on or before the interval's end, so an
    # event is repeated only from the first interval ending on or after its date
    # (not grouped by patient: the numerator's filter also reads the interval).
    assert "repeated only for the run of the 12 intervals that its date allows" in shown
    # Asked as "exists", the same question is whether the patient's earliest event
    # is on or before the end: found once per patient, apart from the numerator's
    # events, each of which is counted in its interval.
    shown = explain("clinical_events.where(clinical_events.date.is_on_or_before(INTERVAL.end_date)).exists_for_patient()")
    assert "clinical_events (stage 0): values that do not depend on the interval, computed once per patient" in shown
    assert "clinical_events (stage 0): each row counted in the one interval its date falls in" in shown
    assert "repeated for all 12 intervals" in explain("clinical_events.where(clinical_events.date != INTERVAL.start_date).count_for_patient() > 0")
    assert "each row counted in the one interval its date falls in" in explain("patients.exists_for_patient()")
    # Registered on each interval's start: a registration counts for the run of
    # intervals its start and end dates allow, and as no value reads the interval
    # otherwise, its rows are grouped by patient with one slot per interval.
    shown = explain(
        "practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()",
        imports="    from ehrql.tables.tpp import practice_registrations\n",
    )
    assert "practice_registrations (stage 0): each row counted, grouped by patient, for the run of the 12 intervals that its " in shown
