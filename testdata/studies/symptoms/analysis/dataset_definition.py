# Symptoms before a diagnosis: for each of eight symptom codelists, a dozen
# variables built in a loop (over 100 variables in all), plus demographics.
from ehrql import codelist_from_csv, create_dataset, days, months, years
from ehrql.tables.tpp import addresses, clinical_events, medications, patients, practice_registrations

index_date = "2021-06-30"
SYMPTOMS = ["cough", "fever", "fatigue", "breathlessness", "chest_pain", "headache", "weight_loss", "back_pain"]
codelists = {name: codelist_from_csv(f"codelists/{name}.csv", column="code") for name in SYMPTOMS}
diagnosis_codes = codelist_from_csv("codelists/diagnosis.csv", column="code")

dataset = create_dataset()
registration = practice_registrations.for_patient_on(index_date)
dataset.define_population(registration.exists_for_patient() & (patients.age_on(index_date) >= 18))

dataset.age = patients.age_on(index_date)
dataset.sex = patients.sex
dataset.practice = registration.practice_pseudo_id
dataset.region = registration.practice_nuts1_region_name
address = addresses.for_patient_on(index_date)
dataset.imd_quintile = address.imd_quintile
dataset.rural_urban = address.rural_urban_classification

diagnoses = clinical_events.where(clinical_events.snomedct_code.is_in(diagnosis_codes))
first_diagnosis = diagnoses.sort_by(diagnoses.date).first_for_patient().date
dataset.first_diagnosis = first_diagnosis

before_index = clinical_events.where(clinical_events.date.is_on_or_before(index_date))
for name in SYMPTOMS:
    events = before_index.where(before_index.snomedct_code.is_in(codelists[name]))
    ordered = events.sort_by(events.date)
    first = ordered.first_for_patient()
    last = ordered.last_for_patient()
    setattr(dataset, f"{name}_first", first.date)
    setattr(dataset, f"{name}_last", last.date)
    setattr(dataset, f"{name}_count", events.count_for_patient())
    setattr(dataset, f"{name}_ever", events.exists_for_patient())
    setattr(dataset, f"{name}_days", events.date.count_distinct_for_patient())
    setattr(dataset, f"{name}_last_year", events.where(events.date.is_after(index_date - years(1))).count_for_patient())
    setattr(dataset, f"{name}_last_6m", events.where(events.date.is_after(index_date - months(6))).exists_for_patient())
    setattr(dataset, f"{name}_episodes", events.date.count_episodes_for_patient(days(28)))
    setattr(dataset, f"{name}_max_value", events.numeric_value.maximum_for_patient())
    setattr(dataset, f"{name}_mean_value", events.numeric_value.mean_for_patient())
    setattr(dataset, f"{name}_years_since_first", (index_date - first.date).years)
    setattr(dataset, f"{name}_before_diagnosis",
            events.where(events.date.is_before(first_diagnosis)).count_for_patient())
    setattr(dataset, f"{name}_within_90d_of_diagnosis",
            events.where(events.date.is_on_or_between(first_diagnosis - days(90), first_diagnosis)).exists_for_patient())

dataset.prescriptions_last_year = medications.where(medications.date.is_on_or_between(index_date - days(365), index_date)).count_for_patient()
