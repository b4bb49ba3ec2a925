"""The ehrQL language: series, frames, datasets, durations and functions.

Every operation builds a query model node (see query_model.py); nothing is computed
here. Mistakes are raised where the user makes them, so the loader can point at the
definition's line.
"""

import datetime
import functools
import keyword
import operator
import re

from . import codes as codes_module
from .query_model import Node, to_document

PATIENT = "patient"
EVENT = "event"


class Error(Exception):
    """A mistake in a dataset definition."""


class EhrQLTypeError(Error, TypeError):
    pass


class DomainError(Error):
    pass


# ---------------------------------------------------------------- values


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(value, what="a date"):
    if isinstance(value, datetime.datetime):
        raise EhrQLTypeError(f"Expected {what}, got a datetime: use a date (datetime.date) instead")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise EhrQLTypeError(f"Expected {what} (a datetime.date or a 'YYYY-MM-DD' string), got {value!r}")


def type_name_of(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, codes_module.BaseCode):
        return value.type_name
    if isinstance(value, str):
        return "str"
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return "date"
    raise EhrQLTypeError(f"Cannot use a value of type {type(value).__name__} in a query: {value!r}")


def convert_value(value, ty):
    """A Python value as a constant of type `ty`, or a clear error."""
    if value is None:
        return None
    if ty == "date":
        return parse_date(value)
    if ty == "bool":
        if isinstance(value, bool):
            return value
    elif ty == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif ty == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif ty == "str":
        if isinstance(value, str):
            return value
    elif ty in codes_module.CODE_TYPES:
        code_type = codes_module.CODE_TYPES[ty]
        if isinstance(value, codes_module.BaseCode):
            if type(value) is not code_type:
                raise EhrQLTypeError(f"Expected a {ty} but got a {value.type_name} ({value.value})")
            return value.value
        if isinstance(value, str):
            try:
                return code_type(value).value
            except ValueError:
                raise EhrQLTypeError(f"Invalid {ty}: {value!r}") from None
    elif ty in codes_module.MULTI_CODE_TYPES:
        if isinstance(value, str):
            return value
    raise EhrQLTypeError(f"Expected a value of type {describe(ty)}, got {value!r} ({type(value).__name__})")


def describe(ty):
    return {"bool": "bool", "int": "int", "float": "float", "str": "str", "date": "date"}.get(ty, ty)


def value_series(value, ty):
    v = convert_value(value, ty)
    return make_series(Node("Value", type=ty, value=v.isoformat() if isinstance(v, datetime.date) else v), ty, PATIENT, None)


def set_node(values, ty):
    converted = []
    for v in values:
        if v is None:
            raise EhrQLTypeError("is_in() values must not include None")
        c = convert_value(v, ty)
        converted.append(c.isoformat() if isinstance(c, datetime.date) else c)
    return Node("Value", type=ty, set=sorted(set(converted), key=lambda x: (str(type(x)), x)))


# ---------------------------------------------------------------- series


def combine_dims(*series):
    dim, root = PATIENT, None
    for s in series:
        if s._dim == EVENT:
            if root is not None and s._root != root:
                raise DomainError(f"Cannot combine series drawn from different tables ('{root}' and '{s._root}')")
            dim, root = EVENT, s._root
    return dim, root


def make_series(node, ty, dim, root):
    family = family_of(ty)
    return SERIES_CLASSES[(family, dim)](node, ty, dim, root)


def family_of(ty):
    if ty.startswith("set:"):
        return "set"
    if ty in codes_module.CODE_TYPES:
        return "code"
    if ty in codes_module.MULTI_CODE_TYPES:
        return "multi_code_string"
    return ty


def function(op, ty, *args, **fields):
    dim, root = combine_dims(*args)
    if len(args) == 1:
        node = Node(op, source=args[0]._node, **fields)
    elif len(args) == 2:
        node = Node(op, lhs=args[0]._node, rhs=args[1]._node, **fields)
    else:
        node = Node(op, sources=[a._node for a in args], **fields)
    return make_series(node, ty, dim, root)


