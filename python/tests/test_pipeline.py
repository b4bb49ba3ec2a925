"""`ehrfusion run` and `ehrfusion jobs`: project.yaml pipelines run as job requests,
in small study folders made here (ehrQL and cohort-extractor extractions on dummy
data, Python scripts with the local interpreter), with the job runner's scheduling,
statuses, logs and record."""

import gzip
import json
import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))
pytestmark = pytest.mark.skipif(not Path(BIN).exists(), reason="the ehrfusion binary is not built (set EHRFUSION_BIN)")

DATASET = """\
from ehrql import create_dataset
from ehrql.tables.core import patients

dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
dataset.sex = patients.sex
dataset.configure_dummy_data(population_size=40)
"""

# Counts the dataset's rows by sex: reads only what its `needs` gave it.
SUMMARISE = """\
import csv, gzip, os
rows = list(csv.DictReader(gzip.open("output/dataset.csv.gz", "rt")))
os.makedirs("output", exist_ok=True)
with open("output/counts.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["rows"])
    w.writerow([len(rows)])
print("summarised", len(rows), "rows")
"""

PROJECT = """\
version: '4'
actions:
  generate_dataset:
    run: ehrql:v1 generate-dataset analysis/dataset_definition.py --output output/dataset.csv.gz
    outputs:
      highly_sensitive:
        dataset: output/dataset.csv.gz
  summarise:
    run: python:v2 analysis/summarise.py
    needs: [generate_dataset]
    outputs:
      moderately_sensitive:
        counts: output/counts.csv
"""


def make_study(root, project=PROJECT, files=None):
    files = {"analysis/dataset_definition.py": DATASET, "analysis/summarise.py": SUMMARISE, **(files or {})}
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text(textwrap.dedent(project))
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run(study, *args, check=None):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([BIN, *args], cwd=study, capture_output=True, text=True, env=env, timeout=600)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def jobs_table(study):
    """The record: (action, state, status_code, status_message) of every job, oldest first."""
    with sqlite3.connect(study / "metadata" / "db.sqlite") as db:
        return db.execute("SELECT action, state, status_code, status_message FROM job ORDER BY rowid").fetchall()


def latest_request(study):
    with sqlite3.connect(study / "metadata" / "db.sqlite") as db:
        (rid,) = db.execute("SELECT id FROM job_request ORDER BY rowid DESC LIMIT 1").fetchone()
        return db.execute("SELECT action, state, status_code FROM job WHERE job_request_id = ? ORDER BY rowid", (rid,)).fetchall()


def test_run_all_runs_extraction_then_script_and_records_both(tmp_path):
    study = make_study(tmp_path)
    result = run(study, "run", "run_all", check=0)
    # The extraction ran on dummy data in-process; the script read its output.
    with gzip.open(study / "output/dataset.csv.gz", "rt") as f:
        assert len(list(csv.DictReader(f))) == 40
    assert (study / "output/counts.csv").read_text().splitlines() == ["rows", "40"]
    assert jobs_table(study) == [
        ("generate_dataset", "succeeded", "succeeded", "Completed successfully"),
        ("summarise", "succeeded", "succeeded", "Completed successfully"),
    ]
    assert "=> generate_dataset\n   Completed successfully" in result.stderr
    assert "output/counts.csv  - moderately_sensitive" in result.stderr
    # Each job's log: its own output, then the platform's summary.
    log = (study / "metadata/summarise.log").read_text()
    assert log.startswith("summarised 40 rows\n")
    assert "\n=============JOB SUMMARY=============\n" in log
    assert "status_message: Completed successfully\n" in log
    assert "exit_code: 0\n" in log
    assert "outputs:\n  output/counts.csv  - moderately_sensitive\n" in log
    page = run(study, "jobs", check=0).stdout
    assert "(succeeded)" in page.splitlines()[0]
    assert "summarise" in page and "succeeded: Completed successfully" in page


