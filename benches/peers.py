"""The benchmark workloads written for the peers: DuckDB SQL with one query block per
variable (ehrQL-shaped: the SQL ehrQL's own engines generate), DuckDB SQL and Polars
lazy queries as their experts would write them (the peers every target is measured
against), and the columns each workload reads (for the decode floor).

Each workload is described once here, variable by variable, with the semantics of
its ehrQL definition in `benches/workloads/`; the renderers below turn a description
into each peer's query. Expressions carry their SQL and Polars forms side by side.
"""
import csv
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

CODELISTS = Path(__file__).parent / "codelists"


# --- expressions ---------------------------------------------------------------------


@dataclass(frozen=True)
class E:
    """An expression in both SQL and Polars, with the table columns it reads."""

    sql: str
    pl: object
    cols: frozenset = frozenset()

    def _bin(self, other, op, pl_op):
        other = other if isinstance(other, E) else lit(other)
        return E(f"({self.sql} {op} {other.sql})", pl_op(self.pl, other.pl), self.cols | other.cols)

    def __and__(self, o):
        return self._bin(o, "AND", lambda a, b: a & b)

    def __or__(self, o):
        return self._bin(o, "OR", lambda a, b: a | b)

    def __le__(self, o):
        return self._bin(o, "<=", lambda a, b: a <= b)

    def __lt__(self, o):
        return self._bin(o, "<", lambda a, b: a < b)

    def __gt__(self, o):
        return self._bin(o, ">", lambda a, b: a > b)

    def __ge__(self, o):
        return self._bin(o, ">=", lambda a, b: a >= b)

    def plus_days(self, n):
        return E(f"({self.sql} + INTERVAL {n} DAY)", self.pl + pl.duration(days=n), self.cols)

    def is_null(self):
        return E(f"({self.sql} IS NULL)", self.pl.is_null(), self.cols)

    def is_not_null(self):
        return E(f"({self.sql} IS NOT NULL)", self.pl.is_not_null(), self.cols)

    def between(self, lo, hi):
        return (self >= lo) & (self <= hi)

    def isin(self, codes):
        listed = ", ".join(f"'{c}'" for c in codes)
        return E(f"({self.sql} IN ({listed}))", self.pl.is_in(list(codes)), self.cols)

    def is_not_true(self):
        """True where the condition is false or null (ehrQL's except_where keeps those)."""
        return E(f"(NOT coalesce({self.sql}, false))", ~self.pl.fill_null(False), self.cols)

    def or_null_sentinel(self, sentinel):
        """For sort keys: nulls sort first in ehrQL, so stand in for the smallest value."""
        s = lit(sentinel)
        return E(f"coalesce({self.sql}, {s.sql})", self.pl.fill_null(s.pl), self.cols)


def col(name):
    return E(name, pl.col(name), frozenset([name]))


def ref(name):
    """A patient-level value computed by an earlier variable (a later stage reads it)."""
    return E(name, pl.col(name))


def lit(value):
    if isinstance(value, E):
        return value
    if isinstance(value, date):
        return E(f"DATE '{value.isoformat()}'", pl.lit(value))
    if isinstance(value, str):
        return E(f"'{value}'", pl.lit(value))
    if isinstance(value, bool):
        return E("true" if value else "false", pl.lit(value))
    return E(repr(value), pl.lit(value))


def d(iso):
    return lit(date.fromisoformat(iso))


def age_on(dob, when):
    """Whole years from `dob` to `when`, as ehrQL counts them."""
    sql = (
        f"(year({when.sql}) - year({dob.sql}) - CASE WHEN month({when.sql}) * 100 + day({when.sql}) "
        f"< month({dob.sql}) * 100 + day({dob.sql}) THEN 1 ELSE 0 END)"
    )
    polars = (
        when.pl.dt.year().cast(pl.Int64)
        - dob.pl.dt.year().cast(pl.Int64)
        - ((when.pl.dt.month().cast(pl.Int64) * 100 + when.pl.dt.day()) < (dob.pl.dt.month().cast(pl.Int64) * 100 + dob.pl.dt.day())).cast(pl.Int64)
    )
    return E(sql, polars, dob.cols | when.cols)