class BaseSeries:
    def __init__(self, node, ty, dim, root):
        self._node = node
        self._type = ty
        self._dim = dim
        self._root = root

    def __repr__(self):
        return f"{type(self).__name__}({self._node.op})"

    def __hash__(self):
        return hash(self._node)

    def __bool__(self):
        raise EhrQLTypeError(
            "A series has many values, so it cannot be used where Python expects True or False: "
            "use & (and), | (or) and ~ (not) to combine conditions, not `and`, `or`, `not` or `if`"
        )

    def __iter__(self):
        raise EhrQLTypeError("A series cannot be iterated over in Python; it is evaluated per patient by the engine")

    def _other(self, other):
        """`other` as a series of this series' type."""
        if isinstance(other, BaseSeries):
            if other._type != self._type:
                if {other._type, self._type} == {"int", "float"}:
                    raise EhrQLTypeError(
                        f"Cannot combine an {describe(self._type)} series with a {describe(other._type)} series; "
                        "convert one with as_int() or as_float()"
                    )
                raise EhrQLTypeError(
                    f"Cannot compare or combine a {describe(self._type)} series with a {describe(other._type)} series"
                )
            return other
        return value_series(other, self._type)

    def __eq__(self, other):
        return function("EQ", "bool", self, self._other(other))

    def __ne__(self, other):
        return function("NE", "bool", self, self._other(other))

    def is_null(self):
        return function("IsNull", "bool", self)

    def is_not_null(self):
        return ~self.is_null()

    def when_null_then(self, other):
        other = self._other(other)
        return case(when(self.is_not_null()).then(self), otherwise=other)

    def is_in(self, other):
        if isinstance(other, BaseSeries):
            if other._dim != EVENT:
                raise EhrQLTypeError("is_in() takes a list of values or an event series, not a patient series")
            self._other(other)
            set_series = make_series(Node("CombineAsSet", source=other._node), f"set:{self._type}", PATIENT, None)
            dim, root = combine_dims(self)
            return make_series(Node("In", lhs=self._node, rhs=set_series._node), "bool", dim, root)
        if isinstance(other, dict):
            other = list(other.keys())
        if isinstance(other, (str, bytes)) or not hasattr(other, "__iter__"):
            raise EhrQLTypeError(f"is_in() takes a list, tuple, set, codelist or event series, not {type(other).__name__}")
        node = set_node(list(other), self._type)
        return make_series(Node("In", lhs=self._node, rhs=node), "bool", self._dim, self._root)

    def is_not_in(self, other):
        return ~self.is_in(other)

    def map_values(self, mapping, default=None):
        if not mapping:
            raise EhrQLTypeError("map_values() needs a non-empty mapping")
        results = [v for v in list(mapping.values()) + [default] if v is not None]
        if not results:
            raise EhrQLTypeError("map_values() needs at least one value that is not None")
        out_type = type_name_of(results[0])
        if out_type == "int" and any(type_name_of(v) == "float" for v in results):
            out_type = "float"
        cases = [when(self == key).then(value_series(v, out_type) if v is not None else None) for key, v in mapping.items()]
        return case(*cases, otherwise=None if default is None else value_series(default, out_type))


class ComparableMixin:
    def __lt__(self, other):
        return function("LT", "bool", self, self._other(other))

    def __le__(self, other):
        return function("LE", "bool", self, self._other(other))

    def __gt__(self, other):
        return function("GT", "bool", self, self._other(other))

    def __ge__(self, other):
        return function("GE", "bool", self, self._other(other))


class BoolMixin:
    def __and__(self, other):
        return function("And", "bool", self, self._other(other))

    def __rand__(self, other):
        return function("And", "bool", self._other(other), self)

    def __or__(self, other):
        return function("Or", "bool", self, self._other(other))

    def __ror__(self, other):
        return function("Or", "bool", self._other(other), self)

    def __invert__(self):
        return function("Not", "bool", self)

    def as_int(self):
        return function("CastToInt", "int", self)


