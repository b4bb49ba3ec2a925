# "Has the patient an event before (or after) a bound of the interval", in each
# spelling: the bound on either side, strict or not, the date's condition before or
# after the codelist's, and mixed with values that count events in the interval.
# ehrfusion answers these from each patient's earliest (or latest) date instead of
# repeating events for every interval; the answer must not change. Some events have
# no date, and some patients none of the codes.
from ehrql import INTERVAL, create_measures, months, years
from ehrql.tables.core import clinical_events, medications, patients

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

events = clinical_events
codes = ["38341003", "195967001"]
alive = patients.is_alive_on(INTERVAL.start_date)

measures.define_defaults(
    denominator=alive,
    group_by={"sex": patients.sex},
)
measures.define_measure(
    "coded_on_or_before_end",
    numerator=events.where(events.snomedct_code.is_in(codes)).where(events.date.is_on_or_before(INTERVAL.end_date)).exists_for_patient(),
    intervals=months(18).starting_on("2019-07-01"),
)
measures.define_measure(
    "before_start_then_coded",
    numerator=events.where(events.date < INTERVAL.start_date).where(events.snomedct_code.is_in(codes)).exists_for_patient(),
    intervals=months(17).starting_on("2019-07-01"),
)
measures.define_measure(
    "bound_on_the_left",
    numerator=events.where(INTERVAL.end_date >= events.date).exists_for_patient(),
    intervals=months(16).starting_on("2019-07-01"),
)
measures.define_measure(
    "after_start",
    numerator=medications.where(medications.date.is_after(INTERVAL.start_date)).exists_for_patient(),
    intervals=months(15).starting_on("2019-07-01"),
)
measures.define_measure(
    "on_or_after_a_year_before_end",
    numerator=medications.where(medications.date.is_on_or_after(INTERVAL.end_date - years(1))).exists_for_patient(),
    intervals=months(14).starting_on("2019-07-01"),
)
measures.define_measure(
    "in_interval_among_those_ever_coded",
    numerator=events.where(events.date.is_during(INTERVAL)).count_for_patient(),
    denominator=alive & events.where(events.snomedct_code.is_in(codes)).where(events.date.is_on_or_before(INTERVAL.end_date)).exists_for_patient(),
    intervals=months(13).starting_on("2019-07-01"),
)
measures.define_measure(
    "not_before_start",
    numerator=~events.where(events.date.is_before(INTERVAL.start_date)).exists_for_patient(),
    intervals=years(3).starting_on("2018-01-01"),
)
