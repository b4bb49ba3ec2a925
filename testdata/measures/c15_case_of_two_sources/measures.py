# TPP tables: a group from a case() whose branches take values from two sources
# (the latest clinical event's code, else the patient's sex, else "Missing"), the
# shape pharmacy-first's breakdown measures use. A branch guarded by
# `x.is_null() & y.is_not_null()` used to stop DataFusion planning the sums.
from ehrql import INTERVAL, case, create_measures, months, when
from ehrql.tables.tpp import clinical_events, patients, practice_registrations

latest = (
    clinical_events.where(clinical_events.date.is_on_or_before(INTERVAL.end_date))
    .sort_by(clinical_events.date)
    .last_for_patient()
)
code = latest.snomedct_code
source = case(
    when(code.is_not_null()).then("coded"),
    when(code.is_null() & patients.sex.is_not_null()).then(patients.sex),
    otherwise="Missing",
)

measures = create_measures()
measures.configure_disclosure_control(enabled=False)
measures.define_measure(
    name="event_by_source",
    numerator=clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient(),
    denominator=practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
    | patients.exists_for_patient(),
    group_by={"source": source},
    intervals=months(4).starting_on("2020-01-01"),
)
