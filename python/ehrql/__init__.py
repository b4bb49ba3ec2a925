"""ehrQL-compatible imports backed by ehrfusion: definitions written for ehrQL
(`from ehrql import create_dataset, codelist_from_csv, ...`) run unchanged."""

from ehrfusion import *  # noqa: F403
from ehrfusion import __all__  # noqa: F401
