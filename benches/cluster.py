"""ehrfusion locally against the same plans on a loopback Ballista cluster.

    python benches/cluster.py --data ~/.cache/ehrfusion-bench/population-1000000-seed0
    python benches/cluster.py --data DIR --executors 1 2 --workloads wide staged --repeat 3

For each workload: one local run, then per cluster shape (E executors sharing the
machine's cores, started with `ehrfusion cluster`) a run through `--cluster`. Every
output is compared with the local one byte for byte. Wall time is the client's;
CPU is the user + system time of the client and, for cluster runs, separately that
of every scheduler and executor process over the run (read from /proc): the
executors' share is the work a bigger cluster divides, the client's is not. Prints a Markdown table and writes
results/cluster-N.json. Standard library only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_for(port, procs):
    deadline = time.time() + 60
    while time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            sys.exit("a cluster process exited early; see its log in the work directory")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listened on port {port} within a minute")


class Cluster:
    """A scheduler and `executors` executors on loopback, sharing `cores` task slots."""

    def __init__(self, binary, executors, cores, work):
        self.procs = []
        port = free_port()
        self.url = f"df://127.0.0.1:{port}"
        log = open(work / "scheduler.log", "w")
        self.procs.append(subprocess.Popen([binary, "cluster", "scheduler", "--port", str(port)], stdout=log, stderr=log))
        wait_for(port, self.procs)
        slots = max(1, cores // executors)
        for i in range(executors):
            flight, grpc = free_port(), free_port()
            d = work / f"executor-{i}"
            d.mkdir()
            log = open(work / f"executor-{i}.log", "w")
            self.procs.append(subprocess.Popen(
                [binary, "cluster", "executor", "--scheduler", self.url, "--port", str(flight), "--grpc-port", str(grpc),
                 "--concurrency", str(slots), "--work-dir", str(d)], stdout=log, stderr=log))
            wait_for(flight, self.procs)
        time.sleep(1)  # executors register on their first heartbeat

    def cpu(self):
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def run(command, cluster=None):
    """Wall seconds of one run, CPU seconds of its client, and of the cluster's processes."""
    before = cluster.cpu() if cluster else 0.0
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("r") as report:
        done = subprocess.run(["/usr/bin/time", "-f", "%U %S", "-o", report.name, *command], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(map(str, command))} failed:\n{done.stderr}")
        user, system = map(float, report.read().split()[-2:])
    after = cluster.cpu() if cluster else 0.0
    return wall, user + system, after - before


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="a population's parquet tables (see benches/compare)")
    ap.add_argument("--executors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workloads", nargs="+", default=["diagnoses", "wide", "staged", "monthly"])
    ap.add_argument("--repeat", type=int, default=1, help="runs per system; the fastest is kept")
    ap.add_argument("--block-rows", type=int, help="passed to generate-dataset (one cluster job per block)")
    ap.add_argument("--blocks-at-once", type=int, help="passed to generate-dataset on a cluster")
    ap.add_argument("--binary", default=os.path.expanduser("~/.cache/ehrfusion-target/release/ehrfusion"))
    args = ap.parse_args()
    cores = os.cpu_count()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shapes = [("local", None)] + [(f"{e} executor{'s' if e > 1 else ''}", e) for e in args.executors]
        results = {w: {} for w in args.workloads}
        for shape, executors in shapes:
            cluster = None
            if executors:
                work = tmp / f"cluster-{executors}"
                work.mkdir()
                cluster = Cluster(args.binary, executors, cores, work)
            try:
                for w in args.workloads:
                    best = None
                    for r in range(args.repeat):
                        out = tmp / f"{w}-{executors or 0}.csv"
                        command = [args.binary, "generate-dataset", REPO / "benches" / "workloads" / f"{w}.py",
                                   "--data", args.data, "--output", out, "--threads", str(cores)]
                        if args.block_rows:
                            command += ["--block-rows", str(args.block_rows)]
                        if cluster:
                            command += ["--cluster", cluster.url]
                            if args.blocks_at_once:
                                command += ["--blocks-at-once", str(args.blocks_at_once)]
                        timing = run(command, cluster)
                        if best is None or timing[0] < best[0]:
                            best = timing
                    text = out.read_bytes()
                    if executors and text != (tmp / f"{w}-0.csv").read_bytes():
                        sys.exit(f"{w}: the cluster's dataset ({shape}) differs from the local one")
                    rows[w] = text.count(b"\n") - 1
                    results[w][shape] = {"wall_s": round(best[0], 2), "client_cpu_s": round(best[1], 2), "cluster_cpu_s": round(best[2], 2)}
                    print(f"{w:10} {shape:12} {best[0]:7.2f} s wall, CPU {best[1]:7.2f} s client {best[2]:7.2f} s cluster", file=sys.stderr, flush=True)
            finally:
                if cluster:
                    cluster.stop()
    print(f"\n{args.data} ({cores} cores), wall s / CPU s of the client + the cluster's processes, best of {args.repeat}; "
          "every dataset equal to the local one\n")
    print("| workload | rows | " + " | ".join(s for s, _ in shapes) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in shapes) + " |")
    for w in args.workloads:
        cells = [f"{r['wall_s']:.2f} / {r['client_cpu_s']:.2f} + {r['cluster_cpu_s']:.2f}" for r in (results[w][s] for s, _ in shapes)]
        print(f"| {w} | {rows[w]:,} | " + " | ".join(cells) + " |")
    out = HERE / "results" / f"cluster-{args.data.name}.json"
    out.write_text(json.dumps({"data": str(args.data), "cores": cores, "repeat": args.repeat, "block_rows": args.block_rows, "blocks_at_once": args.blocks_at_once,
                               "results": results, "rows": rows}, indent=1))
    print(f"\nwritten to {out.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
