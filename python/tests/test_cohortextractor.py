"""cohort-extractor study definitions through `ehrfusion cohortextractor
generate_cohort`, over hand-made TPP tables whose expected outputs follow the TPP
backend's semantics (tpp_backend.py): registrations current when they end *after*
the date, flags 1/0, missing values 0 or empty, dates cut to their format (the year
alone by default), periods including both ends, date expressions over columns."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.feather as feather
import pytest

BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))
pytestmark = pytest.mark.skipif(not Path(BIN).exists(), reason="the ehrfusion binary is not built (set EHRFUSION_BIN)")

TABLES = {
    "patients.csv": """\
patient_id,date_of_birth,sex,date_of_death
1,1980-05-01,female,
2,2010-01-01,male,
3,1950-01-01,male,2019-12-01
4,1990-01-01,female,
5,2000-03-01,intersex,
""",
    "practice_registrations.csv": """\
patient_id,start_date,end_date,practice_pseudo_id,practice_stp,practice_nuts1_region_name,practice_systmone_go_live_date
1,2015-01-01,,11,E1,London,
1,2019-01-01,2020-06-01,12,E2,London,
2,2019-05-01,2020-03-02,21,E3,East,
3,2000-01-01,,31,E4,East,
4,2010-01-01,2020-03-01,41,E4,East,
5,2020-03-01,,51,E5,North East,
""",
    "ons_deaths.csv": "patient_id,date,underlying_cause_of_death,"
    + ",".join(f"cause_of_death_{i:02d}" for i in range(1, 16))
    + ",place\n3,2019-12-01,I21," + "," * 14 + ",Home\n",
    "clinical_events.csv": """\
patient_id,date,snomedct_code,ctv3_code,numeric_value,consultation_id
1,2015-06-10,,H33..,,1
1,2019-07-01,,H330.,,2
1,2020-04-01,,H33..,,3
1,2019-07-15,,2469.,120.0,4
1,2020-02-10,,2469.,130.5,5
2,2020-01-05,,2469.,,6
5,2019-03-01,,H33..,,7
5,2020-03-01,,H33..,,8
""",
}

STUDY = '''\
from cohortextractor import StudyDefinition, patients, codelist

asthma = codelist(["H33..", "H330."], system="ctv3")
bp = codelist(["2469."], system="ctv3")

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}},
    population=patients.satisfying(
        "registered AND NOT died",
        registered=patients.registered_as_of("index_date"),
        died=patients.died_from_any_cause(on_or_before="index_date"),
    ),
    sex=patients.sex(),
    age=patients.age_as_of("index_date"),
    asthma=patients.with_these_clinical_events(asthma, on_or_before="index_date", include_date_of_match=True, date_format="YYYY-MM-DD"),
    asthma_first=patients.with_these_clinical_events(asthma, returning="date", find_first_match_in_period=True),
    asthma_count=patients.with_these_clinical_events(asthma, between=["index_date - 1 year", "index_date"], returning="number_of_matches_in_period"),
    bp=patients.with_these_clinical_events(bp, returning="numeric_value", find_last_match_in_period=True, include_date_of_match=True, date_format="YYYY-MM"),
    stp=patients.registered_practice_as_of("index_date", returning="stp_code"),
    band=patients.categorised_as({"0-17": "age < 18", "18+": "age >= 18", "missing": "DEFAULT"}),
    bp_after_asthma=patients.with_these_clinical_events(bp, on_or_after="asthma_date + 1 month", returning="binary_flag"),
    last_asthma_code=patients.with_these_clinical_events(asthma, returning="code"),
    asthma_kind=patients.with_these_clinical_events(
        codelist([("H33..", "a"), ("H330.", "b")], system="ctv3"), on_or_before="index_date", returning="category"
    ),
    bp_mean=patients.mean_recorded_value(bp, on_most_recent_day_of_measurement=True, on_or_before="index_date"),
)
'''

EXPECTED = """\
patient_id,sex,age,asthma,asthma_date,asthma_first,asthma_count,bp,bp_date,stp,band,bp_after_asthma,last_asthma_code,asthma_kind,bp_mean
1,F,39,1,2019-07-01,2015,1,130.5,2020-02,E2,18+,1,H33..,b,130.5
2,M,10,0,,,0,0.0,2020-01,E3,0-17,0,,,0.0
5,I,20,1,2020-03-01,2019,2,0.0,,E5,18+,0,H33..,a,0.0
"""


def make_study(tmp_path, study=STUDY, name="study_definition"):
    (tmp_path / "analysis").mkdir(exist_ok=True)
    (tmp_path / "codelists").mkdir(exist_ok=True)
    (tmp_path / "analysis" / f"{name}.py").write_text(study)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for file, text in TABLES.items():
        (data / file).write_text(text)
    return tmp_path


def generate(cwd, *args):
    return subprocess.run([BIN, "cohortextractor", "generate_cohort", *args], cwd=cwd, capture_output=True, text=True)


def test_tpp_semantics_over_known_tables(tmp_path):
    study = make_study(tmp_path)
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # Python's csv module ends lines with CRLF, as cohort-extractor's files do.
    assert (study / "output" / "input.csv").read_bytes() == EXPECTED.replace("\n", "\r\n").encode()


def test_index_date_range_names_one_file_per_date_and_skips_existing(tmp_path):
    study = make_study(tmp_path)
    out = study / "output" / "data"
    out.mkdir(parents=True)
    (out / "input_2020-02-01.csv").write_text("kept\n")
    run = generate(study, "--data", "data", "--index-date-range", "2020-01-01 to 2020-03-01 by month", "--output-dir=output/data", "--skip-existing")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["input_2020-01-01.csv", "input_2020-02-01.csv", "input_2020-03-01.csv"]
    assert (out / "input_2020-02-01.csv").read_text() == "kept\n"
    assert (out / "input_2020-03-01.csv").read_bytes() == EXPECTED.replace("\n", "\r\n").encode()
    # On 2020-01-01 patient 5 is not yet registered, and patient 3 (died 2019-12-01) is dead.
    ids = [line.split(",")[0] for line in (out / "input_2020-01-01.csv").read_text().splitlines()[1:]]
    assert ids == ["1", "2", "4"]


ONE_PASS_STUDY = STUDY.replace(
    "    sex=patients.sex(),\n",
    """    sex=patients.sex(),
    bp_before_feb=patients.with_these_clinical_events(bp, on_or_before="2020-02-01", returning="date", date_format="YYYY-MM-DD"),
    asthma_this_month=patients.with_these_clinical_events(asthma, between=["first_day_of_month(index_date)", "last_day_of_month(index_date)"]),
