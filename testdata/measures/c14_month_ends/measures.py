# Month arithmetic at month ends: months().starting_on() from the 31st rolls
# non-existent days forward to the 1st of the next month, producing intervals of
# uneven length; months().ending_on() from the 31st likewise. Interval dates are
# also used in arithmetic in the numerator.
from ehrql import INTERVAL, create_measures, days, months
from ehrql.tables.core import clinical_events, medications, patients

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

# Activity in the interval or in the 90 days before it starts
activity = (
    clinical_events.where(clinical_events.date.is_on_or_between(INTERVAL.start_date - days(90), INTERVAL.end_date)).exists_for_patient()
    | medications.where(medications.date.is_on_or_between(INTERVAL.start_date - days(90), INTERVAL.end_date)).exists_for_patient()
)
interval_days = (INTERVAL.end_date - INTERVAL.start_date).days + 1

measures.define_measure(
    name="activity_from_31st",
    numerator=activity,
    denominator=patients.is_alive_on(INTERVAL.start_date),
    intervals=months(4).starting_on("2020-01-31"),
)
measures.define_measure(
    name="days_alive_ending_31st",
    numerator=interval_days,
    denominator=patients.is_alive_on(INTERVAL.end_date) & activity,
    group_by={"sex": patients.sex},
    intervals=months(3).ending_on("2021-05-31"),
)
