"""Translate a reference ehrQL query model (`ehrql.query_model.nodes`) into the
ehrfusion JSON query model (docs/query-model.md, version 1).

The reference's nodes are frozen dataclasses that refer to each other directly; ours
is a flat array in which a node refers to earlier nodes by index. We walk the
reference's graph depth first, emitting each distinct node once.

The one thing the reference's model leaves implicit that ours needs is the type of
a constant: `Value(None)` and `Value(frozenset())` carry no type, so their type is
taken from where they are used (the other side of a comparison, the other branches of
a `case`, ...).
"""

import datetime

from ehrql.codes import BaseCode, BaseMultiCodeString
from ehrql.query_model import nodes as qm


FORMAT = "ehrfusion-query-model"
VERSION = 1


class UnsupportedNode(Exception):
    """A node (or a use of one) that the JSON query model cannot express."""


# ---- types -----------------------------------------------------------------------

# A type is a string naming one of our value types, or ("set", element type).

_PRIMITIVE_TYPE_NAMES = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    datetime.date: "date",
}


def type_name(py_type):
    """Our name for a reference column/series type, or None if it has no one type."""
    if py_type in _PRIMITIVE_TYPE_NAMES:
        return _PRIMITIVE_TYPE_NAMES[py_type]
    if isinstance(py_type, type) and issubclass(py_type, BaseCode | BaseMultiCodeString):
        # SNOMEDCTCode, CTV3Code, ..., ICD10MultiCodeString, OPCS4MultiCodeString: the
        # reference's class names are our type names.
        return py_type.__name__
    # frozenset[X], the type of a set-valued series
    origin = getattr(py_type, "__origin__", None)
    args = getattr(py_type, "__args__", ())
    if origin in (frozenset, set) or (
        origin is not None and getattr(origin, "__name__", "") in ("Set", "AbstractSet")
    ):
        inner = type_name(args[0]) if args else None
        return ("set", inner) if inner else None
    return None


def value_type(value):
    """Our type of a Python constant, or None if the constant does not say."""
    if value is None:
        return None
    if isinstance(value, frozenset):
        for item in value:
            inner = value_type(item)
            if inner is not None:
                return ("set", inner)
        return None
    # bool before int: True is an int to Python
    for py_type in (bool, int, float, str, datetime.date):
        if type(value) is py_type:
            return _PRIMITIVE_TYPE_NAMES[py_type]
    if isinstance(value, BaseCode | BaseMultiCodeString):
        return type(value).__name__
    if isinstance(value, datetime.date):
        return "date"
    raise UnsupportedNode(f"a constant of type {type(value).__name__}: {value!r}")


def json_scalar(value):
    """A constant as our JSON form has it: dates ISO strings, codes their text."""
    if value is None:
        return None
    if isinstance(value, BaseCode):
        return value.value
    if isinstance(value, BaseMultiCodeString):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise UnsupportedNode(f"a non-finite float constant ({value!r}) has no JSON form")
    return value


def column_type(column):
    name = type_name(column.type_)
    if name is None:
        raise UnsupportedNode(f"a column of type {column.type_!r}")
    return name


def table_columns(schema):
    return [{"name": name, "type": column_type(col)} for name, col in schema.schema.items()]


# ---- the translation -----------------------------------------------------------

# Binary functions whose two sides have one type (T, T -> ...).
_SAME_TYPE_BINARY = (
    qm.Function.EQ,
    qm.Function.NE,
    qm.Function.LT,
    qm.Function.LE,
    qm.Function.GT,
    qm.Function.GE,
    qm.Function.Add,
    qm.Function.Subtract,
    qm.Function.Multiply,
    qm.Function.TrueDivide,
    qm.Function.FloorDivide,
    qm.Function.Power,
)

_DATE_ADD = (qm.Function.DateAddDays, qm.Function.DateAddMonths, qm.Function.DateAddYears)
_DATE_DIFF = (
    qm.Function.DateDifferenceInDays,
    qm.Function.DateDifferenceInMonths,
    qm.Function.DateDifferenceInYears,
)
_DATE_UNARY = (
    qm.Function.YearFromDate,
    qm.Function.MonthFromDate,
    qm.Function.DayFromDate,
    qm.Function.ToFirstOfYear,
    qm.Function.ToFirstOfMonth,
)