class NumericMixin(ComparableMixin):
    def _arith(self, op, other, reverse=False, ty=None):
        other = self._other(other)
        lhs, rhs = (other, self) if reverse else (self, other)
        return function(op, ty or self._type, lhs, rhs)

    def __add__(self, other):
        if isinstance(other, Duration):
            return NotImplemented
        return self._arith("Add", other)

    def __radd__(self, other):
        return self._arith("Add", other, True)

    def __sub__(self, other):
        return self._arith("Subtract", other)

    def __rsub__(self, other):
        return self._arith("Subtract", other, True)

    def __mul__(self, other):
        if isinstance(other, Duration):
            return NotImplemented
        return self._arith("Multiply", other)

    def __rmul__(self, other):
        return self._arith("Multiply", other, True)

    def __truediv__(self, other):
        return self._arith("TrueDivide", other, ty="float")

    def __rtruediv__(self, other):
        return self._arith("TrueDivide", other, True, ty="float")

    def __floordiv__(self, other):
        return self._arith("FloorDivide", other, ty="int")

    def __rfloordiv__(self, other):
        return self._arith("FloorDivide", other, True, ty="int")

    def __pow__(self, other):
        return self._arith("Power", other, ty="float")

    def __rpow__(self, other):
        return self._arith("Power", other, True, ty="float")

    def __neg__(self):
        return function("Negate", self._type, self)

    def __abs__(self):
        return function("Absolute", self._type, self)

    def absolute(self):
        return abs(self)

    def as_int(self):
        return self if self._type == "int" else function("CastToInt", "int", self)

    def as_float(self):
        return self if self._type == "float" else function("CastToFloat", "float", self)


class StrMixin(ComparableMixin):
    def contains(self, other):
        return function("StringContains", "bool", self, self._other(other))


class CodeMixin:
    # Codes are compared for equality and membership only: ehrQL gives code series no
    # ordering (<, >, minimum_for_patient).
    def to_category(self, categorisation, default=None):
        if not isinstance(categorisation, dict):
            raise EhrQLTypeError("to_category() needs a dict of code to category, such as codelist_from_csv(..., category_column=...) returns")
        mapping = categorisation
        by_category = {}
        for code, category in mapping.items():
            by_category.setdefault(category, []).append(code)
        cases = [when(self.is_in(codes)).then(value_series(cat, type_name_of(cat))) for cat, codes in by_category.items()]
        if not cases:
            raise EhrQLTypeError("to_category() needs at least one categorised code")
        return case(*cases, otherwise=default)


class MultiCodeStringMixin:
    def _code(self, code):
        code_type = codes_module.MULTI_CODE_TYPES[self._type]
        if isinstance(code, codes_module.BaseCode):
            if type(code) is not code_type:
                raise EhrQLTypeError(f"Expected a {code_type.type_name}, got a {code.type_name} ({code.value})")
            return value_series(code.value, code_type.type_name)
        if isinstance(code, str):
            # A full code or the prefix of one (e.g. "N17" for all N17x codes).
            if not re.fullmatch(r"[A-Z][0-9]{1,3}[0-9A-Z]?", code):
                raise EhrQLTypeError(f"Invalid {code_type.type_name} prefix: {code!r}")
            return value_series(code, "str")
        raise EhrQLTypeError(f"contains() takes a code or code prefix, not {type(code).__name__}")

    def contains(self, code):
        return function("StringContains", "bool", self, self._code(code))

    def contains_any_of(self, codelist):
        codes = list(codelist)
        if not codes:
            raise EhrQLTypeError("contains_any_of() needs at least one code")
        return functools.reduce(operator.or_, [self.contains(c) for c in codes])


