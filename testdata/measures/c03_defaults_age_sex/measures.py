# define_defaults for numerator, denominator, intervals and group_by; group_by on
# sex, on an age band computed at INTERVAL.start_date (null for the under-20s, as
# no branch matches), and on both. An explicit empty group_by overrides the
# default one.
from ehrql import INTERVAL, case, create_measures, when, years
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

age = patients.age_on(INTERVAL.start_date)
age_band = case(
    when((age >= 20) & (age < 40)).then("20-39"),
    when((age >= 40) & (age < 60)).then("40-59"),
    when(age >= 60).then("60+, older"),
)

registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
alive = patients.is_alive_on(INTERVAL.start_date)
had_event = (
    clinical_events.where(clinical_events.date.is_during(INTERVAL))
    .where(clinical_events.snomedct_code.is_in(["38341003", "44054006", "22298006"]))
    .exists_for_patient()
)

measures.define_defaults(
    numerator=had_event,
    denominator=registered & alive,
    intervals=years(3).starting_on("2019-01-01"),
    group_by={"sex": patients.sex},
)

measures.define_measure(name="by_sex")
measures.define_measure(name="by_age_band", group_by={"age_band": age_band})
measures.define_measure(
    name="by_sex_and_age_band",
    group_by={"sex": patients.sex, "age_band": age_band},
)
measures.define_measure(name="overall", group_by={})
