"""`StudyDefinition`: cohort-extractor's covariate rules, then one ehrfusion
dataset per index date.

The rules, as cohort-extractor applies them before any query runs: nested
`**extra_columns` are hoisted before the column that names them and hidden from
the output; `include_date_of_match` / `include_measurement_date` add a
`<name>_date` / `<name>_date_measured` column right after their source; the
period arguments become one `between`; deprecated spellings are translated;
every column gets a type; `population` is never written."""

import datetime
import re

from ehrfusion.language import value_series
from ehrfusion.query_model import to_document

from . import dates
from .lowering import Lowering, StudyError

_RETURN_TYPES = {
    "binary_flag": "bool", "date": "date", "date_of_death": "date", "number_of_matches_in_period": "int",
    "numeric_value": "float", "code": "str", "category": "str", "index_of_multiple_deprivation": "int",
    "rural_urban_classification": "int", "msoa": "str", "msoa_code": "str", "stp_code": "str",
    "nuts1_region_name": "str", "pseudo_id": "int", "underlying_cause_of_death": "str", "place_of_death": "str",
    "group_6": "str", "group_16": "str", "number_of_episodes": "int", "lower_bound": "float",
    "upper_bound": "float", "comparator": "str", "household_size": "int", "date_admitted": "date",
    "date_discharged": "date", "date_arrived": "date", "admission_method": "str", "discharge_destination": "str",
    "patient_classification": "str", "primary_diagnosis": "str", "days_in_critical_care": "str", "source_of_admission": "str",
    "admission_treatment_function_code": "str", "administrative_category": "str", "duration_of_elective_wait": "str",
    "total_bed_days_in_period": "int", "total_critical_care_days_in_period": "int", "consultation_medium_used": "str",
    # Types of values ehrfusion's tables cannot give: typed as the reference types
    # them, so the function itself is refused with its reason.
    "case_category": "str", "had_advanced_respiratory_support": "bool", "had_basic_respiratory_support": "bool",
    "had_respiratory_support": "bool", "has_members_in_other_ehr_systems": "bool", "is_prison": "bool",
    "latest_creatinine": "int", "latest_egfr": "float", "percentage_of_members_with_data_in_this_backend": "int",
    "region": "str", "renal_centre": "str", "risk_group": "str", "rrt_start_date": "date", "s_gene_target_failure": "str",
    "symptomatic": "str", "therapeutic": "str", "treatment_modality_start": "str", "treatment_modality_prevalence": "str",
    "variant": "str", "variant_detection_method": "str",
}
_FIXED_TYPES = {"age_as_of": "int", "date_of_birth": "date", "sex": "str", "all": "bool", "random_sample": "bool",
                "most_recent_bmi": "float", "mean_recorded_value": "float", "min_recorded_value": "float",
                "max_recorded_value": "float", "registered_as_of": "bool", "registered_with_one_practice_between": "bool",
                "with_complete_history_between": "bool", "date_deregistered_from_all_supported_practices": "date",
                "with_complete_gp_consultation_history_between": "bool", "which_exist_in_file": "bool"}
_ISO = re.compile(r"\d\d\d\d-\d\d-\d\d")


class StudyDefinition:
    def __init__(self, population, default_expectations=None, index_date=None, **covariates):
        covariates["population"] = population
        self.covariate_definitions = process_covariate_definitions(covariates)
        self.default_expectations = default_expectations or {}
        self.set_index_date(index_date)
        # cohort-extractor works out the columns' expectations (and the periods that
        # filter dummy dates) once, at the definition's own index date.
        self.initial_index_date = index_date
        # Lowering now finds a broken definition at the line that defines it.
        self.to_dataset()

    def set_index_date(self, index_date):
        if index_date is not None:
            dates.validate_date(index_date)
        self.index_date = index_date

    def output_columns(self):
        """(name, type, date format, whether a categorical int) of each written column."""
        return [
            (name, args["column_type"], args.get("date_format"), args.get("returning") in ("index_of_multiple_deprivation", "rural_urban_classification"))
            for name, (_, args) in self.covariate_definitions.items()
            if name != "population" and not args["hidden"]
        ]

    def _evaluated(self):
        evaluate = dates.Evaluator(self.index_date, column_names=self.covariate_definitions.keys())
        out = {}
        for name, (query_type, args) in self.covariate_definitions.items():
            args = dict(args)
            for key in ("date", "reference_date", "start_date", "end_date"):
                if key in args:
                    args[key] = evaluate(args[key])
            if args.get("between") is not None:
                args["between"] = tuple(evaluate(b) for b in args["between"])
            out[name] = (query_type, args)
        return out

    def to_dataset(self):
        """(population, {column: series}) at the current index date."""
        lowering = Lowering(self.index_date)
        variables = {}
        for name, (query_type, args) in self._evaluated().items():
            args = {k: v for k, v in args.items() if k not in ("return_expectations", "hidden")}
            column = lowering.lower(name, query_type, args)
            if name != "population" and not self.covariate_definitions[name][1]["hidden"]:
                variables[name] = column.value
        population = lowering.columns["population"]
        if population.kind not in ("bool", "int"):
            raise StudyError(f"population must be a flag (1 for the patients to include), not a {population.kind} column")
        from .lowering import tpp

        included = population.condition if population.condition is not None else population.value == 1
        return tpp.patients.exists_for_patient() & included, variables

    def _to_document(self):
        population, variables = self.to_dataset()
        return to_document(population._node, {n: s._node for n, s in variables.items()}, {}, None, {})


