"""Writes the bad-input catalogue, testdata/bad-inputs/<case>/ (run by
engine/tests/bad_inputs.rs; the folder layout is described there). Each case below
names its inputs, its command and the one-line error it must give; binary inputs
(parquet, Arrow) are made with pyarrow.

    python testdata/make_bad_inputs.py        # rewrites testdata/bad-inputs/
"""
import gzip
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.feather
import pyarrow.parquet as pq

HERE = Path(__file__).parent / "bad-inputs"

DEFINITION = """\
from ehrql import create_dataset
from ehrql.tables.core import clinical_events, patients

dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
dataset.sex = patients.sex
dataset.last_value = clinical_events.sort_by(clinical_events.date).last_for_patient().numeric_value
"""

PATIENTS = """\
patient_id,date_of_birth,sex,date_of_death
1,1959-01-01,male,
2,1949-04-01,female,2019-09-09
3,1990-07-01,unknown,
"""

EVENTS = """\
patient_id,date,snomedct_code,numeric_value
1,2015-05-26,38341003,14.0
2,2015-06-23,38341003,29.3
2,2016-01-02,271649006,
"""

RUN = "generate-dataset dataset_definition.py --data data --output OUT/dataset.csv"


def patients_table():
    return pa.table(
        {
            "patient_id": pa.array([1, 2, 3], pa.int64()),
            "date_of_birth": pa.array([pa.scalar(0, pa.date32()).as_py()] * 3, pa.date32()),
            "sex": pa.array(["male", "female", "unknown"]),
            "date_of_death": pa.array([None, None, None], pa.date32()),
        }
    )


def events_table():
    return pa.table(
        {
            "patient_id": pa.array([1, 2], pa.int64()),
            "date": pa.array([0, 1], pa.date32()),
            "snomedct_code": pa.array(["38341003", "271649006"]),
            "numeric_value": pa.array([1.0, None], pa.float64()),
        }
    )


def parquet_bytes(table):
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def arrow_bytes(table):
    sink = io.BytesIO()
    pyarrow.feather.write_feather(table, sink, compression="uncompressed")
    return sink.getvalue()


def replaced(table, name, array):
    return table.set_column(table.schema.get_field_index(name), name, array)


CASES = {}


def case(name, files, expected, command=RUN, setup=None, definition=DEFINITION, data=True):
    """A case: `files` maps paths to text or bytes (None removes a default file)."""
    inputs = {}
    if definition is not None:
        inputs["dataset_definition.py"] = definition
    if data:
        inputs["data/patients.csv"] = PATIENTS
        inputs["data/clinical_events.csv"] = EVENTS
    inputs.update(files)
    CASES[name] = (inputs, command, expected, setup)


def edit_line(text, number, line):
    """`text` with its line `number` (1-based) replaced."""
    lines = text.splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


def defined(*lines, imports="from ehrql import create_dataset, codelist_from_csv, days\nfrom ehrql.tables.core import clinical_events, medications, patients\n"):
    return imports + "\n" + "\n".join(lines) + "\n"


POPULATION = ["dataset = create_dataset()", "dataset.define_population(patients.exists_for_patient())"]

