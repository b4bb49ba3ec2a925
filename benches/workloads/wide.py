# Workload (b), a wide dataset: for each of 20 symptom codelists the first date, the
# count and a flag over the five years before the index date, with demographics from
# the registration and the address on the index date (66 variables).
from pathlib import Path

from ehrql import codelist_from_csv, create_dataset, years
from ehrql.tables.tpp import addresses, clinical_events, patients, practice_registrations

CODELISTS = Path(__file__).parent.parent / "codelists"
index_date = "2020-03-01"

dataset = create_dataset()
registration = practice_registrations.for_patient_on(index_date)
dataset.define_population(registration.exists_for_patient() & patients.is_alive_on(index_date))
dataset.age = patients.age_on(index_date)
dataset.sex = patients.sex
dataset.practice = registration.practice_pseudo_id
dataset.region = registration.practice_nuts1_region_name
address = addresses.for_patient_on(index_date)
dataset.imd = address.imd_rounded
dataset.rural_urban = address.rural_urban_classification

recent = clinical_events.where(clinical_events.date.is_on_or_between(index_date - years(5), index_date))
for path in sorted(CODELISTS.glob("symptom_*.csv")):
    name = path.stem.removeprefix("symptom_")
    events = recent.where(recent.snomedct_code.is_in(codelist_from_csv(path, column="code")))
    setattr(dataset, f"{name}_first", events.date.minimum_for_patient())
    setattr(dataset, f"{name}_count", events.count_for_patient())
    setattr(dataset, f"{name}_any", events.exists_for_patient())
