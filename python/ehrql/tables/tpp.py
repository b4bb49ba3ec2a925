"""The tables of the OpenSAFELY-TPP backend (schemas/tpp.json)."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