# ------------------------------------------------------------------ CSV tables
E = "exit 11"
case("csv-short-row", {"data/patients.csv": edit_line(PATIENTS, 3, "2,1949-04-01,female")}, [E, 'error: data/patients.csv: line 3: expected 4 fields, found 3'])
case("csv-long-row", {"data/patients.csv": edit_line(PATIENTS, 2, "1,1959-01-01,male,,extra")}, [E, 'error: data/patients.csv: line 2: expected 4 fields, found 5'])
case("csv-unclosed-quote", {"data/clinical_events.csv": EVENTS + '3,2017-01-01,"38341003,1.0\n'}, [E, 'error: data/clinical_events.csv: line 5: expected 4 fields, found 3 (a quoted field runs over several lines: is a quote not closed?)'])
case("csv-byte-order-mark", {"data/patients.csv": "\ufeff" + PATIENTS}, [E, 'error: data/patients.csv: line 1: the file starts with a byte-order mark (BOM); save it as UTF-8 without one'])
case("csv-latin-1", {"data/patients.csv": PATIENTS.replace("unknown", "unknown").encode() + "4,1990-07-01,m\u00e4le,\n".encode("latin-1")}, [E, "error: data/patients.csv: line 5, column 'sex': not valid UTF-8 text (save the file as UTF-8)"])
case("csv-patient-id-not-an-integer", {"data/clinical_events.csv": edit_line(EVENTS, 2, "one,2015-05-26,38341003,14.0")}, [E, "error: data/clinical_events.csv: line 2, column 'patient_id': 'one' is not an integer patient id"])
case("csv-patient-id-missing", {"data/clinical_events.csv": edit_line(EVENTS, 3, ",2015-06-23,38341003,29.3")}, [E, "error: data/clinical_events.csv: line 3, column 'patient_id': no value (every row needs a patient id)"])
case("csv-patient-id-too-large", {"data/clinical_events.csv": edit_line(EVENTS, 3, "99999999999999999999,2015-06-23,38341003,29.3")}, [E, "error: data/clinical_events.csv: line 3, column 'patient_id': '99999999999999999999' is not an integer patient id"])
case("csv-patient-id-fractional", {"data/clinical_events.csv": edit_line(EVENTS, 3, "2.5,2015-06-23,38341003,29.3")}, [E, "error: data/clinical_events.csv: line 3, column 'patient_id': '2.5' is not an integer patient id"])
case("csv-float-not-a-number", {"data/clinical_events.csv": edit_line(EVENTS, 2, "1,2015-05-26,38341003,high")}, [E, "error: data/clinical_events.csv: line 2, column 'numeric_value': 'high' is not a valid float"])
case("csv-float-comma-decimal", {"data/clinical_events.csv": edit_line(EVENTS, 2, '1,2015-05-26,38341003,"14,5"')}, [E, "error: data/clinical_events.csv: line 2, column 'numeric_value': '14,5' is not a valid float"])
case("csv-float-too-large", {"data/clinical_events.csv": edit_line(EVENTS, 3, "2,2015-06-23,38341003,1e400")}, [E, "error: data/clinical_events.csv: line 3, column 'numeric_value': '1e400' is not a valid float"])
case("csv-float-nan", {"data/clinical_events.csv": edit_line(EVENTS, 3, "2,2015-06-23,38341003,NaN")}, [E, "error: data/clinical_events.csv: line 3, column 'numeric_value': 'NaN' is not a valid float"])
case("csv-date-wrong-format", {"data/patients.csv": edit_line(PATIENTS, 2, "1,01/01/1959,male,")}, [E, "error: data/patients.csv: line 2, column 'date_of_birth': '01/01/1959' is not a valid date (YYYY-MM-DD)"])
case("csv-date-impossible", {"data/patients.csv": edit_line(PATIENTS, 3, "2,1949-02-30,female,2019-09-09")}, [E, "error: data/patients.csv: line 3, column 'date_of_birth': '1949-02-30' is not a valid date (YYYY-MM-DD)"])
case("csv-date-month-13", {"data/clinical_events.csv": edit_line(EVENTS, 4, "2,2016-13-02,271649006,")}, [E, "error: data/clinical_events.csv: line 4, column 'date': '2016-13-02' is not a valid date (YYYY-MM-DD)"])
case("csv-date-year-10000", {"data/clinical_events.csv": edit_line(EVENTS, 4, "2,10000-01-02,271649006,")}, [E, "error: data/clinical_events.csv: line 4, column 'date': '10000-01-02' is not a valid date (YYYY-MM-DD)"])
case("csv-date-with-time", {"data/clinical_events.csv": edit_line(EVENTS, 4, "2,2016-01-02T10:00:00,271649006,")}, [E, "error: data/clinical_events.csv: line 4, column 'date': '2016-01-02T10:00:00' is not a valid date (YYYY-MM-DD)"])
case("csv-category-outside", {"data/patients.csv": edit_line(PATIENTS, 4, "3,1990-07-01,M,")}, [E, "error: data/patients.csv: line 4, column 'sex': 'M' is not one of the column's categories ('female', 'male', 'intersex', 'unknown')"])
case("csv-not-null-missing", {"data/patients.csv": edit_line(PATIENTS, 4, "3,1990-07-01,,")}, [E, "error: data/patients.csv: line 4, column 'sex': no value, but the column may not be null"])
case("csv-duplicate-patient", {"data/patients.csv": PATIENTS + "2,1980-01-01,female,\n"}, [E, "error: data/patients.csv: line 5, column 'patient_id': patient 2 appears more than once in patient-level table 'patients'"])
case("csv-unknown-column", {"data/clinical_events.csv": "".join(l + (",colour\n" if i == 0 else ",red\n") for i, l in enumerate(EVENTS.splitlines()))}, [E, "error: data/clinical_events.csv: unknown column 'colour' (table 'clinical_events' has columns: patient_id, date, snomedct_code, numeric_value)"])
case("csv-missing-column", {"data/clinical_events.csv": "\n".join(l.rsplit(",", 1)[0] for l in EVENTS.splitlines()) + "\n"}, [E, "error: data/clinical_events.csv: missing column 'numeric_value' of table 'clinical_events'"])
case("csv-no-patient-id-column", {"data/clinical_events.csv": "\n".join(l.split(",", 1)[1] for l in EVENTS.splitlines()) + "\n"}, [E, "error: data/clinical_events.csv: missing column 'patient_id'"])
case("csv-duplicate-column", {"data/clinical_events.csv": EVENTS.replace("numeric_value\n", "date\n", 1)}, [E, "error: data/clinical_events.csv: line 1: column 'date' appears twice in the header"])
case("csv-empty-file", {"data/clinical_events.csv": ""}, [E, 'error: data/clinical_events.csv: the file is empty (expected a header row naming the columns)'])
case("csv-gz-corrupt", {"data/clinical_events.csv": None, "data/clinical_events.csv.gz": gzip.compress(EVENTS.encode(), mtime=0)[:-12]}, [E, 'error: data/clinical_events.csv.gz: cannot read: incomplete deflate stream'])
case("csv-gz-not-gzip", {"data/clinical_events.csv": None, "data/clinical_events.csv.gz": EVENTS}, [E, 'error: data/clinical_events.csv.gz: cannot read: invalid gzip header'])

