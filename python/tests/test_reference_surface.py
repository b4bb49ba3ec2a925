"""The surface real studies touch behaves as ehrQL's does: codelists are plain lists
and dicts, definitions import helpers from the repository root and their own
folder, see their arguments in sys.argv, print to stderr, read earlier actions'
outputs with table_from_file, run assurance tests, read dummy tables that lack
columns, and exit with ehrQL's status codes.

The golden files in testdata/studies/helpers/expected were written by ehrQL itself
on the same tables (testdata/data/csv as --dummy-tables)."""

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.csv
import pyarrow.feather
import pyarrow.parquet
import re

import pytest

from ehrql import codelist_from_csv
from ehrql.codes import codelist_from_csv_lines

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))
HELPERS = REPO / "testdata" / "studies" / "helpers"
TABLES = REPO / "testdata" / "data" / "csv"
PARAMS = ["--", "--start-date", "2014-01-01", "--groups", "cardio", "resp", "--lookback", "3650"]


def ehrfusion(*args, cwd):
    return subprocess.run([BIN, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def write(table, path):
    """Write a pyarrow table in the format its file name says."""
    name = str(path)
    if name.endswith(".parquet"):
        pa.parquet.write_table(table, path)
    elif name.endswith((".arrow", ".feather")):
        pa.feather.write_feather(table, path)
    else:
        with pa.CompressedOutputStream(path, "gzip") if name.endswith(".gz") else pa.OSFile(name, "wb") as out:
            pa.csv.write_csv(table, out)


@pytest.fixture
def study(tmp_path):
    """A scratch copy of the helpers study with its first action already run."""
    root = tmp_path / "helpers"
    shutil.copytree(HELPERS, root)
    result = ehrfusion("generate-dataset", "analysis/cohort_definition.py", "--dummy-tables", TABLES, "--output", "output/cohort.arrow", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


# ---------------------------------------------------------------- codelists


def test_codelist_from_csv_is_a_list_of_distinct_codes(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("code,term,group\n123456, padded ,a\n234567,b,b\n123456,again,c\n ,blank,d\n")
    codes = codelist_from_csv(path, column="code")
    assert codes == ["123456", "234567"] and type(codes) is list
    categories = codelist_from_csv(path, column="code", category_column="group")
    assert categories == {"123456": "c", "234567": "b"} and type(categories) is dict
    assert codelist_from_csv_lines(["code", "999999"], column="code") == ["999999"]


def test_codelist_errors_are_ehrqls(tmp_path):
    with pytest.raises(ValueError, match="No CSV file at nowhere.csv"):
        codelist_from_csv("nowhere.csv", column="code")
    (tmp_path / "c.csv").write_text("code\n123456\n")
    with pytest.raises(ValueError, match="No column 'group' in CSV"):
        codelist_from_csv(tmp_path / "c.csv", column="code", category_column="group")


def test_icd10_codes_have_ehrqls_formats():
    from ehrql.codes import ICD10Code

    # ehrQL accepts up to five characters, and the X that pads 3-character codes
    for code in ["A01", "A012", "M0500", "A01X", "A01X2"]:
        assert ICD10Code(code).value == code
    for code in ["A1", "A01234", "A0X", "A01XX", "a01", "A01.2"]:
        with pytest.raises(ValueError, match=f"^Invalid ICD10Code: {re.escape(code)}$"):
            ICD10Code(code)


def test_codes_are_value_objects_as_in_ehrql():
    # Study helpers call these (e.g. `ICD10Code(code)._to_primitive_type()`).
    from ehrql.codes import CTV3Code, ICD10Code, SNOMEDCTCode

    code = ICD10Code("J21")
    assert (code.value, code._to_primitive_type(), ICD10Code._primitive_type()) == ("J21", "J21", str)
    assert repr(code) == str(code) == "ICD10Code(value='J21')"
    assert code == ICD10Code("J21") and code != "J21" and code != CTV3Code("J21..")
    assert len({code, ICD10Code("J21")}) == 1
    with pytest.raises(TypeError):
        ICD10Code(21)
    with pytest.raises(AttributeError):
        code.value = "J22"
    # Code objects and their text work alike in a query.
    from ehrql import create_dataset
    from ehrql.tables.core import clinical_events

    dataset = create_dataset()
    dataset.a = clinical_events.where(clinical_events.snomedct_code.is_in([SNOMEDCTCode("123456"), "234567"])).exists_for_patient()
    dataset.b = clinical_events.where(clinical_events.snomedct_code == SNOMEDCTCode("123456")).exists_for_patient()
    with pytest.raises(TypeError):
        clinical_events.snomedct_code == CTV3Code("XaaaA")


# ---------------------------------------------------------------- a study run as written


def test_study_with_helper_modules_parameters_and_an_earlier_output(study):
    result = ehrfusion(
        "generate-dataset", "analysis/dataset_definition.py", "--test-data-file", "analysis/test_dataset_definition.py",
        "--dummy-tables", TABLES, "--output", "output/dataset.csv", *PARAMS, cwd=study,
    )
    assert result.returncode == 0, result.stderr
    # byte for byte: ehrQL's CSV has CRLF line ends, as Python's csv module writes
    assert (study / "output/dataset.csv").read_bytes() == (HELPERS / "expected/dataset.csv").read_bytes()
    # The assurance report is the only thing on stdout; the definition's print()
    # went to stderr, with sys.argv[0] the definition's path.
    assert result.stdout == "Validate test data: All OK!\nValidate results: All OK!\n"
    assert "running analysis/dataset_definition.py from 2014-01-01 for ['cardio', 'resp']" in result.stderr


def test_failing_assurance_tests_exit_13_with_ehrqls_report(study):
    result = ehrfusion("assure", "analysis/test_failing_dataset_definition.py", *PARAMS, cwd=study)
    assert result.returncode == 13, result.stderr
    assert (HELPERS / "expected/assure-failing.txt").read_text() in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: analysis/test_failing_dataset_definition.py: ")
    # and generate-dataset stops before writing anything
    result = ehrfusion(
        "generate-dataset", "analysis/dataset_definition.py", "--test-data-file", "analysis/test_failing_dataset_definition.py",
        "--dummy-tables", TABLES, "--output", "output/dataset.csv", *PARAMS, cwd=study,
    )
    assert result.returncode == 13
    assert not (study / "output/dataset.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".arrow", ".feather", ".parquet"])
def test_table_from_file_reads_every_format_in_the_engine(study, suffix):
    table = pa.table({"patient_id": [1, 2, 3], "sex": ["male", "female", None], "birth_year": [1950, 1960, 1970], "extra": ["x", "y", "z"]})
    write(table, study / f"output/cohort{suffix}")
    (study / "analysis/from_file.py").write_text(textwrap.dedent(f"""\
        from ehrql import create_dataset, table_from_file
        from ehrql.tables import PatientFrame, Series

        @table_from_file("output/cohort{suffix}")
        class cohort(PatientFrame):
            birth_year = Series(int)

        other = table_from_file("output/cohort{suffix}", columns={{"sex": str}})
        dataset = create_dataset()
        dataset.define_population(cohort.exists_for_patient())
        dataset.birth_year = cohort.birth_year
        dataset.sex = other.sex
    """))
    result = ehrfusion("generate-dataset", "analysis/from_file.py", "--output", "out.csv", cwd=study)
    assert result.returncode == 0, result.stderr
    assert (study / "out.csv").read_text() == "patient_id,birth_year,sex\n1,1950,male\n2,1960,female\n3,1970,\n"


def test_table_from_file_needs_its_declared_columns(study):
    (study / "output/cohort.csv").write_text("patient_id,sex\n1,male\n")
    (study / "analysis/from_file.py").write_text(textwrap.dedent("""\
        from ehrql import create_dataset, table_from_file
        cohort = table_from_file("output/cohort.csv", columns={"age": int})
        dataset = create_dataset()
        dataset.define_population(cohort.exists_for_patient())
    """))
    result = ehrfusion("generate-dataset", "analysis/from_file.py", "--output", "out.csv", cwd=study)
    assert result.returncode == 11
    assert "cohort.csv: missing column 'age'" in result.stderr
    assert not (study / "out.csv").exists()


# ---------------------------------------------------------------- definitions run as ehrQL runs them


def test_definition_environment(tmp_path):
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis/definition.py").write_text(textwrap.dedent("""\
        import sys
        from ehrql import create_dataset, get_parameter, show
        from ehrql.tables.core import patients
        assert __name__ == "definition", __name__
        assert sys.argv == ["analysis/definition.py", "--ages", "18", "65", "--flag", "true", "--name=x"], sys.argv
        assert get_parameter("ages", type=int) == [18, 65]
        assert get_parameter("flag", type=bool) is True
        assert get_parameter("name") == "x"
        assert get_parameter("missing", default=7) == 7
        print("to stderr")
        show(patients.sex)
        dataset = create_dataset()
        dataset.define_population(patients.exists_for_patient())
    """))
    result = ehrfusion("generate-dataset", "analysis/definition.py", "--dummy-tables", TABLES, "--output", "out.csv",
                       "--", "--ages", "18", "65", "--flag", "true", "--name=x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "to stderr" in result.stderr and "Show line 11:" in result.stderr


# ---------------------------------------------------------------- dummy tables with some columns


@pytest.mark.parametrize("suffix", [".csv", ".arrow", ".parquet"])
def test_dummy_tables_may_lack_columns_but_not_have_unknown_ones(tmp_path, suffix):
    tables = tmp_path / "dummy"
    tables.mkdir()
    events = pa.table({"patient_id": [1, 1, 2], "snomedct_code": ["123456", "234567", "123456"]})
    patients = pa.table({"patient_id": [1, 2], "sex": ["male", "female"]})
    for name, table in [("clinical_events", events), ("patients", patients)]:
        write(table, tables / f"{name}{suffix}")
    (tmp_path / "definition.py").write_text(textwrap.dedent("""\
        from ehrql import create_dataset
        from ehrql.tables.core import clinical_events, patients
        dataset = create_dataset()
        dataset.define_population(patients.exists_for_patient())
        dataset.sex = patients.sex
        dataset.n = clinical_events.where(clinical_events.snomedct_code == "123456").count_for_patient()
        dataset.latest = clinical_events.sort_by(clinical_events.date).last_for_patient().date
        dataset.born = patients.date_of_birth
    """))
    result = ehrfusion("generate-dataset", "definition.py", "--dummy-tables", tables, "--output", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.csv").read_text() == "patient_id,sex,n,latest,born\n1,male,1,,\n2,female,1,,\n"
    # --data is real data: every column must be there
    result = ehrfusion("generate-dataset", "definition.py", "--data", tables, "--output", "out2.csv", cwd=tmp_path)
    assert result.returncode == 11 and "missing column" in result.stderr
    # an unknown column is refused in dummy tables too
    bad = patients.append_column("height", pa.array([1.8, 1.6]))
    write(bad, tables / f"patients{suffix}")
    result = ehrfusion("generate-dataset", "definition.py", "--dummy-tables", tables, "--output", "out3.csv", cwd=tmp_path)
    assert result.returncode == 11 and "unknown column 'height'" in result.stderr


# ---------------------------------------------------------------- commands and exit codes


def test_other_ehrql_commands_are_answered_in_one_line(tmp_path):
    (tmp_path / "definition.py").write_text(textwrap.dedent("""\
        from ehrql import create_dataset
        from ehrql.tables.core import patients
        dataset = create_dataset()
        dataset.define_population(patients.exists_for_patient())
    """))
    result = ehrfusion("dump-dataset-sql", "definition.py", "--backend", "tpp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "TableScan: patients" in result.stdout and "not SQL" in result.stderr
    for command in ["graph-query", "test-connection", "dump-example-data"]:
        result = ehrfusion(command, "definition.py", cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "ehrfusion does not provide" in result.stderr


def test_categories_are_written_as_ehrql_writes_them(tmp_path):
    """An ordered dictionary holding every category in the schema's order, used or not."""
    (tmp_path / "definition.py").write_text(textwrap.dedent("""\
        from ehrql import create_dataset
        from ehrql.tables.core import patients
        dataset = create_dataset()
        dataset.define_population(patients.sex == "male")
        dataset.sex = patients.sex
    """))
    result = ehrfusion("generate-dataset", "definition.py", "--dummy-tables", TABLES, "--output", "out.arrow", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    column = pa.feather.read_table(tmp_path / "out.arrow").column("sex").combine_chunks()
    assert column.type == pa.dictionary(pa.int8(), pa.string(), ordered=True)
    assert column.dictionary.to_pylist() == ["female", "male", "intersex", "unknown"]
    assert set(column.to_pylist()) == {"male"}


def test_restricted_tables_need_their_permissions(tmp_path):
    """As in ehrQL: claimed permissions for dummy data, EHRQL_PERMISSIONS for real
    data, and exit status 12 without them. v0 tables were never restricted."""
    body = textwrap.dedent("""\
        from ehrql import create_dataset{claim_import}
        from ehrql.tables.tpp import appointments, patients
        {claim}
        dataset = create_dataset()
        dataset.define_population(patients.exists_for_patient())
        dataset.n = appointments.count_for_patient()
    """)
    (tmp_path / "unclaimed.py").write_text(body.format(claim_import="", claim=""))
    (tmp_path / "claimed.py").write_text(body.format(claim_import=", claim_permissions", claim='claim_permissions("appointments")'))
    result = ehrfusion("generate-dataset", "unclaimed.py", "--output", "out.csv", cwd=tmp_path)
    assert result.returncode == 12, result.stderr
    assert "appointments (required for access to the `tpp.appointments` table)" in result.stderr
    assert 'claim_permissions("appointments")' in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()
    result = ehrfusion("generate-dataset", "claimed.py", "--output", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # Real data: what was claimed does not count, what was granted does.
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_text("patient_id,date_of_birth,sex,date_of_death\n1,1980-01-01,male,\n")
    result = subprocess.run([BIN, "generate-dataset", "claimed.py", "--data", str(data), "--output", "real.csv"], cwd=tmp_path,
                            capture_output=True, text=True, env=dict(os.environ, EHRQL_PERMISSIONS="[]"))
    assert result.returncode == 12 and "contact OpenSAFELY support" in result.stderr
    (tmp_path / "v0.py").write_text(body.format(claim_import="", claim="").replace("ehrql.tables.tpp", "ehrql.tables.beta.tpp"))
    result = ehrfusion("generate-dataset", "v0.py", "--output", "v0.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
