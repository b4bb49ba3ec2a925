import datetime

import pytest

import ehrfusion
from ehrql import create_dataset
from ehrql.tables import EventFrame, PatientFrame, Series, table

COLUMNS = {
    "i1": int, "i2": int, "b1": bool, "b2": bool, "f1": float, "f2": float,
    "s1": str, "s2": str, "d1": datetime.date, "d2": datetime.date,
}


def _declare(name, base):
    body = {c: Series(t) for c, t in COLUMNS.items()}
    return table(type(name, (base,), body))


@pytest.fixture
def spec_tables():
    """The spec's patient-level table `p` and event-level table `e`."""
    return _declare("p", PatientFrame), _declare("e", EventFrame)


def rows(text):
    """`patient|col|...` lines (as in ehrQL's spec) to row dicts; empty is null."""
    lines = [l.strip() for l in text.strip().splitlines()]
    header = [h.strip() for h in lines[0].split("|")]
    out = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("|")]
        row = {"patient_id": int(cells[0])}
        for name, cell in zip(header[1:], cells[1:]):
            row[name] = _parse(cell, COLUMNS[name])
        out.append(row)
    return out


def _parse(cell, ty):
    if cell == "":
        return None
    if ty is bool:
        return cell == "T"
    if ty is datetime.date:
        return datetime.date.fromisoformat(cell)
    return ty(cell)


def evaluate(p, e, series, p_rows="", e_rows="", population=None):
    """The value of `series` for each patient, as {patient_id: value}."""
    dataset = create_dataset()
    dataset.define_population(population if population is not None else (p.exists_for_patient() | e.exists_for_patient()))
    dataset.v = series
    tables = {"p": rows(p_rows) if p_rows else [], "e": rows(e_rows) if e_rows else []}
    result = ehrfusion.run(dataset, tables=tables)
    return dict(zip(result.column("patient_id").to_pylist(), result.column("v").to_pylist()))
