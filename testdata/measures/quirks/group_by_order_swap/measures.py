# Two measures in the same (denominator, intervals) group whose group_by dicts
# name the same columns in a different order. The reference in-memory engine
# treats ("sex", "practice") and ("practice", "sex") as two grouping sets with
# the same grouping id, so every numerator and denominator of both measures is
# counted twice (compare measure "by_sex_only" and the undoubled totals).
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

registration = practice_registrations.for_patient_on(INTERVAL.start_date)
measures.define_defaults(
    numerator=clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient(),
    denominator=registration.exists_for_patient(),
    intervals=years(1).starting_on("2015-01-01"),
)
measures.define_measure(name="sex_then_practice", group_by={"sex": patients.sex, "practice": registration.practice_pseudo_id})
measures.define_measure(name="practice_then_sex", group_by={"practice": registration.practice_pseudo_id, "sex": patients.sex})
measures.define_measure(name="by_sex_only", group_by={"sex": patients.sex})
