"""ehrQL v0's raw core tables."""

from ehrfusion.tables import populate

populate(globals(), "core")
