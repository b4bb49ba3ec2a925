# Hospital admissions, emergency care, deaths, vaccinations and tests. Its ehrQL
# counterpart is dataset_definition_secondary_care.py.
from cohortextractor import StudyDefinition, codelist, patients

covid = codelist(["U071", "U072"], system="icd10")
asthma_attack = codelist(["J450", "J459"], system="icd10")
ae_asthma = codelist(["195967001", "266361008"], system="snomed")

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5},
    population=patients.registered_as_of("index_date"),
    covid_admission=patients.admitted_to_hospital(
        with_these_diagnoses=covid, between=["index_date", "2022-12-31"], returning="date_admitted", find_first_match_in_period=True, date_format="YYYY-MM-DD"
    ),
    covid_discharge=patients.admitted_to_hospital(
        with_these_diagnoses=covid, on_or_after="index_date", returning="date_discharged", find_last_match_in_period=True, date_format="YYYY-MM-DD"
    ),
    admissions=patients.admitted_to_hospital(between=["index_date - 2 years", "index_date"], returning="number_of_matches_in_period"),
    asthma_admission=patients.admitted_to_hospital(with_these_primary_diagnoses=asthma_attack, on_or_before="index_date"),
    critical_care=patients.admitted_to_hospital(with_at_least_one_day_in_critical_care=True, on_or_after="index_date"),
    ae_first=patients.attended_emergency_care(on_or_after="index_date", returning="date_arrived", find_first_match_in_period=True, date_format="YYYY-MM-DD"),
    ae_count=patients.attended_emergency_care(between=["index_date - 1 year", "index_date"], returning="number_of_matches_in_period"),
    ae_asthma=patients.attended_emergency_care(with_these_diagnoses=ae_asthma, on_or_before="index_date"),
    covid_death=patients.with_these_codes_on_death_certificate(covid, on_or_after="index_date"),
    covid_underlying=patients.with_these_codes_on_death_certificate(covid, match_only_underlying_cause=True, returning="date_of_death", date_format="YYYY-MM-DD"),
    died=patients.died_from_any_cause(on_or_after="index_date", returning="date_of_death", date_format="YYYY-MM-DD"),
    first_vaccine=patients.with_tpp_vaccination_record(
        target_disease_matches="SARS-2 CORONAVIRUS", between=["2020-12-01", "2022-12-31"], returning="date", find_first_match_in_period=True, date_format="YYYY-MM-DD"
    ),
    vaccinated=patients.with_tpp_vaccination_record(target_disease_matches="SARS-2 CORONAVIRUS", on_or_after="2020-12-01"),
    first_positive=patients.with_test_result_in_sgss(pathogen="SARS-CoV-2", test_result="positive", returning="date", find_first_match_in_period=True, date_format="YYYY-MM-DD"),
    tests=patients.with_test_result_in_sgss(
        pathogen="SARS-CoV-2", test_result="any", restrict_to_earliest_specimen_date=False, between=["index_date", "2021-12-31"], returning="number_of_matches_in_period"
    ),
)
