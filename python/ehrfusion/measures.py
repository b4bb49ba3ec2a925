"""Measures: definitions are recorded (and checked) but not yet computed."""

import datetime
import types

from .language import PATIENT, EhrQLTypeError, Error, make_series
from .query_model import Node


class INTERVAL:
    """INTERVAL: the period each measure is computed over; usable only in measures."""

    @property
    def start_date(self):
        return make_series(Node("Parameter", name="interval_start_date", type="date"), "date", PATIENT, None)

    @property
    def end_date(self):
        return make_series(Node("Parameter", name="interval_end_date", type="date"), "date", PATIENT, None)

    def __iter__(self):
        return iter((self.start_date, self.end_date))


INTERVAL = INTERVAL()


class Measures:
    # Columns of the measures output, so not names for group_by columns.
    RESERVED_NAMES = {"measure", "numerator", "denominator", "ratio", "interval_start", "interval_end"}

    def __init__(self):
        self.measures = {}
        self.defaults = {}
        self.dummy_data_config = {}
        self.disclosure_control = {"enabled": True}

    def define_defaults(self, numerator=None, denominator=None, group_by=None, intervals=None):
        if self.defaults:
            raise Error("Defaults are already set: define_defaults() can be called once")
        given = dict(numerator=numerator, denominator=denominator, group_by=group_by, intervals=intervals)
        self._check_group_by(group_by)
        self.defaults = {k: v for k, v in given.items() if v is not None}

    def _check_group_by(self, group_by):
        reserved = sorted(self.RESERVED_NAMES.intersection(group_by or {}))
        if reserved:
            raise Error(f"disallowed `group_by` column name: {', '.join(reserved)}")

    def define_measure(self, name, numerator=None, denominator=None, group_by=None, intervals=None):
        if name in self.measures:
            raise Error(f"Measure '{name}' is already defined")
        spec = dict(self.defaults)
        spec.update({k: v for k, v in dict(numerator=numerator, denominator=denominator, group_by=group_by, intervals=intervals).items() if v is not None})
        self._check_group_by(spec.get("group_by"))
        for key in ("numerator", "denominator", "intervals"):
            if key not in spec:
                raise Error(f"Measure '{name}' has no {key} (give it here or with define_defaults())")
        for start, end in spec["intervals"]:
            if not isinstance(start, datetime.date) or not isinstance(end, datetime.date):
                raise EhrQLTypeError("intervals must be pairs of dates, e.g. months(12).starting_on('2020-01-01')")
        self.measures[name] = spec

    def configure_dummy_data(self, *, population_size=None, legacy=False, timeout=None, additional_population_constraint=None):
        self.dummy_data_config = {"population_size": population_size, "legacy": legacy, "timeout": timeout}
        if additional_population_constraint is not None:
            self.dummy_data_config["additional_population_constraint"] = additional_population_constraint

    def configure_disclosure_control(self, *, enabled=True):
        self.disclosure_control = {"enabled": enabled}

    def __len__(self):
        return len(self.measures)

    def __iter__(self):
        """The measures defined, each with its name, numerator, denominator, group_by and intervals."""
        for name, spec in self.measures.items():
            yield types.SimpleNamespace(name=name, **{"group_by": {}, **spec})


def create_measures():
    return Measures()
