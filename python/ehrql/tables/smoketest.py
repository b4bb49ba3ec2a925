"""The one-table schema of a minimal end-to-end test that runs on every backend."""

# Names ehrQL's module imports for itself; definitions sometimes import them from here.
import datetime  # noqa: F401

from ehrql.tables import Constraint, PatientFrame, Series, table  # noqa: F401
from ehrfusion.tables import populate

populate(globals(), "core")