class DateMixin(ComparableMixin):
    @property
    def year(self):
        return function("YearFromDate", "int", self)

    @property
    def month(self):
        return function("MonthFromDate", "int", self)

    @property
    def day(self):
        return function("DayFromDate", "int", self)

    def to_first_of_year(self):
        return function("ToFirstOfYear", "date", self)

    def to_first_of_month(self):
        return function("ToFirstOfMonth", "date", self)

    def is_before(self, other):
        return self < other

    def is_on_or_before(self, other):
        return self <= other

    def is_after(self, other):
        return self > other

    def is_on_or_after(self, other):
        return self >= other

    def is_between_but_not_on(self, start, end):
        return (self > start) & (self < end)

    def is_on_or_between(self, start, end):
        return (self >= start) & (self <= end)

    def is_during(self, interval):
        start, end = interval
        return self.is_on_or_between(start, end)

    def __add__(self, other):
        if isinstance(other, Duration):
            return other._add_to(self)
        raise EhrQLTypeError(f"Only a duration (days(), weeks(), months(), years()) can be added to a date, not {other!r}")

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, Duration):
            return (-other)._add_to(self)
        return DateDifference(self, self._other(other))

    def __rsub__(self, other):
        return DateDifference(self._other(other), self)


class EventMixin:
    def _aggregate(self, op, ty):
        return make_series(Node(op, source=self._node), ty, PATIENT, None)


class ComparableEventMixin(EventMixin):
    def minimum_for_patient(self):
        return self._aggregate("Min", self._type)

    def maximum_for_patient(self):
        return self._aggregate("Max", self._type)


class NumericEventMixin(ComparableEventMixin):
    def sum_for_patient(self):
        return self._aggregate("Sum", self._type)

    def mean_for_patient(self):
        return self._aggregate("Mean", "float")


class DateEventMixin(ComparableEventMixin):
    def count_episodes_for_patient(self, maximum_gap):
        if not isinstance(maximum_gap, (days, weeks)) or not isinstance(maximum_gap.value, int):
            raise EhrQLTypeError("count_episodes_for_patient() takes a fixed number of days or weeks, e.g. days(30)")
        gap = maximum_gap.value * (7 if isinstance(maximum_gap, weeks) else 1)
        node = Node("CountEpisodes", source=self._node, maximum_gap_days=gap)
        return make_series(node, "int", PATIENT, None)


class PatientMixin:
    pass


class PatientSeries(BaseSeries):
    """The base of every series with one value per patient."""


class EventSeries(BaseSeries):
    """The base of every series with many values per patient."""

    def count_distinct_for_patient(self):
        return make_series(Node("CountDistinct", source=self._node), "int", PATIENT, None)


_FAMILIES = {
    "bool": (BoolMixin,),
    "int": (NumericMixin,),
    "float": (NumericMixin,),
    "str": (StrMixin,),
    "date": (DateMixin,),
    "code": (CodeMixin,),
    "multi_code_string": (MultiCodeStringMixin,),
}
_EVENT_MIXINS = {
    "bool": EventMixin,
    "int": NumericEventMixin,
    "float": NumericEventMixin,
    "str": ComparableEventMixin,
    "date": DateEventMixin,
    "code": EventMixin,
    "multi_code_string": EventMixin,
}
_CLASS_NAMES = {
    "bool": "Bool",
    "int": "Int",
    "float": "Float",
    "str": "Str",
    "date": "Date",
    "code": "Code",
    "multi_code_string": "MultiCodeString",
}

SERIES_CLASSES = {}
for _family, _mixins in _FAMILIES.items():
    for _dim in (PATIENT, EVENT):
        _extra = (PatientMixin,) if _dim == PATIENT else (_EVENT_MIXINS[_family],)
        _name = f"{_CLASS_NAMES[_family]}{'Patient' if _dim == PATIENT else 'Event'}Series"
        _base = PatientSeries if _dim == PATIENT else EventSeries
        SERIES_CLASSES[(_family, _dim)] = type(_name, _mixins + _extra + (_base,), {"__hash__": BaseSeries.__hash__})
        globals()[_name] = SERIES_CLASSES[(_family, _dim)]


