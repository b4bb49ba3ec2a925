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


class _Encoder:
    """Writes nodes into a document's node list, each once, inputs before the nodes
    that use them (so the list is in topological order)."""

    def __init__(self):
        self.nodes = []
        self.index = {}
        self.backends = set()

    def ref(self, node):
        if node.backend:
            self.backends.add(node.backend)
        if node in self.index:
            return self.index[node]
        out = {"op": node.op}
        for key, value in node.fields.items():
            out[key] = self.encode(value)
        self.index[node] = len(self.nodes)
        self.nodes.append(out)
        return self.index[node]

    def encode(self, value):
        if isinstance(value, Node):
            return self.ref(value)
        if isinstance(value, (list, tuple)):
            return [self.encode(v) for v in value]
        if isinstance(value, dict):
            return {k: self.encode(v) for k, v in value.items()}
        return _json_value(value)

    def document(self, backend, tables, **body):
        if backend is None:
            if len(self.backends - {"core"}) > 1:
                raise ValueError(f"A definition can use the tables of one backend, not several ({', '.join(sorted(self.backends))})")
            backend = next(iter(self.backends - {"core"}), "core")
        return {"format": FORMAT, "version": VERSION, "backend": backend, "tables": tables, "nodes": self.nodes, **body}


def to_document(population, variables, event_tables, backend, tables):
    """The JSON document (as a dict) for a dataset."""
    e = _Encoder()
    dataset = {
        "population": e.ref(population),
        "variables": {name: e.ref(node) for name, node in variables.items()},
        "event_tables": {name: {column: e.ref(node) for column, node in columns.items()} for name, columns in event_tables.items()},
    }
    return e.document(backend, tables, dataset=dataset)


def measures_document(measures, disclosure_control, backend, tables):
    """The JSON document (as a dict) for measures: each a dict of name, numerator,
    denominator, group_by ({name: node}) and intervals ([[start, end], ...])."""
    e = _Encoder()
    body = {"measures": [e.encode(m) for m in measures], "disclosure_control": disclosure_control}
    return e.document(backend, tables, measures=body)


def dumps(document):
    return json.dumps(document, separators=(",", ":"))
