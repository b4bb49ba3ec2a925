# A 50-variable dataset over the TPP tables: demographics, registration and address
# on an index date, and five variables for each of eight clinical codelists.
from ehrql import create_dataset, days
from ehrql.tables.tpp import addresses, clinical_events, medications, patients, practice_registrations

index_date = "2024-01-01"
CODELISTS = {
    "asthma": ["195967001", "389145006"],
    "copd": ["13645005", "185086009"],
    "diabetes": ["44054006", "73211009"],
    "hypertension": ["38341003", "59621000"],
    "ckd": ["709044004", "431855005"],
    "depression": ["35489007", "370143000"],
    "heart_failure": ["84114007", "42343007"],
    "stroke": ["230690007", "422504002"],
}

dataset = create_dataset()
registration = practice_registrations.for_patient_on(index_date)
dataset.define_population(registration.exists_for_patient() & patients.is_alive_on(index_date))
dataset.age = patients.age_on(index_date)
dataset.sex = patients.sex
dataset.practice = registration.practice_pseudo_id
dataset.region = registration.practice_nuts1_region_name
address = addresses.for_patient_on(index_date)
dataset.imd_quintile = address.imd_quintile
dataset.rural_urban = address.rural_urban_classification
dataset.prescriptions_last_year = medications.where(medications.date.is_on_or_between(index_date - days(365), index_date)).count_for_patient()
dataset.distinct_medicines = medications.dmd_code.count_distinct_for_patient()
dataset.events_last_year = clinical_events.where(clinical_events.date.is_on_or_between(index_date - days(365), index_date)).count_for_patient()
dataset.last_event = clinical_events.sort_by(clinical_events.date).last_for_patient().date

for name, codes in CODELISTS.items():
    events = clinical_events.where(clinical_events.snomedct_code.is_in(codes) & clinical_events.date.is_on_or_before(index_date))
    ordered = events.sort_by(events.date)
    setattr(dataset, f"{name}_first", ordered.first_for_patient().date)
    setattr(dataset, f"{name}_last", ordered.last_for_patient().date)
    setattr(dataset, f"{name}_count", events.count_for_patient())
    setattr(dataset, f"{name}_recent", events.where(events.date.is_after(index_date - days(365))).exists_for_patient())
    setattr(dataset, f"{name}_max_value", events.numeric_value.maximum_for_patient())