""",
)


@pytest.mark.parametrize("dates", ["2019-11-01 to 2020-04-01 by month", "2020-01-06 to 2020-03-30 by week"])
@pytest.mark.parametrize("format", ["csv", "feather"])
def test_index_date_range_in_one_pass_writes_what_each_date_alone_writes(tmp_path, dates, format):
    # On 2020-02-01 the index date equals the study's fixed date, so that date's
    # model has another shape and runs on its own; the rest run as one pass.
    study = make_study(tmp_path, ONE_PASS_STUDY)
    for source in (["--data", "data"], ["--expectations-population", "300", "--dummy-data", "consistent"]):
        outputs = {}
        for mode in ("one", "per"):
            extra = ["--per-date"] if mode == "per" else []
            run = generate(study, *source, "--index-date-range", dates, f"--output-dir=output/{mode}", f"--output-format={format}", *extra)
            assert run.returncode == 0, run.stderr
            assert ("in one pass" in run.stderr) == (mode == "one")
            outputs[mode] = {p.name: p.read_bytes() for p in sorted((study / "output" / mode).iterdir())}
        assert len(outputs["one"]) == (6 if "month" in dates else 13)
        assert outputs["one"] == outputs["per"]
        if source[0] == "--data":
            continue
        # Dummy data is the same for both runs, and each date has its own rows.
        assert len(set(outputs["one"].values())) == len(outputs["one"])


def test_feather_has_pandas_types(tmp_path):
    study = make_study(tmp_path)
    run = generate(study, "--data", "data", "--output-format", "feather")
    assert run.returncode == 0, run.stderr
    table = feather.read_table(study / "output" / "input.feather")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["asthma"] == "bool"
    assert types["age"] == "int64"
    assert types["bp"] == "double"
    assert types["asthma_date"] == "timestamp[ns]"
    assert types["sex"] == "dictionary<values=string, indices=int8, ordered=0>"
    rows = table.to_pylist()
    assert [r["asthma_first"].year if r["asthma_first"] else None for r in rows] == [2015, None, 2019]
    # Categories in order of first appearance; the empty value is missing.
    assert table.column("sex").chunk(0).dictionary.to_pylist() == ["F", "M", "I"]
    assert [r["bp_date"] for r in rows][2] is None


def untimed(data):
    """A Stata file's bytes without its header's time stamp (the minute it was written)."""
    at = data.index(b"<timestamp>") + len(b"<timestamp>")
    return data[:at] + data[at + 18 :]


def pandas_stata(feather_path, target):
    """What cohort-extractor's dataframe_to_file writes for the frame in a feather
    file: categories back to plain values, dates as %td, Stata 118."""
    import pandas

    df = pandas.read_feather(feather_path)
    for column, dtype in list(df.dtypes.items()):
        if dtype.name == "category":
            df[column] = df[column].__array__()
    dates = {c: "td" for c, t in df.dtypes.items() if t.name.startswith("datetime64")}
    df.to_stata(target, version=118, write_index=False, convert_dates=dates)
    return Path(target).read_bytes()


@pytest.mark.parametrize("dummy", ["tables", "expectations"])
def test_stata_files_are_what_pandas_writes(tmp_path, dummy):
    import gzip

    import pandas

    study = make_study(tmp_path, STUDY if dummy == "tables" else EXPECTATIONS_STUDY)
    for fmt in ("feather", "dta", "dta.gz"):
        given = ("--data", "data") if dummy == "tables" else ("--expectations-population", "200")
        run = generate(study, *given, "--output-format", fmt)
        assert run.returncode == 0, run.stderr
    out = study / "output"
    ours = (out / "input.dta").read_bytes()
    assert ours.startswith(b"<stata_dta><header><release>118</release><byteorder>LSF</byteorder>")
    assert untimed(ours) == untimed(pandas_stata(out / "input.feather", tmp_path / "pandas.dta"))
    assert untimed(gzip.decompress((out / "input.dta.gz").read_bytes())) == untimed(ours)
    # Read back, the values are the feather's: flags as 0/1 bytes, missing text empty.
    back = pandas.read_stata(out / "input.dta")
    frame = pandas.read_feather(out / "input.feather")
    assert list(back.columns) == list(frame.columns) and str(back["patient_id"].dtype) == "int32"
    for column in frame.columns:
        theirs = frame[column]
        if theirs.dtype.name == "category":
            theirs = theirs.astype(object).where(theirs.notna(), "")
        elif theirs.dtype == bool:
            assert str(back[column].dtype) == "int8"
            theirs = theirs.astype("int8")
        assert back[column].tolist() == theirs.tolist() or back[column].equals(theirs), column
    if dummy == "tables":
        assert back["asthma"].tolist() == [1, 0, 1] and back["sex"].tolist() == ["F", "M", "I"]
        assert back["bp"].tolist() == [130.5, 0.0, 0.0] and back["asthma_date"].isna().tolist() == [False, True, False]


@pytest.mark.filterwarnings("ignore:Not all pandas column names")
def test_stata_names_follow_pandas_renaming(tmp_path):
    long_name = "asthma_count_in_the_year_before_the_index_date"
    study = make_study(tmp_path, STUDY.replace("asthma_count=", f"{long_name}=").replace("    age=patients", "    int=patients").replace('"age ', '"int '))
    for fmt in ("feather", "dta"):
        run = generate(study, "--data", "data", "--output-format", fmt)
        assert run.returncode == 0, run.stderr
    ours = (study / "output" / "input.dta").read_bytes()
    assert untimed(ours) == untimed(pandas_stata(study / "output" / "input.feather", tmp_path / "pandas.dta"))
    assert b"_int\0" in ours and long_name[:32].encode() + b"\0" in ours and long_name.encode() not in ours


def test_output_file_and_params(tmp_path):
    study = make_study(tmp_path, STUDY.replace('index_date="2020-03-01"', 'index_date=params["date"]').replace("from cohortextractor import", "from cohortextractor import params,"))
    run = generate(study, "--data", "data", "--output-file", "output/cohort.csv.gz", "--param", "date=2020-03-01")
    assert run.returncode == 0, run.stderr
    import gzip

    assert gzip.decompress((study / "output" / "cohort.csv.gz").read_bytes()) == EXPECTED.replace("\n", "\r\n").encode()
    # The words of one --param are joined, as cohort-extractor joins them.
    spaced = generate(study, "--data", "data", "--output-file", "output/spaced.csv.gz", "--param", "date", "=", "2020-03-01", "--skip-existing")
    assert spaced.returncode == 0, spaced.stderr
    assert gzip.decompress((study / "output" / "spaced.csv.gz").read_bytes()) == EXPECTED.replace("\n", "\r\n").encode()
    # argparse takes a word holding a space and naming no option as a value, so a
    # misspelt date range after `--param k=` (as a real project.yaml has it) is part
    # of that parameter, and the study runs for its one index date.
    definition = study / "analysis" / "study_definition.py"
    definition.write_text(definition.read_text() + '\nassert params["note"] == "--index-date_range=2020-01-01 to 2020-02-01 by month", params\n')
    misspelt = generate(study, "--data", "data", "--param", "date=2020-03-01", "--param", "note=", "--index-date_range=2020-01-01 to 2020-02-01 by month", "--output-file", "output/misspelt.csv")
    assert misspelt.returncode == 0, misspelt.stderr
    assert (study / "output" / "misspelt.csv").read_text().replace("\r\n", "\n") == EXPECTED
    # A word without a space is an option still, and an unknown one is refused.
    unknown = generate(study, "--data", "data", "--param", "date=2020-03-01", "--param", "note=", "--index-date_range=2020-01-01", "--output-file", "output/unknown.csv")
    assert unknown.returncode == 2 and "--index-date_range" in unknown.stderr, unknown.stderr


def test_the_study_folders_must_exist(tmp_path):
    # As cohort-extractor's preflight check: the platform fails a study without them.
    study = make_study(tmp_path)
    (study / "codelists").rmdir()
    for args in (["generate_cohort", "--expectations-population", "10"], ["generate_measures"]):
        run = subprocess.run([BIN, "cohortextractor", *args], cwd=study, capture_output=True, text=True)
        assert run.returncode == 2 and "This command expects the following relative paths to exist: codelists/" in run.stderr, run.stderr
        assert not (study / "output").exists()


@pytest.mark.parametrize(
    "change, line, message",
    [
        (("age >= 18", "agee >= 18"), 6, "Unknown column: agee"),
        (("sex=patients.sex(),", "sex=patients.admitted_to_icu(),"), 6, "patients.admitted_to_icu(): the TPP tables ehrfusion reads (ehrQL's) have no ICNARC intensive care table"),
        (("\"index_date - 1 year\"", "\"index_date - 1 fortnight\""), 6, "Unknown date unit 'fortnight'"),
        (("registered AND NOT died", "registered AND NOT"), 6, "Invalid SQL expression"),
    ],
)
def test_broken_definitions_give_one_line_naming_the_file(tmp_path, change, line, message):
    study = make_study(tmp_path, STUDY.replace(*change))
    run = generate(study, "--data", "data")
    assert run.returncode == 10, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Generating cohort"), run.stderr
    assert lines[1].startswith(f"error: analysis/study_definition.py, line {line}: ") and message in lines[1], lines[1]
    assert not (study / "output" / "input.csv").exists()


def test_usage_errors(tmp_path):
    study = make_study(tmp_path)
    missing = generate(study)
    assert missing.returncode == 2 and "--expectations-population --dummy-data-file --data is required" in missing.stderr
    unknown = generate(study, "--data", "data", "--study-definition", "study_definition_other")
    assert unknown.returncode == 2 and "invalid choice 'study_definition_other'" in unknown.stderr
    dta = generate(study, "--data", "data", "--output-format", "sav")
    assert dta.returncode == 2 and "invalid choice 'sav'" in dta.stderr


def test_query_consistent_dummy_tables(tmp_path):
    study = make_study(tmp_path)
    run = generate(study, "--expectations-population", "50", "--dummy-data", "consistent")
    assert run.returncode == 0, run.stderr
    lines = (study / "output" / "input.csv").read_text().splitlines()
    assert lines[0] == EXPECTED.splitlines()[0]
    assert len(lines) == 51
    for line in lines[1:]:
        values = dict(zip(lines[0].split(","), line.split(",")))
        assert values["asthma"] in ("0", "1") and values["sex"] in ("M", "F", "I", "U")
        assert (values["band"] == "18+") == (int(values["age"]) >= 18)


MEASURES_STUDY = '''\
from cohortextractor import StudyDefinition, Measure, patients

study = StudyDefinition(
    index_date="2020-01-01",
    population=patients.all(),
    region=patients.registered_practice_as_of("index_date", returning="nuts1_region_name"),
    sex=patients.sex(),
    flu=patients.with_tpp_vaccination_record(target_disease_matches="INFLUENZA", on_or_before="index_date"),
)

measures = [
    Measure(id="flu_by_region", numerator="flu", denominator="population", group_by=["region"], small_number_suppression=True),
    Measure(id="flu_by_region_sex", numerator="flu", denominator="population", group_by=["region", "sex"]),
    Measure(id="flu_all", numerator="flu", denominator="population", group_by="population"),
]
'''

def measures_study(tmp_path, study):
    """A study folder with `study` as its definition: its empty output folder."""
    (tmp_path / "analysis").mkdir()
    (tmp_path / "codelists").mkdir()
    (tmp_path / "analysis" / "study_definition.py").write_text(study)
    out = tmp_path / "output"
    out.mkdir()
    return out


# What the reference cohort-extractor's generate_measures wrote for these cohort files.
REFERENCE_BY_REGION = """\
region,flu,population,value,date
,,,,2020-01-01
East,,7.0,,2020-01-01
London,8.0,20.0,0.4,2020-01-01
North East,,7.0,,2020-01-01
South West,,,,2020-01-01
,,,,2020-02-01
East,,,,2020-02-01
London,6.0,15.0,0.4,2020-02-01
North East,,,,2020-02-01
"""
REFERENCE_BY_REGION_SEX_FEB = """\
region,sex,flu,population,value
,F,1.0,3,0.3333333333333333
,M,1.0,2,0.5
East,F,1.0,3,0.3333333333333333
East,M,1.0,2,0.5
London,F,4.0,9,0.4444444444444444
London,M,2.0,6,0.3333333333333333
North East,F,2.0,3,0.6666666666666666
North East,M,1.0,2,0.5
"""
REFERENCE_BY_REGION_SEX_JAN_TAIL = "South West,F,1.0,1,1.0\nSouth West,M,0.0,0,\n"
REFERENCE_ALL = "flu,population,value,date\r\n18.0,41,0.43902439024390244,2020-01-01\r\n13.0,30,0.43333333333333335,2020-02-01\r\n"


def test_generate_measures_matches_the_reference(tmp_path):
    out = measures_study(tmp_path, MEASURES_STUDY)
    regions = ["London", "London", "London", "East", "North East", ""]
    rows = [f"{pid},{regions[pid * 7 % 6]},{'FM'[pid * 3 % 5 % 2]},{1 if pid * 11 % 7 < 3 else 0}" for pid in range(1, 41)] + ["41,South West,F,1"]
    for i, date in enumerate(("2020-01-01", "2020-02-01")):
        body = rows if i == 0 else rows[:30]
        (out / f"input_{date}.csv").write_bytes(("patient_id,region,sex,flu\r\n" + "".join(r + "\r\n" for r in body)).encode())
    run = subprocess.run([BIN, "cohortextractor", "generate_measures"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # Combined files come from Python's csv module (CRLF); per-date files from pandas ("\n").
    assert (out / "measure_flu_by_region.csv").read_bytes() == REFERENCE_BY_REGION.replace("\n", "\r\n").encode()
    assert (out / "measure_flu_by_region_sex_2020-02-01.csv").read_bytes() == REFERENCE_BY_REGION_SEX_FEB.encode()
    # Every combination of the categories is a row, even one nobody is in.
    assert (out / "measure_flu_by_region_sex_2020-01-01.csv").read_text().endswith(REFERENCE_BY_REGION_SEX_JAN_TAIL)
    assert (out / "measure_flu_all.csv").read_bytes() == REFERENCE_ALL.encode()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("measure_")) == sorted(
        f"measure_{m}{d}.csv" for m in ("flu_by_region", "flu_by_region_sex", "flu_all") for d in ("", "_2020-01-01", "_2020-02-01")
    )


# The reference's generate_measures over the same cohorts as Stata files (written by
# pandas as cohort-extractor writes them): text is plain, not categorical, so the
# empty region is a group and only combinations that occur are rows; flags are
# 0/1 bytes, so the counts are integers.
REFERENCE_DTA_BY_REGION_SEX_FEB = """\
region,sex,flu,population,value
,F,1,3,0.3333333333333333
,M,1,2,0.5
East,F,1,3,0.3333333333333333
East,M,1,2,0.5
London,F,4,9,0.4444444444444444
London,M,2,6,0.3333333333333333
North East,F,2,3,0.6666666666666666
North East,M,1,2,0.5
"""
# Its suppressed combined file, though, is the one it wrote from the csv files.
REFERENCE_DTA_BY_REGION = REFERENCE_BY_REGION
REFERENCE_DTA_ALL = "flu,population,value,date\r\n18,41,0.43902439024390244,2020-01-01\r\n13,30,0.43333333333333335,2020-02-01\r\n"


@pytest.mark.parametrize("fmt", ["dta", "dta.gz"])
def test_generate_measures_reads_stata_files_as_the_reference_does(tmp_path, fmt):
    import pandas

    out = measures_study(tmp_path, MEASURES_STUDY)
    regions = ["London", "London", "London", "East", "North East", None]
    rows = [(pid, regions[pid * 7 % 6], "FM"[pid * 3 % 5 % 2], pid * 11 % 7 < 3) for pid in range(1, 41)] + [(41, "South West", "F", True)]
    for i, date in enumerate(("2020-01-01", "2020-02-01")):
        frame = pandas.DataFrame(rows if i == 0 else rows[:30], columns=["patient_id", "region", "sex", "flu"])
        frame.to_stata(out / f"input_{date}.{fmt}", version=118, write_index=False)
    run = subprocess.run([BIN, "cohortextractor", "generate_measures"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (out / "measure_flu_by_region_sex_2020-02-01.csv").read_text() == REFERENCE_DTA_BY_REGION_SEX_FEB
    assert (out / "measure_flu_by_region.csv").read_bytes() == REFERENCE_DTA_BY_REGION.replace("\n", "\r\n").encode()
    assert (out / "measure_flu_all.csv").read_bytes() == REFERENCE_DTA_ALL.encode()


def test_measures_without_group_by_keep_flags_as_pandas_writes_them(tmp_path):
    import pandas

    study = MEASURES_STUDY.replace(
        "measures = [",
        'measures = [\n    Measure(id="each", numerator="flu", denominator="population"),\n'
        '    Measure(id="each_suppressed", numerator="flu", denominator="population", small_number_suppression=True),',
    )
    out = measures_study(tmp_path, study)
    flu = [pid * 11 % 7 < 3 for pid in range(1, 12)]
    frame = pandas.DataFrame({"patient_id": range(1, 12), "region": pandas.Categorical(["London"] * 11), "sex": pandas.Categorical(["F"] * 11), "flu": flu})
    frame.to_feather(out / "input_2020-01-01.feather")
    run = subprocess.run([BIN, "cohortextractor", "generate_measures"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # As the reference writes them: one row per patient, flags as pandas bools; a
    # suppressed count is empty beside the flags it leaves.
    expected = "".join(f"{f},1,{float(f)}\n" for f in flu)
    assert (out / "measure_each_2020-01-01.csv").read_text() == "flu,population,value\n" + expected
    suppressed = "".join("False,,\n" if not f else ",,\n" for f in flu)
    assert (out / "measure_each_suppressed_2020-01-01.csv").read_text() == "flu,population,value\n" + suppressed


def test_hospital_admissions_care_homes_and_files(tmp_path):
    study = make_study(tmp_path, '''\
from cohortextractor import StudyDefinition, patients, codelist

mi = codelist(["I21", "I22"], system="icd10")
study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    first_admission=patients.admitted_to_hospital(on_or_before="index_date", returning="date_admitted", date_format="YYYY-MM-DD", find_first_match_in_period=True),
    mi_any=patients.admitted_to_hospital(with_these_diagnoses=mi, returning="binary_flag"),
    mi_primary=patients.admitted_to_hospital(with_these_primary_diagnoses=mi, returning="primary_diagnosis"),
    emergencies=patients.admitted_to_hospital(with_admission_method=["21", "22"], returning="number_of_matches_in_period"),
    care_home=patients.care_home_status_as_of("index_date", categorised_as={"nursing": "IsPotentialCareHome AND LocationRequiresNursing = 'Y'", "other": "IsPotentialCareHome", "none": "DEFAULT"}),
    listed=patients.which_exist_in_file("analysis/listed.csv"),
    score=patients.with_value_from_file("analysis/listed.csv", returning="score", returning_type="int"),
)
''')
    (tmp_path / "analysis" / "listed.csv").write_text("patient_id,score\n2,7\n5,\n")
    header = "patient_id,apcs_ident,admission_date,discharge_date,discharge_destination,discharge_method,spell_core_hrg_sus,admission_method,primary_diagnosis,secondary_diagnosis,all_diagnoses,all_procedures,days_in_critical_care,patient_classification"
    (tmp_path / "data" / "apcs.csv").write_text(
        header + "\n"
        "1,10,2018-01-05,2018-01-09,,,,21,J45,,J45,,0,1\n"
        "1,11,2019-06-01,2019-06-02,,,,11,I210,,||I210 ||J45,,0,1\n"
        "1,12,2020-05-01,2020-05-03,,,,22,K35,,K35,,0,1\n"
        "2,20,2019-02-02,2019-02-03,,,,11,J45,,||J45 ||I22,,0,1\n"
    )
    (tmp_path / "data" / "addresses.csv").write_text(
        "patient_id,address_id,start_date,end_date,address_type,rural_urban_classification,imd_rounded,msoa_code,has_postcode,care_home_is_potential_match,care_home_requires_nursing,care_home_does_not_require_nursing\n"
        "1,100,2010-01-01,,1,1,100,E02000001,T,T,T,F\n"
        "2,200,2010-01-01,,1,1,100,E02000001,T,T,F,T\n"
        "5,500,2010-01-01,2019-01-01,1,1,100,E02000001,T,F,,\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # Patients 3 and 5 have no address on the index date: the column's empty value, not "none".
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,first_admission,mi_any,mi_primary,emergencies,care_home,listed,score",
        "1,2018-01-05,1,I210,2,nursing,0,0",
        "2,2019-02-02,1,,0,other,1,7",
        "3,,0,,0,,0,0",
        "5,,0,,0,,1,0",
    ]


def test_text_compared_with_numbers_converts_as_sql_server_does_and_critical_care_days_and_place_of_death(tmp_path):
    # Studies compare flags with "1" and categorised_as text categories with numbers;
    # SQL Server converts the text side to the number's type.
    big = [f"X{n:03d}" for n in range(3000)] + ["I21"]
    study = make_study(tmp_path, f'''\
from cohortextractor import StudyDefinition, patients, codelist

big = codelist({big!r}, system="icd10")
study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.satisfying(
        "NOT died = '1'",
        died=patients.died_from_any_cause(on_or_before="index_date", returning="binary_flag"),
    ),
    age=patients.age_as_of("index_date"),
    band=patients.categorised_as({{"0": "DEFAULT", "1": "age >= 18 AND age < 30", "2": "age >= 30"}}),
    adult=patients.satisfying("band > 0"),
    band_one=patients.satisfying("band = '1'"),
    critical_days=patients.admitted_to_hospital(returning="days_in_critical_care", find_first_match_in_period=True),
    no_critical_care=patients.satisfying("critical_days = '0' OR critical_days = ''"),
    big_codes=patients.admitted_to_hospital(with_these_diagnoses=big, returning="binary_flag"),
    place=patients.died_from_any_cause(returning="place_of_death"),
)
''')
    header = "patient_id,apcs_ident,admission_date,discharge_date,discharge_destination,discharge_method,spell_core_hrg_sus,admission_method,primary_diagnosis,secondary_diagnosis,all_diagnoses,all_procedures,days_in_critical_care,patient_classification"
    (tmp_path / "data" / "apcs.csv").write_text(
        header + "\n"
        "1,10,2018-01-05,2018-01-09,,,,21,J45,,J45,,3,1\n"
        "1,11,2019-06-01,2019-06-02,,,,11,I210,,||I210 ||J45,,0,1\n"
        "2,20,2019-02-02,2019-02-03,,,,11,J45,,||J45,,0,1\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # Patient 3 died on 2019-12-01, so is not in the population (and no one else died).
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,age,band,adult,band_one,critical_days,no_critical_care,big_codes,place",
        "1,39,2,1,0,3,0,1,",
        "2,10,0,0,0,0,1,0,",
        "4,30,2,1,0,,1,0,",
        "5,20,1,1,1,,1,0,",
    ]
    everyone = study / "analysis" / "study_definition.py"
    everyone.write_text(everyone.read_text().replace('"NOT died = \'1\'"', '"died = 1 OR NOT died"'))
    run = generate(study, "--data", "data", "--output-file", "output/everyone.csv")
    assert run.returncode == 0, run.stderr
    assert [line.split(",")[-1] for line in (study / "output" / "everyone.csv").read_text().splitlines()] == ["place", "", "", "Home", "", ""]


def test_numeric_categories_of_a_codelist_compare_with_numbers_and_date_columns_test_empty(tmp_path):
    # Ethnicity codelists categorise codes as "1" to "5"; studies then write
    # "ethnicity = 1". SQL Server converts the text, and a missing value (the
    # empty text) converts to 0. Some studies also import date_expressions.
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients, codelist, date_expressions

kinds = codelist([("H33..", "1"), ("H330.", "2")], system="ctv3")
study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    kind=patients.with_these_clinical_events(kinds, on_or_before="index_date", returning="category"),
    group=patients.categorised_as({"one": "kind = 1", "two": "kind = 2.0", "none": "kind = 0", "other": "DEFAULT"}),
    first=patients.with_these_clinical_events(kinds, returning="date", find_first_match_in_period=True, date_format="YYYY-MM-DD"),
    last=patients.with_these_clinical_events(kinds, returning="date", find_last_match_in_period=True, between=["first + 1 day", "first + 1 year"]),
    once=patients.satisfying("first AND NOT last"),
    never=patients.satisfying("first = ''"),
)
""")
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,kind,group,first,last,once,never",
        "1,2,two,2015-06-10,,1,0",
        "2,,none,,,0,1",
        "3,,none,,,0,1",
        "5,1,one,2019-03-01,2020,0,0",
    ]
    bad = study / "analysis" / "study_definition.py"
    bad.write_text(bad.read_text().replace('("H330.", "2")', '("H330.", "B")'))
    run = generate(study, "--data", "data")
    assert run.returncode == 10 and "only the values of categorised_as columns convert to numbers" in run.stderr, run.stderr


