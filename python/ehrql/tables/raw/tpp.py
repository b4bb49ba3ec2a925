"""TPP tables as their data are provided (every death registration, every medication issue, historical APCS, ISARIC, ...)."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
