"""Raw core tables: served by the same tables as ehrql.tables.core in ehrfusion."""

from ehrfusion.tables import populate

populate(globals(), "core")
