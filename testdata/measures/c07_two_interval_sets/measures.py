# The same numerator and denominator evaluated over different interval sets
# (years, weeks via ending_on, days across a leap day). Measures sharing a
# denominator but not intervals are calculated separately, so the output is
# grouped by interval set in order of first definition.
from ehrql import INTERVAL, create_measures, days, weeks, years
from ehrql.tables.core import clinical_events, medications, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

registered = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient()
had_activity = (
    clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()
    | medications.where(medications.date.is_during(INTERVAL)).exists_for_patient()
)

yearly = years(2).starting_on("2018-01-01")
weekly = weeks(3).ending_on("2020-03-01")
daily = days(4).starting_on("2020-02-27")

measures.define_defaults(numerator=had_activity, denominator=registered)

measures.define_measure(name="yearly", intervals=yearly)
measures.define_measure(name="weekly_by_sex", intervals=weekly, group_by={"sex": patients.sex})
measures.define_measure(name="yearly_by_sex", intervals=yearly, group_by={"sex": patients.sex})
measures.define_measure(name="daily", intervals=daily)
measures.define_measure(name="weekly", intervals=weekly)
