# ehrQL counterpart of study_definition_primary_care.py, written with the TPP
# backend's semantics of each cohort-extractor query spelled out: a registration
# is current when it ends *after* the date; "between" includes both ends; a
# patient's last event is the latest by date.
from ehrql import case, create_dataset, when
from ehrql.tables.tpp import addresses, clinical_events, medications, ons_deaths, patients, practice_registrations

asthma = ["195967001", "389145006", "266361008"]
asthma_ctv3 = ["H33..", "H330.", "H331."]
weight = ["27113001"]
inhalers = ["39113611000001102", "39113311000001107", "3484711000001105"]

index_date = "2020-03-01"
dataset = create_dataset()
dataset.configure_dummy_data(population_size=200)

current = practice_registrations.where(
    (practice_registrations.start_date <= index_date)
    & (practice_registrations.end_date.is_null() | (practice_registrations.end_date > index_date))
)
died = ons_deaths.date.is_on_or_before(index_date)
dataset.define_population(current.exists_for_patient() & ~(died.when_null_then(False)))

dataset.sex = case(
    when(patients.sex == "male").then("M"),
    when(patients.sex == "female").then("F"),
    when(patients.sex == "intersex").then("I"),
    when(patients.sex == "unknown").then("U"),
)
dataset.age = patients.age_on(index_date)
dataset.age_band = case(
    when(dataset.age < 18).then("0-17"),
    when((dataset.age >= 18) & (dataset.age < 65)).then("18-64"),
    when(dataset.age >= 65).then("65+"),
    otherwise="missing",
)
dataset.one_practice = practice_registrations.where(
    (practice_registrations.start_date <= "2019-03-01")
    & (practice_registrations.end_date.is_null() | (practice_registrations.end_date > index_date))
).exists_for_patient()
registration = current.sort_by(current.start_date, current.end_date, current.practice_pseudo_id).last_for_patient()
dataset.stp = registration.practice_stp
dataset.region = registration.practice_nuts1_region_name
dataset.practice = registration.practice_pseudo_id
# TPP's order for addresses, not ehrQL's addresses.for_patient_on (which prefers an
# address with a postcode before the latest start).
current_addresses = addresses.where(
    (addresses.start_date <= index_date) & (addresses.end_date.is_null() | (addresses.end_date > index_date))
)
address = current_addresses.sort_by(
    current_addresses.start_date,
    current_addresses.end_date.when_null_then("9999-12-31"),
    case(when(current_addresses.has_postcode).then(1), otherwise=0),
    -current_addresses.address_id,
).last_for_patient()
dataset.imd = address.imd_rounded.when_null_then(-1)

events = clinical_events.where(clinical_events.date <= index_date)
asthma_events = events.where(events.snomedct_code.is_in(asthma))
recent_asthma = clinical_events.where(clinical_events.snomedct_code.is_in(asthma) & clinical_events.date.is_on_or_between("2015-03-01", index_date))
dataset.asthma = asthma_events.exists_for_patient()
dataset.asthma_first = recent_asthma.sort_by(recent_asthma.date).first_for_patient().date
dataset.asthma_last_month = asthma_events.sort_by(asthma_events.date).last_for_patient().date.to_first_of_month()
dataset.asthma_count = recent_asthma.count_for_patient()
dataset.asthma_code = asthma_events.sort_by(asthma_events.date).last_for_patient().snomedct_code
dataset.asthma_ctv3 = events.where(events.ctv3_code.is_in(asthma_ctv3)).exists_for_patient()
weights = events.where(events.snomedct_code.is_in(weight))
dataset.weight = weights.sort_by(weights.date).last_for_patient().numeric_value
inhaler_rows = medications.where(medications.dmd_code.is_in(inhalers))
dataset.inhaler_count = inhaler_rows.where(inhaler_rows.date.is_on_or_between("2019-03-01", index_date)).count_for_patient()
later = inhaler_rows.where(inhaler_rows.date >= "2019-03-01")
dataset.inhaler_first = later.sort_by(later.date).first_for_patient().date
dataset.died_date = case(when(ons_deaths.date >= index_date).then(ons_deaths.date))
