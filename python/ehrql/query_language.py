"""The language's classes and functions under ehrQL's module name (`ehrql.query_language`)."""

from ehrfusion.codes import BaseCode  # noqa: F401
from ehrfusion.language import (  # noqa: F401
    BaseFrame,
    BaseSeries,
    BoolEventSeries,
    BoolPatientSeries,
    CodeEventSeries,
    CodePatientSeries,
    Dataset,
    DateDifference,
    DateEventSeries,
    DatePatientSeries,
    Duration,
    Error,
    EventFrame,
    FloatEventSeries,
    FloatPatientSeries,
    IntEventSeries,
    IntPatientSeries,
    MultiCodeStringEventSeries,
    MultiCodeStringPatientSeries,
    PatientFrame,
    StrEventSeries,
    StrPatientSeries,
    case,
    create_dataset,
    days,
    maximum_of,
    minimum_of,
    months,
    weeks,
    years,
)
from ehrfusion.language import EventSeries, PatientSeries  # noqa: F401
from ehrfusion.language import When as when  # noqa: F401
from ehrfusion.language import _WhenThen as WhenThen  # noqa: F401
from ehrfusion.tables import Series, table, table_from_file, table_from_rows  # noqa: F401
from ehrql.codes import BaseMultiCodeString  # noqa: F401