def test_an_argument_whose_truth_is_an_error_is_one_value_as_tpp_takes_it(tmp_path):
    # A study passes a pandas Series as product_name_matches; pandas refuses to say
    # whether a Series is true. TPP's backend takes anything but a list as one value
    # and quotes its text, which matches no product.
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients

class Names:
    def __bool__(self):
        raise ValueError("The truth value of a Series is ambiguous.")
    def __iter__(self):
        return iter(["Pfizer"])
    def __str__(self):
        return "0    Pfizer"

study = StudyDefinition(
    index_date="2021-03-01",
    default_expectations={"date": {"earliest": "2020-12-01", "latest": "index_date"}, "rate": "uniform", "incidence": 0.5},
    population=patients.registered_as_of("index_date"),
    named=patients.with_tpp_vaccination_record(product_name_matches=Names(), on_or_before="index_date"),
    listed=patients.with_tpp_vaccination_record(product_name_matches=["Pfizer"], on_or_before="index_date"),
)
""")
    (study / "data" / "vaccinations.csv").write_text("patient_id,vaccination_id,date,target_disease,product_name\n1,1,2021-01-05,SARS-2 CORONAVIRUS,Pfizer\n")
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    assert (study / "output" / "input.csv").read_text().splitlines()[:2] == ["patient_id,named,listed", "1,0,1"]
    run = generate(study, "--expectations-population", "10", "--output-file", "output/dummy.csv")
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    "expression, message",
    [("sex = 1", "cannot compare a str column with a int: only the values of categorised_as columns convert to numbers"),
     ("age = 'x'", "Conversion failed when converting the varchar value 'x' to data type int")],
)
def test_text_that_does_not_convert_to_a_number_is_an_error(tmp_path, expression, message):
    study = make_study(tmp_path, f'''\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.all(),
    sex=patients.sex(),
    age=patients.age_as_of("index_date"),
    odd=patients.satisfying("{expression}"),
)
''')
    run = generate(study, "--data", "data")
    assert run.returncode == 10, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert errors[0].startswith("error: analysis/study_definition.py, line 3:")
    assert not (study / "output" / "input.csv").exists()


def test_codes_on_death_certificate(tmp_path):
    # Patient 3 died of I21 (underlying cause); no one has J45 among any cause.
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients, codelist

mi = codelist(["I21"], system="icd10")
asthma = codelist(["J45"], system="icd10")
study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.all(),
    mi=patients.with_these_codes_on_death_certificate(mi, returning="binary_flag"),
    mi_date=patients.with_these_codes_on_death_certificate(mi, match_only_underlying_cause=True, returning="date_of_death", date_format="YYYY-MM-DD"),
    asthma=patients.with_these_codes_on_death_certificate(asthma),
)
""")
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,mi,mi_date,asthma", "1,0,,0", "2,0,,0", "3,1,2019-12-01,0", "4,0,,0", "5,0,,0",
    ]


