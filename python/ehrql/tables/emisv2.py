"""The tables of the second OpenSAFELY-EMIS backend (schemas/emisv2.json)."""

from ehrfusion.tables import populate

populate(globals(), "emisv2")
