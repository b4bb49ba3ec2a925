# Integer numerators over a bool denominator: an event count (never null), the
# number of days from INTERVAL.start_date to the first event in the interval (null
# for patients without one, so they add nothing) and an age offset which can be
# negative.
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import clinical_events, patients

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
first_event = events.sort_by(clinical_events.date).first_for_patient()
days_to_first = (first_event.date - INTERVAL.start_date).days

alive = patients.is_alive_on(INTERVAL.end_date)

measures.define_defaults(
    denominator=alive,
    intervals=years(3).starting_on("2020-01-01"),
)
measures.define_measure(name="event_count", numerator=events.count_for_patient())
measures.define_measure(
    name="days_to_first_event",
    numerator=days_to_first,
    group_by={"sex": patients.sex},
)
measures.define_measure(
    name="age_minus_60",
    numerator=patients.age_on(INTERVAL.end_date) - 60,
)
