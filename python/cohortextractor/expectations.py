"""Dummy data from a study's expectations, as cohort-extractor makes it for
`generate_cohort --expectations-population N`: each written column drawn on its own
from `default_expectations` merged with its `return_expectations`, not from running
the queries.

What is drawn, per column type: dates (`rate` "uniform" or "exponential_increase"
between `date.earliest` and `date.latest`, counted back from the latest; dates
outside the column's static period emptied), a share `1 - incidence` of rows emptied
(none for `rate: "universal"`), categories by `category.ratios`, ints (`normal`,
`poisson`, `population_ages`), floats (`normal`), flags (1, emptied to 0). A date of
match (`date_of`, `include_date_of_match`) is drawn first and its column's value
follows its incidence. `minimum_of`/`maximum_of` are computed from their columns;
fixed values are repeated. Dates are then cut to their format. As in
cohort-extractor, `default_expectations` follow the index date being run, but a
column's `return_expectations` and period stay those of the definition's own
`index_date`. The columns come in
cohort-extractor's order (dates first, then the others, then fixed values and
aggregates) with `patient_id` last, distinct random ids below 10 N; the rows are in
no particular order. The values differ from cohort-extractor's (its generator is
numpy's, unseeded); `seed` makes ours repeatable."""

import copy
import csv
import datetime
import math
import random

from . import dates, files
from .lowering import StudyError

# ONS 2018 principal projection of the UK population, thousands per 5-year band from
# 0-4 to 95-99, then 100 and over: the shape of `population_ages`.
_UK_BANDS_2018 = [3914, 4139, 3859, 3669, 4185, 4527, 4463, 4372, 3993, 4507, 4674, 4294, 3673, 3396, 3252, 2236, 1673, 1024, 448, 123, 13]
_SKIPPED = ("aggregate_of", "with_value_from_file", "which_exist_in_file", "fixed_value")


