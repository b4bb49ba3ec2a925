"""ehrQL v0's raw EMIS tables."""

from ehrfusion.tables import populate

populate(globals(), "emis")
