from ehrql import create_measures, months, INTERVAL
from ehrql.tables.core import clinical_events, patients

m = create_measures()
events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
