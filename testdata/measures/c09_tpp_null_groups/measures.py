# TPP tables: group by practice region and address IMD quintile at
# INTERVAL.start_date (null for patients without a registration/address then), by
# a bool (died by INTERVAL.end_date; null for patients with no recorded death) and
# by a date (date of death, mostly null). Null is its own group.
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.tpp import addresses, apcs, clinical_events, patients, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

region = practice_registrations.for_patient_on(INTERVAL.start_date).practice_nuts1_region_name
imd = addresses.for_patient_on(INTERVAL.start_date).imd_quintile
died = patients.date_of_death.is_on_or_before(INTERVAL.end_date)

admitted = apcs.where(apcs.admission_date.is_during(INTERVAL)).exists_for_patient()
had_event = clinical_events.where(clinical_events.date.is_during(INTERVAL)).exists_for_patient()

measures.define_defaults(
    denominator=patients.exists_for_patient(),
    intervals=years(3).starting_on("2019-01-01"),
)
measures.define_measure(name="admitted_by_region", numerator=admitted, group_by={"region": region})
measures.define_measure(name="event_by_imd", numerator=had_event, group_by={"imd": imd})
measures.define_measure(
    name="event_by_region_imd",
    numerator=had_event,
    group_by={"region": region, "imd": imd},
)
measures.define_measure(name="event_by_died", numerator=had_event, group_by={"died": died})
measures.define_measure(
    name="admitted_by_death_date",
    numerator=admitted,
    group_by={"death_date": patients.date_of_death},
)
