"""Tables: the backend tables built from schemas/*.json with their helper methods,
and the decorators for tables a user defines (`table`, `table_from_rows`,
`table_from_file`)."""

import datetime
import functools
import operator
import os

from . import codes as codes_module
from . import schemas
from .language import (
    BaseFrame,
    EhrQLTypeError,
    Error,
    EventFrame,
    PatientFrame,
    _USER_TABLES,
    case,
    convert_value,
    when,
)
from .permissions import RESTRICTED
from .query_model import Node

# ---------------------------------------------------------------- table methods
# The methods ehrQL's table modules give their tables. A module's tables get the
# ones METHODS lists for it (ehrQL's methods differ between modules: v0's spanning()
# excludes a registration ending on the end date, v1's includes it).


def age_on(self, date):
    """Age in whole years on `date` (negative before birth)."""
    return (date - self.date_of_birth).years


def is_alive_on(self, date):
    return self.date_of_death.is_after(date) | self.date_of_death.is_null()


def is_dead_on(self, date):
    return self.date_of_death.is_not_null() & self.date_of_death.is_before(date)


def has_practice_registration_spanning(self, start_date, end_date):
    """(EMIS) Whether the current registration spans the whole period."""
    return self.registration_start_date.is_on_or_before(start_date) & (
        self.registration_end_date.is_after(end_date) | self.registration_end_date.is_null()
    )


def registration_for_patient_on(self, date):
    """The registration on `date`: the latest started, then the longest, then by practice."""
    current = self.where(self.start_date <= date).except_where(self.end_date < date)
    return current.sort_by(current.start_date, current.end_date, current.practice_pseudo_id).last_for_patient()


def only_registration_on(self, date):
    """(EMISv2, at most one registration at a time) The registration on `date`."""
    return self.spanning(date, date).sort_by(self.start_date).last_for_patient()


def spanning(self, start_date, end_date):
    """Registrations covering the whole period, including one ending on `end_date`."""
    return self.where(self.start_date.is_on_or_before(start_date) & (self.end_date.is_on_or_after(end_date) | self.end_date.is_null()))


def spanning_v0(self, start_date, end_date):
    """Registrations covering the whole period and beyond (ehrQL v0: one ending on `end_date` does not count)."""
    return self.where(self.start_date.is_on_or_before(start_date) & (self.end_date.is_after(end_date) | self.end_date.is_null()))


def exists_for_patient_on(self, date):
    return self.spanning(date, date).exists_for_patient()


def spanning_with_systmone(self, start_date, end_date):
    return self.spanning(start_date, end_date).where(self.practice_systmone_go_live_date <= start_date)


def address_for_patient_on(self, date):
    """The address on `date`, preferring one with a postcode, then the latest, then the longest."""
    current = self.where(self.start_date <= date).except_where(self.end_date < date)
    has_postcode = case(when(current.has_postcode).then(1), otherwise=0)
    return current.sort_by(has_postcode, current.start_date, current.end_date, current.address_id).last_for_patient()


def only_address_on(self, date):
    """(EMISv2, at most one address at a time) The address on `date`."""
    current = self.where(self.start_date <= date).except_where(self.end_date < date)
    return current.sort_by(self.start_date).last_for_patient()


def _imd_band(imd, n, labels):
    # Boundaries split the 32,844 LSOA ranks into n near-equal groups.
    cases = [when((imd >= 0) & (imd <= int(32844 * 1 / n))).then(labels[0])]
    cases += [when(imd <= int(32844 * (i + 1) / n)).then(labels[i]) for i in range(1, n)]
    return case(*cases, otherwise="unknown")


@property
def imd_quintile(self):
    return _imd_band(self.imd_rounded, 5, ["1 (most deprived)", "2", "3", "4", "5 (least deprived)"])


@property
def imd_decile(self):
    labels = ["1 (most deprived)"] + [str(i) for i in range(2, 10)] + ["10 (least deprived)"]
    return _imd_band(self.imd_rounded, 10, labels)


def cause_of_death_is_in(self, codelist):
    columns = ["underlying_cause_of_death"] + [f"cause_of_death_{i:02d}" for i in range(1, 16)]
    return functools.reduce(operator.or_, [getattr(self, c).is_in(codelist) for c in columns])


