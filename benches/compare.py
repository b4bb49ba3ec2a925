"""Runs the benchmark workloads with ehrfusion and its peers on the same parquet
population, checks that every system produced the same dataset, and reports wall
time, peak RSS and each system's time as a ratio to ehrfusion's.

The measures workloads (`measures`: 60 monthly intervals, `measures-1`: one) run
`generate-measures` instead, against the reference ehrQL itself (over an Arrow copy
of the population, with a time limit), hand-written DuckDB and Polars queries and
the decode floor; the combined outputs are compared as sets of rows.

The reference ehrQL also runs the dataset workloads (`ehrql`: its in-memory engine
over Arrow copies of the tables; `ehrql-sqlite`: its SQLite query engine over a
SQLite copy), each copy made once beside the population and not timed.

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
import measures_peers  # noqa: E402
import peers  # noqa: E402

SYSTEMS = ["ehrfusion", "ehrfusion-python", "ehrql", "ehrql-sqlite", "duckdb-per-variable", "duckdb", "polars", "decode-floor"]
# Which systems run which workloads.
DATASET_SYSTEMS = ["ehrfusion", "ehrfusion-python", "ehrql", "ehrql-sqlite", "duckdb-per-variable", "duckdb", "polars", "decode-floor"]
# The reference ehrQL's engines: run with its own Python, with a time limit.
REFERENCE_SYSTEMS = ["ehrql", "ehrql-sqlite"]
MEASURES_SYSTEMS = ["ehrfusion", "ehrfusion-python", "ehrql", "duckdb", "polars", "decode-floor"]
WORKLOADS = list(peers.WORKLOADS) + list(measures_peers.WORKLOADS)


def group_rss_mib(group):
    """The resident memory (MiB) of the processes in a process group, from /proc."""
    pages = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields from the state on: state, ppid, pgrp, ...
            pages += int(fields[21])  # rss
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(command, env=None, timeout=None, cwd=None, max_rss_mib=None):
    """Wall seconds and peak RSS (MiB) of a command, measured by GNU time: the
    command is its grandchild, so its peak is not inflated by this process's memory
    (Linux keeps a process's peak RSS across fork and exec). With `timeout` or
    `max_rss_mib`, the command is stopped once it has run that long or its resident
    memory (polled) grows past that (GNU time and the command are in a process
    group of their own), and what stopped it is returned as a string."""
    with tempfile.NamedTemporaryFile("r") as report, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", report.name, *map(str, command)], env=env, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        while True:
            left = None if timeout is None else max(0.0, started + timeout - time.perf_counter())
            try:
                proc.wait(timeout=left if max_rss_mib is None else 0.25 if left is None else min(0.25, left))
                break
            except subprocess.TimeoutExpired:
                if left is not None and time.perf_counter() >= started + timeout:
                    stopped = f"after {timeout:g} s"
                elif max_rss_mib is not None and group_rss_mib(proc.pid) > max_rss_mib:
                    stopped = f"at {max_rss_mib:,.0f} MiB"
                else:
                    continue
                os.killpg(proc.pid, 9)
                proc.wait()
                return stopped
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"compare: {' '.join(map(str, command))} failed:\n{errors.read().decode(errors='replace')}")
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


def plain_table(data, name, columns):
    """A parquet table's columns with strings as plain `string`."""
    table = pq.read_table(data / f"{name}.parquet", columns=columns)
    plain = []
    for column in table.columns:
        t = column.type
        if pa.types.is_dictionary(t):
            column, t = column.cast(t.value_type), t.value_type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            column = column.cast(pa.string())
        plain.append(column)
    return pa.table(plain, names=table.column_names)


def reference_tables(data, workload=None):
    """The tables a workload reads, as Arrow files for the reference ehrQL (its
    --dummy-tables reads csv, csv.gz and arrow, not parquet), with only the columns
    the workload uses and strings as plain `string`: one copy for the measures
    workloads (DIR-arrow), one per dataset workload (DIR-arrow-W; ehrQL's file
    reader takes a column missing from a file as all null, and converts to Python
    every column a file has that the table's schema names). A file with the same
    columns in another finished copy is hard-linked. Written once beside the
    population."""
    if workload is None or is_measures(workload):
        out, wanted = data.parent / f"{data.name}-arrow", measures_peers.TABLE_COLUMNS
    else:
        out, wanted = data.parent / f"{data.name}-arrow-{workload}", peers.WORKLOADS[workload].columns()
    done = out.with_name(out.name + ".done")
    if done.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"writing the reference's Arrow copy of the tables into {out} ...", file=sys.stderr, flush=True)
    for name, columns in wanted.items():
        for other in data.parent.glob(f"{data.name}-arrow*/{name}.arrow"):
            if other.parent.with_name(other.parent.name + ".done").exists() \
                    and set(pa.ipc.open_file(pa.memory_map(str(other))).schema.names) == set(columns):
                os.link(other, out / f"{name}.arrow")
                break
        else:
            table = plain_table(data, name, columns)
            with pa.ipc.new_file(out / f"{name}.arrow", table.schema) as writer:
                writer.write_table(table, max_chunksize=64_000)
    done.write_text("")
    return out


