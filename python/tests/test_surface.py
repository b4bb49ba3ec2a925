"""The public surface of our `ehrql` package is ehrQL's: its table modules (raw, v0,
smoketest, emisv2) with ehrQL's tables and columns, the code types, and the names and
methods ehrQL has. Key facts are checked here without the reference; the whole surface
is checked against testdata/reference-surface.json (ehrQL's surface, dumped by
scripts/compare-surface --write-golden)."""

import csv
import datetime
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ehrql import create_dataset, maximum_of, weeks, when
from ehrql.tables import EventFrame, PatientFrame, Series, table, table_from_rows

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))


def nodes(dataset):
    return dataset._to_document()["nodes"]


def population(frame):
    dataset = create_dataset()
    dataset.define_population(frame.exists_for_patient())
    return dataset


def test_raw_ons_deaths_is_event_level_and_reads_its_own_table():
    from ehrql.tables.core import ons_deaths as curated
    from ehrql.tables.raw.core import ons_deaths as raw
    from ehrql.tables.raw.tpp import ons_deaths as raw_tpp

    assert isinstance(curated, PatientFrame)
    assert isinstance(raw, EventFrame) and isinstance(raw_tpp, EventFrame)
    assert nodes(population(raw))[0] == {"op": "SelectTable", "table": "ons_deaths_raw"}
    assert nodes(population(curated))[0] == {"op": "SelectPatientTable", "table": "ons_deaths"}
    raw_tpp.place  # raw tpp deaths have the place of death, raw core ones do not
    with pytest.raises(AttributeError):
        raw.place


def test_raw_tpp_has_its_own_tables_and_medication_columns():
    import ehrql.tables.raw.tpp as raw

    for name in ["apcs_historical", "apcs_cost_historical", "repeat_medications", "isaric", "wl_clockstops", "wl_openpathways"]:
        assert name in raw.__all__
    for column in ["medication_status", "quantity", "repeat_medication_id", "consultation_id"]:
        getattr(raw.medications, column)
    assert nodes(population(raw.medications))[0]["table"] == "medications_raw"
    # The raw waiting list tables hold their dates as text.
    assert type(raw.wl_clockstops.week_ending_date).__name__ == "StrEventSeries"


def test_smoketest_and_emisv2_modules():
    from ehrql.tables import emisv2, smoketest

    assert smoketest.__all__ == ["patients"]
    smoketest.patients.date_of_birth
    with pytest.raises(AttributeError):
        smoketest.patients.sex
    assert sorted(emisv2.__all__) == ["addresses", "clinical_events", "medications", "patients", "practice_registrations"]
    dataset = population(emisv2.practice_registrations)
    dataset.imd = emisv2.addresses.for_patient_on("2020-01-01").imd_rounded
    assert dataset._to_document()["backend"] == "emisv2"


def test_v0_tables_import_with_their_v0_columns():
    from ehrql.tables.beta.raw.tpp import isaric
    from ehrql.tables.beta.smoketest import patients as smoke
    from ehrql.tables.beta.tpp import apcs, hospital_admissions, practice_registrations

    dataset = population(smoke)
    dataset.admissions = hospital_admissions.where(hospital_admissions.primary_diagnoses.contains("I2")).count_for_patient()
    dataset.first = hospital_admissions.sort_by(hospital_admissions.admission_date).first_for_patient().id
    dataset.isaric = isaric.count_for_patient()
    doc = dataset._to_document()
    assert doc["backend"] == "tpp"
    assert {"op": "SelectTable", "table": "hospital_admissions"} in doc["nodes"]
    # v1 added these apcs columns; v0's apcs does not have them.
    apcs.spell_core_hrg_sus
    with pytest.raises(AttributeError):
        apcs.all_diagnoses
    # v0's spanning() excludes a registration that ends on the end date; v1's includes it.
    from ehrql.tables.tpp import practice_registrations as v1

    def ops(frame):
        d = population(frame.spanning("2020-01-01", "2020-12-31"))
        return {n["op"] for n in nodes(d)}

    assert "GT" in ops(practice_registrations) and "GE" not in ops(practice_registrations)
    assert "GE" in ops(v1)


def test_multi_code_strings_are_column_types():
    from ehrql.codes import ICD10MultiCodeString, OPCS4MultiCodeString

    assert ICD10MultiCodeString.is_valid("I21") and not ICD10MultiCodeString.is_valid("I2.1")
    assert OPCS4MultiCodeString.is_valid("K40") and not OPCS4MultiCodeString.is_valid("I40")

    @table
    class spells(EventFrame):
        diagnoses = Series(ICD10MultiCodeString)
        procedures = Series(OPCS4MultiCodeString)

    @table_from_rows([(1, "I21,I10"), (2, None)])
    class summary(PatientFrame):
        diagnoses = Series(ICD10MultiCodeString)

    dataset = population(spells)
    dataset.mi = spells.where(spells.diagnoses.contains("I21")).exists_for_patient()
    dataset.cabg = spells.where(spells.procedures.contains_any_of(["K40", "K41"])).exists_for_patient()
    dataset.mi_summary = summary.diagnoses.contains("I21")
    doc = dataset._to_document()
    assert doc["tables"]["spells"]["columns"] == [
        {"name": "diagnoses", "type": "ICD10MultiCodeString"},
        {"name": "procedures", "type": "OPCS4MultiCodeString"},
    ]


