from ehrql import create_dataset
from ehrql.tables.core import patients

measures = create_dataset()
measures.define_population(patients.exists_for_patient())
