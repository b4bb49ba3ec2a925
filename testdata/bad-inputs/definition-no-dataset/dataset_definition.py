from ehrql import create_dataset, codelist_from_csv, days
from ehrql.tables.core import clinical_events, medications, patients

study = create_dataset()
study.define_population(patients.exists_for_patient())