def test_number_of_episodes(tmp_path):
    study = make_study(tmp_path, '''\
from cohortextractor import StudyDefinition, patients, codelist

asthma = codelist(["H33..", "H330."], system="ctv3")
study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    episodes=patients.with_these_clinical_events(asthma, returning="number_of_episodes", episode_defined_as="series of events each <= 365 days apart"),
    days_with_asthma=patients.with_these_clinical_events(asthma, returning="number_of_episodes"),
)
''')
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # Patient 1: 2015-06-10, then 2019-07-01 (a new episode), 2020-04-01 (275 days later: the same one).
    # Patient 5: 2019-03-01 and 2020-03-01, 366 days apart (2020 is a leap year): two.
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,episodes,days_with_asthma",
        "1,2,3",
        "2,0,0",
        "3,0,0",
        "5,2,2",
    ]


def test_sgss_and_emergency_care(tmp_path):
    study = make_study(tmp_path, '''\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    index_date="2021-01-01",
    population=patients.registered_as_of("2020-03-01"),
    first_positive=patients.with_test_result_in_sgss(pathogen="SARS-CoV-2", test_result="positive", returning="date", date_format="YYYY-MM-DD"),
    latest_first_result=patients.with_test_result_in_sgss(pathogen="SARS-CoV-2", returning="date", date_format="YYYY-MM-DD"),
    tests_in_2020=patients.with_test_result_in_sgss(pathogen="SARS-CoV-2", restrict_to_earliest_specimen_date=False, between=["2020-01-01", "2020-12-31"], returning="number_of_matches_in_period"),
    ae=patients.attended_emergency_care(on_or_before="index_date", returning="date_arrived", date_format="YYYY-MM-DD", find_first_match_in_period=True),
    ae_home=patients.attended_emergency_care(discharged_to=["306689006"], returning="number_of_matches_in_period"),
)
''')
    (tmp_path / "data" / "sgss_covid_all_tests.csv").write_text(
        "patient_id,specimen_taken_date,is_positive,lab_report_date,was_symptomatic,sgtf_status,variant,variant_detection_method\n"
        "1,2020-04-01,F,2020-04-02,,,,\n"
        "1,2020-06-01,T,2020-06-02,,,,\n"
        "1,2020-09-01,T,2020-09-02,,,,\n"
        "1,2021-02-01,F,2021-02-02,,,,\n"
        "2,2020-05-05,F,2020-05-06,,,,\n"
    )
    diagnoses = ",".join(f"diagnosis_{i:02d}" for i in range(1, 25))
    (tmp_path / "data" / "emergency_care_attendances.csv").write_text(
        f"patient_id,id,arrival_date,discharge_destination,{diagnoses}\n"
        "1,1,2019-05-01,306689006" + "," * 24 + "\n"
        "1,2,2018-05-01,1066331000000109" + "," * 24 + "\n"
        "2,3,2021-05-01,306689006" + "," * 24 + "\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # The earliest positive and the earliest negative specimen stand for SGSS's
    # first-result tables; "any" without find_first gives the later of the two.
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,first_positive,latest_first_result,tests_in_2020,ae,ae_home",
        "1,2020-06-01,2020-06-01,3,2018-05-01,1",
        "2,,2020-05-05,1,,1",
        "3,,,0,,0",
        "5,,,0,,0",
    ]


