"""Measures: numerators over denominators, per interval and group (ehrQL's
`create_measures`). Definitions are checked here with ehrQL's rules and messages;
the engine computes every interval of a measure in one pass.
"""

import collections
import datetime
import re

from .language import PATIENT, BaseSeries, Duration, Error, make_series
from .query_model import Node, measures_document

# ehrQL's attribute-name rule for measure and group names.
_NAME = re.compile(r"^[A-Za-z]+[A-Za-z0-9_]*$")


def _parameter(name):
    return make_series(Node("Parameter", name=name, type="date"), "date", PATIENT, None)


# The interval each measure is evaluated over: a pair of dates usable anywhere a date
# is, e.g. `clinical_events.date.is_during(INTERVAL)`.
INTERVAL = collections.namedtuple("INTERVAL", ["start_date", "end_date"])(
    start_date=_parameter("interval_start_date"),
    end_date=_parameter("interval_end_date"),
)

_TYPE_WORDS = {"bool": "boolean", "int": "integer"}


def _check_series(value, context):
    """ehrQL's checks of a patient series argument (same messages)."""
    if not isinstance(value, BaseSeries):
        message = f"invalid {context}:\nExpecting an ehrQL series, got type '{type(value).__qualname__}'"
        if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], BaseSeries):
            message += "\nIt looks like you might have a trailing comma"
        raise TypeError(message)
    if value._dim != PATIENT:
        raise TypeError(f"invalid {context}:\nExpecting a series with only one value per patient")


def _check_count(value, context):
    if value is None:
        return
    _check_series(value, context)
    if value._type not in ("bool", "int"):
        raise TypeError(f"invalid {context}:\nExpecting a boolean or integer series, got series of type '{value._type}'")


class Measure(collections.namedtuple("Measure", "name numerator denominator group_by intervals")):
    """One measure: its series (numerator, denominator, {group name: series}) and its
    sorted, de-duplicated intervals."""


class Measures:
    """A collection of measures; make one with `create_measures()`."""

    # Columns of the measures output, so not names for group_by columns.
    RESERVED_NAMES = {"measure", "numerator", "denominator", "ratio", "interval_start", "interval_end"}

    def __init__(self):
        self._measures = {}
        self._defaults = {}
        self.dummy_data_config = {"population_size": None, "legacy": False, "timeout": None}
        self.disclosure_control = {"enabled": True}

    def define_measure(self, name, numerator=None, denominator=None, group_by=None, intervals=None):
        given = {"numerator": numerator, "denominator": denominator, "group_by": group_by, "intervals": intervals}
        spec = {k: v if v is not None else self._defaults.get(k) for k, v in given.items()}
        self._check(spec)
        if spec["group_by"] is None:
            spec["group_by"] = {}
        for key, value in spec.items():
            if value is None:
                raise Error(f"No value supplied for '{key}' and no default defined")
        if not isinstance(name, str) or not _NAME.match(name):
            raise Error(
                f"Measure names must start with a letter and contain only alphanumeric characters and underscores, got: {name!r}"
            )
        if name in self._measures:
            raise Error(f"Measure already defined with name: {name}")
        for other in self._measures.values():
            for group, series in spec["group_by"].items():
                if group in other.group_by and other.group_by[group]._node != series._node:
                    raise Error(f"Inconsistent definition for `group_by` column: {group}")
        self._measures[name] = Measure(
            name=name,
            numerator=spec["numerator"],
            denominator=spec["denominator"],
            group_by=dict(spec["group_by"]),
            intervals=tuple(sorted(set(spec["intervals"]))),
        )

    def define_defaults(self, numerator=None, denominator=None, group_by=None, intervals=None):
        given = {"numerator": numerator, "denominator": denominator, "group_by": group_by, "intervals": intervals}
        if self._defaults:
            raise Error("Defaults already set; cannot call `define_defaults()` more than once")
        self._check(given)
        self._defaults = given

    def _check(self, spec):
        _check_count(spec["numerator"], "numerator")
        _check_count(spec["denominator"], "denominator")
        self._check_intervals(spec["intervals"])
        self._check_group_by(spec["group_by"])

    @staticmethod
    def _check_intervals(intervals):
        if intervals is None:
            return
        if isinstance(intervals, Duration):
            raise Error(
                f"You must supply a date using `{intervals!r}.starting_on('<DATE>')` or `{intervals!r}.ending_on('<DATE>')`"
            )
        if not isinstance(intervals, list):
            raise Error(f"`intervals` must be a list, got '{type(intervals)}': {intervals!r}")
        for interval in intervals:
            if (
                not isinstance(interval, tuple)
                or len(interval) != 2
                or not all(isinstance(d, datetime.date) for d in interval)
            ):
                raise Error(f"`intervals` must contain pairs of dates, got: {interval!r}")
            if interval[0] > interval[1]:
                raise Error(f"Interval start date must be before end date, got: {interval!r}")

    def _check_group_by(self, group_by):
        if group_by is None:
            return
        if not isinstance(group_by, dict):
            raise Error(f"`group_by` must be a dictionary, got '{type(group_by)}': {group_by!r}")
        for key, value in group_by.items():
            if not isinstance(key, str):
                raise Error(f"`group_by` names must be strings, got '{type(key)}': {key!r}")
            if not _NAME.match(key):
                raise Error(
                    f"`group_by` names must start with a letter and contain only alphanumeric characters and underscores, got: {key!r}"
                )
            _check_series(value, f"`group_by` value for '{key}'")
        reserved = self.RESERVED_NAMES.intersection(group_by)
        if reserved:
            raise Error(f"disallowed `group_by` column name: {', '.join(reserved)}")

    def configure_dummy_data(self, *, population_size=None, legacy=False, timeout=None, additional_population_constraint=None):
        if additional_population_constraint is not None:
            _check_series(additional_population_constraint, "additional population constraint")
            if legacy:
                raise ValueError("Cannot provide an additional population constraint in legacy mode.")
        self.dummy_data_config = {"population_size": population_size, "legacy": legacy, "timeout": timeout}

    def configure_disclosure_control(self, *, enabled=True):
        self.disclosure_control = {"enabled": bool(enabled)}

    def __iter__(self):
        return iter(self._measures.values())

    def __len__(self):
        return len(self._measures)

    def _to_document(self, backend=None, tables=None):
        from .language import user_tables

        return measures_document(
            [
                {
                    "name": m.name,
                    "numerator": m.numerator._node,
                    "denominator": m.denominator._node,
                    "group_by": {k: v._node for k, v in m.group_by.items()},
                    "intervals": [[s.isoformat(), e.isoformat()] for s, e in m.intervals],
                }
                for m in self
            ],
            self.disclosure_control["enabled"],
            backend,
            tables if tables is not None else user_tables(),
        )


def create_measures():
    """The collection of measures a measures definition defines as `measures`."""
    return Measures()