def _age_weights(max_age=110):
    total = sum(_UK_BANDS_2018)
    weights = [_UK_BANDS_2018[min(age // 5, 20)] / total / 5 for age in range(max_age)]
    biggest = weights.index(max(weights))
    weights[biggest] -= sum(weights) - 1
    return weights


def _merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else copy.deepcopy(value)
    return out


class Generator:
    def __init__(self, study, population, seed):
        self.study, self.population = study, population
        self.rng = random.Random(seed)
        self.defaults = self._dates_evaluated(study.default_expectations, dates.Evaluator(study.index_date))
        # As cohort-extractor does: a column's own expectations and period are taken at
        # the definition's index date, whichever index date is being run.
        self.evaluate = dates.Evaluator(study.initial_index_date)

    @staticmethod
    def _dates_evaluated(expectations, evaluate):
        expectations = copy.deepcopy(expectations or {})
        for key in ("earliest", "latest"):
            if isinstance(expectations.get("date"), dict) and key in expectations["date"]:
                expectations["date"][key] = evaluate(expectations["date"][key])
        return expectations

    def _kwargs(self, name, args):
        own = self._dates_evaluated(args.get("return_expectations"), self.evaluate)
        if not self.defaults and not own:
            raise StudyError(f"No `return_expectations` defined for {name} and no `default_expectations` defined for the study")
        return _merge(self.defaults, own)

    # ------------------------------------------------------------ draws

    def draw_dates(self, earliest, latest, rate):
        low, high = datetime.date.fromisoformat(earliest), datetime.date.fromisoformat(latest)
        elapsed = (high - low).days
        n = self.population
        random = self.rng.random
        if rate == "exponential_increase":
            # expovariate(10) * elapsed, written out: studies draw millions of these.
            log, scale = math.log, elapsed / 10.0
            pool = [int(-log(1.0 - random()) * scale) for _ in range(int(n * 1.5))]
            pool = [d for d in pool if d <= elapsed]
            if len(pool) < n:
                raise StudyError("exponential_increase gave too few dates for the population")
            days_back = self._pick(pool, n)
        elif rate == "uniform":
            days_back = [int(random() * elapsed) for _ in range(n)]
        else:
            raise StudyError("Only exponential_increase and uniform distributions currently supported")
        # One date object per distinct day.
        latest_day, known = high.toordinal(), {}
        return [known.get(d) or known.setdefault(d, datetime.date.fromordinal(latest_day - d)) for d in days_back]

    def _pick(self, items, k):
        """k of `items` drawn without replacement, in random order: those with the
        smallest of a random key each (sorting in C, unlike `random.sample`)."""
        random = self.rng.random
        keys = [random() for _ in range(len(items))]
        return [items[i] for i in sorted(range(len(items)), key=keys.__getitem__)[:k]]

    def _normals(self, mean, stddev, n):
        """n draws from a normal distribution (Box-Muller, two per pair of uniforms)."""
        random, log, sqrt, cos, sin, tau = self.rng.random, math.log, math.sqrt, math.cos, math.sin, math.tau
        out = []
        for _ in range((n + 1) // 2):
            radius, angle = stddev * sqrt(-2.0 * log(1.0 - random())), tau * random()
            out.append(mean + radius * cos(angle))
            out.append(mean + radius * sin(angle))
        del out[n:]
        return out

    def generate(self, kwargs, match_incidence=None):
        """Columns "date", "category", "int", "float", "bool" as cohort-extractor's
        `generate` returns them (lists of values; None empty)."""
        kwargs = dict(kwargs)
        rate = kwargs.pop("rate", "exponential_increase")
        incidence = kwargs.pop("incidence", None)
        if not incidence and rate != "universal":
            raise StudyError(f"You must specify an incidence, or a `universal` rate: got {incidence} and {rate}")
        date = kwargs.pop("date", None)
        n = self.population
        out = {}
        if match_incidence is not None:
            out["date"] = list(match_incidence)
        elif rate == "universal":
            out["date"] = list(range(n))
        else:
            if not isinstance(date, dict) or "earliest" not in date or "latest" not in date:
                raise StudyError("date expectations need date.earliest and date.latest")
            out["date"] = self.draw_dates(date["earliest"], date["latest"], rate)
        category = kwargs.pop("category", None)
        if category:
            labels = list(category["ratios"])
            out["category"] = self.rng.choices(labels, weights=list(category["ratios"].values()), k=n)
        int_ = kwargs.pop("int", None)
        if int_:
            kind = int_.get("distribution")
            if kind == "normal":
                out["int"] = [int(v) for v in self._normals(int_["mean"], int_["stddev"], n)]
            elif kind == "poisson":
                out["int"] = [self._poisson(int_["mean"]) for _ in range(n)]
            elif kind == "population_ages":
                out["int"] = self.rng.choices(range(110), weights=_age_weights(), k=n)
            else:
                raise StudyError("Only `normal`, `poisson`, and `population_ages` distributions currently supported for ints")
        float_ = kwargs.pop("float", None)
        if float_:
            if float_.get("distribution") != "normal":
                raise StudyError("Only `normal` distributions currently supported for floats")
            out["float"] = self._normals(float_["mean"], float_["stddev"], n)
        if kwargs.pop("bool", None):
            out["bool"] = [1] * n
        if kwargs:
            raise StudyError(f"Encountered unexpected arguments: {kwargs}")
        if match_incidence is not None:
            empty = [i for i, v in enumerate(match_incidence) if v is None]
        elif rate != "universal":
            empty = self._pick(range(n), int((1 - incidence) * n))
        else:
            empty = []
        empty_values = {"bool": 0, "int": 0, "float": 0.0, "date": None, "category": None}
        for column, values in out.items():
            for i in empty:
                values[i] = empty_values[column]
        if date is None:
            out.pop("date")
        return out

    def _poisson(self, mean):
        # Knuth's method, enough for the small means studies use.
        limit, k, p = math.exp(-mean), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    # ------------------------------------------------------------ the frame

    def frame(self):
        """(columns, {column: values}) in cohort-extractor's column order."""
        definitions = self.study.covariate_definitions
        visible = {n: (q, a) for n, (q, a) in definitions.items() if n != "population" and not a["hidden"]}
        columns = {}
        date_col_for = {a["source"]: n for n, (q, a) in visible.items() if q == "value_from" and a["column_type"] == "date"}
        # As cohort-extractor does: a column from a file takes the file's patients
        # and values, and the population becomes the file's (patient_id first).
        for name, (query_type, args) in visible.items():
            if query_type in ("with_value_from_file", "which_exist_in_file"):
                ids, values = self._from_file(name, args)
                columns["patient_id"] = ids
                columns[name] = values
                self.population = len(ids)
        date_columns = [n for n, (q, a) in visible.items() if a["column_type"] == "date" and not (q == "categorised_as") and q not in _SKIPPED]
        for name in date_columns:
            query_type, args = visible[name]
            source_args = visible[args["source"]][1] if "source" in args and args["source"] in visible else args
            kwargs = self._kwargs(name, {"return_expectations": source_args.get("return_expectations")} if "source" in args else args)
            if "date" not in kwargs or not all(k in kwargs["date"] for k in ("earliest", "latest")):
                raise StudyError(f"{name} must define a date[earliest] and date[latest] expectation")
            values = self.generate(kwargs)["date"]
            between = args.get("between")
            low, high = (datetime.date.fromisoformat(b) if isinstance(b, str) and len(b) == 10 and b[4] == "-" else None for b in (self._static(between)))
            columns[name] = [None if v is None or (low and v < low) or (high and v > high) else v for v in values]
        for name, (query_type, args) in visible.items():
            if name in columns or query_type in _SKIPPED:
                continue
            kind = {"bool": "bool", "int": "int", "float": "float", "str": "category", "date": "category"}[args["column_type"]]
            if args.get("returning") in ("index_of_multiple_deprivation", "rural_urban_classification"):
                kind = "category"
            kwargs = self._kwargs(name, args)
            if kind == "bool" and "bool" not in kwargs:
                kwargs["bool"] = True
            if kind == "category":
                self._check_categories(name, query_type, args, kwargs)
            dependent = date_col_for.get(name)
            generated = self.generate(kwargs, match_incidence=columns[dependent] if dependent else None)
            if kind not in generated:
                raise StudyError(f"Column definition {name} does not return expected type {args['column_type']}")
            columns[name] = generated[kind]
        for name, (query_type, args) in visible.items():
            if query_type == "fixed_value":
                v = args["value"]
                columns[name] = [datetime.date.fromisoformat(v) if args["column_type"] == "date" else v] * self.population
        for name, (query_type, args) in visible.items():
            if query_type == "aggregate_of":
                hidden = self._hidden([c for c in args["column_names"] if c not in columns])
                sources = [columns[c] if c in columns else hidden[c] for c in args["column_names"]]
                pick = min if args["aggregate_function"] == "MIN" else max
                # pandas min/max skip only missing values (empty dates); an empty number is 0.
                columns[name] = [pick([v for v in row if v is not None], default=None) for row in zip(*sources)]
        for name in [n for n in columns if n != "patient_id"]:
            query_type, args = visible[name]
            if args["column_type"] == "date" and query_type != "categorised_as":
                width, shown = {"YYYY-MM-DD": 10, "YYYY-MM": 7}.get(args.get("date_format"), 4), {None: None}
                columns[name] = [shown[v] if v in shown else shown.setdefault(v, v.isoformat()[:width]) for v in columns[name]]
        if "patient_id" not in columns:
            # cohort-extractor fills an empty frame column by column: with no column
            # but the population, it has no rows.
            rows = self.population if columns else 0
            columns["patient_id"] = self.rng.sample(range(self.population * 10), rows)
        return columns

    def _hidden(self, names):
        """Hidden columns that an aggregate reads, drawn as cohort-extractor draws
        them: as a study of their own, cut to their date format and read back as
        dates (a year alone is its first of January)."""
        if not names:
            return {}
        definitions = self.study.covariate_definitions
        unknown = [n for n in names if n not in definitions]
        if unknown:
            raise StudyError(f"Unknown column: {unknown[0]}")
        study = copy.copy(self.study)
        study.covariate_definitions = {n: (definitions[n][0], dict(definitions[n][1], hidden=False)) for n in names}
        drawn = Generator(study, self.population, self.rng.random()).frame()
        out = {}
        for n in names:
            values = drawn[n]
            if definitions[n][1]["column_type"] == "date":
                values = [None if v is None else datetime.date.fromisoformat(v + {4: "-01-01", 7: "-01"}.get(len(v), "")) for v in values]
            out[n] = values
        return out

    def _from_file(self, name, args):
        """The patient ids and the values (text as written; dates as dates) of a
        column's file: 1 for each patient of `which_exist_in_file`."""
        path = args["f_path"]
        returning = args.get("returning")
        try:
            header, rows = files.read_rows(path)
        except OSError as e:
            raise StudyError(f"{name}: {path}: {e.strerror}") from None
        for needed in ["patient_id"] + ([returning] if returning else []):
            if rows and needed not in header:
                raise StudyError(f"{name}: {path} has no column {needed!r}")
        ids = files.column(header, rows, "patient_id")
        if returning is None:
            return ids, [1] * len(rows)
        values = [v or None for v in files.column(header, rows, returning)]
        if args["column_type"] == "date":
            try:
                values = [None if v is None else datetime.date.fromisoformat(v[:10]) for v in values]
            except ValueError as e:
                raise StudyError(f"{name}: {path}: {e}") from None
        return ids, values

    def _static(self, between):
        if not between:
            return (None, None)
        return tuple(self.evaluate(b) if isinstance(b, str) and dates.parse(b) is not None and dates.parse(b)[1] in ("index_date", "today") else b for b in between)

    @staticmethod
    def _check_categories(name, query_type, args, kwargs):
        if "category" not in kwargs:
            raise StudyError(f"Column definition {name} does not return expected type category (give return_expectations a category with ratios)")
        defined = set(kwargs["category"]["ratios"])
        if query_type == "categorised_as":
            available = set(args["category_definitions"])
        elif getattr(args.get("codelist"), "has_categories", False):
            available = {c for _, c in args["codelist"]}
        else:
            available = defined
        if not defined <= available:
            raise StudyError(f"Expected categories {', '.join(map(str, defined))} are not a subset of available categories {', '.join(map(str, available))}")


def csv_text(columns):
    """The frame as pandas' to_csv writes it: "\\n" line ends, empty for missing,
    floats as Python prints them."""
    import csv
    import io

    names = list(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*(columns[n] for n in names)):
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return out.getvalue()