def test_succeeded_dependencies_are_reused_unless_forced_or_their_outputs_are_gone(tmp_path):
    study = make_study(tmp_path)
    run(study, "run", "summarise", check=0)
    assert latest_request(study) == [("generate_dataset", "succeeded", "succeeded"), ("summarise", "succeeded", "succeeded")]
    run(study, "run", "summarise", check=0)
    assert latest_request(study) == [("summarise", "succeeded", "succeeded")]
    run(study, "run", "summarise", "-f", check=0)
    assert [a for a, *_ in latest_request(study)] == ["generate_dataset", "summarise"]
    (study / "output/dataset.csv.gz").unlink()
    run(study, "run", "summarise", check=0)
    assert [a for a, *_ in latest_request(study)] == ["generate_dataset", "summarise"]
    # run_all: nothing left to do is a success.
    result = run(study, "run", "run_all", check=0)
    assert "=> All actions already completed successfully\n   Use -f option to force everything to re-run" in result.stderr


FAILING = """\
version: '4'
actions:
  broken:
    run: python:v2 analysis/broken.py
    outputs:
      moderately_sensitive:
        out: output/broken.csv
  after_broken:
    run: python:v2 analysis/summarise.py
    needs: [broken]
    outputs:
      moderately_sensitive:
        counts: output/counts.csv
  independent:
    run: python:v2 analysis/independent.py
    outputs:
      moderately_sensitive:
        out: output/independent.csv
"""

FAILING_FILES = {
    "analysis/broken.py": "import sys\nprint('about to fail', file=sys.stderr)\nsys.exit(3)\n",
    "analysis/independent.py": "import os\nos.makedirs('output', exist_ok=True)\nopen('output/independent.csv', 'w').write('a\\n1\\n')\n",
}


def test_a_failure_fails_its_dependants_and_stops_the_rest_unless_asked_to_continue(tmp_path):
    study = make_study(tmp_path, FAILING, FAILING_FILES)
    result = run(study, "run", "run_all", "-j", "1", check=1)
    assert jobs_table(study) == [
        ("broken", "failed", "nonzero_exit", "Job exited with an error"),
        ("after_broken", "failed", "dependency_failed", "Not starting as dependency failed"),
        ("independent", "failed", "cancelled_by_user", "Not started: an earlier job failed (use --continue-on-error to run the others)"),
    ]
    assert "about to fail" in (study / "metadata/broken.log").read_text()
    assert "exit_code: 3" in (study / "metadata/broken.log").read_text()
    assert not (study / "output/independent.csv").exists()
    assert "broken" in result.stderr

    run(study, "run", "run_all", "-j", "1", "--continue-on-error", check=1)
    assert latest_request(study) == [
        ("broken", "failed", "nonzero_exit"),
        ("after_broken", "failed", "dependency_failed"),
        ("independent", "succeeded", "succeeded"),
    ]
    assert (study / "output/independent.csv").exists()


def test_extraction_jobs_take_turns_on_the_engine_and_scripts_run_beside_them(tmp_path):
    project = PROJECT + """\
  second_dataset:
    run: ehrql:v1 generate-dataset analysis/dataset_definition.py --output output/second.csv.gz
    outputs:
      highly_sensitive:
        dataset: output/second.csv.gz
  sleepy:
    run: python:v2 analysis/sleepy.py
    outputs:
      moderately_sensitive:
        out: output/sleepy.txt
"""
    sleepy = "import os, time\ntime.sleep(2)\nos.makedirs('output', exist_ok=True)\nopen('output/sleepy.txt', 'w').write('done')\n"
    study = make_study(tmp_path, project, {"analysis/sleepy.py": sleepy})
    run(study, "run", "generate_dataset", "second_dataset", "sleepy", "-j", "3", check=0)
    with sqlite3.connect(study / "metadata" / "db.sqlite") as db:
        times = {a: (s, c) for a, s, c in db.execute("SELECT action, started_at, completed_at FROM job")}
    first, second = sorted([times["generate_dataset"], times["second_dataset"]])
    assert second[0] >= first[1], "the second extraction started before the first ended"
    # The script ran beside the first extraction, not after both.
    assert times["sleepy"][0] < first[1]


