"""ehrQL v0 import path for the core tables."""

from ehrfusion.tables import populate

populate(globals(), "core")