def sqlite_tables(data):
    """The tables the dataset workloads read (the columns any of them uses), as a
    SQLite database for the reference's SQLite query engine, laid out as ehrQL's own
    tests lay out theirs: a table per ehrQL table, named as it and its columns are
    (no backend translates them), dates as ISO text, booleans as 0 and 1;
    `patients` keyed by `patient_id`, event tables by a `row_id` with `patient_id`
    not null and no index. Written once beside the population."""
    out = data.parent / f"{data.name}.sqlite"
    done = data.parent / f"{data.name}.sqlite.done"
    if done.exists():
        return out
    import sqlite3

    out.unlink(missing_ok=True)
    print(f"writing the reference's SQLite copy of the tables into {out} ...", file=sys.stderr, flush=True)
    wanted = {}
    for w in peers.WORKLOADS.values():
        for name, columns in w.columns().items():
            wanted.setdefault(name, {"patient_id"}).update(columns)
    connection = sqlite3.connect(out)
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    for name, columns in sorted(wanted.items()):
        columns = ["patient_id"] + sorted(columns - {"patient_id"})
        table = plain_table(data, name, columns)
        declared = []
        for field in table.schema:
            t = field.type
            declared.append(f"{field.name} " + ("INTEGER" if pa.types.is_integer(t) else "FLOAT" if pa.types.is_floating(t)
                                                else "DATE" if pa.types.is_date(t) else "BOOLEAN" if pa.types.is_boolean(t)
                                                else "VARCHAR"))
        if name == "patients":  # the one table with one row per patient
            declared[0] = "patient_id INTEGER PRIMARY KEY"
            key = []
        else:
            declared[0] = "patient_id INTEGER NOT NULL"
            key = ["row_id"]
            declared.insert(0, "row_id INTEGER PRIMARY KEY")
        connection.execute(f"CREATE TABLE {name} ({', '.join(declared)})")
        insert = f"INSERT INTO {name} ({', '.join(key + columns)}) VALUES ({', '.join('?' * (len(key) + len(columns)))})"
        row_id = 0
        for batch in table.to_batches(max_chunksize=100_000):
            values = [(c.cast(pa.string()) if pa.types.is_date(c.type) else c).to_pylist() for c in batch.columns]
            if key:
                values.insert(0, range(row_id + 1, row_id + 1 + batch.num_rows))
                row_id += batch.num_rows
            connection.executemany(insert, zip(*values))
        connection.commit()
    connection.close()
    done.write_text("")
    return out


def is_measures(workload):
    return workload in measures_peers.WORKLOADS


def decode_floor(binary, columns, data, output):
    """The decode floor: arrow-rs decoding, on two threads, the columns a workload
    reads (`ehrfusion-decode-floor`, built beside ehrfusion)."""
    floor = Path(binary).with_name("ehrfusion-decode-floor")
    files = [f"{Path(data) / table}.parquet:{','.join(cols)}" for table, cols in columns.items()]
    return [floor, "--threads", "2", "--report", output, *files]