def test_unmatched_patterns_fail_the_job_and_name_what_it_wrote(tmp_path):
    files = {"analysis/summarise.py": SUMMARISE.replace("output/counts.csv", "output/count.csv")}
    study = make_study(tmp_path, files=files)
    result = run(study, "run", "summarise", check=1)
    (action, state, code, message) = jobs_table(study)[-1]
    assert (action, state, code) == ("summarise", "failed", "unmatched_patterns")
    assert message == "No outputs found matching patterns:\n - output/counts.csv"
    assert "Did you mean to match one of these files instead?\n    - output/count.csv" in result.stderr
    log = (study / "metadata/summarise.log").read_text()
    # The job runner's own layout, odd indentation included.
    assert "status_message: \n  No outputs found matching patterns:\n - output/counts.csv\n" in log
    assert "hint: \n  Did you mean to match one of these files instead?\n - output/count.csv\n" in log
    assert not (study / "output/count.csv").exists()
    with sqlite3.connect(study / "metadata" / "db.sqlite") as db:
        (unmatched,) = db.execute("SELECT unmatched_outputs FROM job WHERE action = 'summarise'").fetchone()
    assert unmatched == '["output/count.csv"]'


def test_a_job_sees_its_code_and_its_needs_outputs_only_and_keeps_only_declared_outputs(tmp_path):
    project = PROJECT + """\
  look:
    run: python:v2 analysis/look.py
    outputs:
      moderately_sensitive:
        seen: output/seen.txt
"""
    look = """\
import os
os.makedirs("output", exist_ok=True)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(".") for f in fs)
open("output/seen.txt", "w").write("\\n".join(files))
open("scratch.txt", "w").write("not declared")
print("backend", os.environ.get("OPENSAFELY_BACKEND"))
"""
    study = make_study(tmp_path, project, {"analysis/look.py": look})
    run(study, "run", "generate_dataset", check=0)
    run(study, "run", "look", check=0)
    seen = (study / "output/seen.txt").read_text().splitlines()
    assert "./analysis/dataset_definition.py" in seen and "./project.yaml" in seen
    assert "./output/dataset.csv.gz" not in seen  # not a need of `look`
    assert not any(s.startswith("./metadata") for s in seen)
    assert not (study / "scratch.txt").exists()
    assert "backend expectations" in (study / "metadata/look.log").read_text()


def test_moderately_sensitive_outputs_are_checked_with_warnings(tmp_path):
    project = PROJECT.replace("python:v2 analysis/summarise.py", "python:v2 analysis/leak.py")
    leak = "import os\nos.makedirs('output', exist_ok=True)\nopen('output/counts.csv', 'w').write('patient_id,x\\n1,2\\n')\n"
    study = make_study(tmp_path, project, {"analysis/leak.py": leak})
    result = run(study, "run", "summarise", check=0)
    assert "invalid moderately_sensitive outputs:\n     output/counts.csv  - File has patient_id column" in result.stderr
    assert jobs_table(study)[-1][3] == "Completed successfully, but 1 file(s) marked as moderately_sensitive were excluded. See job log for details."
    with sqlite3.connect(study / "metadata" / "db.sqlite") as db:
        (excluded,) = db.execute("SELECT level4_excluded_files FROM job WHERE action = 'summarise'").fetchone()
    assert excluded == '{"output/counts.csv":"File has patient_id column"}'
    run(study, "jobs", "--html", "page.html", check=0)
    assert "not releasable: File has patient_id column" in (study / "page.html").read_text()
    log = (study / "metadata/summarise.log").read_text()
    assert "Invalid moderately_sensitive outputs:\n  output/counts.csv  - File has patient_id column" in log


