"""The `patients.*` functions of a study definition. Each only records its name and
arguments (defaults filled in); the study definition interprets them."""

import functools
import inspect

_BETWEEN = dict(on_or_before=None, on_or_after=None, between=None)


def _query(name=None):
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def recorded(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"patients.{fn.__name__}(): {e}") from None
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            extra = fn(**arguments)
            if extra:
                arguments.update(extra)
            return (name or fn.__name__, arguments)

        return recorded

    return wrap


@_query()
def all():
    pass


@_query()
def random_sample(percent=None, return_expectations=None):
    pass


@_query()
def sex(return_expectations=None):
    pass


@_query()
def age_as_of(reference_date, return_expectations=None):
    pass


@_query()
def date_of_birth(date_format=None, return_expectations=None):
    if date_format == "YYYY-MM-DD":
        raise ValueError("Date of birth can only be retrieved to month granularity")


@_query()
def registered_as_of(reference_date, return_expectations=None):
    pass


@_query()
def registered_with_one_practice_between(start_date, end_date, return_expectations=None):
    pass


@_query()
def with_complete_history_between(start_date, end_date, return_expectations=None):
    pass


@_query()
def most_recent_bmi(on_or_before=None, on_or_after=None, between=None, minimum_age_at_measurement=16, return_expectations=None, include_measurement_date=False, date_format=None, include_month=False, include_day=False):
    pass


@_query()
def mean_recorded_value(codelist, on_most_recent_day_of_measurement=None, return_expectations=None, on_or_before=None, on_or_after=None, between=None, include_measurement_date=False, date_format=None, include_month=False, include_day=False):
    pass


@_query()
def min_recorded_value(codelist, on_most_recent_day_of_measurement=None, return_expectations=None, on_or_before=None, on_or_after=None, between=None, include_measurement_date=False, date_format=None):
    pass


@_query()
def max_recorded_value(codelist, on_most_recent_day_of_measurement=None, return_expectations=None, on_or_before=None, on_or_after=None, between=None, include_measurement_date=False, date_format=None):
    pass


@_query()
def with_these_medications(codelist, return_expectations=None, on_or_before=None, on_or_after=None, between=None, find_first_match_in_period=None, find_last_match_in_period=None, returning="binary_flag", include_date_of_match=False, date_format=None, ignore_days_where_these_clinical_codes_occur=None, episode_defined_as=None, return_binary_flag=None, return_number_of_matches_in_period=False, return_first_date_in_period=False, return_last_date_in_period=False, include_month=False, include_day=False):
    pass


@_query()
def with_these_clinical_events(codelist, return_expectations=None, on_or_before=None, on_or_after=None, between=None, find_first_match_in_period=None, find_last_match_in_period=None, returning="binary_flag", include_date_of_match=False, date_format=None, ignore_missing_values=False, ignore_days_where_these_codes_occur=None, episode_defined_as=None, return_binary_flag=None, return_number_of_matches_in_period=False, return_first_date_in_period=False, return_last_date_in_period=False, include_month=False, include_day=False):
    pass


@_query("value_from")
def comparator_from(source, return_expectations=None):
    return {"returning": "comparator"}


@_query("value_from")
def reference_range_lower_bound_from(source, return_expectations=None):
    return {"returning": "lower_bound"}


@_query("value_from")
def reference_range_upper_bound_from(source, return_expectations=None):
    return {"returning": "upper_bound"}


def categorised_as(category_definitions, return_expectations=None, **extra_columns):
    return ("categorised_as", {"category_definitions": category_definitions, "return_expectations": return_expectations, "extra_columns": extra_columns})


def satisfying(expression, return_expectations=None, **extra_columns):
    expectations = dict(return_expectations or {})
    expectations["category"] = {"ratios": {1: 1, 0: 0}}
    return ("categorised_as", {"category_definitions": {1: expression, 0: "DEFAULT"}, "return_expectations": expectations, "extra_columns": extra_columns})


@_query()
def registered_practice_as_of(date, returning=None, return_expectations=None):
    pass


@_query()
def address_as_of(date, returning=None, round_to_nearest=None, return_expectations=None):
    pass


@_query()
def care_home_status_as_of(date, categorised_as=None, return_expectations=None):
    if categorised_as is None:
        return {"categorised_as": {1: "IsPotentialCareHome", 0: "DEFAULT"}}


@_query()
def admitted_to_icu(on_or_after=None, on_or_before=None, between=None, find_first_match_in_period=None, find_last_match_in_period=None, returning="binary_flag", date_format=None, return_expectations=None, include_month=False, include_day=False):
    pass


@_query()
def with_these_codes_on_death_certificate(codelist, on_or_before=None, on_or_after=None, between=None, match_only_underlying_cause=False, returning="binary_flag", date_format=None, include_month=False, include_day=False, return_expectations=None):
    pass


@_query()
def died_from_any_cause(on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, include_month=False, include_day=False, return_expectations=None):
    pass


