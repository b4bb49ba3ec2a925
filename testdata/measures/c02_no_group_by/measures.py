# Measures without any group_by: one row per interval. Intervals generated with
# ending_on(). Bool and int numerators over the same bool denominator.
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import clinical_events, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
events = clinical_events.where(clinical_events.date.is_during(INTERVAL))

measures.define_measure(
    name="had_event",
    numerator=events.exists_for_patient(),
    denominator=registered,
    intervals=years(10).ending_on("2023-12-31"),
)
measures.define_measure(
    name="event_count",
    numerator=events.count_for_patient(),
    denominator=registered,
    intervals=years(10).ending_on("2023-12-31"),
)