# ------------------------------------------------------------------ table files
case("unknown-table-file", {"data/mystery.csv": "patient_id\n1\n"}, [E, "error: data/mystery.csv: unknown table 'mystery' (tables of this backend: clinical_events, medications, ons_deaths, ons_deaths_raw, patients, practice_registrations)"])
case("file-that-is-not-a-table", {"data/notes.txt": "hello\n"}, [E, 'error: data/notes.txt: not a table file (expected <table>.csv, .csv.gz, .parquet, .arrow or .feather)'])
case("missing-table-file", {"data/clinical_events.csv": None}, [E, "error: data: no file for table 'clinical_events', which the dataset uses (expected clinical_events.csv, .csv.gz, .parquet, .arrow or .feather)"])
case("table-in-two-files", {"data/patients.parquet": parquet_bytes(patients_table())}, [E, "error: data/patients.parquet: table 'patients' has more than one file or folder in data"])
case("data-directory-missing", {}, [E, 'error: no-such-dir: No such file or directory (os error 2)'], command="generate-dataset dataset_definition.py --data no-such-dir --output OUT/dataset.csv", data=False)
case("data-directory-is-a-file", {"data": "not a directory\n"}, [E, 'error: data: Not a directory (os error 20)'], data=False)

# ------------------------------------------------------------------ parquet and Arrow
def with_events(files):
    return {"data/clinical_events.csv": None, **files}


