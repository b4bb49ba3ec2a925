"""ehrQL's code types and codelist readers (`ehrql.codes`)."""

import re

from ehrfusion.codes import (  # noqa: F401
    BNFCode,
    BaseCode,
    CTV3Code,
    CodelistError,
    DMDCode,
    ICD10Code,
    OPCS4Code,
    SNOMEDCTCode,
    codelist_from_csv,
    codelist_from_csv_lines,
)


class BaseMultiCodeString(str):
    """Several codes of one system written into one string, as hospital episode data
    list a spell's diagnoses or procedures. A column of such a type (for example in
    a user's @table) is searched with contains() and contains_any_of(), by code or
    code prefix; `regex` is the form such a prefix takes."""

    type_name = None

    @classmethod
    def is_valid(cls, value):
        return isinstance(value, str) and cls.regex.fullmatch(value) is not None


class ICD10MultiCodeString(BaseMultiCodeString):
    """ICD-10 codes, written without dots."""

    type_name = "ICD10MultiCodeString"
    # A chapter letter, then up to four digits, or two digits, X and an optional digit.
    regex = re.compile(r"[A-Z](?:[0-9]{0,4}|[0-9]{2}X[0-9]?)")


class OPCS4MultiCodeString(BaseMultiCodeString):
    """OPCS-4 codes, written without dots."""

    type_name = "OPCS4MultiCodeString"
    # A letter other than I, then up to three digits.
    regex = re.compile(r"[A-HJ-Z][0-9]{0,3}")
