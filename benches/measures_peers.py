"""The measures workload (`workloads/measures.py`) written by hand for the peers:
DuckDB SQL and a Polars lazy query, each producing ehrQL's combined measures output
(measure, interval_start, interval_end, ratio, numerator, denominator, sex,
age_band, region) with disclosure control off.

Both follow the shape an expert would write rather than ehrQL's interval-by-interval
evaluation:

1. one generated table of the N monthly intervals;
2. the patient-level part, one row per (patient, interval) in the denominator:
   registrations (overlapping the whole period) joined to the patients table first,
   while they are few rows, each registration turned into the range of interval
   indexes whose start it spans (start_date <= interval start <= end_date, or open)
   and joined to the intervals once by that range; where two registrations of a
   patient span the same interval start (rare in the benchmark population: 28 of
   the 199,000 registrations at 100,000 patients), the one ehrQL's `for_patient_on` picks is taken by a
   group-by over those rows only (the latest start date, then the latest end date
   with a null end date counting as earliest, then the largest practice id: ranked
   once per patient); then kept where the patient is alive on the interval start,
   with sex, age band and region;
3. the event tables filtered by codelist and by the whole date range first, each
   remaining row given its interval by date arithmetic (the interval index is the
   month count from the first interval start), aggregated to (patient, interval);
4. both joined on (patient, interval) and grouped by (interval, sex, age band,
   region), then one row per measure and group.

ehrQL semantics kept: `is_during(INTERVAL)` is inclusive at both ends; age is whole
years on the interval start; a patient with no date of death is alive; the age band
is null where no band matches (no date of birth, or born after the interval
start); null sex, band or region is a
group of its own; counts are 0 and flags false for patients without events; the
ratio is numerator / denominator as floats.
"""
import csv
from datetime import date, timedelta
from pathlib import Path

CODELISTS = Path(__file__).parent / "codelists"

FIRST = date(2019, 1, 1)
BANDS = [("0-17", 0, 18), ("18-39", 18, 40), ("40-64", 40, 65), ("65-79", 65, 80), ("80+", 80, None)]
MEASURES = ["diabetes_code", "statin_prescription", "bmi_recordings"]
COLUMNS = ["measure", "interval_start", "interval_end", "ratio", "numerator", "denominator", "sex", "age_band", "region"]

# The measures workloads: the definition, the arguments after `--` and the number of
# intervals they give.
WORKLOADS = {
    "measures": {"definition": "measures.py", "args": [], "intervals": 60},
    "measures-1": {"definition": "measures.py", "args": ["--intervals", "1"], "intervals": 1},
}

# The columns each table contributes: what the scan floor reads.
TABLE_COLUMNS = {
    "patients": ["patient_id", "sex", "date_of_birth", "date_of_death"],
    "practice_registrations": ["patient_id", "start_date", "end_date", "practice_pseudo_id", "practice_nuts1_region_name"],
    "clinical_events": ["patient_id", "snomedct_code", "date"],
    "medications": ["patient_id", "dmd_code", "date"],
}


def codelist(name):
    with open(CODELISTS / f"{name}.csv", newline="") as f:
        return [row["code"] for row in csv.DictReader(f)]


