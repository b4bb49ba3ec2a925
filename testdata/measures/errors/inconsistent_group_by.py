from ehrql import INTERVAL, create_measures, months, years
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()
registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()

measures.define_measure(
    name="events_a",
    numerator=had_event,
    denominator=registered,
    group_by={"category": patients.sex},
    intervals=years(1).starting_on("2020-01-01"),
)
measures.define_measure(
    name="events_b",
    numerator=had_event,
    denominator=registered,
    group_by={"category": patients.age_on("2020-01-01")},
    intervals=years(1).starting_on("2020-01-01"),
)
