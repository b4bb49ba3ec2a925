"""`cohortextractor.date_expressions`, which some study definitions import (often
without using it): the checks and errors of the date expression language, whose
grammar lives in `dates`."""

from .dates import DateExpressionError, parse, validate_date

# The names cohort-extractor's module gives its errors.
InvalidExpressionError = DateExpressionError
InvalidDateError = DateExpressionError

__all__ = ["InvalidDateError", "InvalidExpressionError", "parse", "validate_date"]
