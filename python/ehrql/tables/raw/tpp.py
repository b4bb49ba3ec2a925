"""Raw tpp tables: served by the same tables as ehrql.tables.tpp in ehrfusion."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
