from ehrql import create_measures, months, INTERVAL
from ehrql.tables.core import clinical_events, patients

measures = create_measures()
events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
measures.define_measure('m', numerator=events.exists_for_patient(), denominator=patients.exists_for_patient())
