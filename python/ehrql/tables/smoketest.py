"""The one-table schema of a minimal end-to-end test that runs on every backend."""

from ehrfusion.tables import populate

populate(globals(), "core")
