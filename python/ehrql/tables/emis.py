"""The tables of the OpenSAFELY-EMIS backend (schemas/emis.json)."""

# Names ehrQL's module imports for itself; definitions sometimes import them from here.
import datetime  # noqa: F401

import ehrql.tables.core  # noqa: F401
from ehrql.codes import SNOMEDCTCode  # noqa: F401
from ehrql.tables import Constraint, EventFrame, PatientFrame, Series, table  # noqa: F401
from ehrfusion.tables import populate

populate(globals(), "emis")