def test_sgss_values_of_the_picked_test(tmp_path):
    study = make_study(tmp_path, '''\
from cohortextractor import StudyDefinition, patients

def sgss(returning, **kwargs):
    return patients.with_test_result_in_sgss(pathogen="SARS-CoV-2", returning=returning, **kwargs)

study = StudyDefinition(
    index_date="2021-01-01",
    population=patients.registered_as_of("2020-03-01"),
    sgtf=sgss("s_gene_target_failure", test_result="positive"),
    sgtf_any_first=sgss("s_gene_target_failure", test_result="any", find_first_match_in_period=True),
    sgtf_any_last=sgss("s_gene_target_failure", test_result="any"),
    variant_last=sgss("variant", test_result="positive", restrict_to_earliest_specimen_date=False),
    variant_first=sgss("variant", test_result="positive", restrict_to_earliest_specimen_date=False, find_first_match_in_period=True),
    method_last=sgss("variant_detection_method", test_result="any", restrict_to_earliest_specimen_date=False),
    symptomatic_2020=sgss("symptomatic", test_result="any", restrict_to_earliest_specimen_date=False, between=["2020-01-01", "2020-12-31"]),
    symptomatic_first=sgss("symptomatic", test_result="any", restrict_to_earliest_specimen_date=False, find_first_match_in_period=True),
)
''')
    (tmp_path / "data" / "sgss_covid_all_tests.csv").write_text(
        "patient_id,specimen_taken_date,is_positive,lab_report_date,was_symptomatic,sgtf_status,variant,variant_detection_method\n"
        "1,2020-04-01,F,2020-04-02,F,,,\n"
        "1,2020-06-01,T,2020-06-02,T,1,VOC-20DEC-01 detected,Reflex Assay\n"
        "1,2020-09-01,T,2020-09-02,,0,B.1.617.2,Private Lab Sequencing\n"
        "1,2021-02-01,F,2021-02-02,T,,,\n"
        "2,2020-05-05,F,2020-05-06,,,,\n"
        "2,2020-07-05,T,2020-07-06,F,9,(blank),Reflex Assay\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # As TPP picks them: the earliest positive and negative specimens (a negative
    # has no S-gene result), or every test in the period; TPP's placeholders for no
    # variant are empty; symptoms Y/N, unknown empty.
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,sgtf,sgtf_any_first,sgtf_any_last,variant_last,variant_first,method_last,symptomatic_2020,symptomatic_first",
        "1,1,,1,B.1.617.2,VOC-20DEC-01,,,N",
        "2,9,,9,,,Reflex Assay,N,",
        "3,,,,,,,,",
        "5,,,,,,,,",
    ]
    # SGSS's case category is not in ehrQL's table: refused when queries run, drawn
    # from its expectations when none do.
    (tmp_path / "refused").mkdir()
    refused = make_study(tmp_path / "refused", """\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    default_expectations={"date": {"earliest": "2020-01-01", "latest": "2021-01-01"}, "rate": "uniform", "incidence": 0.5},
    population=patients.all(),
    category=patients.with_test_result_in_sgss(
        pathogen="SARS-CoV-2", test_result="positive", returning="case_category",
        return_expectations={"incidence": 1, "category": {"ratios": {"LFT_Only": 0.5, "PCR_Only": 0.5}}},
    ),
)
""")
    run = generate(refused, "--data", "data")
    assert run.returncode == 10 and "have no case category" in run.stderr, run.stderr
    run = generate(refused, "--expectations-population", "100")
    assert run.returncode == 0, run.stderr
    header, *rows = (refused / "output" / "input.csv").read_text().splitlines()
    at = header.split(",").index("category")
    assert {r.split(",")[at] for r in rows} == {"LFT_Only", "PCR_Only"}


def test_outpatient_appointments(tmp_path):
    study = make_study(tmp_path, '''\
from cohortextractor import StudyDefinition, patients, codelist

study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    attended_first=patients.outpatient_appointment_date(attended=True, is_first_attendance=True, between=["1900-01-01", "index_date"], returning="date"),
    appointments=patients.outpatient_appointment_date(between=["2019-01-01", "2019-12-31"], returning="number_of_matches_in_period"),
    medium=patients.outpatient_appointment_date(returning="consultation_medium_used"),
    with_procedure=patients.outpatient_appointment_date(with_these_procedures=codelist(["H01"], system="opcs4"), returning="number_of_matches_in_period"),
)
''')
    (tmp_path / "data" / "opa_proc.csv").write_text(
        "patient_id,opa_ident,primary_procedure_code,primary_procedure_code_read,procedure_code_2,procedure_code_2_read,appointment_date,referral_request_received_date\n"
        "1,1,H011,,,,2019-02-01,\n"
        "1,3,X12,,H01,,2020-01-15,\n"
        "2,4,H01,,,,2018-03-03,\n"
    )
    (tmp_path / "data" / "opa.csv").write_text(
        "patient_id,opa_ident,appointment_date,attendance_status,consultation_medium_used,first_attendance,hrg_code,outcome_of_attendance,referral_request_received_date,treatment_function_code\n"
        "1,1,2019-02-01,5,01,1,,,,100\n"
        "1,2,2019-08-01,2,02,1,,,,100\n"
        "1,3,2020-01-15,6,03,2,,,,100\n"
        "2,4,2018-03-03,6,04,3,,,,100\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,attended_first,appointments,medium,with_procedure",
        "1,2019-02-01,2,03,1",
        "2,2018-03-03,0,04,1",
        "3,,0,,0",
        "5,,0,,0",
    ]


