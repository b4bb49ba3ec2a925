"""ehrQL's core tables, available in every primary-care backend (schemas/core.json)."""

# Names ehrQL's module imports for itself; definitions sometimes import them from here.
import datetime  # noqa: F401
import functools  # noqa: F401
import operator  # noqa: F401

from ehrql.codes import DMDCode, ICD10Code, SNOMEDCTCode  # noqa: F401
from ehrql.tables import Constraint, EventFrame, PatientFrame, Series, table  # noqa: F401
from ehrfusion.tables import populate

populate(globals(), "core")