# ---------------------------------------------------------------- covariate rules


def process_covariate_definitions(covariates):
    if "patient_id" in covariates:
        raise ValueError("patient_id is a reserved column name")
    definitions = flatten_nested(covariates)
    definitions = add_fixed_values_for_aggregates(definitions)
    definitions = {name: (query_type, process_arguments(args)) for name, (query_type, args) in definitions.items()}
    definitions = add_date_of_match_columns(definitions)
    mark_reference_range_sources(definitions)
    add_column_types(definitions)
    return definitions


def flatten_nested(covariates):
    """Hoist each column's `extra_columns` (recursively) in front of it, hidden."""
    for name, value in covariates.items():
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict)):
            raise ValueError(f"{name}: expected a patients.*() query, got {type(value).__name__} {value!r:.60}")
    flat, hidden = {}, set()
    pending = list(covariates.items())
    while pending:
        name, (query_type, args) = pending.pop(0)
        if args.get("extra_columns"):
            args = dict(args)
            extra = args.pop("extra_columns")
            hidden.update(extra)
            pending[:0] = list(extra.items()) + [(name, (query_type, args))]
            continue
        if name in flat:
            raise ValueError(f"Duplicate columns named '{name}'")
        args = {k: v for k, v in args.items() if k != "extra_columns"}
        flat[name] = (query_type, args)
    for name, (_, args) in flat.items():
        args["hidden"] = name in hidden
    return flat


def add_fixed_values_for_aggregates(definitions):
    """`maximum_of("a", "2022-01-01")`: a date in place of a column name becomes a
    hidden fixed-value column."""
    out, counter = {}, 0
    for name, (query_type, args) in definitions.items():
        if query_type == "aggregate_of":
            names = []
            for column in args["column_names"]:
                if isinstance(column, str) and _ISO.match(column):
                    counter += 1
                    while f"fixed_value_{counter}" in definitions:
                        counter += 1
                    fixed = f"fixed_value_{counter}"
                    out[fixed] = ("fixed_value", {"value": column, "hidden": True})
                    names.append(fixed)
                else:
                    names.append(column)
            args = dict(args, column_names=names)
        out[name] = (query_type, args)
    return out


def process_arguments(args):
    args = dict(args)
    if "between" in args:
        after, before, between = args.pop("on_or_after", None), args.pop("on_or_before", None), args["between"]
        if between and (after or before):
            raise ValueError("You cannot set `between` at the same time as `on_or_after` or `on_or_before`")
        between = between or (after, before)
        if not isinstance(between, (tuple, list)) or len(between) != 2:
            raise ValueError("`between` should be a pair of dates")
        args["between"] = tuple(between) if any(b is not None for b in between) else None
    if args.pop("return_binary_flag", None):
        args["returning"] = "binary_flag"
    if args.pop("return_number_of_matches_in_period", None):
        args["returning"] = "number_of_matches_in_period"
    if args.pop("return_first_date_in_period", None):
        args["returning"], args["find_first_match_in_period"] = "date", True
    if args.pop("return_last_date_in_period", None):
        args["returning"], args["find_last_match_in_period"] = "date", True
    if "ignore_days_where_these_clinical_codes_occur" in args:
        args["ignore_days_where_these_codes_occur"] = args.pop("ignore_days_where_these_clinical_codes_occur")
    include_month, include_day = args.pop("include_month", None), args.pop("include_day", None)
    if args.get("date_format") is None:
        if include_day:
            args["date_format"] = "YYYY-MM-DD"
        elif include_month:
            args["date_format"] = "YYYY-MM"
    return args


