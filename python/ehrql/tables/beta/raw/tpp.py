"""ehrQL v0's raw TPP tables."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
