"""Running definitions from Python: results come back as pyarrow tables (or polars /
pandas frames) from the engine, with no copies on the way."""

import datetime
import json
import os

from . import loader, schemas
from .language import Dataset, Error
from .measures import Measures

try:
    from ._ehrfusion import EngineError
except ImportError:  # the compiled engine is not built; only lowering is available

    class EngineError(Exception):
        pass


_ARROW_TYPES = {
    "bool": "bool_",
    "int": "int64",
    "float": "float64",
    "date": "date32",
}


def _engine():
    try:
        from . import _ehrfusion
    except ImportError:
        raise Error("the ehrfusion engine extension is not built (install the package, or run scripts/test)") from None
    return _ehrfusion


def document(definition, parameters=()):
    """The query model (a dict) of a Dataset, a .py definition or a .json model."""
    if isinstance(definition, Dataset):
        return definition._to_document()
    path = os.fspath(definition)
    if path.endswith(".json"):
        with open(path) as f:
            return json.load(f)
    try:
        return loader.document(path, parameters)[0]
    except loader.DefinitionError as e:
        raise Error(str(e)) from None


def table_schema(table, backend="core", document_=None):
    """The columns of a table as [(name, type)], patient_id first."""
    if document_ is not None and table in (document_.get("tables") or {}):
        spec = document_["tables"][table]
    else:
        tables = schemas.load(backend)["tables"]
        if table not in tables:
            raise Error(f"unknown table '{table}' (tables of '{backend}': {', '.join(tables)})")
        spec = tables[table]
    return [("patient_id", "int")] + [(c["name"], c["type"]) for c in spec["columns"]]


def arrow_schema(table, backend="core", document_=None):
    """The pyarrow schema the engine expects for a table."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(name, getattr(pa, _ARROW_TYPES.get(ty, "string"))(), nullable=(name != "patient_id"))
            for name, ty in table_schema(table, backend, document_)
        ]
    )


def _as_arrow(name, value, backend, doc):
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    if hasattr(value, "to_arrow"):  # polars
        return value.to_arrow()
    if hasattr(value, "__arrow_c_stream__"):
        return pa.table(value)
    if type(value).__module__.startswith("pandas"):
        return pa.Table.from_pandas(value, preserve_index=False)
    schema = arrow_schema(name, backend, doc)
    rows = list(value)
    names = schema.names
    columns = {n: [] for n in names}
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            unknown = set(row) - set(names)
            if unknown:
                raise Error(f"table '{name}', row {i}: unknown column(s) {', '.join(sorted(unknown))}")
            values = [row.get(n) for n in names]
        else:
            values = list(row)
            if len(values) != len(names):
                raise Error(f"table '{name}', row {i}: expected {len(names)} values ({', '.join(names)}), got {len(values)}")
        for n, v in zip(names, values):
            if isinstance(v, str) and schema.field(n).type == pa.date32():
                v = datetime.date.fromisoformat(v)
            columns[n].append(v)
    try:
        return pa.table(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise Error(f"table '{name}': {e}") from None


def _convert(table, output):
    if output == "pyarrow":
        return table
    if output == "polars":
        import polars

        return polars.from_arrow(table)
    if output == "pandas":
        return table.to_pandas()
    raise Error(f"output must be 'pyarrow', 'polars' or 'pandas', not {output!r}")


def run(definition, *, data=None, dummy_tables=None, tables=None, parameters=(), threads=None, output="pyarrow", event_tables=False):
    """Run a definition and return its dataset.

    `definition` is a Dataset, a path to a .py definition or a .json query model.
    Data comes from a directory (`data=`), dummy tables (`dummy_tables=`), or
    in-memory tables (`tables={"patients": ..., ...}`: pyarrow tables, polars or
    pandas frames, or lists of rows); tables not given are empty.
    With `event_tables=True`, returns (dataset, {name: event table}).
    """
    doc = document(definition, parameters)
    backend = doc.get("backend", "core")
    arrow_tables = {name: _as_arrow(name, value, backend, doc) for name, value in (tables or {}).items()}
    engine = _engine()
    dataset, events = engine.run_dataset(
        json.dumps(doc),
        data=os.fspath(data) if data is not None else None,
        dummy_tables=os.fspath(dummy_tables) if dummy_tables is not None else None,
        tables=arrow_tables,
        threads=threads,
    )
    if event_tables:
        return _convert(dataset, output), {k: _convert(v, output) for k, v in events.items()}
    return _convert(dataset, output)


def measures_document(definition, parameters=()):
    """The measures document (a dict) of a Measures, a .py definition or a .json document."""
    if isinstance(definition, Measures):
        return definition._to_document()
    path = os.fspath(definition)
    if path.endswith(".json"):
        with open(path) as f:
            return json.load(f)
    try:
        return loader.document(path, parameters, "measures")[0]
    except loader.DefinitionError as e:
        raise Error(str(e)) from None


def run_measures(measures, *, data=None, dummy_tables=None, tables=None, parameters=(), threads=None, output="pyarrow"):
    """Compute measures and return the combined results (measure, interval_start,
    interval_end, ratio, numerator, denominator, then the group columns).

    `measures` is a Measures (from create_measures()), a path to a .py definition or
    a .json document. Data comes as for `run`: `data=`, `dummy_tables=`, or in-memory
    `tables={...}`. Disclosure control applies unless the definition turned it off.
    """
    doc = measures_document(measures, parameters)
    backend = doc.get("backend", "core")
    arrow_tables = {name: _as_arrow(name, value, backend, doc) for name, value in (tables or {}).items()}
    results = _engine().run_measures(
        json.dumps(doc),
        data=os.fspath(data) if data is not None else None,
        dummy_tables=os.fspath(dummy_tables) if dummy_tables is not None else None,
        tables=arrow_tables,
        threads=threads,
    )
    return _convert(results, output)
