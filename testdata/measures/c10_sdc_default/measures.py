# Disclosure control left at its default (enabled): counts <= 7 become 0, others
# are rounded to the nearest 5, and the ratio is recomputed from the rounded
# values (empty when the rounded denominator is 0).
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import clinical_events, patients, practice_registrations

measures = create_measures()

registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()

measures.define_defaults(
    numerator=had_event,
    denominator=registered,
    intervals=years(4).starting_on("2017-01-01"),
)
measures.define_measure(name="overall")
measures.define_measure(name="by_sex", group_by={"sex": patients.sex})
