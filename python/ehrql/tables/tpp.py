"""Tables of the tpp backend (from schemas/tpp.json)."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
