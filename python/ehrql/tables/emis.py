"""Tables of the EMIS backend (from schemas/emis.json)."""

from ehrfusion.tables import populate

populate(globals(), "emis")
