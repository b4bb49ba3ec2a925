"""ehrQL v0's core tables: today's tables with v0's columns."""

from ehrfusion.tables import populate

populate(globals(), "core")