case("parquet-date-as-string", with_events({"data/clinical_events.parquet": parquet_bytes(replaced(events_table(), "date", pa.array(["2020-01-01", "2020-01-02"])))}), [E, "error: data/clinical_events.parquet: column 'date' has type Utf8, which cannot hold date values"])
case("parquet-code-as-integer", with_events({"data/clinical_events.parquet": parquet_bytes(replaced(events_table(), "snomedct_code", pa.array([38341003, 271649006], pa.int64())))}), [E, "error: data/clinical_events.parquet: column 'snomedct_code' has type Int64, which cannot hold SNOMEDCTCode values"])
case("parquet-float-as-string", with_events({"data/clinical_events.parquet": parquet_bytes(replaced(events_table(), "numeric_value", pa.array(["1.0", None])))}), [E, "error: data/clinical_events.parquet: column 'numeric_value' has type Utf8, which cannot hold float values"])
case("parquet-patient-id-as-string", with_events({"data/clinical_events.parquet": parquet_bytes(replaced(events_table(), "patient_id", pa.array(["1", "2"])))}), [E, "error: data/clinical_events.parquet: column 'patient_id' has type Utf8, which cannot hold int values"])
case("parquet-patient-id-null", with_events({"data/clinical_events.parquet": parquet_bytes(replaced(events_table(), "patient_id", pa.array([1, None], pa.int64())))}), [E, "error: data/clinical_events.parquet: column 'patient_id': patient_id must not be null"])
case("parquet-truncated", with_events({"data/clinical_events.parquet": parquet_bytes(events_table())[:-40]}), [E, 'error: data/clinical_events.parquet: not a readable parquet file: Parquet error: Invalid Parquet file. Corrupt footer'])
case("parquet-empty-file", with_events({"data/clinical_events.parquet": b""}), [E, 'error: data/clinical_events.parquet: not a readable parquet file: EOF: Parquet file too small. Size is 0 but need 8'])
case("parquet-not-parquet", with_events({"data/clinical_events.parquet": EVENTS}), [E, 'error: data/clinical_events.parquet: not a readable parquet file: Parquet error: Invalid Parquet file. Corrupt footer'])
case("parquet-unknown-column", with_events({"data/clinical_events.parquet": parquet_bytes(events_table().append_column("colour", pa.array(["red", "blue"])))}), [E, "error: data/clinical_events.parquet: unknown column 'colour' (table 'clinical_events' has no such column)"])
case("parquet-missing-column", with_events({"data/clinical_events.parquet": parquet_bytes(events_table().drop(["numeric_value"]))}), [E, "error: data/clinical_events.parquet: missing column 'numeric_value' of table 'clinical_events'"])
case("parquet-duplicate-patient", {"data/patients.csv": None, "data/patients.parquet": parquet_bytes(replaced(patients_table(), "patient_id", pa.array([1, 2, 1], pa.int64())))}, [E, "error: data/patients.parquet: row 3, column 'patient_id': patient 1 appears more than once in patient-level table 'patients'"])
case("parquet-category-outside", {"data/patients.csv": None, "data/patients.parquet": parquet_bytes(replaced(patients_table(), "sex", pa.array(["male", "F", "unknown"])))}, [E, "error: data/patients.parquet: row 2, column 'sex': 'F' is not one of the column's categories ('female', 'male', 'intersex', 'unknown')"])
case("parquet-not-null-missing", {"data/patients.csv": None, "data/patients.parquet": parquet_bytes(replaced(patients_table(), "sex", pa.array(["male", None, "unknown"])))}, [E, "error: data/patients.parquet: row 2, column 'sex': no value, but the column may not be null"])
case("arrow-truncated", with_events({"data/clinical_events.arrow": arrow_bytes(events_table())[:-30]}), [E, 'error: data/clinical_events.arrow: not an Arrow IPC file: Io error: failed to fill whole buffer'])
case("arrow-empty-file", with_events({"data/clinical_events.arrow": b""}), [E, 'error: data/clinical_events.arrow: not an Arrow IPC file: Ipc error: Expected schema message, found empty stream.'])
case("arrow-not-arrow", with_events({"data/clinical_events.arrow": EVENTS}), [E, 'error: data/clinical_events.arrow: not an Arrow IPC file: Io error: failed to fill whole buffer'])
case("arrow-float-as-string", with_events({"data/clinical_events.arrow": arrow_bytes(replaced(events_table(), "numeric_value", pa.array(["1.0", None])))}), [E, "error: data/clinical_events.arrow: column 'numeric_value' has type Utf8, which cannot hold float values"])
case("feather-category-outside", {"data/patients.csv": None, "data/patients.feather": arrow_bytes(replaced(patients_table(), "sex", pa.array(["male", "female", "X"])))}, [E, "error: data/patients.feather: row 3, column 'sex': 'X' is not one of the column's categories ('female', 'male', 'intersex', 'unknown')"])