def bool_to_int(e):
    return E(f"(CASE WHEN {e.sql} THEN 1 ELSE 0 END)", e.pl.fill_null(False).cast(pl.Int64), e.cols)


def codelist(name):
    with open(CODELISTS / f"{name}.csv", newline="") as f:
        return [row["code"] for row in csv.DictReader(f)]


# --- variables -----------------------------------------------------------------------


@dataclass
class Agg:
    """An aggregation over an event table's rows that satisfy `where`:
    count, exists, min(column) or max(column)."""

    name: str
    table: str
    where: E
    fn: str
    column: str = None
    needs: tuple = ()
    hidden: bool = False


@dataclass
class Pick:
    """`column` of the row with the largest `keys` among the rows satisfying `where`
    (ehrQL's sort_by(...).last_for_patient())."""

    name: str
    table: str
    where: E
    keys: list
    column: str
    needs: tuple = ()
    hidden: bool = False


@dataclass
class PatientValue:
    """An expression over the patients table and earlier variables."""

    name: str
    expr: E
    needs: tuple = ()
    hidden: bool = False
    table: str = "patients"


@dataclass
class Workload:
    name: str
    definition: str
    variables: list
    population: E
    universe: list  # tables whose patients the population is drawn from
    # What an expert writing this query by hand knows and uses (the expert peers only):
    # per event table, the WHERE that keeps every row any first-stage variable reads
    # (tables not named here are filtered by the OR of their variables' conditions) ...
    prefilters: dict = field(default_factory=dict)
    # ... and a variable whose pass has a row for every patient in the population (the
    # population is false without one), so that pass, not the universe, drives the join.
    driver: str = None

    def visible(self):
        return [v for v in self.variables if not v.hidden]

    def columns(self):
        """The columns each table contributes: what the scan floor reads."""
        out = {}
        for v in self.variables:
            used = set(v.where.cols) if hasattr(v, "where") else set(v.expr.cols)
            for k in getattr(v, "keys", []):
                used |= k.cols
            if getattr(v, "column", None):
                used.add(v.column)
            out.setdefault(v.table, {"patient_id"}).update(used)
        for t in self.universe:
            out.setdefault(t, {"patient_id"})
        return {t: sorted(c) for t, c in out.items()}


# --- the workloads -------------------------------------------------------------------


def diagnoses():
    dx = col("snomedct_code").isin(codelist("diabetes"))
    early = dx & col("date").between(d("2010-01-01"), d("2014-12-31"))
    late = dx & col("date").between(d("2015-01-01"), d("2019-12-31"))
    bmi = col("snomedct_code").isin(codelist("bmi")) & col("numeric_value").is_not_null() & (col("date") <= d("2019-12-31"))
    keys = [col("date"), col("numeric_value")]
    return Workload(
        "diagnoses",
        "diagnoses.py",
        [
            Agg("has_early", "clinical_events", early, "exists", hidden=True),
            Agg("has_late", "clinical_events", late, "exists", hidden=True),
            Agg("diagnoses_2010_2014", "clinical_events", early, "count"),
            Agg("diagnoses_2015_2019", "clinical_events", late, "count"),
            PatientValue("sex", col("sex")),
            PatientValue("date_of_death", col("date_of_death")),
            PatientValue("age_at_death", age_on(col("date_of_birth"), col("date_of_death"))),
            Pick("latest_bmi", "clinical_events", bmi, keys, "numeric_value"),
            Pick("latest_bmi_date", "clinical_events", bmi, keys, "date"),
        ],
        ref("has_early") | ref("has_late"),
        ["clinical_events"],
        prefilters={"clinical_events": col("snomedct_code").isin(codelist("diabetes") + codelist("bmi")) & (col("date") <= d("2019-12-31"))},
        driver="has_early",
    )


