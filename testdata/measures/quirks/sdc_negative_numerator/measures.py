from ehrql import INTERVAL, create_measures, months, years
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()
registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()

# Disclosure control left on with a numerator that can be negative: the
# reference fails with a bare AssertionError (apply_sdc asserts value >= 0)
# rather than a user-facing error.
measures.define_measure(
    name="age_offset",
    numerator=patients.age_on(INTERVAL.start_date) - 200,
    denominator=registered,
    intervals=years(1).starting_on("2020-01-01"),
)