def command(system, workload, data, output, binary, args=None):
    if system == "decode-floor":
        columns = measures_peers.TABLE_COLUMNS if is_measures(workload) else peers.WORKLOADS[workload].columns()
        return decode_floor(binary, columns, data, output)
    if is_measures(workload):
        w = measures_peers.WORKLOADS[workload]
        definition = HERE / "workloads" / w["definition"]
        params = ["--", *w["args"]] if w["args"] else []
        if system == "ehrfusion":
            return [binary, "generate-measures", definition, "--data", data, "--output", output, *params]
        if system == "ehrql":
            return [args.ehrql_python, "-m", "ehrql", "generate-measures", definition, "--dummy-tables", reference_tables(data),
                    "--output", output, *params]
        return [sys.executable, HERE / "run_one.py", system, workload, data, output]
    if system == "ehrfusion":
        return [binary, "generate-dataset", HERE / "workloads" / f"{workload}.py", "--data", data, "--output", output]
    if system == "ehrql":
        return [args.ehrql_python, "-m", "ehrql", "generate-dataset", HERE / "workloads" / f"{workload}.py",
                "--dummy-tables", reference_tables(data, workload), "--output", output]
    if system == "ehrql-sqlite":
        return [args.ehrql_python, "-m", "ehrql", "generate-dataset", HERE / "workloads" / f"{workload}.py",
                "--query-engine", "sqlite", "--dsn", f"sqlite:///{sqlite_tables(data)}", "--output", output]
    return [sys.executable, HERE / "run_one.py", system, workload, data, output]


MEASURE_KEY = ["measure", "interval_start", "interval_end", "sex", "age_band", "region"]
MEASURE_TYPES = {"measure": pa.string(), "interval_start": pa.string(), "interval_end": pa.string(), "ratio": pa.float64(),
                 "numerator": pa.int64(), "denominator": pa.int64(), "sex": pa.string(), "age_band": pa.string(), "region": pa.string()}


def normalised_measures(path):
    """The combined measures CSV as typed columns (empty is null), rows sorted."""
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types=MEASURE_TYPES, strings_can_be_null=True, quoted_strings_can_be_null=True, null_values=[""]))
    return table.sort_by([(c, "ascending") for c in MEASURE_KEY])


def completed_intervals(partial):
    """From the output of a measures run that was stopped, the intervals it wrote in
    full (all but the last it started) as a CSV file of their rows, and their starts."""
    lines = partial.read_bytes().decode(errors="replace").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # cut off mid-line
    header, body = lines[:1], lines[1:]
    seen = []
    for line in body:
        start = line.split(",")[1]
        if not seen or seen[-1] != start:
            seen.append(start)
    starts = seen[:-1]
    complete = partial.with_name(partial.stem + "-complete.csv")
    complete.write_text("".join(header + [line for line in body if line.split(",")[1] in set(starts)]))
    return complete, starts


def measures_difference(expected, got, report):
    """'' when both have the same rows (numerator and denominator equal, ratio equal
    to 1e-12), else how many rows differ with the first few from each side; every
    differing row is written to `report`."""
    if expected.column_names != got.column_names:
        return f"columns {got.column_names}, expected {expected.column_names}"

    def rows(table):
        out = {}
        for row in table.to_pylist():
            key = tuple(row[c] for c in MEASURE_KEY)
            out.setdefault(key, []).append((row["ratio"], row["numerator"], row["denominator"]))
        return out

    def close(a, b):
        return a[1:] == b[1:] and (a[0] == b[0] or (a[0] is not None and b[0] is not None and abs(a[0] - b[0]) <= 1e-12 * max(1.0, abs(a[0]))))

    a, b = rows(expected), rows(got)
    missing = [k for k in a if k not in b]
    extra = [k for k in b if k not in a]
    changed = [k for k in a if k in b and (len(a[k]) != len(b[k]) or not all(map(close, a[k], b[k])))]
    if not (missing or extra or changed):
        return ""
    lines = [f"{len(missing)} rows only in the reference, {len(extra)} only here, {len(changed)} with other values",
             "key: " + ", ".join(MEASURE_KEY) + "; values: (ratio, numerator, denominator)"]
    lines += [f"only in the reference: {k} {a[k]}" for k in missing]
    lines += [f"only here: {k} {b[k]}" for k in extra]
    lines += [f"differs: {k} reference {a[k]} here {b[k]}" for k in changed]
    Path(report).write_text("\n".join(lines) + "\n")
    examples = ([f"ref-only {k} {a[k]}" for k in missing[:3]] + [f"here-only {k} {b[k]}" for k in extra[:3]]
                + [f"{k}: ref {a[k]} here {b[k]}" for k in changed[:3]])
    return f"{lines[0]} (all in {report}); first: " + "; ".join(examples)


