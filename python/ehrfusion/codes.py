"""Clinical code types, their formats, and codelists."""

import csv
import re


class CodelistError(ValueError):
    pass


class BaseCode(str):
    """A code of one coding system; a str subclass so it prints and compares as text."""

    system = None
    type_name = None
    _pattern = None

    def __new__(cls, value):
        value = str(value)
        if not cls._pattern.fullmatch(value):
            raise ValueError(f"Invalid {cls.__name__}: {value!r}")
        return super().__new__(cls, value)

    def __repr__(self):
        return f"{type(self).__name__}({str.__repr__(self)})"

    @classmethod
    def is_valid(cls, value):
        return isinstance(value, str) and cls._pattern.fullmatch(value) is not None


def _code(name, system, pattern):
    return type(name, (BaseCode,), {"system": system, "type_name": name, "_pattern": re.compile(pattern)})


# Formats follow each system's published structure.
SNOMEDCTCode = _code("SNOMEDCTCode", "snomedct", r"[1-9][0-9]{5,17}")
CTV3Code = _code("CTV3Code", "ctv3", r"[0-9a-zA-Z\.]{5}")
ICD10Code = _code("ICD10Code", "icd10", r"[A-Z][0-9]{2,3}[0-9A-Z]?")
OPCS4Code = _code("OPCS4Code", "opcs4", r"[A-Z][0-9]{2,3}")
DMDCode = _code("DMDCode", "dmd", r"[1-9][0-9]{5,17}")
BNFCode = _code("BNFCode", "bnf", r"([0-9]{2}[0-9A-Z]{0,13})|(2[0-3][0-9]{0,8})")

CODE_TYPES = {c.type_name: c for c in [SNOMEDCTCode, CTV3Code, ICD10Code, OPCS4Code, DMDCode, BNFCode]}
MULTI_CODE_TYPES = {"ICD10MultiCodeString": ICD10Code, "OPCS4MultiCodeString": OPCS4Code}


class Codelist:
    """Codes read from a CSV file, optionally with a category for each code."""

    def __init__(self, codes, category_map=None, source=None):
        self.codes = list(dict.fromkeys(codes))
        self.category_map = category_map
        self.source = source

    def __iter__(self):
        return iter(self.codes)

    def __len__(self):
        return len(self.codes)

    def __contains__(self, code):
        return code in self.codes

    def __repr__(self):
        return f"Codelist({self.source or ''!s}, {len(self.codes)} codes)"


def codelist_from_csv(filename, *, column, category_column=None, system=None):
    """Read a codelist from a CSV file; `column` holds the codes. (`system` is the
    ehrQL v0 spelling; the coding system is now taken from the column compared.)"""
    try:
        with open(filename, newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise CodelistError(f"No file found at {filename}") from None
    for wanted in [column, category_column]:
        if wanted is not None and rows and wanted not in header:
            raise CodelistError(f"No column '{wanted}' in {filename}")
    codes = []
    categories = {} if category_column else None
    for row in rows:
        code = (row.get(column) or "").strip()
        if not code:
            continue
        codes.append(code)
        if category_column:
            categories[code] = row[category_column]
    return Codelist(codes, categories, source=str(filename))


def codelist_from_csv_lines(lines, *, column, category_column=None):
    return codelist_from_csv_rows(list(csv.DictReader(lines)), column=column, category_column=category_column)


def codelist_from_csv_rows(rows, *, column, category_column=None):
    codes = [r[column].strip() for r in rows if r[column].strip()]
    cats = {r[column].strip(): r[category_column] for r in rows if r[column].strip()} if category_column else None
    return Codelist(codes, cats)
