# Columns built on other columns: date expressions over earlier dates, minimum_of
# and maximum_of, categorised_as, categories of a codelist, summaries of recorded
# values, consultations and deregistration. Its ehrQL counterpart is
# dataset_definition_derived.py.
from cohortextractor import StudyDefinition, codelist, patients

covid = codelist(["840539006", "1240751000000100"], system="snomed")
asthma = codelist(["195967001", "389145006"], system="snomed")
asthma_kinds = codelist([("195967001", "asthma"), ("389145006", "allergic"), ("266361008", "intrinsic")], system="snomed")
bp = codelist(["271649006"], system="snomed")

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5},
    population=patients.registered_as_of("index_date"),
    covid_date=patients.with_these_clinical_events(covid, on_or_after="index_date", returning="date", find_first_match_in_period=True, date_format="YYYY-MM-DD"),
    asthma_after_covid=patients.with_these_clinical_events(asthma, between=["covid_date - 5 years", "covid_date + 28 days"]),
    asthma_date=patients.with_these_clinical_events(asthma, on_or_before="index_date", returning="date", find_last_match_in_period=True, date_format="YYYY-MM-DD"),
    earliest=patients.minimum_of("covid_date", "asthma_date"),
    latest=patients.maximum_of(
        "covid_date",
        bp_date=patients.with_these_clinical_events(bp, returning="date", find_last_match_in_period=True, date_format="YYYY-MM-DD"),
    ),
    asthma_kind=patients.with_these_clinical_events(asthma_kinds, on_or_before="index_date", returning="category", find_last_match_in_period=True),
    asthma_count=patients.with_these_clinical_events(asthma_kinds, between=["first_day_of_month(index_date) - 2 years", "last_day_of_month(index_date)"], returning="number_of_matches_in_period"),
    bp_mean=patients.mean_recorded_value(bp, on_most_recent_day_of_measurement=True, between=["index_date - 5 years", "index_date"]),
    bp_max=patients.max_recorded_value(bp, on_most_recent_day_of_measurement=False, between=["index_date - 5 years", "index_date"]),
    consultations=patients.with_gp_consultations(between=["index_date - 1 year", "index_date"], returning="number_of_matches_in_period"),
    deregistered=patients.date_deregistered_from_all_supported_practices(on_or_after="index_date", date_format="YYYY-MM-DD"),
    risk=patients.categorised_as(
        {
            "high": "bp_mean > 2.5 OR (asthma_count >= 2 AND NOT consultations = 0)",
            "medium": "asthma_kind = 'allergic' OR bp_max > 1.5",
            "low": "DEFAULT",
        },
    ),
)
