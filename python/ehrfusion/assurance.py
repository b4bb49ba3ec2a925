"""Assurance tests (`ehrql assure FILE`, `generate-dataset --test-data-file FILE`).

A test file defines a `dataset` and `test_data`: for each made-up patient, the rows
of each table and what the dataset should say about them. The test data is checked
against the tables' constraints, written as dummy tables for the engine to run the
dataset over, and the results are compared with the expectations. The report has
ehrQL's wording, so that its users read the same lines here.
"""

import csv
import datetime
import os

from . import schemas
from .loader import DefinitionError, run_definition
from .query_model import dumps

# What `prepare` learnt, for `report` (one assurance run per process at a time).
_STATE = {}


def prepare(path, user_args, tables_dir, provided_schemas=None):
    """Load the test file, write its test data as one CSV per table into
    `tables_dir`, and return the dataset's query model as JSON."""
    for name, text in (provided_schemas or {}).items():
        schemas.provide(name, text)
    namespace = run_definition(path, user_args)
    from .language import Dataset

    dataset = namespace.get("dataset")
    if not isinstance(dataset, Dataset):
        raise DefinitionError(f"{path}: Did not find a variable called 'dataset' in dataset definition file")
    test_data = namespace.get("test_data")
    if not isinstance(test_data, dict):
        raise DefinitionError(f"{path}: Did not find a variable called 'test_data' (a dict of patient id to test data)")
    try:
        doc = dataset._to_document()
    except Exception as e:  # noqa: BLE001
        raise DefinitionError(f"{path}: {type(e).__name__}: {e}") from None
    tables = _tables_used(doc)
    constraint_errors = {}
    rows = {name: [] for name in tables}
    for patient_id, patient in test_data.items():
        problems = []
        for name, table in tables.items():
            records = patient.get(name, [])
            if isinstance(records, dict):
                records = [records]
            problems.extend(_check_constraints(name, table, records))
            names = [c["name"] for c in table["columns"]]
            # A patient-level table takes one row: extra rows are reported above.
            kept = records[:1] if table["level"] == "patient" else records
            rows[name].extend([patient_id, *(r.get(c) for c in names)] for r in kept)
        if problems:
            constraint_errors[patient_id] = problems
    for name, table in tables.items():
        with open(os.path.join(tables_dir, f"{name}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["patient_id", *(c["name"] for c in table["columns"])])
            writer.writerows([_csv_text(v) for v in row] for row in rows[name])
    _STATE.clear()
    _STATE.update(
        test_data=test_data,
        constraint_errors=constraint_errors,
        types={name: series._type for name, series in dataset._variables.items()},
    )
    return dumps(doc)


def report(results_csv):
    """Compare the dataset the engine wrote with the expectations: (passed, report)."""
    types = _STATE["types"]
    results = {}
    with open(results_csv, newline="") as f:
        for record in csv.DictReader(f):
            row = {"patient_id": int(record["patient_id"])}
            row.update((name, _parse(record[name], ty)) for name, ty in types.items())
            results[row["patient_id"]] = row
    failures = {}
    for patient_id, patient in _STATE["test_data"].items():
        outcome = _check_patient(patient_id, patient, results)
        if outcome:
            failures[patient_id] = outcome
    constraint_errors = _STATE["constraint_errors"]
    text = _present_constraints(constraint_errors) + "\n" + _present_results(failures)
    return not constraint_errors and not failures, text


def _tables_used(doc):
    backend = schemas.load(doc["backend"])
    backend_tables = backend.get("tables", backend)
    used = {}
    for node in doc["nodes"]:
        if node["op"] in ("SelectTable", "SelectPatientTable"):
            name = node["table"]
            used[name] = doc["tables"].get(name) or backend_tables[name]
    # ehrQL checks tables in name order, which orders its report.
    return dict(sorted(used.items()))


# ------------------------------------------------------------------ constraints


def _constraints(column):
    """(ehrQL's rendering, check) for each constraint of a column, in ehrQL's order."""
    spec = column.get("constraints") or {}
    out = []
    if "categories" in spec:
        values = tuple(spec["categories"])
        out.append((f"Constraint.Categorical(values={values!r})", lambda v: v is None or v in values))
    if spec.get("first_of_month"):
        out.append(("Constraint.FirstOfMonth()", lambda v: not v or v.day == 1))
    if "regex" in spec:
        import re

        pattern = spec["regex"]
        out.append((f"Constraint.Regex(regex={pattern!r})", lambda v: v is None or bool(re.match(pattern, v))))
    if "range" in spec:
        r = spec["range"]
        low, high, step = r.get("min"), r.get("max"), r.get("step", 1)
        out.append((f"Constraint.ClosedRange(minimum={low!r}, maximum={high!r}, step={step!r})", lambda v: v is None or low <= v <= high))
    if spec.get("not_null"):
        out.append(("Constraint.NotNull()", lambda v: v is not None))
    return out


def _check_constraints(name, table, records):
    columns = {c["name"]: c for c in table["columns"]}
    bad_values, bad_columns = [], []
    for record in records:
        for column, value in record.items():
            if column not in columns:
                bad_columns.append(column)
                continue
            for rendered, holds in _constraints(columns[column]):
                if not holds(value):
                    bad_values.append({"column": column, "constraint": rendered, "value": f"{value}"})
    problems = []
    if bad_values:
        problems.append(("value", name, bad_values))
    if bad_columns:
        problems.append(("column", name, (list(dict.fromkeys(bad_columns)), list(columns))))
    if table["level"] == "patient" and len(records) > 1:
        problems.append(("rows", name, len(records)))
    return problems


def _present_constraints(errors):
    if not errors:
        return "Validate test data: All OK!"
    lines = [f"Validate test data: Found errors with {len(errors)} patient(s)"]
    for patient_id, problems in errors.items():
        for kind, table, details in problems:
            if kind == "value":
                lines.append(f" * Patient {patient_id} had {len(details)} test data value(s) in table '{table}' that did not meet the constraint(s)")
                lines.extend(f"   * for column '{d['column']}' with '{d['constraint']}', got '{d['value']}'" for d in details)
            elif kind == "column":
                invalid, valid = details
                lines.append(
                    f" * Patient {patient_id} had invalid columns in the test data for table '{table}'\n"
                    f"       invalid columns: {', '.join(map(repr, invalid))}\n"
                    f"     valid columns are: {', '.join(map(repr, valid))}"
                )
            else:
                lines.append(f" * Patient {patient_id} had {details} rows of test data for table '{table}' but this table accepts at most one row per patient")
    return "\n".join(lines)


# ------------------------------------------------------------------ expectations


def _check_patient(patient_id, patient, results):
    if not patient.get("expected_in_population", True):
        return ("in",) if patient_id in results else None
    if patient_id not in results:
        return ("not in",)
    expected = patient.get("expected_columns", {})
    actual = results[patient_id]
    unknown = [k for k in expected if k not in actual]
    if unknown:
        return ("keys", unknown, list(actual))
    wrong = [(k, expected[k], actual[k]) for k in expected if not _same(expected[k], actual[k])]
    return ("values", wrong) if wrong else None


def _same(expected, actual):
    # Codes may be expected as code objects or as their strings.
    if isinstance(actual, str) and expected is not None and not isinstance(expected, (bool, int, float, datetime.date)):
        return str(expected) == actual
    return expected == actual


def _present_results(failures):
    if not failures:
        return "Validate results: All OK!"
    lines = [f"Validate results: Found errors with {len(failures)} patient(s)"]
    for patient_id, outcome in failures.items():
        kind = outcome[0]
        if kind == "in":
            lines.append(f" * Patient {patient_id} was unexpectedly in the population")
        elif kind == "not in":
            lines.append(f" * Patient {patient_id} was unexpectedly not in the population")
        elif kind == "keys":
            lines.append(f" * Patient {patient_id} results cannot be validated")
            lines.append(f"   * Columns in dataset: {', '.join(repr(c) for c in outcome[2])}")
            lines.extend(f"   * Column '{key}' in expected_columns is not in the dataset" for key in outcome[1])
        else:
            lines.append(f" * Patient {patient_id} had unexpected output value(s)")
            lines.extend(f"   * for column '{column}', expected '{want}', got '{got}'" for column, want, got in outcome[1])
    return "\n".join(lines)


# ------------------------------------------------------------------ values


def _csv_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _parse(text, ty):
    if text == "":
        return None
    if ty == "int":
        return int(text)
    if ty == "float":
        return float(text)
    if ty == "bool":
        return text == "T"
    if ty == "date":
        return datetime.date.fromisoformat(text)
    return text
