"""ehrQL v0's smoke-test schema."""

from ehrfusion.tables import populate

populate(globals(), "core")
