"""The language's classes under ehrQL's module name."""

from ehrfusion.language import *  # noqa: F403
from ehrfusion.tables import Series, table, table_from_file, table_from_rows  # noqa: F401
