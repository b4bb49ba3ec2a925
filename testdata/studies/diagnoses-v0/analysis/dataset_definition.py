# A diagnoses-and-deaths study written for ehrQL v0 (beta import paths, Dataset(),
# set_population, take/drop), kept as it was written.
from ehrql import Dataset, codelist_from_csv, days
from ehrql.tables.beta.core import clinical_events, ons_deaths, patients, practice_registrations

asthma_codes = codelist_from_csv("codelists/asthma-snomed.csv", column="code")
cvd_icd10 = codelist_from_csv("codelists/cvd-icd10.csv", column="icd10_code")

start_date = "2018-01-01"
end_date = "2023-12-31"

dataset = Dataset()

registrations = practice_registrations.take(
    practice_registrations.start_date.is_on_or_before(start_date)
).drop(practice_registrations.end_date.is_before(start_date))
registered = registrations.exists_for_patient()

asthma_events = clinical_events.take(clinical_events.snomedct_code.is_in(asthma_codes)).take(
    clinical_events.date.is_on_or_between(start_date, end_date)
)

dataset.set_population(registered & patients.is_alive_on(start_date))

dataset.sex = patients.sex
dataset.age = patients.age_on(start_date)
dataset.has_asthma = asthma_events.exists_for_patient()
dataset.asthma_count = asthma_events.count_for_patient()
dataset.first_asthma = asthma_events.sort_by(asthma_events.date).first_for_patient().date
dataset.died = ons_deaths.exists_for_patient()
dataset.death_date = ons_deaths.date
dataset.cvd_death = ons_deaths.cause_of_death_is_in(cvd_icd10)
dataset.died_within_year_of_asthma = ons_deaths.date.is_on_or_before(dataset.first_asthma + days(365))
