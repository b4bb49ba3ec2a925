"""Core tables as their data are provided, before the curation of ehrql.tables.core (ons_deaths has every registration)."""

from ehrfusion.tables import populate

populate(globals(), "core")