def add_date_of_match_columns(definitions):
    out = {}
    for name, (query_type, args) in definitions.items():
        args = dict(args)
        suffix = None
        if args.pop("include_date_of_match", False):
            suffix = "_date"
        if args.pop("include_measurement_date", False):
            suffix = "_date_measured"
        out[name] = (query_type, args)
        if suffix:
            date_args = {"source": name, "returning": "date", "return_expectations": args.get("return_expectations"), "hidden": args["hidden"]}
            if "date_format" in args:
                date_args["date_format"] = args.pop("date_format")
            out[name + suffix] = ("value_from", date_args)
    return out


def mark_reference_range_sources(definitions):
    """`comparator_from(x)` and the bound columns read x's reference range: x must be
    a clinical events numeric value, which then comes from the events with ranges."""
    for name, (query_type, args) in definitions.items():
        if query_type == "value_from" and args["returning"] in ("comparator", "lower_bound", "upper_bound"):
            source_type, source_args = definitions[args["source"]]
            if source_type != "with_these_clinical_events" or source_args.get("returning") != "numeric_value":
                raise ValueError(f"Can only fetch '{args['returning']}' from a column of the form: with_these_clinical_events(returning=\"numeric_value\")")
            source_args["include_reference_range_columns"] = True


def add_column_types(definitions):
    types = {}
    for name, (query_type, args) in definitions.items():
        types[name] = args["column_type"] = column_type(name, query_type, args, types)
        if query_type in ("categorised_as", "fixed_value") and types[name] == "date":
            args["date_format"] = "YYYY-MM-DD"
        if query_type == "aggregate_of" and types[name] == "date":
            formats = {definitions[c][1].get("date_format") for c in args["column_names"]}
            if len(formats) > 1:
                raise ValueError(f"Cannot calculate {args['aggregate_function']} over dates of different format: {', '.join(sorted(str(f) for f in formats))}")
            args["date_format"] = formats.pop()


def column_type(name, query_type, args, types):
    if query_type in _FIXED_TYPES:
        return _FIXED_TYPES[query_type]
    if query_type == "categorised_as":
        return type_of_categories(args["category_definitions"])
    if query_type == "care_home_status_as_of":
        return type_of_categories(args["categorised_as"])
    if query_type == "aggregate_of":
        found = {types[c] for c in args["column_names"] if c in types}
        missing = [c for c in args["column_names"] if c not in types]
        if missing:
            raise ValueError(f"{name}: unknown column {missing[0]!r} (columns must be defined before they are used)")
        if len(found) > 1:
            raise ValueError(f"Cannot calculate {args['aggregate_function']} over columns of different types (found {' and '.join(sorted(found))})")
        return found.pop()
    if query_type == "fixed_value":
        v = args["value"]
        if isinstance(v, str) and _ISO.match(v):
            return "date"
        return {bool: "bool", int: "int", float: "float", str: "str"}[type(v)]
    if query_type == "with_value_from_file":
        return args["returning_type"]
    returning = args.get("returning")
    if query_type == "registered_practice_as_of" and isinstance(returning, str) and returning.startswith("rct__"):
        # A cluster-randomised trial's property: `enrolled` is a flag, every other
        # property text (TPP keeps them as text), as cohort-extractor types them.
        return "bool" if returning.rpartition("__")[2] == "enrolled" else "str"
    if returning == "nhse_region_name":
        raise ValueError("'nhse_region_name' should be changed to the more accurate 'nuts1_region_name'")
    if returning in _RETURN_TYPES:
        return _RETURN_TYPES[returning]
    raise ValueError(f"No matching type for '{returning}'")


def type_of_categories(definitions):
    values = [datetime.date.fromisoformat(v) if isinstance(v, str) and _ISO.match(v) else v for v in definitions]
    kinds = {type(v) for v in values}
    if len(kinds) > 1:
        raise ValueError(f"Categories must all be the same type, found {' and '.join(sorted(k.__name__ for k in kinds))}")
    kind = kinds.pop()
    if kind is int:
        return "bool" if set(values) == {0, 1} else "int"
    return {float: "float", str: "str", datetime.date: "date"}.get(kind) or _bad_category(kind)


def _bad_category(kind):
    raise ValueError(f"Unhandled category type: {kind.__name__}")


__all__ = ["StudyDefinition", "value_series"]
