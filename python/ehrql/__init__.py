"""ehrQL-compatible imports backed by ehrfusion: definitions written for ehrQL
(`from ehrql import create_dataset, codelist_from_csv, ...`) run unchanged. The
names are ehrQL's; ehrfusion's own API (run, document, ...) is in `ehrfusion`."""

from ehrfusion.language import Dataset, Error
from ehrfusion.measures import INTERVAL, Measures, create_measures
from ehrfusion.parameters import get_parameter, show
from ehrfusion.permissions import claim_permissions
from ehrql import codes, query_language, tables  # noqa: F401
from ehrql.codes import codelist_from_csv
from ehrql.query_language import case, create_dataset, days, maximum_of, minimum_of, months, table_from_file, weeks, when, years

__all__ = [
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
    "weeks",
    "when",
    "years",
]