def for_patient_on(table, when, keys, column, name, hidden=False):
    current = (col("start_date") <= when) & (col("end_date") < when).is_not_true()
    return Pick(name, table, current, keys, column, hidden=hidden)


def wide():
    index = date(2020, 3, 1)
    registration_keys = [col("start_date"), col("end_date").or_null_sentinel(date(1, 1, 1)), col("practice_pseudo_id")]
    address_keys = [
        bool_to_int(col("has_postcode")),
        col("start_date").or_null_sentinel(date(1, 1, 1)),
        col("end_date").or_null_sentinel(date(1, 1, 1)),
        col("address_id").or_null_sentinel(-(2**62)),
    ]
    variables = [
        for_patient_on("practice_registrations", lit(index), registration_keys, "start_date", "registration_start", hidden=True),
        PatientValue("alive", (col("date_of_death") > lit(index)) | col("date_of_death").is_null(), hidden=True),
        PatientValue("age", age_on(col("date_of_birth"), lit(index))),
        PatientValue("sex", col("sex")),
        for_patient_on("practice_registrations", lit(index), registration_keys, "practice_pseudo_id", "practice"),
        for_patient_on("practice_registrations", lit(index), registration_keys, "practice_nuts1_region_name", "region"),
        for_patient_on("addresses", lit(index), address_keys, "imd_rounded", "imd"),
        for_patient_on("addresses", lit(index), address_keys, "rural_urban_classification", "rural_urban"),
    ]
    recent = col("date").between(lit(date(2015, 3, 1)), lit(index))
    symptoms = []
    for path in sorted(CODELISTS.glob("symptom_*.csv")):
        name = path.stem.removeprefix("symptom_")
        symptoms += codelist(path.stem)
        events = recent & col("snomedct_code").isin(codelist(path.stem))
        variables += [
            Agg(f"{name}_first", "clinical_events", events, "min", "date"),
            Agg(f"{name}_count", "clinical_events", events, "count"),
            Agg(f"{name}_any", "clinical_events", events, "exists"),
        ]
    return Workload(
        "wide", "wide.py", variables, ref("registration_start").is_not_null() & ref("alive"), ["practice_registrations", "patients"],
        prefilters={"clinical_events": recent & col("snomedct_code").isin(symptoms)},
        driver="registration_start",
    )


def staged():
    first = ref("first_diagnosis")
    window = col("date").between(first, first.plus_days(90))
    drugs = col("dmd_code").isin(codelist("diabetes_drugs"))
    variables = [
        Agg("first_diagnosis", "clinical_events", col("snomedct_code").isin(codelist("diabetes")), "min", "date"),
        PatientValue("age_at_diagnosis", age_on(col("date_of_birth"), first), needs=("first_diagnosis",)),
        PatientValue("sex", col("sex")),
        Agg("events_90d", "clinical_events", window, "count", needs=("first_diagnosis",)),
    ]
    complications = []
    for path in sorted(CODELISTS.glob("complication_*.csv")):
        codes = codelist(path.stem)
        complications += codes
        variables.append(Agg(f"{path.stem.removeprefix('complication_')}_90d", "clinical_events", window & col("snomedct_code").isin(codes), "count", needs=("first_diagnosis",)))
    variables += [
        Agg("first_complication", "clinical_events", window & col("snomedct_code").isin(complications), "min", "date", needs=("first_diagnosis",)),
        Agg("prescriptions_90d", "medications", window, "count", needs=("first_diagnosis",)),
        Agg("diabetes_drugs_90d", "medications", window & drugs, "count", needs=("first_diagnosis",)),
        Agg("first_diabetes_drug", "medications", window & drugs, "min", "date", needs=("first_diagnosis",)),
    ]
    return Workload("staged", "staged.py", variables, first.is_not_null(), ["clinical_events"], driver="first_diagnosis")


