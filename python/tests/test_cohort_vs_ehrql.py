"""The semantic cross-check of cohort-extractor study definitions against ehrQL
definitions that say the same thing (scripts/cohort-vs-ehrql): ehrfusion's outputs
over the kept tables must equal the ehrQL reference's kept outputs, column by column,
after the documented differences between the two languages' outputs."""

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cohort-vs-ehrql"
BIN = os.environ.get("EHRFUSION_BIN", str(Path.home() / ".cache/ehrfusion-target/debug/ehrfusion"))


def load_script():
    loader = importlib.machinery.SourceFileLoader("cohort_vs_ehrql", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path(BIN).exists(), reason="the ehrfusion binary is not built (set EHRFUSION_BIN)")
def test_study_definitions_give_the_ehrql_references_values():
    run = subprocess.run([sys.executable, str(SCRIPT), "--golden", "--ehrfusion", BIN], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    table = run.stdout.splitlines()
    for pair in ("derived", "primary_care", "secondary_care"):
        assert any(line.startswith(f"| {pair} | 200 |") and line.endswith("| same values |") for line in table), run.stdout


def test_the_comparison_reports_each_difference(tmp_path):
    script = load_script()
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    ours.write_text("patient_id,flag,count,month,name\n1,1,0,2020-03,a\n2,0,3,,b\n3,0,0,,c\n")
    theirs.write_text("patient_id,flag,count,month,name\n1,T,,2020-03-01,a\n2,T,3,,B\n4,F,,,c\n")
    problems = script.compare(ours, theirs)
    assert problems == [
        "1 patients only in ehrfusion's output, e.g. ['3']",
        "1 patients only in the reference's output, e.g. ['4']",
        "patient 2, flag: ehrfusion '0', reference 'T'",
        "patient 2, name: ehrfusion 'b', reference 'B'",
    ]
    # The documented differences alone are not differences.
    assert script.compare(ours, ours) == []
    assert script.normalised("0", "") == "0" and script.normalised("1", "T") == "1" and script.normalised("2020", "2020-01-01") == "2020"
