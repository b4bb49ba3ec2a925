"""ehrQL v0 import path for the tpp tables."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
