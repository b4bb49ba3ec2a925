"""Entry point for the ehrfusion binary: a study definition file, run for each
index date, as query model documents."""

import datetime
import json

import cohortextractor
from ehrfusion.loader import DefinitionError, _located, run_definition
from ehrfusion.query_model import dumps

from . import dates, lowering
from .study_definition import StudyDefinition


def index_dates(date_range):
    """The index dates of --index-date-range ("DATE", "DATE to DATE", "DATE to DATE
    by week|month"; "today" allowed), latest first as cohort-extractor runs them;
    [None] without a range."""
    if not date_range:
        return [None]
    period = "month"
    if " to " in date_range:
        start, end = date_range.split(" to ", 1)
        if " by " in end:
            end, period = end.split(" by ", 1)
    else:
        start = end = date_range
    try:
        start, end = (datetime.date.today() if d == "today" else datetime.date.fromisoformat(d) for d in (start, end))
    except ValueError:
        raise DefinitionError(f"Invalid date range '{date_range}': Dates must be in YYYY-MM-DD format or 'today' and ranges must be in the form 'DATE to DATE by (week|month)'") from None
    if period not in ("week", "month"):
        raise DefinitionError(f"Unknown time period '{period}': must be 'week' or 'month'")
    if end < start:
        raise DefinitionError(f"Invalid date range '{date_range}': end cannot be earlier than start")
    out, d = [], start
    while d <= end:
        out.append(d.isoformat())
        try:
            d = d + datetime.timedelta(days=7) if period == "week" else dates.add(d, 1, "months")
        except dates.DateExpressionError as e:
            raise DefinitionError(f"Invalid date range '{date_range}': {e}") from None
    return list(reversed(out))


def study_documents_json(path, date_range="", params=(), schemas=None, no_queries=False):
    """(columns JSON, [(index date or "", model JSON)]) for the `study` of a study
    definition file; with `no_queries` (dummy data that runs none), a query the
    tables cannot answer stands as an empty column."""
    _provide(schemas)
    lowering.EXPECTATIONS_ONLY = no_queries
    cohortextractor.params.clear()
    cohortextractor.params.update(dict(params))
    namespace = run_definition(path)
    study = namespace.get("study")
    if study is None:
        raise DefinitionError(f"{path}: Did not find a variable called 'study' in the study definition file")
    if not isinstance(study, StudyDefinition):
        raise DefinitionError(f"{path}: 'study' must be a cohortextractor.StudyDefinition, not {type(study).__name__}")
    runs = []
    for index_date in index_dates(date_range):
        try:
            if index_date is not None:
                study.set_index_date(index_date)
            runs.append((index_date or "", dumps(study._to_document())))
        except DefinitionError:
            raise
        except Exception as e:  # noqa: BLE001 (reported as one line)
            where = f" (index date {index_date})" if index_date else ""
            raise DefinitionError(_located(path, e) + where) from None
    columns = [{"name": n, "type": t, "date_format": f, "categorical_int": c} for n, t, f, c in study.output_columns()]
    return json.dumps(columns), runs


def _provide(schemas):
    """Use the engine's built-in table schemas."""
    if schemas:
        from ehrfusion import schemas as schema_module

        for name, text in schemas.items():
            schema_module.provide(name, text)


def measures_json(path, params=(), schemas=None):
    """The `measures` list of a study definition file, as JSON (id, numerator,
    denominator, group_by, small_number_suppression)."""
    from .measure import Measure

    _provide(schemas)
    # Measures read the cohort files: as in cohort-extractor, no query is run, so
    # one the tables cannot answer is no error here.
    lowering.EXPECTATIONS_ONLY = True
    cohortextractor.params.clear()
    cohortextractor.params.update(dict(params))
    namespace = run_definition(path)
    measures = namespace.get("measures")
    if measures is None:
        raise DefinitionError(f"{path}: Did not find a variable called 'measures' in the study definition file")
    if not all(isinstance(m, Measure) for m in measures):
        raise DefinitionError(f"{path}: 'measures' must be a list of cohortextractor.Measure")
    return json.dumps([
        {"id": m.id, "numerator": m.numerator, "denominator": m.denominator, "group_by": list(m.group_by), "small_number_suppression": bool(m.small_number_suppression)}
        for m in measures
    ])


def expectations_json(path, date_range="", params=(), population=1000, seed=0, schemas=None):
    """For each index date (latest first), the dummy data cohort-extractor's
    expectations give: (index date or "", CSV text)."""
    from .expectations import Generator, csv_text

    _provide(schemas)
    lowering.EXPECTATIONS_ONLY = True
    cohortextractor.params.clear()
    cohortextractor.params.update(dict(params))
    namespace = run_definition(path)
    study = namespace.get("study")
    if not isinstance(study, StudyDefinition):
        raise DefinitionError(f"{path}: Did not find a variable called 'study' (a cohortextractor.StudyDefinition) in the study definition file")
    out = []
    for n, index_date in enumerate(index_dates(date_range)):
        try:
            if index_date is not None:
                study.set_index_date(index_date)
            out.append((index_date or "", csv_text(Generator(study, population, seed + n).frame())))
        except Exception as e:  # noqa: BLE001 (reported as one line)
            where = f" (index date {index_date})" if index_date else ""
            raise DefinitionError(f"{path}: {type(e).__name__}: {e}{where}") from None
    return out
