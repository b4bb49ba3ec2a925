"""Runs one system on one workload, writing the dataset to a parquet file (for the
measures workloads, the combined measures to a CSV file). The comparison runs each
system in its own process (this script) so that its peak memory is its own.

    python benches/run_one.py SYSTEM WORKLOAD DATA_DIR OUTPUT
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent


def measures(system, workload, data, output):
    import measures_peers

    w = measures_peers.WORKLOADS[workload]
    if system == "ehrfusion-python":
        import ehrfusion
        import pyarrow as pa
        import pyarrow.csv

        table = ehrfusion.run_measures(HERE / "workloads" / w["definition"], data=data, parameters=w["args"], output="pyarrow")
        plain = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
        pyarrow.csv.write_csv(pa.table(plain, names=table.column_names), output)
    elif system == "duckdb":
        measures_peers.run_duckdb(data, w["intervals"], output)
    elif system == "polars":
        measures_peers.run_polars(data, w["intervals"], output)
    else:
        raise SystemExit(f"run_one.py: {system!r} does not run the measures workloads")


def main(system, workload, data, output):
    if workload.startswith("measures"):
        return measures(system, workload, data, output)
    if system == "ehrfusion-python":
        import ehrfusion
        import pyarrow.parquet as pq

        table = ehrfusion.run(HERE / "workloads" / f"{workload}.py", data=data, output="pyarrow")
        pq.write_table(table, output)
        return
    import peers

    w = peers.WORKLOADS[workload]
    if system.startswith("duckdb"):
        import duckdb

        sql = peers.duckdb_expert(w, data) if system == "duckdb" else peers.duckdb_per_variable(w, data)
        connection = duckdb.connect()
        connection.execute("SET threads = 2")
        connection.execute(f"COPY ({sql}) TO '{output}' (FORMAT parquet)")
    elif system == "polars":
        peers.polars_expert(w, data).collect().write_parquet(output)
    else:
        raise SystemExit(f"run_one.py: unknown system {system!r}")


if __name__ == "__main__":
    os.environ["POLARS_MAX_THREADS"] = "2"  # the peers get the two cores ehrfusion gets; set before Polars is imported
    sys.path.insert(0, str(HERE))
    main(*sys.argv[1:])
