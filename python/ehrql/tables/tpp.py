"""The tables of the OpenSAFELY-TPP backend (schemas/tpp.json)."""

# Names ehrQL's module imports for itself; definitions sometimes import them from here.
import datetime  # noqa: F401

import ehrql.tables.core  # noqa: F401
from ehrql import case, when  # noqa: F401
from ehrql.codes import CTV3Code, ICD10Code, ICD10MultiCodeString, OPCS4Code, OPCS4MultiCodeString, SNOMEDCTCode  # noqa: F401
from ehrql.tables import Constraint, EventFrame, PatientFrame, Series, table  # noqa: F401
from ehrfusion.tables import populate

populate(globals(), "tpp")
