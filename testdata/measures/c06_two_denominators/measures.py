# Two different denominators over the same intervals, with measures defined in
# interleaved order: results come out grouped by (denominator, intervals).
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import clinical_events, medications, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

registration = practice_registrations.for_patient_on(INTERVAL.start_date)
registered = registration.exists_for_patient()
older = registered & (patients.age_on(INTERVAL.start_date) >= 50)

had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()
had_rx = medications.where(medications.date.is_during(INTERVAL)).exists_for_patient()

intervals = years(3).starting_on("2020-01-01")

measures.define_measure(
    name="event_registered_by_sex",
    numerator=had_event,
    denominator=registered,
    group_by={"sex": patients.sex},
    intervals=intervals,
)
measures.define_measure(
    name="event_older_by_sex",
    numerator=had_event,
    denominator=older,
    group_by={"sex": patients.sex},
    intervals=intervals,
)
measures.define_measure(
    name="rx_registered",
    numerator=had_rx,
    denominator=registered,
    intervals=intervals,
)
measures.define_measure(
    name="rx_older_by_practice",
    numerator=had_rx,
    denominator=older,
    group_by={"practice": registration.practice_pseudo_id},
    intervals=intervals,
)
