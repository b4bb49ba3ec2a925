"""ehrQL v0 import paths (ehrql.tables.beta.*)."""
