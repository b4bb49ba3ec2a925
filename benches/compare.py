"""Runs the benchmark workloads with ehrfusion and its peers on the same parquet
population, checks that every system produced the same dataset, and reports wall
time, peak RSS and each system's time as a ratio to ehrfusion's.

Run it through `benches/compare`, which builds ehrfusion and sets up the peers.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402

SYSTEMS = ["ehrfusion", "ehrfusion-python", "duckdb-per-variable", "duckdb-fused", "polars", "scan-floor"]


def measure(command, env=None):
    """Wall seconds and peak RSS (MiB) of a command, measured by GNU time: the
    command is its grandchild, so its peak is not inflated by this process's memory
    (Linux keeps a process's peak RSS across fork and exec)."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *map(str, command)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"compare: {' '.join(map(str, command))} failed:\n{proc.stderr.decode(errors='replace')}")
        peak_kib = int(report.read().split()[-1])
    return seconds, peak_kib / 1024


def population(binary, patients, cache, seed):
    """The population's parquet tables, generated once per size and seed."""
    out = cache / f"population-{patients}-seed{seed}"
    stamp = out.with_suffix(".json")  # beside the tables: the data dir holds only tables
    if stamp.exists():
        return out, json.loads(stamp.read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {patients:,} patients into {out} ...", file=sys.stderr, flush=True)
    seconds, rss = measure([
        binary, "create-dummy-tables", HERE / "workloads" / "population.py", f"{out}:parquet",
        "--profile", "population", "--population-size", str(patients), "--seed", str(seed), "--timeout", "86400",
    ])
    rows = {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(out.glob("*.parquet"))}
    facts = {"seconds": round(seconds, 2), "peak_rss_mib": round(rss), "rows": rows,
             "bytes": sum(p.stat().st_size for p in out.glob("*.parquet"))}
    stamp.write_text(json.dumps(facts, indent=1))
    return out, facts


def command(system, workload, data, output, binary):
    if system == "ehrfusion":
        return [binary, "generate-dataset", HERE / "workloads" / f"{workload}.py", "--data", data, "--output", output]
    return [sys.executable, HERE / "run_one.py", system, workload, data, output]


def normalised(path):
    """The dataset as plain types (ehrfusion narrows integers and dictionary-encodes
    categories in parquet), sorted by patient."""
    table = pq.read_table(path)
    columns = []
    for field, column in zip(table.schema, table.columns):
        t = field.type
        if pa.types.is_dictionary(t):
            column, t = column.cast(t.value_type), t.value_type
        if pa.types.is_integer(t):
            column = column.cast(pa.int64())
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            column = column.cast(pa.string())
        elif pa.types.is_timestamp(t):
            column = column.cast(pa.date32())
        columns.append(column)
    table = pa.table(columns, names=table.column_names)
    return table.sort_by("patient_id")


def difference(expected, got):
    """'' when equal, else what differs first."""
    if expected.column_names != got.column_names:
        return f"columns differ: {got.column_names[:5]}..."
    if expected.num_rows != got.num_rows:
        return f"{got.num_rows} rows, expected {expected.num_rows}"
    for name in expected.column_names:
        a, b = expected[name].combine_chunks(), got[name].combine_chunks()
        if a.type != b.type:
            return f"column {name}: type {b.type}, expected {a.type}"
        if not a.equals(b):
            same = pc.fill_null(pc.equal(a, b), False)
            both_null = pc.and_(pc.is_null(a), pc.is_null(b))
            bad = pc.sum(pc.invert(pc.or_(same, both_null))).as_py()
            return f"column {name}: {bad} of {a.__len__()} values differ"
    return ""


def run(args):
    binary = Path(args.binary)
    cache = Path(args.cache)
    results = []
    for patients in args.patients:
        data, generated = population(binary, patients, cache, args.seed)
        print(f"\n## {patients:,} patients ({sum(generated['rows'].values()):,} rows, {generated['bytes'] / 2**20:,.0f} MiB parquet)\n", flush=True)
        previous = {}
        saved = args.results / f"{patients}.json"
        if saved.exists():
            previous = {r["workload"]: r for r in json.loads(saved.read_text())["results"]}
        for workload in args.workloads:
            out = cache / "outputs" / f"{patients}-{workload}"
            out.mkdir(parents=True, exist_ok=True)
            rows = []
            for system in args.systems:
                output = out / f"{system}.parquet"
                output.unlink(missing_ok=True)
                times = []
                for _ in range(args.repeat):
                    seconds, rss = measure(command(system, workload, data, output, binary), env=args.env)
                    times.append((seconds, rss))
                seconds, rss = min(times)
                rows.append({"system": system, "seconds": round(seconds, 3), "peak_rss_mib": round(rss), "output": output})
                print(f"  {workload:10} {system:20} {seconds:8.2f} s {rss:8.0f} MiB", file=sys.stderr, flush=True)
            # Systems not run this time keep their last figures (and are checked
            # again against this run's dataset), so one system can be rerun alone.
            for kept in previous.get(workload, {}).get("systems", []):
                if kept["system"] not in args.systems and Path(kept["output"]).exists():
                    rows.append(dict(kept, output=Path(kept["output"]), rerun=False))
            rows.sort(key=lambda r: SYSTEMS.index(r["system"]))
            reference = normalised(rows[0]["output"])
            for row in rows:
                if row["system"] == "scan-floor":
                    row["identical"] = None
                else:
                    row["identical"] = difference(reference, normalised(row["output"])) or True
                row["output"] = str(row["output"])
            base = next(r["seconds"] for r in rows if r["system"] == "ehrfusion")
            for row in rows:
                row["ratio"] = round(row["seconds"] / base, 2)
            results.append({"patients": patients, "workload": workload, "dataset_rows": reference.num_rows,
                            "dataset_columns": reference.num_columns - 1, "systems": rows})
            print_table(results[-1])
    return results


def table(result):
    """A workload's results as a markdown table."""
    lines = [
        f"### {result['workload']}: {result['dataset_rows']:,} rows x {result['dataset_columns']} variables",
        "",
        "| system | wall time (s) | peak RSS (MiB) | time / ehrfusion's | same dataset |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in result["systems"]:
        same = "n/a (reads only)" if r["identical"] is None else ("yes" if r["identical"] is True else f"NO: {r['identical']}")
        name = r["system"] + (" (earlier run)" if r.get("rerun") is False else "")
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['peak_rss_mib']:,} | {r['ratio']:.2f} | {same} |")
    return "\n".join(lines) + "\n"


def print_table(result):
    print(table(result), flush=True)


def machine():
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory, 1), "os": platform.platform()}


