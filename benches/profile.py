"""Where ehrfusion spends its time: runs each dataset workload once with
`EHRFUSION_METRICS=1` (every executed plan printed with its operators' metrics) and
sums the operators' CPU time into phases, with the run's wall time and how many of
the cores it kept busy ((user + system) / wall).

    python benches/profile.py --binary target/release/ehrfusion --data DIR [--workloads W ...]

Phases (DataFusion operators): decode = the parquet scans' processing time (reading,
decompressing and decoding pages, and any filter evaluated inside the scan);
filter = FilterExec (codelist masks and conditions evaluated on decoded rows);
project = ProjectionExec (computed columns: codelist masks, sort keys, the
dataset's expressions); aggregate = AggregateExec (grouping by patient);
join = HashJoinExec's probe time (joining passes and stages; building the hash
tables is small here and its timer also counts the operators below it); exchange = RepartitionExec and
CoalescePartitionsExec; sort = SortExec and SortPreservingMergeExec (the final
patient order). CPU seconds summed over both threads; what is left of
cores x wall is Python start-up, planning, stage materialisation and the writer.
"""
import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
PHASES = {
    "DataSourceExec": "decode",
    "FilterExec": "filter",
    "ProjectionExec": "project",
    "AggregateExec": "aggregate",
    "HashJoinExec": "join",
    "RepartitionExec": "exchange",
    "CoalescePartitionsExec": "exchange",
    "SortExec": "sort",
    "SortPreservingMergeExec": "sort",
}
ORDER = ["decode", "filter", "project", "aggregate", "join", "exchange", "sort", "other"]
UNITS = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(text):
    m = re.fullmatch(r"([0-9.]+)(ns|µs|ms|s)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else 0.0


def profile(binary, data, workload):
    with tempfile.TemporaryDirectory() as tmp:
        timing = Path(tmp) / "time"
        out = subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S", "-o", timing, binary, "generate-dataset", HERE / "workloads" / f"{workload}.py",
             "--data", data, "--output", Path(tmp) / "out.parquet"],
            env={**os.environ, "EHRFUSION_METRICS": "1"}, capture_output=True, text=True, check=True,
        )
        wall, user, system = map(float, timing.read_text().split()[-3:])
    phases = dict.fromkeys(ORDER, 0.0)
    for line in out.stderr.splitlines():
        m = re.match(r"\s*(\w+Exec)[:,]", line)
        if not m:
            continue
        phase = PHASES.get(m.group(1), "other")
        # A hash join's elapsed_compute includes collecting its build side, which
        # runs the operators below it; its join_time is the probing alone.
        metric = {"decode": "time_elapsed_processing", "join": "join_time"}.get(phase, "elapsed_compute")
        found = re.search(rf"\b{metric}=([0-9.]+(?:ns|µs|ms|s))", line)
        if found:
            phases[phase] += seconds(found.group(1))
    return wall, user + system, phases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--workloads", nargs="+", default=["diagnoses", "wide", "staged", "monthly"])
    args = parser.parse_args()
    print("| workload | wall (s) | CPU (s) | cores busy | " + " | ".join(ORDER) + " |")
    print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in ORDER) + " |")
    for w in args.workloads:
        wall, cpu, phases = profile(args.binary, args.data, w)
        cells = " | ".join(f"{phases[p]:.2f}" for p in ORDER)
        print(f"| {w} | {wall:.2f} | {cpu:.2f} | {cpu / wall:.2f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