@_query()
def with_death_recorded_in_cpns(on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, include_month=False, include_day=False, return_expectations=None):
    pass


@_query()
def with_death_recorded_in_primary_care(on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, return_expectations=None):
    pass


@_query("value_from")
def date_of(source, date_format=None, include_month=False, include_day=False, return_expectations=None):
    return {"returning": "date"}


@_query()
def with_vaccination_record(tpp, emis, on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, find_first_match_in_period=None, find_last_match_in_period=None, return_expectations=None):
    pass


@_query()
def with_tpp_vaccination_record(target_disease_matches=None, product_name_matches=None, on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, find_first_match_in_period=None, find_last_match_in_period=None, return_expectations=None):
    pass


@_query()
def with_gp_consultations(on_or_before=None, on_or_after=None, between=None, find_first_match_in_period=None, find_last_match_in_period=None, returning="binary_flag", date_format=None, return_expectations=None):
    pass


@_query()
def with_complete_gp_consultation_history_between(start_date, end_date, return_expectations=None):
    pass


@_query()
def with_test_result_in_sgss(pathogen=None, test_result="any", on_or_before=None, on_or_after=None, between=None, find_first_match_in_period=None, find_last_match_in_period=None, restrict_to_earliest_specimen_date=True, returning="binary_flag", date_format=None, return_expectations=None):
    pass


def maximum_of(*column_names, **extra_columns):
    return _aggregate("MAX", "maximum_of", column_names, extra_columns)


def minimum_of(*column_names, **extra_columns):
    return _aggregate("MIN", "minimum_of", column_names, extra_columns)


def _aggregate(function, name, column_names, extra_columns):
    if "return_expectations" in extra_columns:
        raise ValueError(f"The `{name}` function does not accept `return_expectations` and instead derives dummy values from the values of its source columns")
    return ("aggregate_of", {"column_names": tuple(column_names) + tuple(extra_columns), "aggregate_function": function, "extra_columns": extra_columns})


@_query()
def fixed_value(value):
    pass


@_query()
def household_as_of(reference_date, returning=None, return_expectations=None):
    pass


@_query()
def attended_emergency_care(on_or_before=None, on_or_after=None, between=None, returning="binary_flag", find_first_match_in_period=None, find_last_match_in_period=None, date_format=None, with_these_diagnoses=None, discharged_to=None, return_expectations=None):
    pass


@_query()
def date_deregistered_from_all_supported_practices(on_or_before=None, on_or_after=None, between=None, date_format=None, return_expectations=None):
    pass


@_query()
def admitted_to_hospital(on_or_before=None, on_or_after=None, between=None, returning="binary_flag", find_first_match_in_period=None, find_last_match_in_period=None, date_format=None, with_these_diagnoses=None, with_these_primary_diagnoses=None, with_these_procedures=None, with_admission_method=None, with_source_of_admission=None, with_discharge_destination=None, with_patient_classification=None, with_admission_treatment_function_code=None, with_administrative_category=None, with_at_least_one_day_in_critical_care=False, return_expectations=None):
    pass


@_query()
def with_high_cost_drugs(drug_name_matches=None, on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, find_first_match_in_period=None, find_last_match_in_period=None, return_expectations=None):
    if date_format == "YYYY-MM-DD":
        raise ValueError("Day level data not available for high cost drugs")


@_query()
def with_ethnicity_from_sus(returning=None, use_most_frequent_code=None, return_expectations=None):
    pass


@_query()
def with_these_decision_support_values(algorithm, on_or_before=None, on_or_after=None, between=None, find_first_match_in_period=None, find_last_match_in_period=None, returning="numeric_value", include_date_of_match=False, date_format=None, ignore_missing_values=False, return_expectations=None):
    pass


@_query()
def with_healthcare_worker_flag_on_covid_vaccine_record(returning="binary_flag", return_expectations=None):
    pass


@_query()
def outpatient_appointment_date(returning="binary_flag", attended=None, is_first_attendance=None, with_these_treatment_function_codes=None, with_these_procedures=None, on_or_after=None, between=None, date_format="YYYY-MM-DD", find_first_match_in_period=None, return_expectations=None):
    pass


@_query()
def with_covid_therapeutics(with_these_statuses=None, with_these_therapeutics=None, with_these_indications=None, on_or_before=None, on_or_after=None, between=None, returning="binary_flag", date_format=None, find_first_match_in_period=None, find_last_match_in_period=None, include_date_of_match=False, episode_defined_as=None, return_expectations=None):
    pass


@_query()
def with_value_from_file(f_path, returning, returning_type, date_format="YYYY-MM-DD"):
    pass


@_query()
def which_exist_in_file(f_path):
    pass


@_query()
def with_an_isaric_record(returning, between=None, date_filter_column=None, date_format="YYYY-MM-DD", return_expectations=None):
    pass


@_query()
def with_record_in_ukrr(from_dataset=None, returning=None, on_or_before=None, on_or_after=None, between=None, date_format=None, return_expectations=None):
    pass
