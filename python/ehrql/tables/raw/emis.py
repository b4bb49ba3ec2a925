"""EMIS tables as their data are provided."""

from ehrfusion.tables import populate

populate(globals(), "emis")
