from ehrql import INTERVAL, create_measures, months, years
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()
registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()

import datetime

measures.define_measure(
    name="events",
    numerator=had_event,
    denominator=registered,
    intervals=[(datetime.date(2020, 12, 31), datetime.date(2020, 1, 1))],
)