class _SetSeries(BaseSeries):
    """The set of a patient's values, only for the right-hand side of is_in()."""


for _dim in (PATIENT, EVENT):
    SERIES_CLASSES[("set", _dim)] = _SetSeries


# ---------------------------------------------------------------- dates


class DateDifference:
    """The gap between two dates, in whole units elapsed."""

    def __init__(self, lhs, rhs):
        self._lhs, self._rhs = lhs, rhs

    def _in(self, op):
        return function(op, "int", self._lhs, self._rhs)

    @property
    def days(self):
        return self._in("DateDifferenceInDays")

    @property
    def weeks(self):
        return self.days // 7

    @property
    def months(self):
        return self._in("DateDifferenceInMonths")

    @property
    def years(self):
        return self._in("DateDifferenceInYears")


class Duration:
    unit = None

    def __init__(self, value):
        if isinstance(value, BaseSeries):
            if value._type != "int":
                raise EhrQLTypeError(f"{self.unit}() takes an int or an int series, not a {describe(value._type)} series")
        elif not isinstance(value, int) or isinstance(value, bool):
            raise EhrQLTypeError(f"{self.unit}() takes an int or an int series, not {value!r}")
        self.value = value

    def __repr__(self):
        return f"{self.unit}(value={self.value!r})"

    def __eq__(self, other):
        return type(other) is type(self) and not isinstance(self.value, BaseSeries) and self.value == other.value

    def __hash__(self):
        return hash((self.unit, id(self.value) if isinstance(self.value, BaseSeries) else self.value))

    def __neg__(self):
        return type(self)(-self.value)

    def __add__(self, other):
        if type(other) is type(self):
            return type(self)(self.value + other.value)
        if isinstance(other, (datetime.date, BaseSeries)):
            return self._add_to(other)
        if isinstance(other, str):
            return self._add_to(parse_date(other))
        return NotImplemented

    def __radd__(self, other):
        return self.__add__(other)

    def __sub__(self, other):
        if type(other) is type(self):
            return type(self)(self.value - other.value)
        return NotImplemented

    def __rsub__(self, other):
        return (-self).__add__(other)

    def _add_to(self, date):
        if isinstance(date, datetime.date) and not isinstance(self.value, BaseSeries):
            return _static_add(date, self.unit, self.value)
        if not isinstance(date, BaseSeries):
            date = value_series(parse_date(date), "date")
        if date._type != "date":
            raise EhrQLTypeError(f"Durations can only be added to dates, not to a {describe(date._type)} series")
        amount = self.value if isinstance(self.value, BaseSeries) else value_series(self.value, "int")
        return function(self._op, "date", date, amount)

    def starting_on(self, date):
        """One interval per unit, the first starting on `date`."""
        return self._intervals(date, "starting_on", forwards=True)

    def ending_on(self, date):
        """One interval per unit, the last ending on `date`."""
        return self._intervals(date, "ending_on", forwards=False)

    def _intervals(self, date, method, forwards):
        name = type(self).__name__
        if isinstance(date, BaseSeries):
            raise TypeError(f"{name}.{method}() can only be used with a literal date, not a date series")
        if isinstance(self.value, BaseSeries):
            raise TypeError(f"{name}.{method}() can only be used with a literal integer value, not an integer series")
        if self.value < 0:
            raise ValueError(f"{name}.{method}() can only be used with positive numbers")
        date = parse_date(date)
        unit = type(self)
        out = []
        for i in range(self.value):
            if forwards:
                out.append((date + unit(i), date + unit(i + 1) - days(1)))
            else:
                out.append((date - unit(i + 1) + days(1), date - unit(i)))
        return out if forwards else out[::-1]


class days(Duration):
    unit = "days"
    _op = "DateAddDays"


