"""Frames, column declarations and table decorators for user-defined tables."""

from ehrfusion.language import EventFrame, PatientFrame  # noqa: F401
from ehrfusion.tables import Constraint, Series, table, table_from_file, table_from_rows  # noqa: F401

__all__ = ["Constraint", "EventFrame", "PatientFrame", "Series", "table", "table_from_file", "table_from_rows"]
