# Many measures sharing one denominator and interval set: the same numerator with
# different group_bys, different numerators with the same group_by, an exact
# duplicate under another name, and group columns used by only some measures
# (empty for the others in the combined output).
from ehrql import INTERVAL, case, create_measures, when, years
from ehrql.tables.core import clinical_events, medications, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

registration = practice_registrations.for_patient_on(INTERVAL.start_date)
practice_group = case(
    when(registration.practice_pseudo_id <= 3).then("practices 1-3"),
    when(registration.practice_pseudo_id <= 6).then("practices 4-6"),
    otherwise="practices 7+",
)
decade = case(
    when(patients.date_of_birth.year < 1950).then(1),
    when(patients.date_of_birth.year < 1970).then(2),
    when(patients.date_of_birth.year < 1990).then(3),
    otherwise=4,
)

had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()
had_rx = medications.where(medications.date.is_during(INTERVAL)).exists_for_patient()
rx_count = medications.where(medications.date.is_during(INTERVAL)).count_for_patient()

measures.define_defaults(
    denominator=patients.exists_for_patient(),
    intervals=years(2).starting_on("2016-01-01"),
)
measures.define_measure(name="event_by_sex", numerator=had_event, group_by={"sex": patients.sex})
measures.define_measure(name="rx_by_sex", numerator=had_rx, group_by={"sex": patients.sex})
measures.define_measure(name="event_by_group", numerator=had_event, group_by={"practice_group": practice_group})
measures.define_measure(name="rx_count_by_sex", numerator=rx_count, group_by={"sex": patients.sex})
measures.define_measure(
    name="event_by_sex_and_decade",
    numerator=had_event,
    group_by={"sex": patients.sex, "birth_cohort": decade},
)
measures.define_measure(name="event_by_sex_again", numerator=had_event, group_by={"sex": patients.sex})
measures.define_measure(name="event_total", numerator=had_event)
measures.define_measure(name="rx_by_cohort", numerator=had_rx, group_by={"birth_cohort": decade})