class months(Duration):
    unit = "months"
    _op = "DateAddMonths"


class years(Duration):
    unit = "years"
    _op = "DateAddYears"


class weeks(Duration):
    """Seven days per week: weeks(2) adds as days(14) does."""

    unit = "weeks"

    def _add_to(self, date):
        return days(self.value * 7)._add_to(date)


def _static_add(date, unit, n):
    if unit == "days":
        return date + datetime.timedelta(days=n)
    months_n = n * 12 if unit == "years" else n
    total = date.year * 12 + date.month - 1 + months_n
    year, month = divmod(total, 12)
    try:
        return datetime.date(year, month + 1, date.day)
    except ValueError:
        # The day does not exist in that month: roll to the first of the next.
        return datetime.date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)


# ---------------------------------------------------------------- case


class When:
    def __init__(self, condition):
        if not isinstance(condition, BaseSeries) or condition._type != "bool":
            raise EhrQLTypeError("when() takes a boolean series")
        self._condition = condition

    def then(self, value):
        return _WhenThen(self._condition, value)


class _WhenThen:
    def __init__(self, condition, value):
        self._condition, self._value = condition, value

    def otherwise(self, value):
        return case(self, otherwise=value)


def when(condition):
    return When(condition)


def case(*when_thens, otherwise=None):
    cases = when_thens
    if not cases:
        raise EhrQLTypeError("case() needs at least one when(...).then(...)")
    for c in cases:
        if not isinstance(c, _WhenThen):
            raise EhrQLTypeError("case() arguments must be when(...).then(...)")
    values = [c._value for c in cases] + [otherwise]
    series_values = [v for v in values if isinstance(v, BaseSeries)]
    literal_values = [v for v in values if v is not None and not isinstance(v, BaseSeries)]
    if series_values:
        ty = series_values[0]._type
    elif literal_values:
        ty = type_name_of(literal_values[0])
        if ty == "int" and any(type_name_of(v) == "float" for v in literal_values):
            ty = "float"
    else:
        raise EhrQLTypeError("case() needs at least one value that is not None")

    def as_series(v):
        if v is None:
            return None
        if isinstance(v, BaseSeries):
            if v._type != ty:
                raise EhrQLTypeError(f"All values in a case() must have one type; found {describe(ty)} and {describe(v._type)}")
            return v
        return value_series(v, ty)

    pairs = [(c._condition, as_series(c._value)) for c in cases]
    default = as_series(otherwise)
    involved = [p[0] for p in pairs] + [p[1] for p in pairs if p[1] is not None] + ([default] if default is not None else [])
    dim, root = combine_dims(*involved)
    node = Node(
        "Case",
        cases=[[cond._node, v._node if v is not None else None] for cond, v in pairs],
        default=default._node if default is not None else None,
    )
    return make_series(node, ty, dim, root)


def _horizontal(op, args):
    if not args:
        raise EhrQLTypeError(f"{op}() needs at least one argument")
    series = [a for a in args if isinstance(a, BaseSeries)]
    if not series:
        fn = max if op == "MaximumOf" else min
        return fn(args)
    ty = series[0]._type
    converted = [a if isinstance(a, BaseSeries) else value_series(a, ty) for a in args]
    for s in converted:
        if s._type != ty:
            raise EhrQLTypeError(f"All arguments must have one type; found {describe(ty)} and {describe(s._type)}")
    dim, root = combine_dims(*converted)
    return make_series(Node(op, sources=[s._node for s in converted]), ty, dim, root)


def maximum_of(value, other_value, *other_values):
    return _horizontal("MaximumOf", (value, other_value, *other_values))


def minimum_of(value, other_value, *other_values):
    return _horizontal("MinimumOf", (value, other_value, *other_values))


# ---------------------------------------------------------------- frames


