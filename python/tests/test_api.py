"""The Python API: in-memory tables in several forms, results as pyarrow, polars and
pandas, engine errors as exceptions, schema introspection, and the commands."""

import datetime
import subprocess
import sys
from pathlib import Path

import pandas
import polars
import pyarrow as pa
import pytest

import ehrfusion
from ehrql import create_dataset
from ehrql.tables.core import clinical_events, patients

REPO = Path(__file__).resolve().parents[2]


def dataset():
    ds = create_dataset()
    ds.define_population(patients.exists_for_patient())
    ds.sex = patients.sex
    ds.events = clinical_events.count_for_patient()
    ds.last = clinical_events.sort_by(clinical_events.date).last_for_patient().date
    return ds


PATIENTS = [(1, "1980-01-01", "male", None), (2, "1990-06-01", "female", None)]
EVENTS = [(1, "2020-01-01", "22298006", 1.5), (1, "2021-01-01", "22298006", None)]
EXPECTED = {"patient_id": [1, 2], "sex": ["male", "female"], "events": [2, 0], "last": [datetime.date(2021, 1, 1), None]}


def as_dict(table):
    return {name: table.column(name).to_pylist() for name in table.column_names}


def test_rows_as_tuples_and_dicts():
    t = ehrfusion.run(dataset(), tables={"patients": PATIENTS, "clinical_events": [dict(zip(["patient_id", "date", "snomedct_code", "numeric_value"], r)) for r in EVENTS]})
    assert isinstance(t, pa.Table)
    assert {k: [str(x) if k == "sex" else x for x in v] for k, v in as_dict(t).items()} == EXPECTED


def test_pyarrow_polars_and_pandas_inputs():
    schema = ehrfusion.arrow_schema("patients")
    p = pa.table(list(zip(*[(r[0], datetime.date.fromisoformat(r[1]), r[2], r[3]) for r in PATIENTS])), schema=schema)
    e = pa.table(
        {"patient_id": [1, 1], "date": [datetime.date(2020, 1, 1), datetime.date(2021, 1, 1)], "snomedct_code": ["22298006"] * 2, "numeric_value": [1.5, None]}
    )
    for events in [e, polars.from_arrow(e), e.to_pandas()]:
        t = ehrfusion.run(dataset(), tables={"patients": p, "clinical_events": events})
        assert as_dict(t)["events"] == [2, 0]


def test_outputs_as_polars_and_pandas():
    tables = {"patients": PATIENTS, "clinical_events": EVENTS}
    assert ehrfusion.run(dataset(), tables=tables, output="polars")["events"].to_list() == [2, 0]
    df = ehrfusion.run(dataset(), tables=tables, output="pandas")
    assert isinstance(df, pandas.DataFrame) and list(df["events"]) == [2, 0]


def test_categories_come_back_dictionary_encoded():
    t = ehrfusion.run(dataset(), tables={"patients": PATIENTS})
    assert pa.types.is_dictionary(t.schema.field("sex").type)


def test_event_tables():
    ds = dataset()
    ds.add_event_table("events_table", date=clinical_events.date, code=clinical_events.snomedct_code)
    _, events = ehrfusion.run(ds, tables={"patients": PATIENTS, "clinical_events": EVENTS}, event_tables=True)
    assert as_dict(events["events_table"]) == {"patient_id": [1, 1], "date": [datetime.date(2020, 1, 1), datetime.date(2021, 1, 1)], "code": ["22298006"] * 2}


def test_engine_errors_are_exceptions():
    with pytest.raises(ehrfusion.EngineError, match="patient 1 appears more than once in patient-level table 'patients'"):
        ehrfusion.run(dataset(), tables={"patients": PATIENTS + [PATIENTS[0]]})
    with pytest.raises(ehrfusion.EngineError, match="column 'date' has type"):
        ehrfusion.run(dataset(), tables={"clinical_events": pa.table({"patient_id": [1], "date": ["x"], "snomedct_code": ["1"], "numeric_value": [1.0]})})
    with pytest.raises(ehrfusion.Error, match="row 0: expected 4 values"):
        ehrfusion.run(dataset(), tables={"patients": [(1, "1980-01-01")]})


def test_data_directory_and_json_models():
    t = ehrfusion.run(REPO / "testdata/definitions/diagnoses.json", data=REPO / "testdata/data/csv")
    assert t.num_rows > 10 and t.column_names[0] == "patient_id"


def test_schema_introspection():
    assert ehrfusion.table_schema("patients") == [("patient_id", "int"), ("date_of_birth", "date"), ("sex", "str"), ("date_of_death", "date")]
    assert "ctv3_code" in dict(ehrfusion.table_schema("clinical_events", backend="tpp"))
    assert ehrfusion.arrow_schema("clinical_events").field("date").type == pa.date32()
    assert [c["name"] for c in patients._schema["columns"]] == ["date_of_birth", "sex", "date_of_death"]


def test_query_model_document():
    doc = ehrfusion.document(dataset())
    assert doc["format"] == "ehrfusion-query-model" and doc["backend"] == "core"
    assert list(doc["dataset"]["variables"]) == ["sex", "events", "last"]


def test_ehrql_command(tmp_path):
    # The package's `ehrql`/`ehrfusion` commands run the engine's command line.
    out = tmp_path / "d.csv"
    result = subprocess.run(
        [sys.executable, "-m", "ehrfusion.cli", "generate-dataset", str(REPO / "testdata/definitions/diagnoses.json"), "--data", str(REPO / "testdata/data/csv"), "--output", str(out)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "python"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("patient_id,sex,age,")


def test_emis_tables_and_backend():
    from ehrql.tables import emis

    ds = create_dataset()
    ds.define_population(emis.patients.has_practice_registration_spanning("2020-01-01", "2020-12-31"))
    ds.vaccinated = emis.vaccinations.exists_for_patient()
    doc = ehrfusion.document(ds)
    assert doc["backend"] == "emis"
    t = ehrfusion.run(ds, tables={
        "patients": [(1, "1980-01-01", "male", None, "2010-01-01", None, "P1", 3, 1200), (2, "1980-01-01", "female", None, "2020-06-01", None, "P2", None, None)],
        "vaccinations": [(1, "2021-01-01", "1324681000000101")],
    })
    assert as_dict(t) == {"patient_id": [1], "vaccinated": [True]}


def test_one_backend_per_definition():
    from ehrql.tables import emis, tpp

    ds = create_dataset()
    ds.define_population(emis.patients.exists_for_patient())
    ds.x = tpp.apcs.exists_for_patient()
    with pytest.raises(ValueError, match="one backend, not several"):
        ehrfusion.document(ds)
