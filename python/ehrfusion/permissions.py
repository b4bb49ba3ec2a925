"""Restricted tables and the permissions they need (ehrQL's `claim_permissions`).

With dummy data a definition must claim each permission its tables need; with real
data the permissions granted come from EHRQL_PERMISSIONS (a JSON list). The engine
checks them; this module says what a dataset needs and what it claimed.
"""

from .query_model import Node

# ehrQL's restricted tables, by module and name: the permission each needs.
RESTRICTED = {
    ("ehrql.tables.tpp", "appointments"): "appointments",
    ("ehrql.tables.tpp", "covid_therapeutics"): "covid_therapeutics",
    ("ehrql.tables.tpp", "occupation_on_covid_vaccine_record"): "occupation_on_covid_vaccine_record",
    ("ehrql.tables.tpp", "open_prompt"): "open_prompt",
    ("ehrql.tables.tpp", "sgss_covid_all_tests"): "sgss_covid_all_tests",
    ("ehrql.tables.tpp", "ukrr"): "ukrr",
    ("ehrql.tables.tpp", "wl_clockstops"): "waiting_list",
    ("ehrql.tables.tpp", "wl_openpathways"): "waiting_list",
    ("ehrql.tables.raw.tpp", "isaric"): "isaric",
    ("ehrql.tables.raw.tpp", "wl_clockstops"): "waiting_list",
    ("ehrql.tables.raw.tpp", "wl_openpathways"): "waiting_list",
}

_CLAIMED = {}


def claim_permissions(*permissions):
    """Claim permissions for restricted tables, to work on a definition with dummy
    data (real data needs the permissions granted on the platform)."""
    for permission in permissions:
        _CLAIMED[permission] = True


def clear_claimed():
    _CLAIMED.clear()


def claimed():
    return list(_CLAIMED)


def required(definition):
    """{permission: why} for the tables (and features) a dataset or measures use."""
    tables = {}
    seen = set()

    def walk(value):
        if isinstance(value, Node):
            if id(value) in seen:
                return
            seen.add(id(value))
            if value.permission:
                permission, public_name = value.permission
                tables.setdefault(permission, []).append(public_name)
            for v in value.fields.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    event_tables = getattr(definition, "_event_tables", {})
    if hasattr(definition, "_variables"):
        walk(definition._population._node if definition._population is not None else None)
        walk([s._node for s in definition._variables.values()])
        walk([[s._node for s in columns.values()] for columns in event_tables.values()])
    else:
        for m in definition:
            walk([m.numerator._node, m.denominator._node, *(s._node for s in m.group_by.values())])
    out = {}
    for permission, names in tables.items():
        names = [f"`{n}`" for n in dict.fromkeys(names)]
        listed = names[0] + " table" if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]} tables"
        out[permission] = f"required for access to the {listed}"
    if event_tables:
        out["event_level_data"] = "required in order to use the `dataset.add_event_table()` method"
    return out