class BaseFrame:
    """A table-like set of rows; columns are attributes."""

    _schema = None  # {"level": ..., "columns": [{"name", "type"}, ...]}

    def __init__(self, node, schema=None, root=None, sorted_=False):
        object.__setattr__(self, "_node", node)
        if schema is not None:
            object.__setattr__(self, "_schema", schema)
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_sorted", sorted_)

    def _columns(self):
        return {c["name"]: c["type"] for c in self._schema["columns"]}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        columns = self._columns()
        if name not in columns:
            raise AttributeError(
                f"'{self._root}' has no column or method '{name}' (columns: {', '.join(columns)})"
            )
        dim = PATIENT if self._is_patient_level() else EVENT
        return make_series(Node("SelectColumn", source=self._node, name=name), columns[name], dim, self._root if dim == EVENT else None)

    def _is_patient_level(self):
        return isinstance(self, PatientFrame)

    def _derive(self, node, patient_level=None, sorted_=None):
        patient_level = self._is_patient_level() if patient_level is None else patient_level
        cls = frame_class(type(self), patient_level)
        return cls(node, self._schema, self._root, self._sorted if sorted_ is None else sorted_)

    def exists_for_patient(self):
        return make_series(Node("Exists", source=self._node), "bool", PATIENT, None)

    def count_for_patient(self):
        return make_series(Node("Count", source=self._node), "int", PATIENT, None)

    def __repr__(self):
        return f"<{type(self).__name__} {self._root}>"


class PatientFrame(BaseFrame):
    pass


class EventFrame(BaseFrame):
    def _condition(self, condition):
        if isinstance(condition, bool):
            return value_series(condition, "bool")
        if not isinstance(condition, BaseSeries) or condition._type != "bool":
            raise EhrQLTypeError("where() and except_where() take a boolean series")
        if condition._dim == EVENT and condition._root != self._root:
            raise DomainError(f"Cannot filter '{self._root}' by a condition on '{condition._root}'")
        return condition

    def where(self, condition):
        c = self._condition(condition)
        return self._derive(Node("Filter", source=self._node, condition=c._node))

    def except_where(self, condition):
        c = self._condition(condition)
        keep = (~c) | c.is_null()
        return self._derive(Node("Filter", source=self._node, condition=keep._node))

    take = where
    drop = except_where

    def sort_by(self, *sort_values):
        keys = sort_values
        if not keys:
            raise EhrQLTypeError("sort_by() needs at least one series to sort by")
        nodes = []
        for k in keys:
            if not isinstance(k, BaseSeries):
                k = value_series(k, type_name_of(k))
            if k._dim == EVENT and k._root != self._root:
                raise DomainError(f"Cannot sort '{self._root}' by a series from '{k._root}'")
            nodes.append(k._node)
        return self._derive(Node("Sort", source=self._node, sort_by=nodes), sorted_=True)

    def _pick(self, position):
        if not self._sorted:
            raise Error(f"Cannot call {position}_for_patient() on '{self._root}' before sort_by(): the order decides which row is picked")
        return self._derive(Node("PickOneRowPerPatient", source=self._node, position=position), patient_level=True)

    def first_for_patient(self):
        return self._pick("first")

    def last_for_patient(self):
        return self._pick("last")


@functools.cache
def frame_class(cls, patient_level):
    """The class of a frame derived from one of class `cls`: it keeps the table's
    helper methods, and is a PatientFrame or EventFrame as the derivation requires."""
    base = PatientFrame if patient_level else EventFrame
    if issubclass(cls, base):
        return cls
    helpers = tuple(c for c in cls.__mro__ if not issubclass(c, BaseFrame) and c is not object)
    return type(cls.__name__, (*helpers, base), {})


# ---------------------------------------------------------------- dataset

RESERVED = {"patient_id", "population", "define_population", "set_population", "add_column", "add_event_table", "configure_dummy_data", "configure_dummy_dataset"}


