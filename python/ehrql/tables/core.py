"""Tables of the core backend (from schemas/core.json)."""

from ehrfusion.tables import populate

populate(globals(), "core")
