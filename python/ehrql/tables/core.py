"""ehrQL's core tables, available in every primary-care backend (schemas/core.json)."""

from ehrfusion.tables import populate

populate(globals(), "core")
