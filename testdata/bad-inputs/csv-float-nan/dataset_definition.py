from ehrql import create_dataset
from ehrql.tables.core import clinical_events, patients

dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
dataset.sex = patients.sex
dataset.last_value = clinical_events.sort_by(clinical_events.date).last_for_patient().numeric_value
