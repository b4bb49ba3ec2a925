"""Raw tables (ehrql.tables.raw.*)."""