def electronic_frailty_index(self):
    return self.where(self.algorithm_description == "UK Electronic Frailty Index (eFI)").where(self.algorithm_version == "1.0")


_PATIENTS = {"age_on": age_on, "is_alive_on": is_alive_on, "is_dead_on": is_dead_on}
_REGISTRATIONS = {"for_patient_on": registration_for_patient_on, "spanning": spanning, "exists_for_patient_on": exists_for_patient_on}
_CORE = {"patients": _PATIENTS, "practice_registrations": _REGISTRATIONS, "ons_deaths": {"cause_of_death_is_in": cause_of_death_is_in}}
_V0_CORE = {"patients": {"age_on": age_on}}
METHODS = {
    "ehrql.tables.core": _CORE,
    "ehrql.tables.tpp": {
        **_CORE,
        "practice_registrations": {**_REGISTRATIONS, "spanning_with_systmone": spanning_with_systmone},
        "addresses": {"for_patient_on": address_for_patient_on, "imd_quintile": imd_quintile, "imd_decile": imd_decile},
        "decision_support_values": {"electronic_frailty_index": electronic_frailty_index},
    },
    "ehrql.tables.emis": {
        **_CORE,
        "patients": {"age_on": age_on, "has_practice_registration_spanning": has_practice_registration_spanning},
    },
    "ehrql.tables.emisv2": {
        "patients": _PATIENTS,
        "practice_registrations": {**_REGISTRATIONS, "for_patient_on": only_registration_on},
        "addresses": {"for_patient_on": only_address_on},
    },
    # ehrQL v0's core patients had age_on() only; the rest are not in any ehrQL v0 but
    # earlier ehrfusion releases offered them here (testdata/studies/diagnoses-v0).
    "ehrql.tables.beta.core": {
        "patients": {"age_on": age_on, "is_alive_on": is_alive_on},
        "ons_deaths": {"cause_of_death_is_in": cause_of_death_is_in},
    },
    "ehrql.tables.beta.emis": _V0_CORE,
    "ehrql.tables.beta.tpp": {
        **_V0_CORE,
        "practice_registrations": {"for_patient_on": registration_for_patient_on, "spanning": spanning_v0},
        "addresses": {"for_patient_on": address_for_patient_on},
    },
}

# ---------------------------------------------------------------- backend tables


def backend_table(backend, module, name, spec):
    """The frame for one table of a table module (a view of one of the backend's tables)."""
    patient = spec["level"] == "patient"
    base = PatientFrame if patient else EventFrame
    methods = METHODS.get(module, {}).get(name)
    bases = (type(f"{name}_methods", (), dict(methods)), base) if methods else (base,)
    cls = type(name, bases, {"__doc__": spec.get("description", ""), "__module__": module})
    node = Node("SelectPatientTable" if patient else "SelectTable", table=spec["table"])
    node.backend = backend
    if (module, name) in RESTRICTED:
        node.permission = (RESTRICTED[(module, name)], f"{module.removeprefix('ehrql.tables.')}.{name}")
    return cls(node, {"level": spec["level"], "columns": spec["columns"]}, name)


def populate(module_globals, backend):
    """Fill a table module's namespace (`ehrql.tables.tpp`, ...) with its tables, as
    the backend's schema file describes them for that module."""
    module = module_globals["__name__"]
    views = schemas.load(backend)["modules"][module]
    for name, spec in views.items():
        module_globals[name] = backend_table(backend, module, name, spec)
    module_globals["__all__"] = list(views)


# ---------------------------------------------------------------- user tables


class Series:
    """A column declaration in a user-defined table class."""

    def __init__(self, type, *, description="", constraints=(), required=True, implementation_notes_to_add_to_description=""):
        self.type = type
        self.description = description
        self.constraints = list(constraints)

    def type_name(self):
        t = self.type
        if t is bool:
            return "bool"
        if t is int:
            return "int"
        if t is float:
            return "float"
        if t is str:
            return "str"
        if t is datetime.date:
            return "date"
        if isinstance(t, type) and issubclass(t, codes_module.BaseCode):
            return t.type_name
        # The multi-code string types (ehrql.codes.ICD10MultiCodeString, ...).
        if isinstance(t, type) and issubclass(t, str) and getattr(t, "type_name", None) in codes_module.MULTI_CODE_TYPES:
            return t.type_name
        raise EhrQLTypeError(f"Unsupported column type {t!r}")