def test_cohortextractor_actions_get_the_projects_expectations_population(tmp_path):
    project = """\
    version: '3.0'
    expectations:
      population_size: 25
    actions:
      generate_study_population:
        run: cohortextractor:latest generate_cohort --study-definition study_definition
        outputs:
          highly_sensitive:
            cohort: output/input.csv
      count:
        run: python:latest analysis/count.py
        needs: [generate_study_population]
        outputs:
          moderately_sensitive:
            n: output/n.txt
    """
    study_definition = """\
    from cohortextractor import StudyDefinition, patients
    study = StudyDefinition(
        default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5},
        index_date="2020-01-01",
        population=patients.all(),
        age=patients.age_as_of("index_date", return_expectations={"int": {"distribution": "population_ages"}, "rate": "universal"}),
    )
    """
    count = "import csv\nn = len(list(csv.DictReader(open('output/input.csv'))))\nopen('output/n.txt', 'w').write(str(n))\n"
    study = make_study(tmp_path, project, {"analysis/study_definition.py": study_definition, "codelists/codelists.txt": "", "analysis/count.py": count})
    result = run(study, "run", "run_all", check=0)
    assert (study / "output/n.txt").read_text() == "25", result.stderr


def test_extractions_read_real_tables_with_data_and_drop_their_dummy_data_options(tmp_path):
    data = Path(__file__).resolve().parents[2] / "testdata/data/csv"
    project = PROJECT.replace("--output output/dataset.csv.gz", "--output output/dataset.csv.gz --dummy-data-file missing.csv")
    study = make_study(tmp_path, project)
    run(study, "run", "run_all", "--data", str(data), check=0)
    direct = tmp_path / "direct.csv.gz"
    run(study, "generate-dataset", "analysis/dataset_definition.py", "--data", str(data), "--output", str(direct), check=0)
    with gzip.open(study / "output/dataset.csv.gz", "rt") as ours, gzip.open(direct, "rt") as theirs:
        assert ours.read() == theirs.read()
    with open(data / "patients.csv") as f:
        patients = sum(1 for _ in f) - 1
    assert (study / "output/counts.csv").read_text().splitlines() == ["rows", str(patients)]


def test_a_cohortextractor_pipeline_with_a_date_range_then_measures_then_a_script(tmp_path):
    # As the seed studies' pipelines: monthly cohorts in feather, cohort-extractor's
    # measures over them, then a script that reads the measures (only its `needs`).
    project = """\
    version: '3.0'
    expectations:
      population_size: 50
    actions:
      generate_study_population:
        run: cohortextractor:latest generate_cohort --study-definition study_definition --index-date-range "2021-01-01 to 2021-03-01 by month" --output-format=feather
        outputs:
          highly_sensitive:
            cohort: output/data/input_*.feather
      generate_measures:
        run: cohortextractor:latest generate_measures --study-definition study_definition --output-dir=output/data
        needs: [generate_study_population]
        outputs:
          moderately_sensitive:
            measure: output/data/measure_*.csv
      tabulate:
        run: python:latest python analysis/tabulate.py
        needs: [generate_measures]
        outputs:
          moderately_sensitive:
            table: output/table.csv
    """
    study_definition = """\
    from cohortextractor import StudyDefinition, patients, Measure
    study = StudyDefinition(
        default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5},
        index_date="2021-01-01",
        population=patients.all(),
        sex=patients.sex(return_expectations={"rate": "universal", "category": {"ratios": {"M": 0.5, "F": 0.5}}}),
        died=patients.died_from_any_cause(on_or_before="index_date", returning="binary_flag", return_expectations={"incidence": 0.1}),
    )
    measures = [Measure(id="deaths_by_sex", numerator="died", denominator="population", group_by=["sex"])]
    """
    tabulate = """\
    import csv, glob, os
    files = sorted(glob.glob("output/data/*"))
    with open("output/table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file"])
        for name in files:
            w.writerow([name])
    """
    study = make_study(tmp_path, project, {"analysis/study_definition.py": study_definition, "codelists/codelists.txt": "", "analysis/tabulate.py": tabulate})
    result = run(study, "run", "run_all", check=0)
    cohorts = sorted(p.name for p in (study / "output/data").glob("input_*.feather"))
    assert cohorts == ["input_2021-01-01.feather", "input_2021-02-01.feather", "input_2021-03-01.feather"], result.stderr
    # The script saw the measures its `needs` gave it, and not the cohorts.
    seen = (study / "output/table.csv").read_text().splitlines()[1:]
    assert seen == ["output/data/measure_deaths_by_sex.csv"] + [f"output/data/measure_deaths_by_sex_2021-0{m}-01.csv" for m in (1, 2, 3)]
    # The job runner's additions to generate_cohort are part of the command recorded.
    with sqlite3.connect(study / "metadata" / "db.sqlite") as db:
        (command,) = db.execute("SELECT run_command FROM job WHERE action = 'generate_study_population'").fetchone()
    assert command == (
        "cohortextractor:latest generate_cohort --study-definition study_definition --index-date-range '2021-01-01 to 2021-03-01 by month'"
        " --output-format=feather --expectations-population=50 --output-dir=output/data"
    )


