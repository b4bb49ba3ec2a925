"""Mistakes in a definition are reported as one line naming the definition file and
line, through the command line and through Python, with no traceback."""

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

import ehrfusion

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))

HEADER = """\
from ehrql import create_dataset, codelist_from_csv
from ehrql.tables.core import patients, clinical_events
dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
"""

CASES = [
    ("event_series", "dataset.d = clinical_events.date", 5, "has many values per patient"),
    ("date_vs_int", "dataset.old = patients.date_of_birth < 1950", 5, "Expected a date"),
    ("bad_name", "dataset.add_column('2nd', patients.sex)", 5, "Invalid variable name '2nd'"),
    ("reserved", "dataset.patient_id = patients.sex", 5, "'patient_id' is a reserved name"),
    ("wrong_system", "dataset.x = clinical_events.where(clinical_events.snomedct_code == 'XaBVJ').exists_for_patient()", 5, "Invalid SNOMEDCTCode"),
    ("no_codelist", "codes = codelist_from_csv('codelists/missing.csv', column='code')", 5, "No CSV file at codelists/missing.csv"),
    ("bad_column", "codes = codelist_from_csv('codes.csv', column='snomed')", 5, "No column 'snomed' in CSV"),
    ("unknown_column", "dataset.x = patients.height", 5, "'patients' has no column or method 'height'"),
    ("python_bool", "dataset.x = patients.sex == 'male' and patients.sex == 'female'", 5, "cannot be used where Python expects True or False"),
    ("mixed_numbers", "dataset.x = clinical_events.numeric_value.sum_for_patient() + clinical_events.count_for_patient()", 5, "convert one with as_int() or as_float()"),
    ("different_tables", "from ehrql.tables.core import medications\ndataset.x = clinical_events.where(clinical_events.date == medications.date).exists_for_patient()", 6, "different tables"),
    ("unsorted_pick", "dataset.x = clinical_events.first_for_patient().date", 5, "before sort_by()"),
    ("syntax", "dataset.x = (", 5, "SyntaxError"),
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "codes.csv").write_text("code,term\n123456,x\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name,line,lineno,message", CASES, ids=[c[0] for c in CASES])
def test_command_line_reports_file_and_line(project, name, line, lineno, message):
    (project / "definition.py").write_text(HEADER + line + "\n")
    result = subprocess.run([BIN, "generate-dataset", "definition.py", "--data", str(REPO / "testdata/data/csv"), "--output", "out.csv"], capture_output=True, text=True)
    assert result.returncode == 10, "ehrQL's exit status for a definition error"
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: definition.py, line {lineno}: "), err
    assert message in err
    assert "Traceback" not in err
    assert not (project / "out.csv").exists()


@pytest.mark.parametrize("name,line,lineno,message", CASES[:6], ids=[c[0] for c in CASES[:6]])
def test_python_api_raises_the_same_message(project, name, line, lineno, message):
    (project / "definition.py").write_text(HEADER + line + "\n")
    with pytest.raises(ehrfusion.Error, match=f"definition.py, line {lineno}: .*{message[:20]}"):
        ehrfusion.run("definition.py", tables={})


def test_population_must_be_boolean(project):
    (project / "definition.py").write_text(textwrap.dedent("""\
        from ehrql import create_dataset
        from ehrql.tables.core import patients
        dataset = create_dataset()
        dataset.define_population(patients.date_of_birth)
    """))
    result = subprocess.run([BIN, "generate-dataset", "definition.py", "--data", str(REPO / "testdata/data/csv")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "definition.py, line 4:" in result.stderr and "boolean series" in result.stderr


def test_missing_dataset_variable(project):
    (project / "definition.py").write_text("x = 1\n")
    result = subprocess.run([BIN, "generate-dataset", "definition.py", "--data", str(REPO / "testdata/data/csv")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Did not find a variable called 'dataset'" in result.stderr


def test_traceback_on_request(project):
    (project / "definition.py").write_text(HEADER + "dataset.d = clinical_events.date\n")
    env = dict(os.environ, EHRFUSION_TRACEBACK="1")
    result = subprocess.run([BIN, "generate-dataset", "definition.py", "--data", str(REPO / "testdata/data/csv")], capture_output=True, text=True, env=env)
    assert "Traceback" in result.stderr


def test_missing_parameter(project):
    (project / "definition.py").write_text(HEADER + "from ehrql import get_parameter\nx = get_parameter('region')\n")
    result = subprocess.run([BIN, "generate-dataset", "definition.py", "--data", str(REPO / "testdata/data/csv")], capture_output=True, text=True)
    assert "definition.py, line 6:" in result.stderr and "parameter `region` defined but no values found" in result.stderr