def month_start(i):
    """The first day of the i-th month from FIRST (months(N).starting_on(FIRST) from
    a first of the month needs no roll-forward)."""
    return date(FIRST.year + (FIRST.month - 1 + i) // 12, (FIRST.month - 1 + i) % 12 + 1, 1)


def bounds(n):
    """The first interval's start, the last interval's start and the last interval's end."""
    return FIRST, month_start(n - 1), month_start(n) - timedelta(days=1)


def _in_list(codes):
    return ", ".join(f"'{c}'" for c in codes)


# --- DuckDB --------------------------------------------------------------------------
#
# From DuckDB's performance guide (guides/performance/: file formats, join operations,
# schema, tuning workloads): query the parquet files directly, naming only the columns
# used and writing the codelist and date-range filters on the scans, so that they
# are pushed down into the parquet reader (projection and filter pushdown; the files'
# row groups of up to 1M rows are in the 100K-1M range it recommends for
# parallelism); join and group on integers (patient id, interval index) rather
# than dates or strings; no nested-loop join: the registration-to-interval join is
# a range join (DuckDB plans a piecewise merge join against the interval table).
# The guide's advice on join order matters most here: the optimizer's cardinality
# estimates on parquet are far off for these intermediate results (about 1,000
# rows estimated for the 5.4 million (patient, interval) rows at 100,000 patients),
# so in one query it built its hash tables on the large side (RIGHT joins) and the
# joins took most of the time; as the guide suggests, the steps are temporary tables
# instead, whose exact sizes put the small side on the build side. `SET threads = 2`
# as the machine has two cores. Picks use arg_max_null, not arg_max, which skips
# rows whose value is null (a null region on the picked registration must stay
# null).


def duckdb_statements(data, n):
    """The statements that compute the measures: temporary tables, then the query
    whose result is the combined output."""
    data = Path(data)
    first, last_start, last_end = bounds(n)
    diabetes, statins, bmi = codelist("diabetes"), codelist("statins"), codelist("bmi")

    def src(table):
        return f"read_parquet('{data / table}.parquet')"

    def month_index(column):
        return f"((year({column}) - {first.year}) * 12 + month({column}) - {first.month})"

    band = "CASE " + " ".join(
        f"WHEN age >= {lo}" + (f" AND age < {hi}" if hi is not None else "") + f" THEN '{name}'" for name, lo, hi in BANDS
    ) + " END"
    measures = " UNION ALL ".join(
        f"SELECT '{m}' AS measure, interval_id, sex, age_band, region, {m} AS numerator, denominator FROM grouped" for m in MEASURES
    )
    return [
        f"""CREATE TEMP TABLE intervals AS
    SELECT CAST(i AS INTEGER) AS interval_id,
           CAST(DATE '{first}' + to_months(i) AS DATE) AS interval_start,
           CAST(DATE '{first}' + to_months(i + 1) AS DATE) - 1 AS interval_end
    FROM range({n}) t(i)""",
        # lo..hi: the interval indexes whose start the registration spans; rank: its
        # place in for_patient_on's order among the patient's registrations.
        f"""CREATE TEMP TABLE registrations AS
    SELECT r.patient_id, r.lo, r.hi, r.rank, r.region, p.sex, p.date_of_birth, p.date_of_death
    FROM (
        SELECT patient_id, practice_nuts1_region_name AS region,
               greatest(0, {month_index('start_date')} + CASE WHEN day(start_date) > 1 THEN 1 ELSE 0 END) AS lo,
               CASE WHEN end_date IS NULL THEN {n - 1} ELSE least({n - 1}, {month_index('end_date')}) END AS hi,
               row_number() OVER (PARTITION BY patient_id ORDER BY start_date, end_date NULLS FIRST, practice_pseudo_id NULLS FIRST) AS rank
        FROM {src('practice_registrations')}
        WHERE start_date <= DATE '{last_start}' AND (end_date IS NULL OR end_date >= DATE '{first}')
    ) r
    LEFT JOIN (SELECT patient_id, sex, date_of_birth, date_of_death FROM {src('patients')}) p USING (patient_id)
    WHERE r.lo <= r.hi""",
        # Registrations sharing an interval start with another of the patient's.
        """CREATE TEMP TABLE contested AS
    SELECT DISTINCT a.patient_id, a.rank
    FROM registrations a JOIN registrations b
      ON a.patient_id = b.patient_id AND a.rank <> b.rank AND greatest(a.lo, b.lo) <= least(a.hi, b.hi)""",
        f"""CREATE TEMP TABLE denominator AS
    WITH current_registration AS (
        SELECT r.patient_id, i.interval_id, i.interval_start, r.region, r.sex, r.date_of_birth, r.date_of_death
        FROM (FROM registrations ANTI JOIN contested USING (patient_id, rank)) r
        JOIN intervals i ON i.interval_id BETWEEN r.lo AND r.hi
        UNION ALL
        SELECT r.patient_id, i.interval_id, any_value(i.interval_start), arg_max_null(r.region, r.rank),
               any_value(r.sex), any_value(r.date_of_birth), any_value(r.date_of_death)
        FROM (FROM registrations SEMI JOIN contested USING (patient_id, rank)) r
        JOIN intervals i ON i.interval_id BETWEEN r.lo AND r.hi
        GROUP BY r.patient_id, i.interval_id
    ),
    alive AS (
        SELECT patient_id, interval_id, sex, region,
               year(interval_start) - year(date_of_birth)
               - CASE WHEN month(interval_start) * 100 + day(interval_start) < month(date_of_birth) * 100 + day(date_of_birth)
                      THEN 1 ELSE 0 END AS age
        FROM current_registration
        WHERE date_of_death IS NULL OR date_of_death > interval_start
    )
    SELECT patient_id, interval_id, sex, {band} AS age_band, region FROM alive""",
        f"""CREATE TEMP TABLE event_months AS
    SELECT patient_id, {month_index('date')} AS interval_id,
           bool_or(snomedct_code IN ({_in_list(diabetes)})) AS diabetes_code,
           count(*) FILTER (WHERE snomedct_code IN ({_in_list(bmi)})) AS bmi_recordings
    FROM {src('clinical_events')}
    WHERE snomedct_code IN ({_in_list(sorted(set(diabetes) | set(bmi)))})
      AND date BETWEEN DATE '{first}' AND DATE '{last_end}'
    GROUP BY ALL""",
        f"""CREATE TEMP TABLE prescription_months AS
    SELECT DISTINCT patient_id, {month_index('date')} AS interval_id
    FROM {src('medications')}
    WHERE dmd_code IN ({_in_list(statins)}) AND date BETWEEN DATE '{first}' AND DATE '{last_end}'""",
        """CREATE TEMP TABLE grouped AS
    SELECT d.interval_id, d.sex, d.age_band, d.region,
           count(*) AS denominator,
           count(*) FILTER (WHERE e.diabetes_code) AS diabetes_code,
           count(m.patient_id) AS statin_prescription,
           CAST(coalesce(sum(e.bmi_recordings), 0) AS BIGINT) AS bmi_recordings
    FROM denominator d
    LEFT JOIN event_months e USING (patient_id, interval_id)
    LEFT JOIN prescription_months m USING (patient_id, interval_id)
    GROUP BY ALL""",
        f"""SELECT measure, interval_start, interval_end, numerator / denominator AS ratio, numerator, denominator, sex, age_band, region
    FROM ({measures}) JOIN intervals USING (interval_id)""",
    ]


def run_duckdb(data, n, output):
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    *tables, query = duckdb_statements(data, n)
    for statement in tables:
        con.execute(statement)
    con.execute(f"COPY ({query}) TO '{output}' (FORMAT csv, HEADER)")


# --- Polars --------------------------------------------------------------------------
#
# From Polars' user guide (lazy API, optimizations): one lazy query, collected once,
# so that projection and predicate pushdown read only the needed columns and apply
# the codelist and date-range filters in the parquet scans; filters before joins and
# group-bys; integer keys. The same steps as DuckDB's, except that registrations are
# expanded to their interval indexes by `int_ranges` + `explode` (Polars has no
# range join but an inequality `join_where`, and a cross join with the intervals and
# a filter would make 60 rows per registration first). Collected with the streaming
# engine, which the guide recommends for large inputs: here it was about 25% faster
# than the in-memory engine, with less memory (100,000 patients). Threads:
# POLARS_MAX_THREADS=2 (set by run_one.py before Polars is imported).


def polars_query(data, n):
    import polars as pl

    data = Path(data)
    first, last_start, last_end = bounds(n)
    diabetes, statins, bmi = codelist("diabetes"), codelist("statins"), codelist("bmi")

    def scan(table):
        return pl.scan_parquet(data / f"{table}.parquet")

    def month_index(column):
        return (column.dt.year().cast(pl.Int32) - first.year) * 12 + column.dt.month().cast(pl.Int32) - first.month

    starts = [month_start(i) for i in range(n + 1)]
    intervals = pl.LazyFrame(
        {"interval_id": list(range(n)), "interval_start": starts[:-1], "interval_end": [s - timedelta(days=1) for s in starts[1:]]},
        schema={"interval_id": pl.Int32, "interval_start": pl.Date, "interval_end": pl.Date},
    )

    start, end = pl.col("start_date"), pl.col("end_date")
    registrations = (
        scan("practice_registrations")
        .filter((start <= last_start) & (end.is_null() | (end >= first)))
        .sort("patient_id", start, end.fill_null(date(1, 1, 1)), pl.col("practice_pseudo_id").fill_null(-(2**63) + 1))
        .select(
            "patient_id",
            region=pl.col("practice_nuts1_region_name").cast(pl.String),
            lo=(month_index(start) + (start.dt.day() > 1).cast(pl.Int32)).clip(lower_bound=0),
            hi=pl.when(end.is_null()).then(pl.lit(n - 1, pl.Int32)).otherwise(month_index(end).clip(upper_bound=n - 1)),
            rank=pl.int_range(pl.len(), dtype=pl.Int32).over("patient_id"),
        )
        .filter(pl.col("lo") <= pl.col("hi"))
        .join(scan("patients").select("patient_id", pl.col("sex").cast(pl.String), "date_of_birth", "date_of_death"), on="patient_id", how="left")
    )
    contested = (
        registrations.select("patient_id", "rank", "lo", "hi")
        .join(registrations.select("patient_id", "rank", "lo", "hi"), on="patient_id", suffix="_other")
        .filter(
            (pl.col("rank") != pl.col("rank_other"))
            & (pl.max_horizontal("lo", "lo_other") <= pl.min_horizontal("hi", "hi_other"))
        )
        .select("patient_id", "rank")
        .unique()
    )

    def expanded(frame):
        return frame.with_columns(interval_id=pl.int_ranges("lo", pl.col("hi") + 1, dtype=pl.Int32)).explode("interval_id")

    keep = ["patient_id", "interval_id", "region", "sex", "date_of_birth", "date_of_death"]
    current_registration = pl.concat([
        expanded(registrations.join(contested, on=["patient_id", "rank"], how="anti")).select(keep),
        expanded(registrations.join(contested, on=["patient_id", "rank"], how="semi"))
        .group_by("patient_id", "interval_id")
        .agg(pl.col("region").sort_by("rank").last(), pl.col("sex", "date_of_birth", "date_of_death").first())
        .select(keep),
    ])

    dob, when = pl.col("date_of_birth"), pl.col("interval_start")
    age = (
        when.dt.year().cast(pl.Int32)
        - dob.dt.year().cast(pl.Int32)
        - ((when.dt.month().cast(pl.Int32) * 100 + when.dt.day()) < (dob.dt.month().cast(pl.Int32) * 100 + dob.dt.day())).cast(pl.Int32)
    )
    band = pl.when((pl.col("age") >= BANDS[0][1]) & (pl.col("age") < BANDS[0][2])).then(pl.lit(BANDS[0][0]))
    for name, lower, upper in BANDS[1:]:
        condition = (pl.col("age") >= lower) & (pl.col("age") < upper) if upper is not None else pl.col("age") >= lower
        band = band.when(condition).then(pl.lit(name))
    band = band.otherwise(pl.lit(None, pl.String))
    denominator = (
        current_registration.join(intervals.select("interval_id", "interval_start"), on="interval_id")
        .filter(pl.col("date_of_death").is_null() | (pl.col("date_of_death") > pl.col("interval_start")))
        .with_columns(age=age)
        .select("patient_id", "interval_id", "sex", band.alias("age_band"), "region")
    )

    code = pl.col("snomedct_code")
    event_months = (
        scan("clinical_events")
        .filter(code.is_in(sorted(set(diabetes) | set(bmi))) & pl.col("date").is_between(first, last_end))
        .group_by("patient_id", month_index(pl.col("date")).alias("interval_id"))
        .agg(diabetes_code=code.is_in(diabetes).any(), bmi_recordings=code.is_in(bmi).sum().cast(pl.Int64))
    )
    prescription_months = (
        scan("medications")
        .filter(pl.col("dmd_code").is_in(statins) & pl.col("date").is_between(first, last_end))
        .select("patient_id", month_index(pl.col("date")).alias("interval_id"))
        .unique()
        .with_columns(statin_prescription=pl.lit(True))
    )

    grouped = (
        denominator.join(event_months, on=["patient_id", "interval_id"], how="left")
        .join(prescription_months, on=["patient_id", "interval_id"], how="left")
        .group_by("interval_id", "sex", "age_band", "region")
        .agg(
            denominator=pl.len().cast(pl.Int64),
            diabetes_code=pl.col("diabetes_code").fill_null(False).sum().cast(pl.Int64),
            statin_prescription=pl.col("statin_prescription").fill_null(False).sum().cast(pl.Int64),
            bmi_recordings=pl.col("bmi_recordings").fill_null(0).sum().cast(pl.Int64),
        )
    )
    return (
        grouped.unpivot(index=["interval_id", "sex", "age_band", "region", "denominator"], on=MEASURES, variable_name="measure", value_name="numerator")
        .join(intervals, on="interval_id")
        .with_columns(ratio=pl.col("numerator").cast(pl.Float64) / pl.col("denominator").cast(pl.Float64))
        .select(COLUMNS)
    )


def run_polars(data, n, output):
    polars_query(data, n).collect(engine="streaming").write_csv(output)