def test_therapeutics_frailty_healthcare_workers_renal_registry_and_bed_days(tmp_path):
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    sotrovimab=patients.with_covid_therapeutics(with_these_therapeutics="sotrovimab", returning="date", date_format="YYYY-MM-DD"),
    last_name=patients.with_covid_therapeutics(returning="therapeutic"),
    first_name=patients.with_covid_therapeutics(returning="therapeutic", find_first_match_in_period=True, include_date_of_match=True, date_format="YYYY-MM-DD"),
    approved=patients.with_covid_therapeutics(with_these_statuses=["Approved"], returning="number_of_matches_in_period"),
    region=patients.with_covid_therapeutics(with_these_indications="non_hospitalised", on_or_after="2022-01-01", returning="region"),
    episodes=patients.with_covid_therapeutics(on_or_after="2021-01-01", returning="number_of_episodes", episode_defined_as="series of events each <= 30 days apart"),
    efi=patients.with_these_decision_support_values("electronic_frailty_index", on_or_before="index_date"),
    efi_recorded=patients.with_these_decision_support_values("electronic_frailty_index", ignore_missing_values=True, returning="binary_flag"),
    efi_first=patients.with_these_decision_support_values("electronic_frailty_index", find_first_match_in_period=True, returning="date", date_format="YYYY-MM-DD"),
    efi_count=patients.with_these_decision_support_values("electronic_frailty_index", returning="number_of_matches_in_period"),
    hcw=patients.with_healthcare_worker_flag_on_covid_vaccine_record(returning="binary_flag"),
    rrt=patients.with_record_in_ukrr(from_dataset="2020_prevalence", returning="binary_flag"),
    centre=patients.with_record_in_ukrr(from_dataset="2020_prevalence", returning="renal_centre"),
    creatinine=patients.with_record_in_ukrr(from_dataset="2020_prevalence", returning="latest_creatinine"),
    rrt_started=patients.with_record_in_ukrr(from_dataset="2020_incidence", returning="rrt_start_date", date_format="YYYY-MM-DD"),
    bed_days=patients.admitted_to_hospital(between=["2019-01-01", "index_date"], returning="total_bed_days_in_period"),
    critical_days=patients.admitted_to_hospital(between=["2019-01-01", "index_date"], returning="total_critical_care_days_in_period"),
)
""")
    data = tmp_path / "data"
    (data / "covid_therapeutics.csv").write_text(
        "patient_id,covid_indication,current_status,intervention,received,region,risk_cohort,treatment_start_date\n"
        "1,non_hospitalised,Approved,Sotrovimab ,2022-01-09,London,,2022-01-10\n"
        "1,hospitalised_with,Treatment Complete,Casirivimab and imdevimab ,2022-01-31,East,,2022-02-01\n"
        "2,non_hospitalised,Approved,molnupiravir,2022-01-19,North,,2022-01-20\n"
        "2,non_hospitalised,Approved,Paxlovid,2022-01-25,North,,\n"
    )
    (data / "decision_support_values.csv").write_text(
        "patient_id,calculation_date,numeric_value,algorithm_description,algorithm_version\n"
        "1,2019-01-01,0.1,UK Electronic Frailty Index (eFI),1.0\n"
        "1,2020-01-01,0.25,UK Electronic Frailty Index (eFI),1.0\n"
        "1,2020-02-01,0.9,UK Electronic Frailty Index (eFI),2.0\n"
        "2,2019-06-01,0.0,UK Electronic Frailty Index (eFI),1.0\n"
    )
    (data / "occupation_on_covid_vaccine_record.csv").write_text("patient_id,is_healthcare_worker\n1,T\n2,F\n5,F\n5,T\n")
    (data / "ukrr.csv").write_text(
        "patient_id,dataset,renal_centre,rrt_start_date,latest_creatinine,latest_egfr,treatment_modality_start,treatment_modality_prevalence\n"
        "1,2020_prevalence,RXX,2015-03-01,250.0,20.5,HD,HD\n"
        "2,2020_incidence,RYY,2020-02-01,180.0,30.0,PD,\n"
    )
    header = "patient_id,apcs_ident,admission_date,discharge_date,discharge_destination,discharge_method,spell_core_hrg_sus,admission_method,primary_diagnosis,secondary_diagnosis,all_diagnoses,all_procedures,days_in_critical_care,patient_classification"
    (data / "apcs.csv").write_text(
        header + "\n"
        "1,10,2018-01-05,2018-01-09,,,,21,J45,,J45,,4,1\n"
        "1,11,2019-06-01,2019-06-02,,,,11,J45,,J45,,3,1\n"
        "1,12,2020-01-01,2020-01-11,,,,11,J45,,J45,,0,1\n"
        "2,20,2019-02-02,,,,,11,J45,,J45,,,1\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # Therapeutic names are trimmed, with " and " made a comma, as TPP writes them;
    # names match ignoring case; a form with no start date sorts first, and last
    # when the latest is wanted. eFI is version 1.0 only.
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,sotrovimab,last_name,first_name,first_name_date,approved,region,episodes,efi,efi_recorded,efi_first,efi_count,hcw,rrt,centre,creatinine,rrt_started,bed_days,critical_days",
        "1,2022-01-10,\"Casirivimab,imdevimab\",Sotrovimab,2022-01-10,1,London,1,0.25,1,2019-01-01,2,1,1,RXX,250,,13,3",
        "2,,molnupiravir,Paxlovid,,2,North,1,0.0,0,2019-06-01,1,0,0,,0,2020-02-01,0,0",
        "3,,,,,0,,0,0.0,0,,0,0,0,,0,,0,0",
        "5,,,,,0,,0,0.0,0,,0,1,0,,0,,0,0",
    ]


def test_ignore_days_where_these_codes_occur(tmp_path):
    # The flu vaccine pattern of many studies: "vaccine given" codes, except on days
    # with a "not given" code in the same period.
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients, codelist

given = codelist(["65E.."], system="ctv3")
not_given = codelist(["9OX6."], system="ctv3")
study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    flu=patients.with_these_clinical_events(given, ignore_days_where_these_codes_occur=not_given, between=["2019-09-01", "2020-02-29"], returning="binary_flag"),
    flu_first=patients.with_these_clinical_events(given, ignore_days_where_these_codes_occur=not_given, between=["2019-09-01", "2020-02-29"], find_first_match_in_period=True, returning="date", date_format="YYYY-MM-DD"),
    flu_count=patients.with_these_clinical_events(given, ignore_days_where_these_codes_occur=not_given, returning="number_of_matches_in_period"),
    flu_episodes=patients.with_these_clinical_events(given, ignore_days_where_these_codes_occur=not_given, returning="number_of_episodes", episode_defined_as="series of events each <= 30 days apart"),
)
""")
    (tmp_path / "data" / "clinical_events.csv").write_text(
        "patient_id,date,snomedct_code,ctv3_code,numeric_value,consultation_id\n"
        "1,2019-10-01,,65E..,,1\n"
        "1,2019-10-01,,9OX6.,,2\n"
        "1,2019-11-05,,65E..,,3\n"
        "1,2019-11-20,,65E..,,4\n"
        "2,2019-10-02,,65E..,,5\n"
        "2,2019-10-03,,9OX6.,,6\n"
        "3,2019-10-04,,65E..,,7\n"
        "3,2019-10-04,,9OX6.,,8\n"
        "5,2020-03-01,,65E..,,9\n"
        "5,2020-02-01,,65E..,,10\n"
        "5,2020-03-01,,9OX6.,,11\n"
    )
    run = generate(study, "--data", "data")
    assert run.returncode == 0, run.stderr
    # Patient 5's "not given" day is outside the period, so without a period (count,
    # episodes) it hides that day's event, and with one the event is outside anyway.
    assert (study / "output" / "input.csv").read_text().splitlines() == [
        "patient_id,flu,flu_first,flu_count,flu_episodes",
        "1,1,2019-11-05,2,1",
        "2,1,2019-10-02,1,1",
        "3,0,,0,0",
        "5,1,2020-02-01,1,1",
    ]


