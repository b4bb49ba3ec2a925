"""Query model nodes and their JSON form (see docs/query-model.md).

Nodes are immutable and compared by structure, so equal sub-expressions built in
different places of a definition are written to the JSON document once.
"""

import datetime
import json

FORMAT = "ehrfusion-query-model"
VERSION = 1


def _freeze(value):
    if isinstance(value, Node):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, float):
        # 1 == 1.0 in Python, but they are different values here
        return ("float", value)
    if isinstance(value, bool):
        return ("bool", value)
    return value


class Node:
    __slots__ = ("op", "fields", "_key", "_hash", "backend", "permission")

    def __init__(self, op, **fields):
        # Which backend's schema a table selection came from, and the (permission,
        # public table name) a restricted table needs; not part of identity.
        self.backend = None
        self.permission = None
        self.op = op
        self.fields = fields
        self._key = (op, tuple((k, _freeze(v)) for k, v in sorted(fields.items())))
        self._hash = hash(self._key)

    def __eq__(self, other):
        return isinstance(other, Node) and self._hash == other._hash and self._key == other._key

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"Node({self.op}, {self.fields})"


def _json_value(value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def to_document(population, variables, event_tables, backend, tables):
    """The JSON document (as a dict) for a dataset."""
    nodes = []
    index = {}

    backends = set()

    def ref(node):
        if node.backend:
            backends.add(node.backend)
        if node in index:
            return index[node]
        out = {"op": node.op}
        for key, value in node.fields.items():
            out[key] = encode(value)
        index[node] = len(nodes)
        nodes.append(out)
        return index[node]

    def encode(value):
        if isinstance(value, Node):
            return ref(value)
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return _json_value(value)

    # Nodes are referenced only after their inputs, because `ref` visits inputs
    # first: the document is in topological order.
    population_ref = ref(population)
    variable_refs = {name: ref(node) for name, node in variables.items()}
    event_refs = {
        name: {column: ref(node) for column, node in columns.items()}
        for name, columns in event_tables.items()
    }
    if backend is None:
        if len(backends - {"core"}) > 1:
            raise ValueError(f"A definition can use the tables of one backend, not several ({', '.join(sorted(backends))})")
        backend = next(iter(backends - {"core"}), "core")
    return {
        "format": FORMAT,
        "version": VERSION,
        "backend": backend,
        "tables": tables,
        "nodes": nodes,
        "dataset": {
            "population": population_ref,
            "variables": variable_refs,
            "event_tables": event_refs,
        },
    }


def dumps(document):
    return json.dumps(document, separators=(",", ":"))
