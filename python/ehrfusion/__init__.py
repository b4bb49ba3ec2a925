"""ehrfusion: run ehrQL dataset definitions on the ehrfusion engine.

The language (`create_dataset`, `case`, `days`, ...) is importable from here and,
unchanged, from the compatible `ehrql` package.
"""

from .api import EngineError, arrow_schema, document, run, run_measures, table_schema
from .codes import codelist_from_csv, codelist_from_csv_lines
from .language import (
    Dataset,
    Error,
    case,
    create_dataset,
    days,
    maximum_of,
    minimum_of,
    months,
    weeks,
    when,
    years,
)
from .measures import INTERVAL, Measures, create_measures
from .parameters import get_parameter, show
from .permissions import claim_permissions
from .tables import table_from_file, table_from_rows

__all__ = [
    "EngineError",
    "arrow_schema",
    "document",
    "run",
    "run_measures",
    "table_schema",
    "codelist_from_csv_lines",
    "Dataset",
    "Error",
    "INTERVAL",
    "Measures",
    "case",
    "claim_permissions",
    "codelist_from_csv",
    "create_dataset",
    "create_measures",
    "days",
    "get_parameter",
    "maximum_of",
    "minimum_of",
    "months",
    "show",
    "table_from_file",
    "table_from_rows",
    "weeks",
    "when",
    "years",
]
