# Intervals given explicitly as a list of (date, date) tuples: unsorted, with a
# duplicate, an overlapping pair, a single-day interval and one long before
# anyone was registered (which yields no rows). The numerator is the denominator
# itself, so every ratio is 1.0. A second measure has only pre-history intervals
# and so no rows at all.
from datetime import date

from ehrql import INTERVAL, create_measures
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

registered = practice_registrations.where(
    practice_registrations.start_date.is_on_or_before(INTERVAL.end_date)
    & (
        practice_registrations.end_date.is_after(INTERVAL.start_date)
        | practice_registrations.end_date.is_null()
    )
).exists_for_patient()
had_event = clinical_events.where(
    clinical_events.date.is_on_or_before(INTERVAL.end_date)
    & clinical_events.date.is_on_or_after(INTERVAL.start_date)
).exists_for_patient()

intervals = [
    (date(2021, 1, 1), date(2021, 12, 31)),
    (date(2015, 6, 1), date(2016, 5, 31)),
    (date(2021, 1, 1), date(2021, 12, 31)),
    (date(2016, 1, 1), date(2016, 12, 31)),
    (date(2019, 3, 15), date(2019, 3, 15)),
    (date(1900, 1, 1), date(1900, 12, 31)),
    (date(2010, 1, 1), date(2023, 12, 31)),
]

measures.define_measure(
    name="registered_any_overlap",
    numerator=registered,
    denominator=registered,
    group_by={"sex": patients.sex},
    intervals=intervals,
)
measures.define_measure(
    name="event_in_interval",
    numerator=had_event,
    denominator=registered,
    group_by={"sex": patients.sex},
    intervals=intervals,
)
measures.define_measure(
    name="prehistory",
    numerator=had_event,
    denominator=registered,
    intervals=[(date(1890, 1, 1), date(1890, 12, 31)), (date(1880, 1, 1), date(1880, 1, 1))],
)