def normalised(path):
    """The dataset as plain types (ehrfusion narrows integers and dictionary-encodes
    categories in parquet, ehrQL in Arrow), sorted by patient."""
    if Path(path).suffix == ".arrow":  # the reference ehrQL writes csv or arrow, not parquet
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    else:
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
        for saved in (args.results / f"{patients}.json", args.results / f"measures-{patients}.json"):
            if saved.exists():
                previous.update({r["workload"]: r for r in json.loads(saved.read_text())["results"]})
        for workload in args.workloads:
            out = cache / "outputs" / f"{patients}-{workload}"
            out.mkdir(parents=True, exist_ok=True)
            measures = is_measures(workload)
            applicable = MEASURES_SYSTEMS if measures else DATASET_SYSTEMS
            systems = [s for s in args.systems if s in applicable]
            for system in [s for s in systems if s in REFERENCE_SYSTEMS]:
                if not Path(args.ehrql_python).exists():
                    print(f"  {workload:10} {system}: no reference ehrQL at {args.ehrql_python} (--ehrql-python); skipped", file=sys.stderr)
                    systems.remove(system)
            rows = []
            for system in systems:
                reference_output = system in REFERENCE_SYSTEMS and not measures
                output = out / f"{system}.{'csv' if measures else 'arrow' if reference_output else 'parquet'}"
                output.unlink(missing_ok=True)
                env = args.env
                timeout = max_rss = None
                if system in REFERENCE_SYSTEMS:
                    # The reference must import its own ehrql, not ehrfusion's drop-in.
                    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                    env["PYTHONHASHSEED"] = "0"
                    timeout, max_rss = args.ehrql_timeout, args.ehrql_max_rss
                    # The copies of the tables are written before timing starts.
                    if system == "ehrql-sqlite":
                        sqlite_tables(data)
                    else:
                        reference_tables(data, workload)
                times = []
                for _ in range(args.ehrql_repeat if system in REFERENCE_SYSTEMS else args.repeat):
                    timed = measure(command(system, workload, data, output, binary, args), env=env, timeout=timeout,
                                    max_rss_mib=max_rss)
                    if isinstance(timed, str):
                        break
                    times.append(timed)
                if not times:
                    # ehrQL writes measures as it computes them, interval by
                    # interval: what it finished is still checked. A dataset is
                    # written at the end: nothing to check.
                    partial = out / f"{system}.partial.{'csv' if measures else 'arrow'}"
                    partial.unlink(missing_ok=True)
                    if output.exists() and measures:
                        output.rename(partial)
                    output.unlink(missing_ok=True)
                    rows.append({"system": system, "seconds": None, "peak_rss_mib": None, "output": partial,
                                 "timed_out": timeout if timed.startswith("after") else None, "stopped": timed})
                    print(f"  {workload:10} {system:20} stopped {timed}", file=sys.stderr, flush=True)
                    continue
                seconds, rss = min(times)
                rows.append({"system": system, "seconds": round(seconds, 3), "peak_rss_mib": round(rss), "output": output})
                print(f"  {workload:10} {system:20} {seconds:8.2f} s {rss:8.0f} MiB", file=sys.stderr, flush=True)
            # Systems not run this time keep their last figures (and are checked
            # again against this run's dataset), so one system can be rerun alone.
            for kept in previous.get(workload, {}).get("systems", []):
                # (Systems since retired, such as the old fused DuckDB, are dropped.)
                if kept["system"] in SYSTEMS and kept["system"] not in systems and (Path(kept["output"]).exists() or kept.get("timed_out") or kept.get("stopped")):
                    rows.append(dict(kept, output=Path(kept["output"]), rerun=False))
            rows.sort(key=lambda r: SYSTEMS.index(r["system"]))
            # Checked against the reference ehrQL (its in-memory engine) where it
            # finished, else against ehrfusion.
            finished = [r for r in rows if r["seconds"] is not None]
            base_row = next((r for r in finished if r["system"] == "ehrql"), rows[0])
            if measures:
                reference = normalised_measures(base_row["output"])
            else:
                reference = normalised(base_row["output"])
            for row in rows:
                if row["seconds"] is None and measures and Path(row["output"]).exists():
                    complete, starts = completed_intervals(Path(row["output"]))
                    row["intervals_checked"] = len(starts)
                    row["identical"] = None
                    if starts:
                        report = out / f"{row['system']}.differences.txt"
                        report.unlink(missing_ok=True)
                        mask = pc.is_in(reference["interval_start"], value_set=pa.array(starts))
                        row["identical"] = measures_difference(reference.filter(mask), normalised_measures(complete), report) or True
                elif row["system"] == "decode-floor" or row["seconds"] is None:
                    row["identical"] = None
                elif measures:
                    report = out / f"{row['system']}.differences.txt"
                    report.unlink(missing_ok=True)
                    row["identical"] = measures_difference(reference, normalised_measures(row["output"]), report) or True
                else:
                    row["identical"] = difference(reference, normalised(row["output"])) or True
                row["output"] = str(row["output"])
            base = next(r["seconds"] for r in rows if r["system"] == "ehrfusion")
            for row in rows:
                row["ratio"] = None if row["seconds"] is None else round(row["seconds"] / base, 2)
            result = {"patients": patients, "workload": workload, "dataset_rows": reference.num_rows,
                      "dataset_columns": reference.num_columns - (0 if measures else 1), "checked_against": base_row["system"],
                      "systems": rows}
            if measures:
                result["intervals"] = measures_peers.WORKLOADS[workload]["intervals"]
            results.append(result)
            print_table(results[-1])
    return results