_AGGREGATIONS = {
    qm.AggregateByPatient.Exists: "Exists",
    qm.AggregateByPatient.Count: "Count",
    qm.AggregateByPatient.CountDistinct: "CountDistinct",
    qm.AggregateByPatient.CountEpisodes: "CountEpisodes",
    qm.AggregateByPatient.Min: "Min",
    qm.AggregateByPatient.Max: "Max",
    qm.AggregateByPatient.Sum: "Sum",
    qm.AggregateByPatient.Mean: "Mean",
    qm.AggregateByPatient.CombineAsSet: "CombineAsSet",
}


def _function_classes():
    out = {}
    for name in dir(qm.Function):
        cls = getattr(qm.Function, name)
        if isinstance(cls, type) and issubclass(cls, qm.Node):
            out[cls] = name
    return out


_FUNCTIONS = _function_classes()


class Translator:
    def __init__(self):
        self.nodes = []
        self.tables = {}  # name -> {"level": ..., "columns": [...]}
        self._memo = {}

    # -- helpers

    def emit(self, obj):
        self.nodes.append(obj)
        return len(self.nodes) - 1

    def known_type(self, node):
        """The type of a series as the node itself tells, without context."""
        if isinstance(node, qm.Value):
            return value_type(node.value)
        try:
            return type_name(qm.get_series_type(node))
        except Exception:
            return None

    def add_table(self, name, level, schema):
        entry = {"level": level, "columns": table_columns(schema)}
        previous = self.tables.setdefault(name, entry)
        if previous != entry:
            raise UnsupportedNode(f"table '{name}' is used with two different schemas")

    # -- the walk

    def series(self, node, hint=None):
        """Emit a series node; `hint` is the type its context expects, if known."""
        key = (node, hint)
        if key not in self._memo:
            self._memo[key] = self._series(node, hint)
        return self._memo[key]

    def frame(self, node):
        key = (node, "frame")
        if key not in self._memo:
            self._memo[key] = self._frame(node)
        return self._memo[key]

    def _frame(self, node):
        if isinstance(node, qm.SelectTable):
            self.add_table(node.name, "event", node.schema)
            return self.emit({"op": "SelectTable", "table": node.name})
        if isinstance(node, qm.SelectPatientTable):
            self.add_table(node.name, "patient", node.schema)
            return self.emit({"op": "SelectPatientTable", "table": node.name})
        if isinstance(node, qm.InlinePatientTable):
            names = list(node.schema.schema)
            rows = [[json_scalar(v) for v in row] for row in node.rows]
            for row in rows:
                if len(row) != len(names) + 1:
                    raise UnsupportedNode("an inline table row without patient_id and every column")
            return self.emit(
                {
                    "op": "InlinePatientTable",
                    "name": "inline_table",
                    "columns": table_columns(node.schema),
                    "rows": rows,
                }
            )
        if isinstance(node, qm.Filter):
            source = self.frame(node.source)
            condition = self.series(node.condition, "bool")
            return self.emit({"op": "Filter", "source": source, "condition": condition})
        if isinstance(node, qm.Sort):
            source = self.frame(node.source)
            key = self.series(node.sort_by)
            return self.emit({"op": "Sort", "source": source, "sort_by": [key]})
        if isinstance(node, qm.PickOneRowPerPatient):
            source = self.frame(node.source)
            return self.emit(
                {"op": "PickOneRowPerPatient", "source": source, "position": node.position.value}
            )
        raise UnsupportedNode(f"frame node {type(node).__qualname__}")

    def _series(self, node, hint):
        if isinstance(node, qm.Value):
            return self._value(node, hint)
        if isinstance(node, qm.SelectColumn):
            return self.emit({"op": "SelectColumn", "source": self.frame(node.source), "name": node.name})
        cls = type(node)
        if cls in _AGGREGATIONS:
            op = _AGGREGATIONS[cls]
            if cls in (qm.AggregateByPatient.Exists, qm.AggregateByPatient.Count):
                out = {"op": op, "source": self.frame(node.source)}
            else:
                source_hint = "date" if cls is qm.AggregateByPatient.CountEpisodes else None
                out = {"op": op, "source": self.series(node.source, source_hint)}
            if cls is qm.AggregateByPatient.CountEpisodes:
                out["maximum_gap_days"] = node.maximum_gap_days
            return self.emit(out)
        if isinstance(node, qm.Case):
            return self._case(node, hint)
        if cls in _FUNCTIONS:
            return self._function(node, _FUNCTIONS[cls], hint)
        raise UnsupportedNode(f"series node {cls.__qualname__}")

    def _value(self, node, hint):
        ty = value_type(node.value)
        if ty is None:
            ty = hint
        if ty is None:
            raise UnsupportedNode(f"cannot tell the type of {node!r} from its context")
        if isinstance(ty, tuple):
            items = sorted((json_scalar(v) for v in node.value), key=lambda v: (type(v).__name__, v))
            return self.emit({"op": "Value", "type": ty[1], "set": items})
        if isinstance(node.value, frozenset):
            raise UnsupportedNode(f"a set constant where a single value is expected: {node!r}")
        return self.emit({"op": "Value", "type": ty, "value": json_scalar(node.value)})

    def _case(self, node, hint):
        own = self.known_type(node)
        if own is None:
            for value in [*node.cases.values(), node.default]:
                if value is not None:
                    own = self.known_type(value)
                    if own is not None:
                        break
        if own is None:
            own = hint
        cases = []
        for condition, value in node.cases.items():
            c = self.series(condition, "bool")
            v = None if value is None else self.series(value, own)
            cases.append([c, v])
        default = None if node.default is None else self.series(node.default, own)
        return self.emit({"op": "Case", "cases": cases, "default": default})

    def _function(self, node, op, hint):
        cls = type(node)
        if cls in (qm.Function.MinimumOf, qm.Function.MaximumOf):
            ty = next((t for t in map(self.known_type, node.sources) if t is not None), hint)
            return self.emit({"op": op, "sources": [self.series(s, ty) for s in node.sources]})
        if hasattr(node, "source"):
            if cls in _DATE_UNARY:
                source_hint = "date"
            elif cls in (qm.Function.And, qm.Function.Or, qm.Function.Not):
                source_hint = "bool"
            else:
                source_hint = None
            return self.emit({"op": op, "source": self.series(node.source, source_hint)})
        lhs_type, rhs_type = self.known_type(node.lhs), self.known_type(node.rhs)
        if cls in _SAME_TYPE_BINARY:
            lhs_hint, rhs_hint = rhs_type, lhs_type
        elif cls in (qm.Function.And, qm.Function.Or):
            lhs_hint = rhs_hint = "bool"
        elif cls in _DATE_ADD:
            lhs_hint, rhs_hint = "date", "int"
        elif cls in _DATE_DIFF:
            lhs_hint = rhs_hint = "date"
        elif cls is qm.Function.In:
            lhs_hint = rhs_type[1] if isinstance(rhs_type, tuple) else None
            rhs_hint = ("set", lhs_type) if isinstance(lhs_type, str) else None
        elif cls is qm.Function.StringContains:
            lhs_hint, rhs_hint = None, "str"
        else:
            lhs_hint = rhs_hint = None
        lhs = self.series(node.lhs, lhs_hint)
        rhs = self.series(node.rhs, rhs_hint)
        return self.emit({"op": op, "lhs": lhs, "rhs": rhs})


def translate_dataset(dataset, backend="core"):
    """A reference `qm.Dataset` as a JSON-ready dict in ehrfusion's query model, and
    the user-defined tables it reads ({name: {"level", "columns"}})."""
    if not isinstance(dataset, qm.Dataset):
        raise TypeError(f"expected a query model Dataset, got {type(dataset).__name__}")
    t = Translator()
    population = t.series(dataset.population, "bool")
    variables = {name: t.series(series) for name, series in dataset.variables.items()}
    event_tables = {}
    for name, frame in (getattr(dataset, "events", None) or {}).items():
        event_tables[name] = {col: t.series(s) for col, s in frame.members.items()}
    if getattr(dataset, "measures", None) is not None:
        raise UnsupportedNode("measures (GroupedSum)")
    doc_dataset = {"population": population, "variables": variables}
    if event_tables:
        doc_dataset["event_tables"] = event_tables
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "backend": backend,
        "tables": t.tables,
        "nodes": t.nodes,
        "dataset": doc_dataset,
    }
    return doc