def check_name(name):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise Error(
            f"Invalid variable name '{name}': names must start with a letter and contain only letters, digits and underscores"
        )
    if name in RESERVED or keyword.iskeyword(name):
        raise Error(f"'{name}' is a reserved name and cannot be used as a variable name")
    if len(name) > 100:
        raise Error(f"Variable name '{name[:20]}...' is too long (100 characters at most)")


class Dataset:
    """The dataset: a population and one column per variable."""

    def __init__(self):
        object.__setattr__(self, "_variables", {})
        object.__setattr__(self, "_population", None)
        object.__setattr__(self, "_event_tables", {})
        object.__setattr__(self, "dummy_data_config", {})

    def define_population(self, population_condition):
        if self._population is not None:
            raise Error("define_population() should be called no more than once")
        s = population_condition
        if not isinstance(s, BaseSeries) or s._type != "bool":
            raise EhrQLTypeError("define_population() takes a boolean series (one value per patient)")
        if s._dim != PATIENT:
            raise DomainError(
                "The population must have one value per patient, but this series has many (e.g. add .exists_for_patient())"
            )
        object.__setattr__(self, "_population", s)

    set_population = define_population

    def add_column(self, column_name, ehrql_query):
        series = ehrql_query
        check_name(column_name)
        if column_name in self._variables:
            raise Error(f"'{column_name}' is already set and cannot be reassigned")
        if isinstance(series, Duration) or not isinstance(series, BaseSeries):
            if isinstance(series, (bool, int, float, str, datetime.date)):
                series = value_series(series, type_name_of(series))
            else:
                raise EhrQLTypeError(f"Invalid value for '{column_name}': expected a series, got {type(series).__name__}")
        if series._dim != PATIENT:
            raise DomainError(
                f"Invalid value for '{column_name}': it has many values per patient (from '{series._root}'); "
                "reduce it to one per patient, e.g. with first_for_patient() or an aggregation such as count_for_patient()"
            )
        if isinstance(series, _SetSeries):
            raise EhrQLTypeError(f"Invalid value for '{column_name}': a set cannot be a dataset column")
        self._variables[column_name] = series

    def __setattr__(self, name, value):
        if name == "dummy_data_config":
            object.__setattr__(self, name, value)
            return
        self.add_column(name, value)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._variables[name]
        except KeyError:
            raise AttributeError(f"Variable '{name}' has not been defined") from None

    def add_event_table(self, name, **columns):
        check_name(name)
        if name in self._event_tables or name in self._variables:
            raise Error(f"'{name}' is already defined")
        if not columns:
            raise Error(f"add_event_table('{name}') needs at least one column")
        root = None
        for cname, s in columns.items():
            check_name(cname)
            if not isinstance(s, BaseSeries) or s._dim != EVENT:
                raise DomainError(f"Column '{cname}' of event table '{name}' must be an event series (many values per patient)")
            if root is not None and s._root != root:
                raise DomainError(f"The columns of event table '{name}' come from different tables ('{root}' and '{s._root}')")
            root = s._root
        self._event_tables[name] = dict(columns)

    def configure_dummy_data(self, *, population_size=None, legacy=False, timeout=None, additional_population_constraint=None):
        config = {"population_size": population_size, "legacy": legacy, "timeout": timeout}
        if additional_population_constraint is not None:
            config["additional_population_constraint"] = additional_population_constraint
        object.__setattr__(self, "dummy_data_config", config)

    configure_dummy_dataset = configure_dummy_data

    def _to_document(self, backend=None, tables=None):
        if self._population is None:
            raise Error("A population has not been defined; define one with define_population()")
        return to_document(
            self._population._node,
            {n: s._node for n, s in self._variables.items()},
            {t: {c: s._node for c, s in cols.items()} for t, cols in self._event_tables.items()},
            backend,
            tables if tables is not None else user_tables(),
        )


def create_dataset():
    return Dataset()


# Tables defined by the user (with @table) that the data directory must provide.
_USER_TABLES = {}


def user_tables():
    return {name: {"level": s["level"], "columns": s["columns"]} for name, s in _USER_TABLES.items()}
