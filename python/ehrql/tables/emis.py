"""EMIS tables are not available: ehrfusion ships the core and tpp schemas only."""

from ehrfusion.language import Error

raise Error("ehrql.tables.emis is not supported by ehrfusion yet; use ehrql.tables.core for tables common to all backends")
