"""`ehrfusion run run_all` over ten extraction actions (with shared scans, and with
them turned off) against the same ten commands run one by one (see benches/pipeline).
All run over the same population with --data; the outputs are compared file by file."""

import argparse
import filecmp
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from compare import machine, measure, population  # noqa: E402

DATASETS = ["diagnoses", "wide", "staged", "monthly"]
INTERVALS = [1, 12, 24, 36, 48, 60]


def actions():
    """(name, command after `ehrfusion`, output) of the ten extraction actions."""
    for name in DATASETS:
        out = f"output/{name}.csv.gz"
        yield name, ["generate-dataset", f"workloads/{name}.py", "--output", out], out
    for k in INTERVALS:
        out = f"output/measures_{k}.csv"
        yield f"measures_{k}", ["generate-measures", "workloads/measures.py", "--output", out, "--", "--intervals", str(k)], out


def make_study(root):
    shutil.copytree(HERE / "workloads", root / "workloads")
    shutil.copytree(HERE / "codelists", root / "codelists")
    lines = ["version: '5'", "actions:"]
    for name, command, out in actions():
        level = "highly_sensitive"
        lines += [f"  {name}:", f"    run: ehrql:v1 {' '.join(command)}", "    outputs:", f"      {level}:", f"        out: {out}"]
    (root / "project.yaml").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    data, facts = population(args.binary, args.patients, Path(args.cache), args.seed)
    results = {"patients": args.patients, "rows": facts["rows"], "machine": machine(), "runs": []}
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            pipeline, unshared, separate = Path(tmp) / "pipeline", Path(tmp) / "unshared", Path(tmp) / "separate"
            for root in (pipeline, unshared, separate):
                root.mkdir()
                make_study(root)
            # With shared scans (half of this machine's 24 GiB), then without (the default).
            seconds, rss = measure([args.binary, "run", "run_all", "--data", data, "--share-memory", "12", "--project-dir", pipeline])
            unshared_seconds, unshared_rss = measure([args.binary, "run", "run_all", "--data", data, "--project-dir", unshared])
            one_by_one = {}
            for name, command, _ in actions():
                # From the study folder, as the pipeline's jobs run.
                s, r = measure([args.binary, *command[:2], "--data", data, *command[2:]], cwd=separate)
                one_by_one[name] = {"seconds": round(s, 2), "peak_rss_mib": round(r)}
            same = [out for _, _, out in actions()
                    if filecmp.cmp(pipeline / out, separate / out, shallow=False) and filecmp.cmp(unshared / out, separate / out, shallow=False)]
            run = {
                "run_all_shared": {"seconds": round(seconds, 2), "peak_rss_mib": round(rss)},
                "run_all": {"seconds": round(unshared_seconds, 2), "peak_rss_mib": round(unshared_rss)},
                "one_by_one": {"seconds": round(sum(v["seconds"] for v in one_by_one.values()), 2),
                               "peak_rss_mib": max(v["peak_rss_mib"] for v in one_by_one.values()), "each": one_by_one},
                "identical_outputs": f"{len(same)} of {len(list(actions()))}",
            }
            results["runs"].append(run)
            print(f"run {attempt + 1}: run_all --share-memory 12 {seconds:.2f} s / {rss:.0f} MiB; run_all {unshared_seconds:.2f} s / {unshared_rss:.0f} MiB; "
                  f"one by one {run['one_by_one']['seconds']:.2f} s; "
                  f"outputs identical: {run['identical_outputs']}", flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = HERE / "results" / f"pipeline-{args.patients}-{stamp}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