def test_study_code_sees_the_active_virtual_environments_packages(tmp_path):
    study = make_study(tmp_path, STUDY.replace("from cohortextractor import", "import helper_only_in_the_venv\nfrom cohortextractor import"))
    venv = tmp_path / "venv"
    packages = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    packages.mkdir(parents=True)
    (packages / "helper_only_in_the_venv.py").write_text("")
    without = generate(study, "--data", "data")
    assert without.returncode != 0 and "No module named 'helper_only_in_the_venv'" in without.stderr
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    run = subprocess.run([BIN, "cohortextractor", "generate_cohort", "--data", "data"], cwd=study, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert (study / "output" / "input.csv").read_bytes() == EXPECTED.replace("\n", "\r\n").encode()


@pytest.mark.parametrize("query, message", [
    ('patients.with_covid_therapeutics(returning="risk_group")', "risk_cohort"),
    ('patients.with_covid_therapeutics(with_these_indications="outpatient")', "'outpatient' is not a valid indication"),
    ('patients.with_these_decision_support_values("qrisk")', "Unsupported `algorithm` value: qrisk"),
    ('patients.admitted_to_icu(returning="binary_flag")', "no ICNARC intensive care table"),
    ('patients.with_high_cost_drugs(drug_name_matches="x", returning="binary_flag")', "no high cost drugs table"),
    ('patients.admitted_to_hospital(returning="total_bed_days_in_period", find_first_match_in_period=True)', "Cannot use 'find_first_match_in_period'"),
    ('patients.admitted_to_hospital(returning="admission_treatment_function_code")', "ehrQL's apcs) have no such column"),
    ('patients.admitted_to_hospital(returning="bed_count")', "No matching type for 'bed_count'"),
])
def test_queries_the_tables_cannot_answer_are_refused_with_the_reason(tmp_path, query, message):
    study = make_study(tmp_path, f"""\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    index_date="2020-03-01",
    population=patients.registered_as_of("index_date"),
    value={query},
)
""")
    run = generate(study, "--data", "data")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and errors[0].startswith("error: analysis/study_definition.py, line 3: "), run.stderr
    assert not (study / "output" / "input.csv").exists()


EXPECTATIONS_STUDY = '''\
from cohortextractor import StudyDefinition, patients, codelist

asthma = codelist(["H33.."], system="ctv3")
study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "2015-01-01", "latest": "index_date"}, "rate": "uniform", "incidence": 0.2},
    population=patients.registered_as_of("index_date"),
    sex=patients.sex(return_expectations={"rate": "universal", "category": {"ratios": {"M": 0.5, "F": 0.5}}}),
    age=patients.age_as_of("index_date", return_expectations={"rate": "universal", "int": {"distribution": "population_ages"}}),
    asthma=patients.with_these_clinical_events(asthma, returning="binary_flag", include_date_of_match=True, date_format="YYYY-MM-DD"),
    recent=patients.with_these_clinical_events(asthma, returning="date", on_or_after="2019-01-01", date_format="YYYY-MM"),
)
'''


def test_expectations_dummy_data(tmp_path):
    study = make_study(tmp_path, EXPECTATIONS_STUDY)
    run = generate(study, "--expectations-population", "1000", "--output-file", "output/a.csv")
    assert run.returncode == 0, run.stderr
    text = (study / "output" / "a.csv").read_text()
    lines = text.splitlines()
    # cohort-extractor's order: date columns first, then the others, patient_id last.
    assert lines[0] == "asthma_date,recent,sex,age,asthma,patient_id"
    assert "\r" not in text and len(lines) == 1001
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    ids = [int(r["patient_id"]) for r in rows]
    assert len(set(ids)) == 1000 and max(ids) < 10000
    # A flag follows its date of match's incidence; dates lie in the expectations' range.
    assert all((r["asthma"] == "1") == (r["asthma_date"] != "") for r in rows)
    shares = sum(r["asthma"] == "1" for r in rows) / 1000
    assert 0.19 <= shares <= 0.21
    assert all("2015-01-01" <= r["asthma_date"] <= "2020-03-01" for r in rows if r["asthma_date"])
    # The static period empties dates outside it; a YYYY-MM format cuts the rest.
    assert all(r["recent"] == "" or (len(r["recent"]) == 7 and r["recent"] >= "2019-01") for r in rows)
    assert {r["sex"] for r in rows} == {"M", "F"} and all(0 <= int(r["age"]) < 110 for r in rows)
    again = generate(study, "--expectations-population", "1000", "--output-file", "output/b.csv")
    assert again.returncode == 0 and (study / "output" / "b.csv").read_text() == text
    other_seed = generate(study, "--expectations-population", "1000", "--output-file", "output/c.csv", "--seed", "1")
    assert other_seed.returncode == 0 and (study / "output" / "c.csv").read_text() != text
    feather_run = generate(study, "--expectations-population", "100", "--output-format", "feather")
    assert feather_run.returncode == 0, feather_run.stderr
    table = feather.read_table(study / "output" / "input.feather")
    assert [str(f.type) for f in table.schema] == ["timestamp[ns]", "timestamp[ns]", "dictionary<values=string, indices=int8, ordered=0>", "int64", "bool", "int64"]


def test_expectations_imd_with_missing_values_has_float_categories_in_feather(tmp_path):
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    default_expectations={"date": {"earliest": "2020-01-01", "latest": "2021-01-01"}, "rate": "uniform", "incidence": 0.8},
    population=patients.all(),
    imd=patients.address_as_of("2021-01-01", returning="index_of_multiple_deprivation", round_to_nearest=100,
        return_expectations={"category": {"ratios": {100: 0.5, 200: 0.5}}}),
)
""")
    run = generate(study, "--expectations-population", "200", "--output-format", "feather")
    assert run.returncode == 0, run.stderr
    # As cohort-extractor's pandas frame holds them: missing as NaN, so floats.
    imd = feather.read_table(study / "output" / "input.feather").column("imd")
    assert str(imd.type) == "dictionary<values=double, indices=int8, ordered=0>" and imd.null_count > 0
    assert sorted(imd.chunk(0).dictionary.to_pylist()) == [100.0, 200.0]


def test_expectations_for_an_aggregate_of_hidden_columns_draw_those_columns(tmp_path):
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients, codelist

asthma = codelist(["H33.."], system="ctv3")
study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "2015-01-01", "latest": "index_date"}, "rate": "uniform", "incidence": 0.5},
    population=patients.all(),
    first_event=patients.minimum_of(
        primary_care=patients.with_these_clinical_events(asthma, returning="date", date_format="YYYY-MM-DD", find_first_match_in_period=True),
        hospital=patients.admitted_to_hospital(returning="date_admitted", date_format="YYYY-MM-DD", find_first_match_in_period=True,
                                               return_expectations={"date": {"earliest": "2018-01-01", "latest": "2018-12-31"}, "incidence": 0.2}),
    ),
)
""")
    run = generate(study, "--expectations-population", "5000")
    assert run.returncode == 0, run.stderr
    lines = (study / "output" / "input.csv").read_text().splitlines()
    assert lines[0] == "first_event,patient_id"
    values = [line.split(",")[0] for line in lines[1:]]
    # Empty only where both hidden columns are: 0.5 x 0.8 of the patients.
    assert abs(values.count("") / 5000 - 0.4) < 0.03
    # Within the range either column can hold, and sometimes the hospital's alone.
    assert all(len(v) == 10 and "2015-01-01" <= v <= "2020-03-01" for v in values if v)
    assert 0.15 < sum(v.startswith("2018") for v in values) / 5000 < 0.35


