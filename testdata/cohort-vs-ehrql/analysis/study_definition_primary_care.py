# Primary care: registrations, demographics, coded events and medications. Its
# ehrQL counterpart is dataset_definition_primary_care.py.
from cohortextractor import StudyDefinition, codelist, patients

asthma = codelist(["195967001", "389145006", "266361008"], system="snomed")
asthma_ctv3 = codelist(["H33..", "H330.", "H331."], system="ctv3")
weight = codelist(["27113001"], system="snomed")
inhalers = codelist(["39113611000001102", "39113311000001107", "3484711000001105"], system="snomed")

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5},
    population=patients.satisfying(
        "registered AND NOT died",
        registered=patients.registered_as_of("index_date"),
        died=patients.died_from_any_cause(on_or_before="index_date"),
    ),
    sex=patients.sex(),
    age=patients.age_as_of("index_date"),
    age_band=patients.categorised_as(
        {"0-17": "age < 18", "18-64": "age >= 18 AND age < 65", "65+": "age >= 65", "missing": "DEFAULT"},
    ),
    one_practice=patients.registered_with_one_practice_between("index_date - 1 year", "index_date"),
    stp=patients.registered_practice_as_of("index_date", returning="stp_code"),
    region=patients.registered_practice_as_of("index_date", returning="nuts1_region_name"),
    practice=patients.registered_practice_as_of("index_date", returning="pseudo_id"),
    imd=patients.address_as_of("index_date", returning="index_of_multiple_deprivation", round_to_nearest=100),
    asthma=patients.with_these_clinical_events(asthma, on_or_before="index_date"),
    asthma_first=patients.with_these_clinical_events(
        asthma, between=["index_date - 5 years", "index_date"], returning="date", find_first_match_in_period=True, date_format="YYYY-MM-DD"
    ),
    asthma_last_month=patients.with_these_clinical_events(asthma, on_or_before="index_date", returning="date", find_last_match_in_period=True, date_format="YYYY-MM"),
    asthma_count=patients.with_these_clinical_events(asthma, between=["index_date - 5 years", "index_date"], returning="number_of_matches_in_period"),
    asthma_code=patients.with_these_clinical_events(asthma, on_or_before="index_date", returning="code", find_last_match_in_period=True),
    asthma_ctv3=patients.with_these_clinical_events(asthma_ctv3, on_or_before="index_date"),
    weight=patients.with_these_clinical_events(weight, on_or_before="index_date", returning="numeric_value", find_last_match_in_period=True),
    inhaler_count=patients.with_these_medications(inhalers, between=["index_date - 1 year", "index_date"], returning="number_of_matches_in_period"),
    inhaler_first=patients.with_these_medications(inhalers, on_or_after="index_date - 1 year", returning="date", find_first_match_in_period=True, date_format="YYYY-MM-DD"),
    died_date=patients.died_from_any_cause(on_or_after="index_date", returning="date_of_death", date_format="YYYY-MM-DD"),
)
