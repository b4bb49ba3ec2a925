"""Date expressions: "index_date", "2020-01-01", "last_day_of_month(index_date) + 1
day", "first_day_of_nhs_financial_year(index_date) - 2 years", or the same over
another column ("covid_admission_date + 28 days").

An expression over the index date is evaluated here, to an ISO date. One over a
column is parsed into (column, function, months, days) and lowered per patient."""

import calendar
import datetime
import re

_TOKEN = r"[A-Za-z][A-Za-z0-9_\.]*"
_EXPRESSION = re.compile(rf"^((?P<function>{_TOKEN})\()?(?P<name>{_TOKEN})\)?((?P<operator>[+-])(?P<quantity>\d+)(?P<units>{_TOKEN}))?$")

UNITS = {"year": "years", "years": "years", "month": "months", "months": "months", "day": "days", "days": "days"}
FUNCTIONS = (
    "first_day_of_month",
    "last_day_of_month",
    "first_day_of_year",
    "last_day_of_year",
    "first_day_of_nhs_financial_year",
    "last_day_of_nhs_financial_year",
    "first_day_of_school_year",
    "last_day_of_school_year",
)


class DateExpressionError(ValueError):
    pass


def validate_date(text):
    try:
        datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise DateExpressionError(f"Date not in YYYY-MM-DD format: {text}") from None


def parse(text):
    """(function, name, signed quantity, units) of an expression, or None if it is
    not one (then it must be an ISO date)."""
    match = _EXPRESSION.match(text.replace(" ", ""))
    if not match:
        return None
    g = match.groupdict()
    if g["function"] is not None and g["function"] not in FUNCTIONS:
        raise DateExpressionError(f"Unknown date function '{g['function']}' (allowed are {', '.join(sorted(FUNCTIONS))}) in: {text}")
    quantity, units = 0, None
    if g["operator"]:
        if g["units"] not in UNITS:
            raise DateExpressionError(f"Unknown date unit '{g['units']}' (allowed are day, days, month, months, year, years) in: {text}")
        quantity = int(g["quantity"]) * (-1 if g["operator"] == "-" else 1)
        units = UNITS[g["units"]]
    return g["function"], g["name"], quantity, units


class Evaluator:
    """Evaluates the date expressions of one index date. Expressions naming a
    column are returned unchanged (after checking their form)."""

    def __init__(self, index_date, column_names=()):
        self.index_date = index_date
        self.column_names = set(column_names)

    def __call__(self, text):
        if text is None:
            return None
        if not isinstance(text, str):
            raise DateExpressionError(f"Dates must be given as strings (YYYY-MM-DD or an expression such as 'index_date - 1 year'), not {text!r}")
        parsed = parse(text)
        if parsed is None:
            validate_date(text)
            return text
        function, name, quantity, units = parsed
        if name in self.column_names:
            return text
        if name == "index_date":
            if not self.index_date:
                raise DateExpressionError(f"index_date not defined in: {text}")
            date = datetime.date.fromisoformat(self.index_date)
        elif name == "today":
            date = datetime.date.today()
        else:
            raise DateExpressionError(f"Unknown date name '{name}' (allowed are index_date, today) in: {text}")
        if function:
            date = apply_function(function, date)
        if units:
            try:
                date = add(date, quantity, units)
            except DateExpressionError as e:
                raise DateExpressionError(f"{e} in: {text}") from None
        return date.isoformat()


def apply_function(function, d):
    if function == "first_day_of_month":
        return d.replace(day=1)
    if function == "last_day_of_month":
        return d.replace(day=calendar.monthrange(d.year, d.month)[1])
    if function == "first_day_of_year":
        return d.replace(month=1, day=1)
    if function == "last_day_of_year":
        return d.replace(month=12, day=31)
    if function == "first_day_of_nhs_financial_year":
        return datetime.date(d.year - 1 if d.month < 4 else d.year, 4, 1)
    if function == "last_day_of_nhs_financial_year":
        return datetime.date(d.year + 1 if d.month >= 4 else d.year, 3, 31)
    if function == "first_day_of_school_year":
        return datetime.date(d.year - 1 if d.month < 9 else d.year, 9, 1)
    if function == "last_day_of_school_year":
        return datetime.date(d.year + 1 if d.month >= 9 else d.year, 8, 31)
    raise DateExpressionError(f"Unknown date function '{function}'")


def add(d, quantity, units):
    """Static arithmetic as cohort-extractor does it: a day that does not exist in
    the target month is an error, not a roll-over."""
    if units == "days":
        return d + datetime.timedelta(days=quantity)
    if units == "years":
        year, month = d.year + quantity, d.month
    else:
        zero_based = d.month - 1 + quantity
        year, month = d.year + zero_based // 12, zero_based % 12 + 1
    try:
        return d.replace(year=year, month=month)
    except ValueError:
        raise DateExpressionError(f"No such date {d.day} {datetime.date(year, month, 1).strftime('%B %Y')}") from None


def month_ranges(start, end, step):
    """The index dates of --index-date-range "START to END by month|week"."""
    out, d = [], start
    while d <= end:
        out.append(d)
        d = add(d, 1, "months") if step == "month" else d + datetime.timedelta(days=7)
    return out