class Constraint:
    """Column constraints, accepted for compatibility (they document the data)."""

    class NotNull:
        def __init__(self, *a, **k):
            pass

    class Unique(NotNull):
        pass

    class FirstOfMonth(NotNull):
        pass

    class Categorical(NotNull):
        pass

    class Regex(NotNull):
        pass

    class ClosedRange(NotNull):
        pass

    class GeneralRange(NotNull):
        pass

    class DateAfter(NotNull):
        pass


def _declared_columns(cls):
    columns = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Series):
                columns = [c for c in columns if c["name"] != name]
                columns.append({"name": name, "type": value.type_name()})
    if not columns:
        raise Error(f"Table class '{cls.__name__}' declares no columns (use e.g. `n = Series(int)`)")
    return columns


def _column_property(name):
    return property(lambda frame: BaseFrame.__getattr__(frame, name))


def _instance(cls, node, schema, root):
    # The class body declares columns as class attributes; the frame's class
    # replaces them with properties that give the column's series.
    overrides = {c["name"]: _column_property(c["name"]) for c in schema["columns"]}
    return type(cls.__name__, (cls,), overrides)(node, schema, root)


def table(cls):
    """Declare a table that the data directory provides (named after the class)."""
    patient = issubclass(cls, PatientFrame)
    if not patient and not issubclass(cls, EventFrame):
        raise Error("@table classes must subclass PatientFrame or EventFrame")
    level = "patient" if patient else "event"
    schema = {"level": level, "columns": _declared_columns(cls)}
    _USER_TABLES[cls.__name__] = schema
    node = Node("SelectPatientTable" if patient else "SelectTable", table=cls.__name__)
    return _instance(cls, node, schema, cls.__name__)


def table_from_rows(rows):
    """Declare a patient table whose rows are given: each row is (patient_id, col1, ...)."""

    def decorator(cls):
        if not issubclass(cls, PatientFrame):
            raise Error("table_from_rows() only supports PatientFrame tables")
        columns = _declared_columns(cls)
        converted = []
        seen = set()
        for i, row in enumerate(rows):
            row = list(row)
            if len(row) != len(columns) + 1:
                raise Error(f"Row {i} of '{cls.__name__}' has {len(row)} values; expected patient_id and {len(columns)} columns")
            pid = row[0]
            if not isinstance(pid, int) or isinstance(pid, bool):
                raise EhrQLTypeError(f"Row {i} of '{cls.__name__}': patient_id must be an int, got {pid!r}")
            if pid in seen:
                raise Error(f"Row {i} of '{cls.__name__}': patient_id {pid} appears more than once")
            seen.add(pid)
            values = [pid]
            for c, v in zip(columns, row[1:]):
                cv = convert_value(v, c["type"])
                values.append(cv.isoformat() if isinstance(cv, datetime.date) else cv)
            converted.append(values)
        node = Node("InlinePatientTable", name=cls.__name__, columns=columns, rows=converted)
        schema = {"level": "patient", "columns": columns}
        return _instance(cls, node, schema, cls.__name__)

    return decorator


def table_from_file(path, *, columns=None):
    """A patient table read from a file an earlier action wrote (csv, csv.gz,
    arrow/feather or parquet), with `columns={name: type}`; or, without `columns`, a
    decorator for a PatientFrame class that declares them. The file needs
    `patient_id` and the declared columns; the engine reads and checks it when the
    query runs."""
    if columns is None:
        return functools.partial(_table_from_file, path)
    if not isinstance(columns, dict) or not columns:
        raise EhrQLTypeError("table_from_file() needs columns as a dict of column name to type, e.g. {'age': int}")
    cls = type("PatientFrameFromFile", (PatientFrame,), {name: Series(ty) for name, ty in columns.items()})
    return _table_from_file(path, cls)


def _table_from_file(path, cls):
    if not (isinstance(cls, type) and issubclass(cls, PatientFrame)):
        raise Error("`@table_from_file` can only be used with `PatientFrame`")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise Error(f"Missing file: {path}")
    columns = _declared_columns(cls)
    node = Node("InlinePatientTable", name=cls.__name__, columns=columns, file=os.path.abspath(path))
    schema = {"level": "patient", "columns": columns}
    return _instance(cls, node, schema, cls.__name__)