def plot(all_results, path):
    """Time against population size, one panel per workload, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = sorted({r["workload"] for r in all_results})
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        for system in SYSTEMS:
            points = sorted(
                (r["patients"], s["seconds"]) for r in all_results if r["workload"] == workload for s in r["systems"] if s["system"] == system
            )
            if points:
                ax.plot(*zip(*points), marker="o", label=system)
        ax.set(xscale="log", yscale="log", title=workload, xlabel="patients")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("wall time (s)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    fig.savefig(path.with_suffix(".png"), dpi=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[100_000])
    parser.add_argument("--workloads", nargs="+", default=list(peers.WORKLOADS), choices=list(peers.WORKLOADS))
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--repeat", type=int, default=1, help="runs per system; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--python-path", required=True, help="where the ehrfusion Python package is")
    parser.add_argument("--cache", default=Path.home() / ".cache" / "ehrfusion-bench")
    parser.add_argument("--results", default=HERE / "results", type=Path)
    parser.add_argument("--plot-only", action="store_true", help="only redraw the plot from the saved results")
    args = parser.parse_args()
    if args.systems[0] != "ehrfusion":
        args.systems = ["ehrfusion"] + [s for s in args.systems if s != "ehrfusion"]
    args.env = dict(os.environ, PYTHONPATH=args.python_path)
    if args.plot_only:
        everything = [r for p in sorted(args.results.glob("*.json")) for r in json.loads(p.read_text())["results"]]
        return plot(everything, args.results / "time-vs-population.svg")
    results = run(args)
    args.results.mkdir(exist_ok=True)
    record = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": " ".join(sys.argv), "results": results}
    for patients in args.patients:
        mine = [r for r in results if r["patients"] == patients]
        path = args.results / f"{patients}.json"
        previous = json.loads(path.read_text())["results"] if path.exists() else []
        kept = [r for r in previous if r["workload"] not in {m["workload"] for m in mine}]
        path.write_text(json.dumps(dict(record, results=kept + mine), indent=1))
        facts = json.loads((Path(args.cache) / f"population-{patients}-seed{args.seed}.json").read_text())
        header = (f"## {patients:,} patients\n\n{sum(facts['rows'].values()):,} input rows "
                  f"({', '.join(f'{t} {n:,}' for t, n in facts['rows'].items())}); {facts['bytes'] / 2**20:,.0f} MiB of parquet.\n\n")
        path.with_suffix(".md").write_text(header + "\n".join(table(r) for r in kept + mine))
    everything = [r for p in sorted(args.results.glob("*.json")) for r in json.loads(p.read_text())["results"]]
    plot(everything, args.results / "time-vs-population.svg")
    print(f"results in {args.results}/ (N.json and N.md per population size, time-vs-population.svg and .png)")
    if any(s["identical"] not in (True, None) for r in results for s in r["systems"]):
        raise SystemExit("compare: some systems produced a different dataset (see the tables above)")


if __name__ == "__main__":
    main()
