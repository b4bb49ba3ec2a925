"""The tables of the second OpenSAFELY-EMIS backend (schemas/emisv2.json)."""

# Names ehrQL's module imports for itself; definitions sometimes import them from here.
import datetime  # noqa: F401

from ehrql.tables import Constraint, EventFrame, Series, table  # noqa: F401
from ehrfusion.tables import populate

populate(globals(), "emisv2")