# ------------------------------------------------------------------ definitions
case("definition-file-missing", {}, ["exit 10", 'error: no_such_definition.py: no such file'], command="generate-dataset no_such_definition.py --data data --output OUT/dataset.csv")
case("definition-syntax-error", {"dataset_definition.py": DEFINITION.replace("dataset.sex = patients.sex", "dataset.sex = = patients.sex")}, ["exit 10", 'error: dataset_definition.py, line 6: SyntaxError: invalid syntax'])
case("definition-name-error", {"dataset_definition.py": DEFINITION + "dataset.age = patients.age_on(index_date)\n"}, ["exit 10", "error: dataset_definition.py, line 8: NameError: name 'index_date' is not defined"])
case("definition-raises", {"dataset_definition.py": DEFINITION + "raise ValueError('no study period given')\n"}, ["exit 10", 'error: dataset_definition.py, line 8: ValueError: no study period given'])
case("definition-unknown-table", {"dataset_definition.py": DEFINITION.replace("clinical_events, patients", "clinical_events, patients, hospital_visits")}, ["exit 10", "error: dataset_definition.py, line 2: ImportError: cannot import name 'hospital_visits' from 'ehrql.tables.core'"])
case("definition-unknown-column", {"dataset_definition.py": DEFINITION + "dataset.colour = patients.eye_colour\n"}, ["exit 10", "error: dataset_definition.py, line 8: AttributeError: 'patients' has no column or method 'eye_colour' (columns: date_of_birth, sex, date_of_death)"])
case("definition-no-dataset", {"dataset_definition.py": defined("study = create_dataset()", "study.define_population(patients.exists_for_patient())")}, ["exit 10", "error: dataset_definition.py: Did not find a variable called 'dataset' in dataset definition file"])
case("definition-no-population", {"dataset_definition.py": defined("dataset = create_dataset()", "dataset.sex = patients.sex")}, ["exit 10", 'error: dataset_definition.py: Error: A population has not been defined; define one with define_population()'])
case("definition-population-not-boolean", {"dataset_definition.py": defined("dataset = create_dataset()", "dataset.define_population(patients.date_of_birth)")}, ["exit 10", 'error: dataset_definition.py, line 5: EhrQLTypeError: define_population() takes a boolean series (one value per patient)'])
case("definition-event-level-variable", {"dataset_definition.py": defined(*POPULATION, "dataset.event_date = clinical_events.date")}, ["exit 10", "error: dataset_definition.py, line 6: DomainError: Invalid value for 'event_date': it has many values per patient (from 'clinical_events'); reduce it to one per patient, e.g. with first_for_patient() or an aggregation such as count_for_patient()"])
case("definition-date-compared-with-integer", {"dataset_definition.py": defined(*POPULATION, "dataset.born_late = patients.date_of_birth > 1990")}, ["exit 10", "error: dataset_definition.py, line 6: EhrQLTypeError: Expected a date (a datetime.date or a 'YYYY-MM-DD' string), got 1990"])
case("definition-reserved-variable-name", {"dataset_definition.py": defined(*POPULATION, "dataset.patient_id = patients.sex")}, ["exit 10", "error: dataset_definition.py, line 6: Error: 'patient_id' is a reserved name and cannot be used as a variable name"])
case("definition-invalid-variable-name", {"dataset_definition.py": defined(*POPULATION, "setattr(dataset, '2nd_sex', patients.sex)")}, ["exit 10", "error: dataset_definition.py, line 6: Error: Invalid variable name '2nd_sex': names must start with a letter and contain only letters, digits and underscores"])
case("definition-variable-set-twice", {"dataset_definition.py": defined(*POPULATION, "dataset.sex = patients.sex", "dataset.sex = patients.sex")}, ["exit 10", "error: dataset_definition.py, line 7: Error: 'sex' is already set and cannot be reassigned"])
case("definition-tables-of-different-frames", {"dataset_definition.py": defined(*POPULATION, "dataset.n = clinical_events.where(clinical_events.date > medications.date).count_for_patient()")}, ["exit 10", "error: dataset_definition.py, line 6: DomainError: Cannot combine series drawn from different tables ('clinical_events' and 'medications')"])
case("definition-codelist-file-missing", {"dataset_definition.py": defined(*POPULATION, "codes = codelist_from_csv('codelists/asthma.csv', column='code')")}, ["exit 10", 'error: dataset_definition.py, line 6: CodelistError: No CSV file at codelists/asthma.csv'])
case("definition-codelist-column-missing", {"codelists/asthma.csv": "code,term\n195967001,Asthma\n", "dataset_definition.py": defined(*POPULATION, "codes = codelist_from_csv('codelists/asthma.csv', column='snomed')")}, ["exit 10", "error: dataset_definition.py, line 6: CodelistError: No column 'snomed' in CSV"])
case("definition-code-of-the-wrong-system", {"dataset_definition.py": defined(*POPULATION, "dataset.n = clinical_events.where(clinical_events.snomedct_code.is_in(['E10'])).count_for_patient()")}, ["exit 10", "error: dataset_definition.py, line 6: EhrQLTypeError: Invalid SNOMEDCTCode: 'E10'"])
case("definition-sum-of-strings", {"dataset_definition.py": defined(*POPULATION, "dataset.s = clinical_events.snomedct_code.sum_for_patient()")}, ["exit 10", "error: dataset_definition.py, line 6: AttributeError: 'CodeEventSeries' object has no attribute 'sum_for_patient'"])
case("definition-days-of-a-string", {"dataset_definition.py": defined(*POPULATION, "dataset.d = patients.date_of_birth + days('ten')")}, ["exit 10", "error: dataset_definition.py, line 6: EhrQLTypeError: days() takes an int or an int series, not 'ten'"])
case("definition-wrong-file-type", {"dataset_definition.txt": DEFINITION}, ["exit 10", 'error: dataset_definition.txt: not a definition file (expected an ehrQL definition, .py, or a JSON query model, .json)'], command="generate-dataset dataset_definition.txt --data data --output OUT/dataset.csv")
case("definition-json-malformed", {"definition.json": '{"nodes": [\n'}, ["exit 10", 'error: definition.json: invalid JSON: EOF while parsing a list at line 2 column 0'], command="generate-dataset definition.json --data data --output OUT/dataset.csv")
case("definition-reads-a-missing-file", {"dataset_definition.py": "open('output/earlier.csv').read()\n" + DEFINITION}, ["exit 10", "error: dataset_definition.py, line 1: FileNotFoundError: [Errno 2] No such file or directory: 'output/earlier.csv'"])
case("definition-helper-module-missing", {"dataset_definition.py": "from analysis_helpers import INDEX_DATE\n" + DEFINITION}, ["exit 10", "error: dataset_definition.py, line 1: ModuleNotFoundError: No module named 'analysis_helpers'"])

