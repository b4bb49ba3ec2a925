"""Clinical code types, their formats, and codelists."""

import csv
import dataclasses
import os
import re


class CodelistError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class BaseCode:
    """A code of one coding system. As in ehrQL it is a value object, not a str:
    `.value` is the code's text, and `_to_primitive_type()` is what a query holds."""

    value: str

    system = None
    type_name = None

    def __post_init__(self):
        if not isinstance(self.value, str):
            raise TypeError(f"expected string or bytes-like object, got '{type(self.value).__name__}'")
        if not self.regex.fullmatch(self.value):
            raise ValueError(f"Invalid {type(self).__name__}: {self.value}")

    @classmethod
    def _primitive_type(cls):
        return str

    def _to_primitive_type(self):
        return self.value

    @classmethod
    def is_valid(cls, value):
        return isinstance(value, str) and cls.regex.fullmatch(value) is not None


def _code(name, system, pattern):
    return type(name, (BaseCode,), {"system": system, "type_name": name, "regex": re.compile(pattern)})


# Formats as ehrQL checks them.
SNOMEDCTCode = _code("SNOMEDCTCode", "snomedct", r"[1-9][0-9]{5,17}")
# Five characters, or fewer padded on the right with dots.
CTV3Code = _code("CTV3Code", "ctv3", r"[0-9A-Za-z]{5}|[0-9A-Za-z]{4}\.|[0-9A-Za-z]{3}\.\.|[0-9A-Za-z]{2}\.\.\.")
# A letter and two digits, then either up to two more digits or the X that pads
# 3-character codes in SUS tables, optionally followed by one digit (A01, A0123, A01X2).
ICD10Code = _code("ICD10Code", "icd10", r"[A-Z][0-9]{2}(?:X[0-9]?|[0-9]{0,2})")
# A letter other than I, then two or three digits (no dot).
OPCS4Code = _code("OPCS4Code", "opcs4", r"[A-HJ-Z][0-9]{2,3}")
DMDCode = _code("DMDCode", "dmd", r"[1-9][0-9]{5,17}")
# A full 15-character BNF code (chapter to generic equivalent), or an appliance code.
BNFCode = _code("BNFCode", "bnf", r"[01][0-9]{6}[0-9A-Z]{2}(?:[A-Z][0-9A-Z]){3}|2[0-3][0-9]{9}")

CODE_TYPES = {c.type_name: c for c in [SNOMEDCTCode, CTV3Code, ICD10Code, OPCS4Code, DMDCode, BNFCode]}
MULTI_CODE_TYPES = {"ICD10MultiCodeString": ICD10Code, "OPCS4MultiCodeString": OPCS4Code}


def codelist_from_csv(filename, *, column, category_column=None, system=None):
    """Read a codelist from a CSV file, as ehrQL does: a list of the distinct codes in
    `column` (in file order, blanks dropped), or with `category_column` a dict from
    each code to its category. `system` is accepted for ehrQL v0 definitions and
    ignored: the coding system is the column's the codes are compared with."""
    path = os.fspath(filename)
    if not os.path.exists(path):
        hint = "\n\nHINT: Use forward slash (/) instead of backslash (\\) in file paths" if "\\" in repr(path) else ""
        raise CodelistError(f"No CSV file at {path}{hint}")
    with open(path, newline="") as f:
        return codelist_from_csv_lines(f, column=column, category_column=category_column)


def codelist_from_csv_lines(lines, *, column, category_column=None):
    """A codelist from lines of CSV text (see codelist_from_csv)."""
    reader = csv.DictReader(iter(lines), restval="")
    header = reader.fieldnames or []
    for wanted in [column, category_column if category_column is not None else column]:
        if wanted not in header:
            raise CodelistError(f"No column '{wanted}' in CSV")
    # Later rows win for a repeated code, but it keeps its first position.
    categories = {}
    for row in reader:
        code = (row[column] or "").strip()
        categories[code] = (row[category_column] or "").strip() if category_column is not None else None
    categories.pop("", None)
    return categories if category_column is not None else list(categories)