def table(result):
    """A workload's results as a markdown table."""
    if "intervals" in result:
        title = (f"### {result['workload']}: {result['dataset_rows']:,} rows ({result['intervals']} intervals x 3 measures x "
                 f"sex, age band, region), checked against {result['checked_against']}")
        what = "same output"
    else:
        title = f"### {result['workload']}: {result['dataset_rows']:,} rows x {result['dataset_columns']} variables"
        what = "same dataset"
    lines = [title, "", f"| system | wall time (s) | peak RSS (MiB) | time / ehrfusion's | {what} |", "| --- | ---: | ---: | ---: | --- |"]
    for r in result["systems"]:
        name = r["system"] + (" (earlier run)" if r.get("rerun") is False else "")
        if r["seconds"] is None:
            checked = r.get("intervals_checked", 0)
            if r["identical"] is None:
                same = "not compared (no interval finished)" if "intervals" in result else "not compared (no dataset written)"
            else:
                same = (f"first {checked} of {result['intervals']} intervals: "
                        + ("yes" if r["identical"] is True else f"NO: {r['identical']}"))
            if r.get("timed_out"):
                lines.append(f"| {name} | > {r['timed_out']:g} (stopped) | | | {same} |")
            else:
                lines.append(f"| {name} | (stopped {r['stopped']}) | > {r['stopped'].split()[1]} | | {same} |")
            continue
        if r["identical"] is None:
            same = "n/a (reads only)"
        elif r["identical"] is True:
            same = "reference" if r["system"] == result.get("checked_against") == "ehrql" else "yes"
        else:
            same = f"NO: {r['identical']}"
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
                (r["patients"], s["seconds"]) for r in all_results if r["workload"] == workload for s in r["systems"]
                if s["system"] == system and s["seconds"] is not None
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
    parser.add_argument("--workloads", nargs="+", default=list(peers.WORKLOADS), choices=WORKLOADS,
                        help="default: the dataset workloads; the measures workloads are measures and measures-1")
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--repeat", type=int, default=1, help="runs per system; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--python-path", required=True, help="where the ehrfusion Python package is")
    parser.add_argument("--cache", default=Path.home() / ".cache" / "ehrfusion-bench")
    parser.add_argument("--results", default=HERE / "results", type=Path)
    parser.add_argument("--ehrql-python", default="/work/ref/venv/bin/python",
                        help="a Python with the reference ehrQL importable (systems ehrql and ehrql-sqlite)")
    parser.add_argument("--ehrql-timeout", type=float, default=600, help="seconds before a reference ehrQL run is stopped")
    parser.add_argument("--ehrql-max-rss", type=float, default=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 2 / 3,
                        help="MiB of resident memory at which a reference ehrQL run is stopped (default two thirds of the "
                             "machine's; its in-memory engine holds every row as Python objects)")
    parser.add_argument("--ehrql-repeat", type=int, default=1, help="runs of the reference ehrQL (minutes each); the fastest counts")
    parser.add_argument("--plot-only", action="store_true", help="only redraw the plot from the saved results")
    args = parser.parse_args()
    if args.systems[0] != "ehrfusion":
        args.systems = ["ehrfusion"] + [s for s in args.systems if s != "ehrfusion"]
    args.env = dict(os.environ, PYTHONPATH=args.python_path)
    # Datasets and measures are recorded apart: N.json, N.md and
    # time-vs-population.svg; measures-N.json, measures-N.md and
    # measures-time-vs-population.svg.
    kinds = {"": lambda w: not is_measures(w), "measures-": is_measures}
    if args.plot_only:
        for prefix in kinds:
            everything = [r for p in sorted(args.results.glob(f"{prefix}[0-9]*.json")) for r in json.loads(p.read_text())["results"]]
            if everything:
                plot(everything, args.results / f"{prefix}time-vs-population.svg")
        return
    results = run(args)
    args.results.mkdir(exist_ok=True)
    record = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": " ".join(sys.argv), "results": results}
    for prefix, belongs in kinds.items():
        if not any(belongs(r["workload"]) for r in results):
            continue
        for patients in args.patients:
            mine = [r for r in results if r["patients"] == patients and belongs(r["workload"])]
            path = args.results / f"{prefix}{patients}.json"
            previous = json.loads(path.read_text())["results"] if path.exists() else []
            kept = [r for r in previous if r["workload"] not in {m["workload"] for m in mine}]
            path.write_text(json.dumps(dict(record, results=kept + mine), indent=1))
            facts = json.loads((Path(args.cache) / f"population-{patients}-seed{args.seed}.json").read_text())
            header = (f"## {patients:,} patients\n\n{sum(facts['rows'].values()):,} input rows "
                      f"({', '.join(f'{t} {n:,}' for t, n in facts['rows'].items())}); {facts['bytes'] / 2**20:,.0f} MiB of parquet.\n\n")
            path.with_suffix(".md").write_text(header + "\n".join(table(r) for r in kept + mine))
        everything = [r for p in sorted(args.results.glob(f"{prefix}[0-9]*.json")) for r in json.loads(p.read_text())["results"]]
        plot(everything, args.results / f"{prefix}time-vs-population.svg")
    print(f"results in {args.results}/ ([measures-]N.json and [measures-]N.md per population size, "
          "[measures-]time-vs-population.svg and .png)")
    if any(s["identical"] not in (True, None) for r in results for s in r["systems"]):
        raise SystemExit("compare: some systems produced a different dataset or measures (see the tables above)")


if __name__ == "__main__":
    main()
