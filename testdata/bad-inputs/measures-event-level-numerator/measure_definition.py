from ehrql import create_measures, months, INTERVAL
from ehrql.tables.core import clinical_events, patients

measures = create_measures()
events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
measures.define_measure('m', numerator=events.date, denominator=patients.exists_for_patient(), intervals=months(2).starting_on('2015-01-01'))