def test_absolute_on_int_and_float_series():
    from ehrql.tables.core import clinical_events, patients

    dataset = population(patients)
    dataset.f = clinical_events.numeric_value.minimum_for_patient().absolute()
    dataset.i = patients.age_on("2020-01-01").absolute()
    dataset.e = clinical_events.numeric_value.absolute().sum_for_patient()
    assert sum(n["op"] == "Absolute" for n in nodes(dataset)) == 3


def test_language_names_are_ehrqls():
    from ehrql import days, query_language

    assert isinstance(weeks(2), query_language.Duration) and repr(weeks(2)) == "weeks(value=2)"
    assert isinstance(when, type) and query_language.WhenThen
    assert datetime.date(2020, 1, 1) + weeks(2) == datetime.date(2020, 1, 15)
    assert weeks(1) + weeks(1) == weeks(2) and -weeks(1) == weeks(-1) and weeks(2) != days(14)
    with pytest.raises(TypeError):
        maximum_of(1)
    import ehrql

    for name in ["run", "document", "table_schema", "EngineError", "table_from_rows", "codelist_from_csv_lines"]:
        assert not hasattr(ehrql, name), f"ehrql.{name} is ehrfusion's, not ehrQL's"
    from ehrql.tables.core import patients

    assert isinstance(patients.sex, query_language.PatientSeries)
    from ehrql.tables.core import clinical_events

    assert isinstance(clinical_events.snomedct_code, query_language.EventSeries)
    with pytest.raises(TypeError):
        clinical_events.snomedct_code < "123456"  # ehrQL's codes have no order


def test_surface_matches_the_reference_dump():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare-surface"), "--golden"],
        capture_output=True, text=True, env=dict(os.environ, OUR_PYTHON=sys.executable),
    )
    differences = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert differences == [], result.stdout + result.stderr


def test_every_reference_module_imports():
    import importlib

    golden = json.loads((REPO / "testdata" / "reference-surface.json").read_text())
    for module in golden["modules"]:
        importlib.import_module(module)


def _write_table(data, schema, name, rows):
    columns = ["patient_id"] + [c["name"] for c in schema["tables"][name]["columns"]]
    with open(data / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.skipif(not Path(BIN).exists(), reason="the ehrfusion binary is not built (set EHRFUSION_BIN)")
def test_raw_v0_and_absolute_run(tmp_path):
    tpp = json.loads((REPO / "schemas" / "tpp.json").read_text())
    data = tmp_path / "data"
    data.mkdir()
    _write_table(data, tpp, "patients", [
        {"patient_id": 1, "date_of_birth": "1980-01-01", "sex": "male"},
        {"patient_id": 2, "date_of_birth": "1990-06-01", "sex": "female"},
    ])
    _write_table(data, tpp, "ons_deaths_raw", [
        {"patient_id": 1, "date": "2021-03-01", "underlying_cause_of_death": "I21"},
        {"patient_id": 1, "date": "2021-02-01", "underlying_cause_of_death": "I10"},
    ])
    _write_table(data, tpp, "hospital_admissions", [
        {"patient_id": 2, "id": 7, "admission_date": "2020-05-01", "primary_diagnoses": "I219"},
    ])
    _write_table(data, tpp, "clinical_events", [
        {"patient_id": 1, "date": "2020-01-01", "snomedct_code": "123456", "numeric_value": "-2.5"},
        {"patient_id": 2, "date": "2020-01-01", "snomedct_code": "123456", "numeric_value": "1.5"},
    ])
    (tmp_path / "definition.py").write_text(textwrap.dedent("""
        from ehrql import create_dataset
        from ehrql.tables.raw.tpp import ons_deaths
        from ehrql.tables.beta.tpp import hospital_admissions
        from ehrql.tables.tpp import clinical_events, patients

        dataset = create_dataset()
        dataset.define_population(patients.exists_for_patient())
        dataset.registrations = ons_deaths.count_for_patient()
        dataset.first_death = ons_deaths.sort_by(ons_deaths.date).first_for_patient().date
        dataset.admitted = hospital_admissions.where(hospital_admissions.primary_diagnoses.contains("I21")).exists_for_patient()
        dataset.size = clinical_events.numeric_value.minimum_for_patient().absolute()
        dataset.years_off = (patients.age_on("2020-01-01") - 35).absolute()
    """))
    out = tmp_path / "out.csv"
    result = subprocess.run([BIN, "generate-dataset", "definition.py", "--data", str(data), "--output", str(out)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == [
        "patient_id,registrations,first_death,admitted,size,years_off",
        "1,2,2021-02-01,F,2.5,5",
        "2,0,,T,1.5,6",
    ]
