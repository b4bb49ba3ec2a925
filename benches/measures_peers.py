"""The measures workload (`workloads/measures.py`) written by hand for the peers:
DuckDB SQL and a Polars lazy query, each producing ehrQL's combined measures output
(measure, interval_start, interval_end, ratio, numerator, denominator, sex,
age_band, region) with disclosure control off.

Both follow the shape an expert would write rather than ehrQL's interval-by-interval
evaluation:

1. one generated table of the N monthly intervals;
2. the registrations (overlapping the whole period) joined to the patients table
   first, while they are few rows, and everything about the patient that depends on
   the interval reduced there to month indexes by integer arithmetic, once per
   registration rather than once per (patient, interval) row: the range of interval
   indexes whose start the registration spans (start_date <= interval start <=
   end_date, or open), cut at the last interval start before the date of death (so
   that the patient is alive on it), and `born`, the index (in months from the first
   interval start) of the first month start on or after the date of birth (age >= k
   on an interval start exactly when its index minus `born` is at least 12k, and
   the band is null below 0 or where `born` is null); sex and region as
   low-cardinality codes
   (DuckDB ENUM, Polars Categorical), the age band as its small-integer index,
   mapped back to strings in the few output rows;
3. where two registrations of a patient span the same interval start (rare in the
   benchmark population: 288 of the 1.2 million registrations at 1,000,000
   patients), the one ehrQL's `for_patient_on` picks is taken by a group-by over
   those rows only (the latest start date, then the latest end date with a null
   end date counting as earliest, then the largest practice id: ranked once per
   patient);
4. the denominators: each registration expanded to its interval indexes (54
   million (patient, interval) rows at 1,000,000 patients) and counted by
   (interval, sex, age band, region) as the expansion produces them, with no
   (patient, interval) table;
5. the numerators from the event side, which is sparse: the event tables filtered
   by codelist and by the whole date range first, each remaining row given its
   interval by date arithmetic (the interval index is the month count from the
   first interval start), aggregated to (patient, interval) (about 124,000 rows at
   1,000,000 patients), each given its group by joining it to the patient's
   registration whose range holds it (or to the contested pick), and aggregated by
   group; rather than joining all 54 million denominator rows to the events;
6. numerators joined to denominators by group (null keys matching), then one row
   per measure and group.

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
# than dates or strings, and, as its schema page advises ("use the most restrictive
# types possible"; the ENUM type page: for low-cardinality strings), sex and region
# as ENUM types made from their distinct values and the age band as a small
# integer; no nested-loop join: the registration-to-interval join is a range join
# (DuckDB plans a piecewise merge join against the interval table). The guide's
# advice on join order matters here: the optimizer's cardinality estimates on
# parquet are far off for these intermediate results, so in one query it built its
# hash tables on the large side (RIGHT joins); as the guide suggests, the small
# intermediate results are temporary tables, whose exact sizes put them on the
# build side. The 54 million (patient, interval) rows are only counted as the range
# join produces them: an earlier version materialised them as a temporary table
# (with string and date columns) and joined them to the events, 2.7 GB and most of
# the time. `SET threads = 2` as the machine has two cores. Picks use arg_max_null,
# not arg_max, which skips rows whose value is null (a null region on the picked
# registration must stay null). Group keys may be null (a group of its own), so
# numerators are joined to denominators with IS NOT DISTINCT FROM.


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

    # The age band as a small integer (its index in BANDS), from the months since
    # the month-start birthday `born` (see the registrations table): age >= k on an
    # interval start exactly when interval_id - born >= 12 * k.
    band = "CASE " + " ".join(
        f"WHEN interval_id - born >= {12 * lo} THEN {i}" for i, (_, lo, _) in reversed(list(enumerate(BANDS)))
    ) + " END"
    band_names = "[" + ", ".join(f"'{name}'" for name, _, _ in BANDS) + "]"
    measures = " UNION ALL ".join(
        f"SELECT '{m}' AS measure, interval_id, sex, band, region, {m} AS numerator, denominator FROM grouped" for m in MEASURES
    )
    return [
        f"""CREATE TEMP TABLE intervals AS
    SELECT CAST(i AS INTEGER) AS interval_id,
           CAST(DATE '{first}' + to_months(i) AS DATE) AS interval_start,
           CAST(DATE '{first}' + to_months(i + 1) AS DATE) - 1 AS interval_end
    FROM range({n}) t(i)""",
        f"""CREATE TYPE sex_t AS ENUM (SELECT DISTINCT sex FROM {src('patients')})""",
        f"""CREATE TYPE region_t AS ENUM (SELECT DISTINCT practice_nuts1_region_name FROM {src('practice_registrations')})""",
        # lo..hi: the interval indexes whose start the registration spans while the
        # patient is alive (up to the last interval start before the date of death:
        # its own month's when the death is after the 1st, else the month before);
        # rank: its place in for_patient_on's order among the patient's
        # registrations; born: the index of the first interval start on or after
        # the date of birth (a month index, negative before the first interval).
        f"""CREATE TEMP TABLE registrations AS
    SELECT patient_id, lo, hi, rank, region, sex, born
    FROM (
        SELECT r.patient_id, r.rank, r.region, CAST(p.sex AS sex_t) AS sex,
               r.lo,
               CASE WHEN p.date_of_death IS NULL THEN r.hi
                    ELSE least(r.hi, {month_index('p.date_of_death')} + CASE WHEN day(p.date_of_death) > 1 THEN 0 ELSE -1 END) END AS hi,
               {month_index('p.date_of_birth')} + CASE WHEN day(p.date_of_birth) > 1 THEN 1 ELSE 0 END AS born
        FROM (
            SELECT patient_id, CAST(practice_nuts1_region_name AS region_t) AS region,
                   greatest(0, {month_index('start_date')} + CASE WHEN day(start_date) > 1 THEN 1 ELSE 0 END) AS lo,
                   CASE WHEN end_date IS NULL THEN {n - 1} ELSE least({n - 1}, {month_index('end_date')}) END AS hi,
                   row_number() OVER (PARTITION BY patient_id ORDER BY start_date, end_date NULLS FIRST, practice_pseudo_id NULLS FIRST) AS rank
            FROM {src('practice_registrations')}
            WHERE start_date <= DATE '{last_start}' AND (end_date IS NULL OR end_date >= DATE '{first}')
        ) r
        LEFT JOIN (SELECT patient_id, sex, date_of_birth, date_of_death FROM {src('patients')}) p USING (patient_id)
    )
    WHERE lo <= hi""",
        # Registrations sharing an interval start with another of the patient's.
        """CREATE TEMP TABLE contested AS
    SELECT DISTINCT a.patient_id, a.rank
    FROM registrations a JOIN registrations b
      ON a.patient_id = b.patient_id AND a.rank <> b.rank AND greatest(a.lo, b.lo) <= least(a.hi, b.hi)""",
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
        # The patient's registration on each interval start: the uncontested ones
        # as they are, the contested ones picked per (patient, interval).
        """CREATE TEMP TABLE picked AS
    SELECT r.patient_id, i.interval_id, any_value(r.sex) AS sex, arg_max_null(r.region, r.rank) AS region, any_value(r.born) AS born
    FROM (FROM registrations SEMI JOIN contested USING (patient_id, rank)) r
    JOIN intervals i ON i.interval_id BETWEEN r.lo AND r.hi
    GROUP BY r.patient_id, i.interval_id""",
        """CREATE TEMP TABLE uncontested AS FROM registrations ANTI JOIN contested USING (patient_id, rank)""",
        f"""CREATE TEMP TABLE grouped AS
    WITH denominators AS (
        SELECT interval_id, sex, {band} AS band, region, count(*) AS denominator
        FROM (
            SELECT i.interval_id, r.sex, r.region, r.born FROM uncontested r JOIN intervals i ON i.interval_id BETWEEN r.lo AND r.hi
            UNION ALL
            SELECT interval_id, sex, region, born FROM picked
        )
        GROUP BY ALL
    ),
    events AS (
        FROM event_months FULL JOIN (SELECT *, true AS statin_prescription FROM prescription_months) USING (patient_id, interval_id)
    ),
    numerators AS (
        SELECT interval_id, sex, {band} AS band, region,
               count(*) FILTER (WHERE diabetes_code) AS diabetes_code,
               count(*) FILTER (WHERE statin_prescription) AS statin_prescription,
               CAST(coalesce(sum(bmi_recordings), 0) AS BIGINT) AS bmi_recordings
        FROM (
            SELECT e.*, r.sex, r.region, r.born FROM events e JOIN uncontested r ON e.patient_id = r.patient_id AND e.interval_id BETWEEN r.lo AND r.hi
            UNION ALL
            SELECT e.*, p.sex, p.region, p.born FROM events e JOIN picked p USING (patient_id, interval_id)
        )
        GROUP BY ALL
    )
    SELECT d.interval_id, d.sex, d.band, d.region, d.denominator,
           coalesce(n.diabetes_code, 0) AS diabetes_code,
           coalesce(n.statin_prescription, 0) AS statin_prescription,
           coalesce(n.bmi_recordings, 0) AS bmi_recordings
    FROM denominators d LEFT JOIN numerators n
      ON d.interval_id = n.interval_id AND d.sex IS NOT DISTINCT FROM n.sex AND d.band IS NOT DISTINCT FROM n.band
     AND d.region IS NOT DISTINCT FROM n.region""",
        f"""SELECT measure, interval_start, interval_end, numerator / denominator AS ratio, numerator, denominator,
           CAST(sex AS VARCHAR) AS sex, {band_names}[band + 1] AS age_band, CAST(region AS VARCHAR) AS region
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
# group-bys; integer keys, and sex and region as Categorical (its categorical-data
# page: low-cardinality strings are faster to group and join as their codes), the
# age band as a small integer. The same steps as DuckDB's, except that registrations
# are expanded to their interval indexes by `int_ranges` + `explode` (Polars has no
# range join but an inequality `join_where`, and a cross join with the intervals and
# a filter would make 60 rows per registration first), and that a registration's
# rank is its row index after the one global sort (ordered within the patient as
# for_patient_on orders), not an `int_range().over("patient_id")` window over a
# million groups. Collected with the streaming engine, which the guide recommends
# for large inputs: it was faster than the in-memory engine, with less memory (25%
# at 100,000 patients; a few % at 1,000,000). Threads: POLARS_MAX_THREADS=2 (set by
# run_one.py before Polars is imported).


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
    dob, dod = pl.col("date_of_birth"), pl.col("date_of_death")
    # born: the index of the first interval start on or after the date of birth;
    # died: the last interval start before the date of death (see the DuckDB
    # registrations table).
    patients = scan("patients").select(
        "patient_id",
        pl.col("sex").cast(pl.Categorical),
        born=month_index(dob) + (dob.dt.day() > 1).cast(pl.Int32),
        died=month_index(dod) - (dod.dt.day() == 1).cast(pl.Int32),
    )
    registrations = (
        scan("practice_registrations")
        .filter((start <= last_start) & (end.is_null() | (end >= first)))
        .sort("patient_id", start, end.fill_null(date(1, 1, 1)), pl.col("practice_pseudo_id").fill_null(-(2**63) + 1))
        .with_row_index("rank")
        .select(
            "patient_id",
            "rank",
            region=pl.col("practice_nuts1_region_name").cast(pl.Categorical),
            lo=(month_index(start) + (start.dt.day() > 1).cast(pl.Int32)).clip(lower_bound=0),
            hi=pl.when(end.is_null()).then(pl.lit(n - 1, pl.Int32)).otherwise(month_index(end).clip(upper_bound=n - 1)),
        )
        .join(patients, on="patient_id", how="left")
        .with_columns(hi=pl.min_horizontal("hi", "died"))
        .filter(pl.col("lo") <= pl.col("hi"))
        .drop("died")
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

    # The patient's registration on each interval start: the uncontested ones as
    # they are (one row per patient and interval once expanded), the contested ones
    # picked per (patient, interval).
    uncontested = registrations.join(contested, on=["patient_id", "rank"], how="anti").select("patient_id", "lo", "hi", "sex", "region", "born")
    picked = (
        expanded(registrations.join(contested, on=["patient_id", "rank"], how="semi"))
        .group_by("patient_id", "interval_id")
        .agg(pl.col("region").sort_by("rank").last(), pl.col("sex", "born").first())
    )
    months_old = pl.col("interval_id") - pl.col("born")
    band = pl.when(months_old >= 12 * BANDS[-1][1]).then(pl.lit(len(BANDS) - 1, pl.Int8))
    for i, (_, lower, _) in reversed(list(enumerate(BANDS[:-1]))):
        band = band.when(months_old >= 12 * lower).then(pl.lit(i, pl.Int8))
    denominators = (
        pl.concat([expanded(uncontested).select("interval_id", "sex", "region", "born"), picked.select("interval_id", "sex", "region", "born")])
        .group_by("interval_id", "sex", band.alias("band"), "region")
        .agg(denominator=pl.len().cast(pl.Int64))
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
    # The (patient, interval) rows with any event: about 124,000 of the 54 million
    # in the denominator at 1,000,000 patients. Each is given its group from the
    # registration whose range holds it (or the contested pick).
    events = event_months.join(prescription_months, on=["patient_id", "interval_id"], how="full", coalesce=True)
    numerators = (
        pl.concat([
            events.join(uncontested, on="patient_id").filter(pl.col("interval_id").is_between("lo", "hi")).drop("lo", "hi"),
            events.join(picked, on=["patient_id", "interval_id"]),
        ], how="diagonal")
        .group_by("interval_id", "sex", band.alias("band"), "region")
        .agg(
            diabetes_code=pl.col("diabetes_code").fill_null(False).sum().cast(pl.Int64),
            statin_prescription=pl.col("statin_prescription").fill_null(False).sum().cast(pl.Int64),
            bmi_recordings=pl.col("bmi_recordings").fill_null(0).sum().cast(pl.Int64),
        )
    )
    grouped = (
        denominators.join(numerators, on=["interval_id", "sex", "band", "region"], how="left", nulls_equal=True)
        .with_columns(
            pl.col(MEASURES).fill_null(0),
            pl.col("sex", "region").cast(pl.String),
            age_band=pl.col("band").replace_strict(list(range(len(BANDS))), [name for name, _, _ in BANDS], return_dtype=pl.String),
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