def month(i):
    start = date(2018 + i // 12, 1 + i % 12, 1)
    following = date(2018 + (i + 1) // 12, 1 + (i + 1) % 12, 1)
    return start, following - timedelta(days=1)


def monthly():
    first, last = month(0)[0], month(23)[1]
    variables = [
        Agg("registered_in_period", "practice_registrations", (col("start_date") <= lit(last)) & (col("end_date") < lit(first)).is_not_true(), "exists", hidden=True)
    ]
    diabetes = col("snomedct_code").isin(codelist("diabetes"))
    statins = col("dmd_code").isin(codelist("statins"))
    for i in range(24):
        start, end = month(i)
        label = start.strftime("%Y_%m")
        spanning = (col("start_date") <= lit(start)) & ((col("end_date") >= lit(end)) | col("end_date").is_null())
        variables += [
            Agg(f"registered_{label}", "practice_registrations", spanning, "exists"),
            Agg(f"diagnoses_{label}", "clinical_events", diabetes & col("date").between(lit(start), lit(end)), "count"),
            Agg(f"statins_{label}", "medications", statins & col("date").between(lit(start), lit(end)), "count"),
        ]
    in_period = col("date").between(lit(first), lit(last))
    return Workload(
        "monthly", "monthly.py", variables, ref("registered_in_period"), ["practice_registrations"],
        prefilters={"clinical_events": diabetes & in_period, "medications": statins & in_period},
        driver="registered_in_period",
    )


WORKLOADS = {w.name: w for w in (diagnoses(), wide(), staged(), monthly())}


# --- DuckDB --------------------------------------------------------------------------


def _source(data, table):
    return f"read_parquet('{Path(data) / table}.parquet')"


def _agg_sql(v, filtered):
    cond = f" FILTER (WHERE {v.where.sql})" if filtered else ""
    if v.fn == "count":
        return f"count(*){cond}"
    if v.fn == "exists":
        return f"(count(*){cond} > 0)" if filtered else "true"
    return f"{v.fn}({v.column}){cond}"


def _pick_key(v):
    return "struct_pack(" + ", ".join(f"k{i} := {k.sql}" for i, k in enumerate(v.keys)) + ")"


def _empty_value(v):
    """What a patient without rows gets: 0 for counts, false for exists, else null."""
    return {"count": "0", "exists": "false"}.get(getattr(v, "fn", None))


def _needs_join(v):
    return "".join(f" JOIN (SELECT patient_id, value AS {n} FROM v_{n}) USING (patient_id)" for n in v.needs)


def duckdb_per_variable(w, data):
    """One query block per variable, joined on patient_id: the shape of the SQL that
    ehrQL's own engines generate."""
    blocks = []
    universe = " UNION ".join(f"SELECT DISTINCT patient_id FROM {_source(data, t)}" for t in w.universe)
    blocks.append(f"universe AS ({universe})")
    for v in w.variables:
        if isinstance(v, Agg):
            body = f"SELECT patient_id, {_agg_sql(v, False)} AS value FROM {_source(data, v.table)}{_needs_join(v)} WHERE {v.where.sql} GROUP BY patient_id"
        elif isinstance(v, Pick):
            order = ", ".join(f"{k.sql} DESC" for k in v.keys)
            body = (
                f"SELECT patient_id, {v.column} AS value FROM (SELECT *, row_number() OVER (PARTITION BY patient_id ORDER BY {order}) AS rn "
                f"FROM {_source(data, v.table)}{_needs_join(v)} WHERE {v.where.sql}) WHERE rn = 1"
            )
        else:
            joins = "".join(f" LEFT JOIN (SELECT patient_id, value AS {n} FROM v_{n}) USING (patient_id)" for n in v.needs)
            body = f"SELECT patient_id, {v.expr.sql} AS value FROM {_source(data, 'patients')}{joins}"
        blocks.append(f"v_{v.name} AS MATERIALIZED ({body})")
    joins = "".join(f" LEFT JOIN v_{v.name} USING (patient_id)" for v in w.variables)
    values = ", ".join(_value_sql(v, f"v_{v.name}.value") + f" AS {v.name}" for v in w.variables)
    blocks.append(f"everything AS (SELECT universe.patient_id, {values} FROM universe{joins})")
    population = _population_sql(w)
    select = ", ".join(["patient_id"] + [v.name for v in w.visible()])
    return "WITH " + ",\n".join(blocks) + f"\nSELECT {select} FROM everything WHERE {population} ORDER BY patient_id"


def _value_sql(v, expr):
    empty = _empty_value(v)
    return f"coalesce({expr}, {empty})" if empty else expr


def _population_sql(w):
    return f"coalesce({w.population.sql}, false)"


def _stages(w):
    """Variables grouped into passes: (stage, table) -> variables; a variable that
    needs another's value runs a stage after it."""
    stage = {}
    for v in w.variables:
        stage[v.name] = 1 + max((stage[n] for n in v.needs), default=0)
    passes = {}
    for v in w.variables:
        passes.setdefault((stage[v.name], v.table), []).append(v)
    return passes


def _prefilter(w, stage, table, variables):
    """The WHERE of a pass: the expert's own for a first-stage event table, else the
    OR of the distinct conditions of the pass's variables."""
    if stage == 1 and table in w.prefilters:
        return w.prefilters[table]
    conditions = list({v.where.sql: v.where for v in variables}.values())
    out = conditions[0]
    for c in conditions[1:]:
        out = out | c
    return out


def _passes(w):
    """(stage, table, variables, pass name) in dependency order, and where the
    population comes from: the driver's pass, else the universe."""
    passes = [(stage, table, vs, f"{table}_{stage}") for (stage, table), vs in sorted(_stages(w).items())]
    of = {v.name: name for _, _, vs, name in passes for v in vs}
    return passes, of


def duckdb_expert(w, data):
    """As an expert would write it: per table (and stage) one pass that first drops, in
    its WHERE, every row no variable reads (the filters DuckDB pushes into the parquet
    scan), then computes all the pass's variables in one GROUP BY with FILTER clauses
    and picks by arg_max over a struct key; the pass that decides the population drives
    the joins."""
    passes, of = _passes(w)
    blocks = []
    for stage, table, variables, name in passes:
        needs = sorted({n for v in variables for n in v.needs})
        if table == "patients":
            joins = "".join(f" LEFT JOIN (SELECT patient_id, {n} FROM {of[n]}) USING (patient_id)" for n in needs)
            exprs = ", ".join(f"{v.expr.sql} AS {v.name}" for v in variables)
            blocks.append(f"{name} AS (SELECT patient_id, {exprs} FROM {_source(data, table)}{joins})")
            continue
        joins = "".join(f" JOIN (SELECT patient_id, {n} FROM {of[n]}) USING (patient_id)" for n in needs)
        exprs = []
        for v in variables:
            if isinstance(v, Agg):
                exprs.append(f"{_agg_sql(v, True)} AS {v.name}")
            else:
                exprs.append(f"arg_max({v.column}, {_pick_key(v)}) FILTER (WHERE {v.where.sql}) AS {v.name}")
        where = _prefilter(w, stage, table, variables).sql
        blocks.append(f"{name} AS (SELECT patient_id, {', '.join(exprs)} FROM {_source(data, table)}{joins} WHERE {where} GROUP BY patient_id)")
    driver = of.get(w.driver)
    if driver is None:
        universe = " UNION ".join(f"SELECT patient_id FROM {_source(data, t)}" for t in w.universe)
        blocks.append(f"universe AS ({universe})")
        driver = "universe"
    joins = "".join(f" LEFT JOIN {name} USING (patient_id)" for *_, name in passes if name != driver)
    values = ", ".join(_value_sql(v, f"{of[v.name]}.{v.name}") + f" AS {v.name}" for v in w.variables)
    blocks.append(f"everything AS (SELECT {driver}.patient_id, {values} FROM {driver}{joins})")
    select = ", ".join(["patient_id"] + [v.name for v in w.visible()])
    return "WITH " + ",\n".join(blocks) + f"\nSELECT {select} FROM everything WHERE {_population_sql(w)} ORDER BY patient_id"


# --- Polars --------------------------------------------------------------------------


def _pl_agg(v, flag):
    """One aggregation as a plain reduction of `flag`, the boolean column in which the
    pass computed its condition once: count sums it, exists asks any, min and max
    reduce the column masked to null where the flag is false (`when/then`; a
    `filter` within each group measured slower)."""
    if v.fn == "count":
        return flag.sum().cast(pl.Int64).alias(v.name)
    if v.fn == "exists":
        return flag.any().alias(v.name)
    masked = pl.when(flag).then(pl.col(v.column))
    return (masked.min() if v.fn == "min" else masked.max()).alias(v.name)


def _pl_pick(rows, picks):
    """Picks sharing a condition and keys, from `rows` that satisfy it: one sort of
    all the rows by patient and keys (nulls first, as ehrQL sorts them), then each
    patient's last row (`unique(keep="last")`), instead of a sort within each of a
    million groups."""
    keys = [k.pl for k in picks[0].keys]
    ordered = rows.sort([pl.col("patient_id"), *keys], nulls_last=False)
    return ordered.unique("patient_id", keep="last").select("patient_id", *[pl.col(v.column).alias(v.name) for v in picks])


def _pl_conjuncts(expr):
    """The terms of `expr` if it is a conjunction (a & b & ...), found with Polars'
    expression introspection (`meta`); else `expr` alone."""
    inputs = expr.meta.pop()
    if len(inputs) == 2 and (inputs[1] & inputs[0]).meta.eq(expr):
        return _pl_conjuncts(inputs[1]) + _pl_conjuncts(inputs[0])
    return [expr]


def _pl_filter(frame, where):
    """`frame`'s rows where `where` is true. Polars pushes the whole predicate into the
    parquet scan and evaluates every term on every row, and the codelist tests (is_in
    over a string column) cost most. So when the predicate also bounds a column on
    both sides (a date window, which keeps few rows), only the other terms go into the
    scan and the string tests run, as a column, on the rows it keeps. With just an
    open-ended bound, which keeps most rows, the predicate stays whole: the scan would
    otherwise decode the other columns of most rows, which measured slower."""
    schema = frame.collect_schema()
    cheap, costly = [], []
    for term in _pl_conjuncts(where):
        strings = any(schema.get(c) == pl.String for c in term.meta.root_names())
        (costly if strings else cheap).append(term)
    bounded = [tuple(t.meta.root_names()) for t in cheap]
    if not costly or not any(bounded.count(c) > 1 for c in bounded):
        return frame.filter(where)
    return frame.filter(*cheap).with_columns(pl.all_horizontal(costly).alias("_keep")).filter("_keep").drop("_keep")


def polars_expert(w, data):
    """As an expert would write it, following Polars' user guide (the lazy API's
    predicate pushdown and common subplan elimination; Aggregation: expressions, and a
    frame sorted once before taking a first or last row per group, rather than work
    within each group): each table's pass filters first (the expert's predicate, pushed
    into the parquet scan, see `_pl_filter`), computes each distinct condition once as
    a boolean column with `with_columns`, then all its aggregations in one group_by as
    plain reductions of those columns; picks sort the pass's rows once and keep each
    patient's last row, sharing the filtered scan with the aggregations (Polars caches
    the common subplan). A later stage collects the earlier frames it reads and scans
    only their patients' rows. The pass that decides the population drives the joins,
    and the population filters before the other frames join."""
    passes, _ = _passes(w)
    frames = {}  # frame name -> LazyFrame, one row per patient
    frame_of = {}  # variable -> the name of the frame that holds it
    whole = set()  # frames with a row for every patient their pass keeps
    collected = {}  # frame name -> DataFrame, for the frames a later stage reads
    for stage, table, variables, name in passes:
        scan = pl.scan_parquet(Path(data) / f"{table}.parquet")
        needs = sorted({n for v in variables for n in v.needs})
        earlier = sorted({frame_of[n] for n in needs})
        for f in earlier:
            if f not in collected:
                collected[f] = frames[f].collect()
                frames[f] = collected[f].lazy()
        if earlier and table != "patients":
            # Polars does not push a join into a parquet scan: the earlier stage's
            # patients go in as an is_in predicate, which it does push, so the scan
            # decodes the other columns of only those patients' rows.
            scan = scan.filter(*[pl.col("patient_id").is_in(collected[f]["patient_id"].implode()) for f in earlier])
        for n in needs:
            scan = scan.join(frames[frame_of[n]].select("patient_id", n), on="patient_id", how="left" if table == "patients" else "inner")
        if table == "patients":
            frames[name] = scan.select("patient_id", *[v.expr.pl.alias(v.name) for v in variables])
            frame_of.update({v.name: name for v in variables})
            whole.add(name)
            continue
        where = _prefilter(w, stage, table, variables)
        rows = _pl_filter(scan, where.pl)
        aggs = [v for v in variables if isinstance(v, Agg)]
        if aggs:
            flags = {}
            for v in aggs:
                flags.setdefault(v.where.sql, (f"_{name}_{len(flags)}", v.where))
            flagged = rows.with_columns(e.pl.fill_null(False).alias(flag) for flag, e in flags.values())
            frames[name] = flagged.group_by("patient_id").agg(_pl_agg(v, pl.col(flags[v.where.sql][0])) for v in aggs)
            frame_of.update({v.name: name for v in aggs})
            whole.add(name)
        picks = {}
        for v in variables:
            if isinstance(v, Pick):
                picks.setdefault((v.where.sql, tuple(k.sql for k in v.keys)), []).append(v)
        for i, ((condition, _), group) in enumerate(picks.items()):
            own = condition == where.sql  # the pass's filter is already this pick's
            frames[f"{name}_pick{i}"] = _pl_pick(rows if own else rows.filter(group[0].where.pl.fill_null(False)), group)
            frame_of.update({v.name: f"{name}_pick{i}" for v in group})
            if own:
                whole.add(f"{name}_pick{i}")
    driver = frame_of.get(w.driver)
    if driver not in whole:
        driver = None
        out = pl.concat([pl.scan_parquet(Path(data) / f"{t}.parquet").select("patient_id") for t in w.universe]).unique()
    else:
        out = frames[driver]
    fills = {}
    for v in w.variables:
        empty = {"count": 0, "exists": False}.get(getattr(v, "fn", None))
        fills[v.name] = pl.col(v.name).fill_null(empty) if empty is not None else pl.col(v.name)
    # The frames the population reads join first and the population filters, so
    # that the other frames join only the patients it keeps.
    deciding = w.population.pl.meta.root_names()
    first = [f for f in dict.fromkeys(frame_of[n] for n in deciding) if f != driver]
    for name in first:
        out = out.join(frames[name], on="patient_id", how="left", coalesce=True)
    out = out.with_columns(fills[n] for n in deciding).filter(w.population.pl.fill_null(False))
    for name, frame in frames.items():
        if name != driver and name not in first:
            out = out.join(frame, on="patient_id", how="left", coalesce=True)
    out = out.with_columns(fills.values())
    return out.select("patient_id", *[v.name for v in w.visible()]).sort("patient_id")
