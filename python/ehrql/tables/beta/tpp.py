"""ehrQL v0's TPP tables: today's tables with v0's columns, and v0's hospital_admissions."""

from ehrfusion.tables import populate

populate(globals(), "tpp")
