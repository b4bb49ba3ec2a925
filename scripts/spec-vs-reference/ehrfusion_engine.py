"""An `engine` for the reference ehrQL test suite that runs queries with the
ehrfusion binary.

It offers what the suite's spec tests use of the reference's engine fixture:
`name`, `populate({table: [row dict, ...]})` and `extract(dataset)`, which returns
the dataset's rows as a list of dicts sorted by patient, with Python values
(`datetime.date`, `bool`, `int`, `float`, `str`).

`extract` translates the dataset's query model to ehrfusion's JSON query model,
writes the populated tables as parquet files in a temporary data directory, runs
`ehrfusion generate-dataset MODEL.json --data DIR --output OUT.arrow` and reads the
Arrow file back.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from ehrql import query_language as ql
from ehrql.query_model import nodes as qm

from qm_to_json import table_columns, translate_dataset


DEFAULT_BIN = "/tmp/cold/target/debug/ehrfusion"

_ARROW_TYPES = {
    "bool": pa.bool_(),
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
}


def arrow_type(type_name):
    # str, codes and multi-code strings are all text
    return _ARROW_TYPES.get(type_name, pa.string())


class EhrfusionError(Exception):
    pass


def ehrfusion_bin():
    return os.environ.get("EHRFUSION_BIN", DEFAULT_BIN)


def _cell(value):
    # Codes arrive as code objects only if a test builds rows by hand; the spec
    # suite's own table parser gives their text.
    if hasattr(value, "_to_primitive_type"):
        return value._to_primitive_type()
    return value


class EhrfusionEngine:
    name = "ehrfusion"

    def __init__(self):
        # table name -> (level, schema, rows)
        self.tables = {}

    # -- what the spec tests call

    def populate(self, table_data):
        for table, rows in table_data.items():
            node = table._qm_node if hasattr(table, "_qm_node") else table
            if isinstance(node, qm.SelectTable):
                level = "event"
            elif isinstance(node, qm.SelectPatientTable):
                level = "patient"
            else:
                raise EhrfusionError(f"cannot populate {node!r}")
            level_rows = self.tables.setdefault(node.name, (level, node.schema, []))[2]
            level_rows.extend(rows)

    def extract(self, dataset, **engine_kwargs):
        if engine_kwargs:
            raise EhrfusionError(f"engine options are not supported: {engine_kwargs}")
        return self.get_results_tables(dataset)[0]

    def get_results_tables(self, dataset):
        if isinstance(dataset, ql.Dataset):
            dataset = dataset._compile()
        model = translate_dataset(dataset)
        # EHRFUSION_SPEC_KEEP=1 keeps each run's model, tables and output
        keep = bool(os.environ.get("EHRFUSION_SPEC_KEEP"))
        workdir = Path(tempfile.mkdtemp(prefix="ehrfusion-spec-"))
        try:
            return self._run(model, workdir)
        except Exception as exc:
            if keep:
                exc.add_note(f"ehrfusion inputs kept in {workdir}")
            raise
        finally:
            if not keep:
                shutil.rmtree(workdir, ignore_errors=True)

    # -- running the binary

    def _run(self, model, workdir):
        data = workdir / "data"
        data.mkdir()
        self._write_tables(model["tables"], data)
        model_path = workdir / "model.json"
        model_path.write_text(json.dumps(model, indent=1))
        out = workdir / "out.arrow"
        cmd = [ehrfusion_bin(), "generate-dataset", str(model_path), "--data", str(data), "--output", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise EhrfusionError(
                f"ehrfusion exited with {proc.returncode}: {proc.stderr.strip()}\n"
                f"model: {json.dumps(model)}"
            )
        with pa.memory_map(str(out)) as source:
            table = pa.ipc.open_file(source).read_all()
        rows = table.to_pylist()
        rows.sort(key=lambda r: r["patient_id"])
        return [rows]

    def _write_tables(self, model_tables, data):
        # Every table the model reads needs a file; one the test did not populate is
        # empty.
        for name, decl in model_tables.items():
            if name in self.tables:
                level, schema, rows = self.tables[name]
                columns = table_columns(schema)
                if decl["columns"] != columns or decl["level"] != level:
                    raise EhrfusionError(f"table '{name}' populated with another schema than the query's")
            else:
                columns, rows = decl["columns"], []
            fields = [pa.field("patient_id", pa.int64())]
            fields += [pa.field(c["name"], arrow_type(c["type"])) for c in columns]
            schema = pa.schema(fields)
            arrays = {
                f.name: pa.array([_cell(r.get(f.name)) for r in rows], type=f.type) for f in schema
            }
            pq.write_table(pa.table(arrays, schema=schema), data / f"{name}.parquet")

