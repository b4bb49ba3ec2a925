# Conditions comparing event dates with the interval's bounds, in each spelling a
# definition can use: either way round, negated, with except_where (which keeps
# rows whose comparison is null, so events without a date), and with an explicit
# null test. Events can then be read once and counted only in the run of intervals
# their dates allow; the answer must not change. The last measure has intervals
# whose ends do not rise with their starts. Each measure has its own intervals, so
# that each is computed in a pass of its own, with its own conditions.
from datetime import date

from ehrql import INTERVAL, create_measures, months, weeks
from ehrql.tables.core import clinical_events, medications, patients

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

events = clinical_events
alive = patients.is_alive_on(INTERVAL.start_date)

measures.define_defaults(
    denominator=alive,
    group_by={"sex": patients.sex},
)
measures.define_measure(
    "during_either_way_round",
    numerator=events.where(INTERVAL.start_date <= events.date).where(events.date <= INTERVAL.end_date).count_for_patient(),
    intervals=months(18).starting_on("2019-07-01"),
)
measures.define_measure(
    "not_after_end",
    numerator=events.where(~(events.date > INTERVAL.end_date)).count_for_patient(),
    intervals=months(17).starting_on("2019-07-01"),
)
measures.define_measure(
    "except_before_start",
    numerator=events.except_where(events.date < INTERVAL.start_date).count_for_patient(),
    intervals=months(16).starting_on("2019-07-01"),
)
measures.define_measure(
    "undated_or_from_start",
    numerator=events.where(events.date.is_null() | events.date.is_on_or_after(INTERVAL.start_date)).count_for_patient(),
    intervals=months(15).starting_on("2019-07-01"),
)
measures.define_measure(
    "on_start_day",
    numerator=events.where(events.date == INTERVAL.start_date).exists_for_patient(),
    intervals=months(14).starting_on("2019-07-01"),
)
measures.define_measure(
    "strictly_inside_and_last_value",
    numerator=events.where(events.date > INTERVAL.start_date)
    .where(events.date < INTERVAL.end_date)
    .sort_by(events.date)
    .last_for_patient()
    .numeric_value.is_not_null(),
    intervals=months(13).starting_on("2019-07-01"),
)
measures.define_measure(
    "medication_before_end_weekly",
    numerator=medications.where(medications.date.is_on_or_before(INTERVAL.end_date)).count_for_patient(),
    denominator=alive & medications.where(medications.date.is_on_or_before(INTERVAL.end_date)).exists_for_patient(),
    intervals=weeks(20).starting_on("2020-01-06"),
)
measures.define_measure(
    "overlapping_intervals",
    numerator=events.where(events.date.is_on_or_between(INTERVAL.start_date, INTERVAL.end_date)).count_for_patient(),
    intervals=[
        (date(2020, 1, 1), date(2020, 12, 31)),
        (date(2020, 3, 1), date(2020, 3, 31)),
        (date(2020, 6, 1), date(2021, 5, 31)),
        (date(2020, 7, 1), date(2020, 7, 31)),
    ],
)
