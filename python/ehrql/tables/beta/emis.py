"""ehrQL v0's EMIS tables."""

from ehrfusion.tables import populate

populate(globals(), "emis")