MEASURES = """\
from ehrql import create_measures, months
from ehrql.tables.core import clinical_events, patients

measures = create_measures()
events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
"""
MEASURES_RUN = "generate-measures measure_definition.py --data data --output OUT/measures.csv"
case("measures-event-level-numerator", {"measure_definition.py": MEASURES.replace("months", "months, INTERVAL") + "measures.define_measure('m', numerator=events.date, denominator=patients.exists_for_patient(), intervals=months(2).starting_on('2015-01-01'))\n"}, ["exit 10", 'error: measure_definition.py, line 6: TypeError: invalid numerator: Expecting a series with only one value per patient'], command=MEASURES_RUN)
case("measures-float-numerator", {"measure_definition.py": MEASURES.replace("months", "months, INTERVAL") + "measures.define_measure('m', numerator=events.numeric_value.sum_for_patient(), denominator=patients.exists_for_patient(), intervals=months(2).starting_on('2015-01-01'))\n"}, ["exit 10", "error: measure_definition.py, line 6: TypeError: invalid numerator: Expecting a boolean or integer series, got series of type 'float'"], command=MEASURES_RUN)
case("measures-no-intervals", {"measure_definition.py": MEASURES.replace("months", "months, INTERVAL") + "measures.define_measure('m', numerator=events.exists_for_patient(), denominator=patients.exists_for_patient())\n"}, ["exit 10", "error: measure_definition.py, line 6: Error: No value supplied for 'intervals' and no default defined"], command=MEASURES_RUN)
case("measures-no-measures-variable", {"measure_definition.py": MEASURES.replace("months", "months, INTERVAL").replace("measures = create_measures()", "m = create_measures()")}, ["exit 10", "error: measure_definition.py: Did not find a variable called 'measures' in measures definition file"], command=MEASURES_RUN)