def test_an_invalid_project_is_one_line_and_exit_2(tmp_path):
    study = make_study(tmp_path, PROJECT.replace("needs: [generate_dataset]", "needs: [generate]"))
    result = run(study, "run", "run_all", check=2)
    assert result.stderr == "error: project.yaml: Action `summarise` references an unknown action in its `needs` list: generate\n"
    study = make_study(tmp_path)
    result = run(study, "run", "nope", check=2)
    assert result.stderr.splitlines()[-1] == "error: Action 'nope' not found in project.yaml (the actions are: run_all, generate_dataset, summarise)"
    assert not (study / "metadata" / "db.sqlite").exists() or jobs_table(study) == []


def test_a_killed_run_leaves_its_jobs_failed_and_the_next_run_proceeds(tmp_path):
    project = PROJECT + """\
  slow:
    run: python:v2 analysis/slow.py
    outputs:
      moderately_sensitive:
        out: output/slow.txt
"""
    slow = "import os, time\nopen('../../script.pid', 'w').write(str(os.getpid()))\ntime.sleep(120)\n"
    study = make_study(tmp_path, project, {"analysis/slow.py": slow})
    # The script writes its pid two folders up from its working copy: metadata/.work/COPY.
    runner = subprocess.Popen([BIN, "run", "slow"], cwd=study, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    pid_file = study / "metadata" / "script.pid"
    try:
        deadline = time.time() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            if time.time() > deadline:
                pytest.fail("the slow job never started")
            time.sleep(0.2)
        # Only the runner is killed: its script must not outlive it.
        runner.kill()
        runner.wait()
        script = int(pid_file.read_text())
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{script}") and time.time() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{script}") or open(f"/proc/{script}/stat").read().split()[2] == "Z", "the script outlived its runner"
    finally:
        try:
            os.killpg(runner.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert [p.name.split("-")[0] for p in (study / "metadata/.work").iterdir()] == ["slow"]
    result = run(study, "run", "generate_dataset", check=0)
    assert "an earlier run was interrupted" in result.stderr
    assert jobs_table(study)[0] == ("slow", "failed", "internal_error", "Job was interrupted: its runner stopped before it finished")
    assert jobs_table(study)[1][:3] == ("generate_dataset", "succeeded", "succeeded")
    # The killed run's working copy is cleared by the next run.
    assert list((study / "metadata/.work").iterdir()) == []


def test_the_job_request_page_as_html(tmp_path):
    study = make_study(tmp_path, FAILING, FAILING_FILES)
    run(study, "run", "run_all", "-j", "1", "--continue-on-error", check=1)
    run(study, "jobs", "--html", "page.html", check=0)
    page = (study / "page.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "nonzero_exit: Job exited with an error" in page
    assert "dependency_failed: Not starting as dependency failed" in page
    assert '<span class="badge failed">failed</span>' in page
    assert "<script" not in page and "http" not in page  # self-contained
    listing = run(study, "jobs", "--list", check=0).stdout
    assert "3 jobs" in listing


def chromium():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    # CI installs it (.ci/run); elsewhere the test says why it did not run.
    if os.environ.get("CI"):
        pytest.fail("no headless Chromium on PATH (CI installs Debian's chromium-headless-shell)")
    pytest.skip("no headless Chromium on PATH: apt-get install --no-install-recommends chromium-headless-shell")


def test_the_job_request_page_renders_in_a_browser(tmp_path):
    from PIL import Image

    browser = chromium()
    study = make_study(tmp_path, FAILING, FAILING_FILES)
    run(study, "run", "run_all", "-j", "1", "--continue-on-error", check=1)
    run(study, "jobs", "--html", "page.html", check=0)
    shot = tmp_path / "page.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,700", (study / "page.html").as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 700)
    colours = image.getcolors(maxcolors=1 << 20)
    counts = {rgb: n for n, rgb in colours}
    # The badges are drawn: the failed jobs' red and the succeeded job's green fill
    # whole areas of the page (the request's own badge is red too).
    red, green = (0xFE, 0xE2, 0xE2), (0xD1, 0xFA, 0xE5)
    assert counts.get(red, 0) > 500, "no failed badge on the page"
    assert counts.get(green, 0) > 100, "no succeeded badge on the page"
    # Text is drawn (dark pixels), not a blank page.
    dark = sum(n for rgb, n in counts.items() if sum(rgb) < 200)
    assert dark > 2000


SHARED_A = """\
from ehrql import create_dataset
from ehrql.tables.core import clinical_events, patients

dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
dataset.sex = patients.sex
dataset.events = clinical_events.count_for_patient()
dataset.last_code = clinical_events.sort_by(clinical_events.date).last_for_patient().snomedct_code
"""

# Reads one column of clinical_events that SHARED_A does not (numeric_value).
SHARED_B = """\
from ehrql import create_dataset
from ehrql.tables.core import clinical_events, patients

dataset = create_dataset()
dataset.define_population(patients.date_of_birth.is_on_or_before("2000-01-01"))
dataset.highest = clinical_events.where(clinical_events.date.is_after("2010-01-01")).numeric_value.maximum_for_patient()
"""

SHARED_M = """\
from ehrql import INTERVAL, create_measures, months
from ehrql.tables.core import clinical_events, patients

measures = create_measures()
measures.define_measure(
    "events",
    numerator=clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient(),
    denominator=patients.exists_for_patient(),
    group_by={"sex": patients.sex},
    intervals=months(12).starting_on("2015-01-01"),
)
measures.configure_disclosure_control(enabled=False)
"""

SHARED_PROJECT = """\
version: '4'
actions:
  a:
    run: ehrql:v1 generate-dataset analysis/a.py --output output/a.csv
    outputs:
      highly_sensitive:
        out: output/a.csv
  b:
    run: ehrql:v1 generate-dataset analysis/b.py --output output/b.csv
    outputs:
      highly_sensitive:
        out: output/b.csv
  m:
    run: ehrql:v1 generate-measures analysis/m.py --output output/m.csv
    outputs:
      moderately_sensitive:
        out: output/m.csv
"""


def parquet_tables(target, row_group_size=40):
    """testdata/data/csv as parquet files of several row groups each."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target.mkdir()
    for path in sorted((Path(__file__).resolve().parents[2] / "testdata/data/csv").glob("*.csv")):
        names = path.read_text().splitlines()[0].split(",")
        types = {n: pa.string() for n in names if n.endswith("_code") or n in ("sex", "cause_of_death")}
        types.update({n: pa.date32() for n in names if "date" in n})
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
        pq.write_table(table, target / f"{path.stem}.parquet", row_group_size=row_group_size)
    return target


def test_extraction_jobs_over_the_same_tables_share_their_scans(tmp_path):
    data = parquet_tables(tmp_path / "data")
    files = {"analysis/a.py": SHARED_A, "analysis/b.py": SHARED_B, "analysis/m.py": SHARED_M}
    study = make_study(tmp_path / "shared", SHARED_PROJECT, files)
    run(study, "run", "run_all", "--data", str(data), "--share-memory", "1", check=0)
    # The first job decodes what it reads; the next reuse it, decoding only what is new.
    log_a, log_b, log_m = ((study / f"metadata/{a}.log").read_text() for a in "abm")
    # (patient_id counts as a column.)
    assert "patients (0 of 2 columns already decoded)" in log_a and "clinical_events (0 of 3 columns already decoded)" in log_a, log_a
    assert "patients (1 of 2 columns already decoded)" in log_b and "clinical_events (2 of 3 columns already decoded)" in log_b, log_b
    assert "patients (2 of 2 columns already decoded)" in log_m and "clinical_events (2 of 2 columns already decoded)" in log_m, log_m
    # The same results as each command run alone, which streams its tables.
    for name in "abm":
        alone = tmp_path / f"alone-{name}.csv"
        command = "generate-measures" if name == "m" else "generate-dataset"
        run(study, command, f"analysis/{name}.py", "--data", str(data), "--output", str(alone), check=0)
        assert (study / f"output/{name}.csv").read_text() == alone.read_text(), name
    # Sharing off (the default, or 0), or a budget too small to keep anything: each
    # job streams its tables.
    for budget, expected in ((None, None), ("0", None), ("0.0000001", "streamed: over the memory budget")):
        again = make_study(tmp_path / f"budget-{budget}", SHARED_PROJECT, files)
        run(again, "run", "run_all", "--data", str(data), *(["--share-memory", budget] if budget else []), check=0)
        log = (again / "metadata/b.log").read_text()
        assert ("Shared scans" in log) == (expected is not None), log
        assert expected is None or expected in log
        for name in "abm":
            assert (again / f"output/{name}.csv").read_text() == (study / f"output/{name}.csv").read_text()


FAKE_DOCKER = """\
#!{python}
# Stands in for docker: records its arguments, then runs the image's command with the
# local interpreter in the mounted folder, as the python image would.
import json, os, subprocess, sys
args = sys.argv[1:]
if args == ["info"]:
    sys.exit(0)
with open(os.environ["FAKE_DOCKER_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
mount = dict(part.split("=", 1) for part in args[args.index("--mount") + 1].split(","))
assert mount["type"] == "bind" and mount["target"] == "/workspace"
mounted = mount["source"]
command = args[next(i for i, a in enumerate(args) if a.startswith("ghcr.io/")) + 1:]
if command[0] in ("python", "python3"):
    command = command[1:]
sys.exit(subprocess.call([sys.executable, *command], cwd=mounted))
"""


def test_docker_runs_scripts_in_the_platforms_images(tmp_path):
    study = make_study(tmp_path / "study")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    calls = tmp_path / "docker-calls.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_DOCKER_LOG": str(calls)}
    result = subprocess.run([BIN, "run", "run_all", "--docker"], cwd=study, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (study / "output/counts.csv").read_text().splitlines() == ["rows", "40"]
    # Only the script went to Docker (the extraction ran on the engine), in its image,
    # with its working copy as /workspace and the platform's environment.
    (args,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert args[0] == "run" and "--rm" in args and "--init" in args
    image = args.index("ghcr.io/opensafely-core/python:v2")
    assert args[image + 1:] == ["analysis/summarise.py"]
    assert args[args.index("--network") + 1] == "none"
    assert args[args.index("--user") + 1] == f"{os.geteuid()}:{os.getegid()}"
    assert "OPENSAFELY_BACKEND=expectations" in args
    # Without docker on PATH, the run stops before any job, as `opensafely run` does.
    no_docker = make_study(tmp_path / "no-docker")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run([BIN, "run", "run_all", "--docker"], cwd=no_docker, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: Could not find application: docker"), result.stderr
    assert not (no_docker / "output").exists()
