"""ehrQL v0's raw tables (ehrql.tables.beta.raw.*)."""