# ------------------------------------------------------------------ outputs
case("output-unknown-extension", {}, ["exit 2", 'error: --output OUT/dataset.xlsx: the file extension must be .csv, .csv.gz, .arrow, .feather or .parquet (or use DIR:FORMAT for a directory)'], command="generate-dataset dataset_definition.py --data data --output OUT/dataset.xlsx")
case("output-under-a-file", {}, ["exit 1", 'error: dataset_definition.py: cannot write the output there: it is a file, not a directory'], command="generate-dataset dataset_definition.py --data data --output dataset_definition.py/dataset.csv")
case("output-kept-when-data-is-bad", {"data/patients.csv": edit_line(PATIENTS, 2, "1,1959-01-01,male,,extra")}, [E, 'error: data/patients.csv: line 2: expected 4 fields, found 5'], setup=["existing-output dataset.csv"])
for fmt in ["csv", "csv.gz", "arrow", "parquet"]:
    case(
        f"output-disk-full-{fmt.replace('.', '-')}",
        {},
        ["exit 1", f"error: OUT/dataset.{fmt}: cannot write: File too large (os error 27)"],
        command=f"generate-dataset dataset_definition.py --data data --output OUT/dataset.{fmt}",
        setup=["dummy-tables 20000 data", "file-size-limit 4096", f"existing-output dataset.{fmt}"],
        data=False,
    )
for signal in ["SIGINT", "SIGTERM", "SIGKILL"]:
    case(
        f"interrupted-by-{signal.lower()}",
        {},
        ["signal"],
        command="generate-dataset dataset_definition.py --data data --output OUT/dataset.csv",
        setup=["dummy-tables 300000 data", f"kill-while-writing {signal}"],
        data=False,
    )

# ------------------------------------------------------------------ dummy data files
case("dummy-data-file-missing-column", {"dummy.csv": "patient_id,sex\n1,male\n"}, [E, "error: dummy.csv: missing column 'last_value' of table 'dataset'"], command="generate-dataset dataset_definition.py --dummy-data-file dummy.csv --output OUT/dataset.csv", data=False)
case("dummy-data-file-bad-value", {"dummy.csv": "patient_id,sex,last_value\n1,male,lots\n"}, [E, "error: dummy.csv: line 2, column 'last_value': 'lots' is not a valid float"], command="generate-dataset dataset_definition.py --dummy-data-file dummy.csv --output OUT/dataset.csv", data=False)
case("dummy-data-file-missing", {}, [E, 'error: dummy.csv: no such file'], command="generate-dataset dataset_definition.py --dummy-data-file dummy.csv --output OUT/dataset.csv", data=False)


def write(name, inputs, command, expected, setup):
    folder = HERE / name
    for path, content in inputs.items():
        if content is None:
            continue
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "command").write_text(command + "\n")
    (folder / "expected").write_text("\n".join(line for line in expected if line) + "\n")
    if setup:
        (folder / "setup").write_text("\n".join(setup) + "\n")


def main():
    for child in HERE.glob("*"):
        if child.is_dir():
            shutil.rmtree(child)
    HERE.mkdir(exist_ok=True)
    for name, spec in CASES.items():
        write(name, *spec)
    print(f"{len(CASES)} cases in {HERE}")


if __name__ == "__main__":
    main()
