# Codelists as real studies build them: read as lists and dicts, then combined with
# ordinary Python.
from ehrql import codelist_from_csv

cardio = codelist_from_csv("codelists/cardio-snomed.csv", column="code")
resp = codelist_from_csv("codelists/resp-snomed.csv", column="code")
groups = {
    **codelist_from_csv("codelists/cardio-snomed.csv", column="code", category_column="group"),
    **codelist_from_csv("codelists/resp-snomed.csv", column="code", category_column="group"),
}
everything = sorted(set(cardio + resp))
first_two = cardio[:2]
assert isinstance(cardio, list) and len(cardio) == 3, cardio
assert isinstance(groups, dict) and groups["22298006"] == "mi", groups
