from ehrql import create_dataset, codelist_from_csv, days
from ehrql.tables.core import clinical_events, medications, patients

dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
codes = codelist_from_csv('codelists/asthma.csv', column='code')
