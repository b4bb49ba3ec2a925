"""The tables of the OpenSAFELY-EMIS backend (schemas/emis.json)."""

from ehrfusion.tables import populate

populate(globals(), "emis")
