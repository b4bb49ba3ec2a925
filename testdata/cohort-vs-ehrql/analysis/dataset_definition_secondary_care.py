# ehrQL counterpart of study_definition_secondary_care.py, with the TPP backend's
# semantics of each cohort-extractor query spelled out: "between" includes both
# ends; diagnoses match anywhere in a spell's list of codes, primary diagnoses by
# prefix; SGSS's "earliest specimen" is a patient's first test of that result.
from ehrql import case, claim_permissions, create_dataset, when
from ehrql.tables.tpp import apcs, emergency_care_attendances as ec, ons_deaths, practice_registrations, sgss_covid_all_tests as sgss, vaccinations

claim_permissions("sgss_covid_all_tests")

covid = ["U071", "U072"]
asthma_attack = ["J450", "J459"]
ae_asthma = ["195967001", "266361008"]

index_date = "2020-03-01"
dataset = create_dataset()
dataset.configure_dummy_data(population_size=200)
current = practice_registrations.where(
    (practice_registrations.start_date <= index_date)
    & (practice_registrations.end_date.is_null() | (practice_registrations.end_date > index_date))
)
dataset.define_population(current.exists_for_patient())

covid_spells = apcs.where(apcs.all_diagnoses.contains_any_of(covid))
dataset.covid_admission = covid_spells.where(covid_spells.admission_date.is_on_or_between(index_date, "2022-12-31")).admission_date.minimum_for_patient()
dataset.covid_discharge = covid_spells.where(covid_spells.admission_date >= index_date).discharge_date.maximum_for_patient()
dataset.admissions = apcs.where(apcs.admission_date.is_on_or_between("2018-03-01", index_date)).count_for_patient()
dataset.asthma_admission = apcs.where(
    apcs.primary_diagnosis.is_in(asthma_attack) & (apcs.admission_date <= index_date)
).exists_for_patient()
dataset.critical_care = apcs.where((apcs.days_in_critical_care > 0) & (apcs.admission_date >= index_date)).exists_for_patient()

dataset.ae_first = ec.where(ec.arrival_date >= index_date).arrival_date.minimum_for_patient()
dataset.ae_count = ec.where(ec.arrival_date.is_on_or_between("2019-03-01", index_date)).count_for_patient()
ae_diagnoses = [getattr(ec, f"diagnosis_{i:02d}").is_in(ae_asthma) for i in range(1, 25)]
any_diagnosis = ae_diagnoses[0]
for d in ae_diagnoses[1:]:
    any_diagnosis = any_diagnosis | d
dataset.ae_asthma = ec.where(any_diagnosis & (ec.arrival_date <= index_date)).exists_for_patient()

dataset.covid_death = (ons_deaths.cause_of_death_is_in(covid) & (ons_deaths.date >= index_date)).when_null_then(False)
dataset.covid_underlying = case(when(ons_deaths.underlying_cause_of_death.is_in(covid)).then(ons_deaths.date))
dataset.died = case(when(ons_deaths.date >= index_date).then(ons_deaths.date))

covid_vaccines = vaccinations.where(vaccinations.target_disease == "SARS-2 CORONAVIRUS")
dataset.first_vaccine = covid_vaccines.where(covid_vaccines.date.is_on_or_between("2020-12-01", "2022-12-31")).date.minimum_for_patient()
dataset.vaccinated = covid_vaccines.where(covid_vaccines.date >= "2020-12-01").exists_for_patient()

dataset.first_positive = sgss.where(sgss.is_positive).specimen_taken_date.minimum_for_patient()
dataset.tests = sgss.where(sgss.specimen_taken_date.is_on_or_between(index_date, "2021-12-31")).count_for_patient()
