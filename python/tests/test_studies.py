"""Realistic definitions in testdata/studies run unchanged, through the command line
and through Python, and give their golden outputs. The diagnoses study is also
checked against values computed independently from the CSV tables."""

import csv
import datetime
import os
import subprocess
from pathlib import Path

import pytest

import ehrfusion

REPO = Path(__file__).resolve().parents[2]
STUDIES = REPO / "testdata" / "studies"
BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))

CASES = [
    ("diagnoses-v0", "csv", [], "dataset.csv"),
    ("symptoms", "tpp", [], "dataset.csv"),
    ("parameters", "csv", [], "dataset.csv"),
    ("parameters", "csv", ["--index_date", "2021-06-01", "--lookback_days", "730"], "dataset_2021.csv"),
]


def text(value):
    """A value as ehrfusion writes it in CSV."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


@pytest.mark.parametrize("study,data,params,expected", CASES)
def test_command_line_gives_golden_output(tmp_path, study, data, params, expected):
    out = tmp_path / "out.csv"
    cmd = [BIN, "generate-dataset", "analysis/dataset_definition.py", "--data", f"../../data/{data}", "--output", str(out)]
    if params:
        cmd += ["--", *params]
    result = subprocess.run(cmd, cwd=STUDIES / study, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (STUDIES / study / "expected" / expected).read_text()


@pytest.mark.parametrize("study,data,params,expected", CASES)
def test_python_gives_golden_output(monkeypatch, study, data, params, expected):
    monkeypatch.chdir(STUDIES / study)
    table = ehrfusion.run("analysis/dataset_definition.py", data=REPO / "testdata" / "data" / data, parameters=params)
    with open(STUDIES / study / "expected" / expected, newline="") as f:
        golden = list(csv.reader(f))
    assert table.column_names == golden[0]
    got = [[text(v) for v in row.values()] for row in table.to_pylist()]
    assert got == golden[1:]


def read(name):
    with open(REPO / "testdata" / "data" / "csv" / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_diagnoses_study_matches_an_independent_computation():
    start, end = "2018-01-01", "2023-12-31"
    asthma = {"195967001", "38341003"}
    alive = {p["patient_id"] for p in read("patients") if not p["date_of_death"] or p["date_of_death"] > start}
    registered = {
        r["patient_id"] for r in read("practice_registrations") if r["start_date"] <= start and not (r["end_date"] and r["end_date"] < start)
    }
    population = sorted(alive & registered, key=int)
    counts = {}
    for e in read("clinical_events"):
        if e["snomedct_code"] in asthma and e["date"] and start <= e["date"] <= end:
            counts[e["patient_id"]] = counts.get(e["patient_id"], 0) + 1
    deaths = {d["patient_id"]: d["date"] for d in read("ons_deaths")}
    with open(STUDIES / "diagnoses-v0" / "expected" / "dataset.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["patient_id"] for r in rows] == population
    for r in rows:
        pid = r["patient_id"]
        assert int(r["asthma_count"]) == counts.get(pid, 0)
        assert r["has_asthma"] == ("T" if pid in counts else "F")
        assert r["died"] == ("T" if pid in deaths else "F")
        assert r["death_date"] == deaths.get(pid, "")


def test_symptoms_study_has_over_a_hundred_variables():
    with open(STUDIES / "symptoms" / "expected" / "dataset.csv", newline="") as f:
        header = next(csv.reader(f))
    assert len(header) - 1 >= 100
