"""Codelists as cohort-extractor has them: a list of codes (or of (code, category)
pairs) that knows its coding system."""

import csv
from collections import Counter


class Codelist(list):
    system = None
    has_categories = False


def codelist_from_csv(filename, system, column="code", category_column=None):
    """Codes from column `column` of a CSV file, blanks skipped and whitespace
    stripped; with `category_column`, (code, category) pairs."""
    codes = []
    with open(filename, newline="") as f:
        reader = csv.DictReader(f)
        wanted = [column] + ([category_column] if category_column else [])
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{filename}: no column named {missing[0]!r} (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            code = (row[column] or "").strip()
            if not code:
                continue
            codes.append((code, (row[category_column] or "").strip()) if category_column else code)
    return codelist(codes, system)


def codelist(codes, system, check_categories=True):
    result = Codelist(codes)
    result.system = system
    if not result:
        raise ValueError("a codelist needs at least one code")
    if isinstance(result[0], tuple):
        result.has_categories = True
        if check_categories:
            _check_categories_consistent(result)
    return result


def _check_categories_consistent(codes):
    counts = Counter(code for code, _ in set(codes))
    dupes = sorted(code for code, n in counts.items() if n > 1)
    if dupes:
        raise ValueError(f"Inconsistent categorisation: codelist has codes assigned to more than one category: {', '.join(dupes)}")


def filter_codes_by_category(codes, include):
    if not codes.has_categories:
        raise ValueError("filter_codes_by_category() needs a codelist with categories")
    kept = Codelist((code, category) for code, category in codes if category in include)
    kept.system, kept.has_categories = codes.system, True
    if not kept:
        raise ValueError(f"codelist has no codes matching categories: {include}")
    return kept


def combine_codelists(first_codelist, *other_codelists):
    for other in other_codelists:
        if first_codelist.system != other.system:
            raise ValueError(f"Cannot combine codelists from different systems: '{first_codelist.system}' and '{other.system}'")
        if first_codelist.has_categories != other.has_categories:
            raise ValueError("Cannot combine categorised and uncategorised codelists")
    by_code = {}
    for lst in (first_codelist, *other_codelists):
        for item in lst:
            code = item[0] if lst.has_categories else item
            if code in by_code and by_code[code] != item:
                raise ValueError(f"Inconsistent categorisation: {item} and {by_code[code]}")
            by_code[code] = item
    return codelist(list(by_code.values()), first_codelist.system, check_categories=False)
