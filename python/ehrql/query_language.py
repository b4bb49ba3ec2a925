"""The language's classes under ehrQL's module name."""

from ehrfusion.language import *  # noqa: F403
from ehrfusion.language import (  # noqa: F401
    BaseFrame,
    BaseSeries,
    Dataset,
    DateDifference,
    Duration,
    EventFrame,
    PatientFrame,
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
from ehrfusion.tables import Series, table, table_from_file, table_from_rows  # noqa: F401