def test_expectations_draw_the_columns_of_queries_the_tables_cannot_answer(tmp_path):
    # cohort-extractor runs no query for expectations dummy data, so studies using
    # ICNARC, CPNS, household or practice properties ehrQL's tables lack run there;
    # with tables, the same queries are refused (see the test above).
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "2020-01-01", "latest": "index_date"}, "rate": "uniform", "incidence": 0.5},
    population=patients.all(),
    icu_date=patients.admitted_to_icu(on_or_after="2020-02-01", returning="date_admitted", date_format="YYYY-MM-DD", find_first_match_in_period=True),
    ventilated=patients.admitted_to_icu(returning="had_respiratory_support"),
    died_cpns=patients.with_death_recorded_in_cpns(returning="binary_flag"),
    prison=patients.household_as_of("2020-02-01", returning="is_prison"),
    practice_msoa=patients.registered_practice_as_of("index_date", returning="msoa", return_expectations={"category": {"ratios": {"E02000001": 1.0}}, "incidence": 1}),
    treatment=patients.admitted_to_hospital(returning="admission_treatment_function_code", return_expectations={"category": {"ratios": {"100": 1.0}}, "incidence": 1}),
    arm=patients.registered_practice_as_of("index_date", returning="rct__germdefence__trial_arm", return_expectations={"category": {"ratios": {"con": 1.0}}, "incidence": 1}),
    enrolled=patients.registered_practice_as_of("index_date", returning="rct__germdefence__enrolled"),
)
""")
    run = generate(study, "--expectations-population", "2000")
    assert run.returncode == 0, run.stderr
    lines = (study / "output" / "input.csv").read_text().splitlines()
    assert lines[0] == "icu_date,ventilated,died_cpns,prison,practice_msoa,treatment,arm,enrolled,patient_id"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 2000
    # Each column drawn from its expectations: half the dates empty, and of the rest
    # those before the column's period (about half) emptied too.
    icu = [r[0] for r in rows]
    assert abs(icu.count("") / 2000 - 0.75) < 0.05 and all("2020-02-01" <= d <= "2020-03-01" for d in icu if d)
    assert {r[1] for r in rows} == {"0", "1"} and {r[4] for r in rows} == {"E02000001"} and {r[5] for r in rows} == {"100"}
    # A trial's `enrolled` is a flag, its other properties text, as cohort-extractor types them.
    assert {r[6] for r in rows} == {"con"} and {r[7] for r in rows} == {"0", "1"}
    refused = generate(study, "--data", "data")
    assert refused.returncode == 10 and "icu_date: patients.admitted_to_icu(): the TPP tables ehrfusion reads (ehrQL's) have no ICNARC intensive care table" in refused.stderr


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_expectations_dummy_data_from_files_takes_the_files_patients_and_values(tmp_path, suffix):
    study = make_study(tmp_path, """\
from cohortextractor import StudyDefinition, patients

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "2015-01-01", "latest": "2020-03-01"}, "rate": "uniform", "incidence": 0.5},
    population=patients.all(),
    sex=patients.sex(return_expectations={"category": {"ratios": {"M": 0.5, "F": 0.5}}}),
    matched_on=patients.with_value_from_file("analysis/matches.csv", returning="matched_on", returning_type="date"),
    score=patients.with_value_from_file("analysis/matches.csv", returning="score", returning_type="int"),
    listed=patients.which_exist_in_file("analysis/matches.csv"),
)
""")
    import gzip

    text = "patient_id,matched_on,score\n11,2020-01-02,3\n12,2020-02-03,\n13,2019-12-31,5\n"
    (tmp_path / "analysis" / f"matches{suffix}").write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    (tmp_path / "analysis" / "study_definition.py").write_text((tmp_path / "analysis" / "study_definition.py").read_text().replace("matches.csv", f"matches{suffix}"))
    run = generate(study, "--expectations-population", "1000")
    assert run.returncode == 0, run.stderr
    lines = (study / "output" / "input.csv").read_text().splitlines()
    # As cohort-extractor: patient_id and the file's columns first, the file's patients only.
    assert lines[0] == "patient_id,matched_on,score,listed,sex"
    assert [line.split(",")[:4] for line in lines[1:]] == [["11", "2020-01-02", "3", "1"], ["12", "2020-02-03", "", "1"], ["13", "2019-12-31", "5", "1"]]


def test_expectations_need_expectations(tmp_path):
    study = make_study(tmp_path, EXPECTATIONS_STUDY.replace('sex=patients.sex(return_expectations={"rate": "universal", "category": {"ratios": {"M": 0.5, "F": 0.5}}}),', "sex=patients.sex(),"))
    run = generate(study, "--expectations-population", "10")
    assert run.returncode == 10
    assert "Column definition sex does not return expected type category" in run.stderr


def test_expectations_use_the_definitions_own_index_date_for_column_periods(tmp_path):
    # cohort-extractor works out each column's period for dummy dates once, at the
    # definition's index_date, even when --index-date-range runs other dates.
    study = make_study(tmp_path, EXPECTATIONS_STUDY.replace(
        'on_or_after="2019-01-01"', 'between=["index_date", "last_day_of_month(index_date)"]'
    ).replace('"incidence": 0.2}', '"incidence": 1.0}'))
    run = generate(study, "--expectations-population", "2000", "--index-date-range", "2021-06-01")
    assert run.returncode == 0, run.stderr
    lines = (study / "output" / "input_2021-06-01.csv").read_text().splitlines()
    recent = {line.split(",")[1] for line in lines[1:]} - {""}
    assert recent == {"2020-03"}


def test_comments_in_expressions_are_ignored_as_cohort_extractor_ignores_them():
    # sqlparse, which cohort-extractor parses expressions with, takes `-- `, `# ` and
    # `/* */` as comments; cohort-extractor 1.90.0 drops all three.
    from cohortextractor.expressions import tokenize

    plain = tokenize("registered AND age >= 18")
    for comment in ["-- a comment", "# a comment", "/* a\n comment */"]:
        assert tokenize(f"registered AND\n{comment}\n age >= 18") == plain


# What the reference cohort-extractor's generate_measures wrote for these cohorts: a
# column "population" of 1s is summed (or grouped) like any other.
POPULATION_STUDY = '''\
from cohortextractor import StudyDefinition, patients, Measure

study = StudyDefinition(
    index_date="2020-01-01",
    population=patients.all(),
    msoa=patients.registered_practice_as_of("index_date", returning="msoa_code"),
    sex=patients.sex(),
    num=patients.died_from_any_cause(on_or_before="index_date", returning="binary_flag"),
    den=patients.registered_as_of("index_date"),
)
measures = [
    Measure(id="whole", numerator="num", denominator="den", group_by=["population"]),
    Measure(id="by_pop_sex", numerator="num", denominator="den", group_by=["population", "sex"]),
    Measure(id="by_msoa", numerator="num", denominator="population", group_by=["msoa"]),
]
'''
REFERENCE_POPULATION_MEASURES = {
    "measure_whole.csv": "num,den,population,value,date\r\n3.0,4.0,5,0.75,2020-01-01\r\n2.0,3.0,3,0.6666666666666666,2020-02-01\r\n",
    "measure_whole_2020-02-01.csv": "num,den,population,value\n2.0,3.0,3,0.6666666666666666\n",
    "measure_by_pop_sex_2020-01-01.csv": "population,sex,num,den,value\n1,F,3.0,3.0,1.0\n1,M,0.0,1.0,0.0\n",
    "measure_by_msoa_2020-01-01.csv": "msoa,num,population,value\n,0.0,1,0.0\nE1,1.0,2,0.5\nE2,2.0,2,1.0\n",
}


def test_measures_sum_or_group_the_population_column(tmp_path):
    # `msoa_code` is no column of the tables ehrfusion reads, but measures run no
    # query, so the reference measures such a study and so does ehrfusion.
    out = measures_study(tmp_path, POPULATION_STUDY)
    (out / "input_2020-01-01.csv").write_text("patient_id,msoa,sex,num,den\n1,E1,F,1,1\n2,E1,M,0,1\n3,E2,F,1,1\n4,,M,0,0\n5,E2,F,1,1\n")
    (out / "input_2020-02-01.csv").write_text("patient_id,msoa,sex,num,den\n1,E1,F,0,1\n2,E1,M,1,1\n3,E2,F,1,1\n")
    run = subprocess.run([BIN, "cohortextractor", "generate_measures"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for name, text in REFERENCE_POPULATION_MEASURES.items():
        assert (out / name).read_bytes() == text.encode(), name


@pytest.mark.parametrize("fmt", ["csv", "feather"])
def test_expectations_of_a_study_of_only_its_population_have_no_rows(tmp_path, fmt):
    # As cohort-extractor's dummy data (whose own feather writer fails on it).
    study = make_study(tmp_path, 'from cohortextractor import StudyDefinition, patients\nstudy = StudyDefinition(default_expectations={"date": {"earliest": "2019-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5}, population=patients.registered_with_one_practice_between("2019-02-01", "2020-02-01"))\n')
    run = generate(study, "--expectations-population", "50", "--output-format", fmt)
    assert run.returncode == 0, run.stderr
    if fmt == "csv":
        assert (study / "output" / "input.csv").read_text().splitlines() == ["patient_id"]
    else:
        import pyarrow.feather

        table = pyarrow.feather.read_table(study / "output" / "input.feather")
        assert table.column_names == ["patient_id"] and table.num_rows == 0
