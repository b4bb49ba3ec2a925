# Integer denominator (number of events in the interval; patients with zero
# events are outside the population), with int and bool numerators, grouped by
# the practice a patient was registered with at INTERVAL.start_date (an int
# group, null for patients not registered then).
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import clinical_events, medications, practice_registrations

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
coded = events.where(clinical_events.snomedct_code.is_in(["38341003", "271737000"]))
practice = practice_registrations.for_patient_on(INTERVAL.start_date).practice_pseudo_id
had_rx = medications.where(medications.date.is_during(INTERVAL)).exists_for_patient()

intervals = years(4).starting_on("2018-01-01")

measures.define_measure(
    name="coded_share",
    numerator=coded.count_for_patient(),
    denominator=events.count_for_patient(),
    group_by={"practice": practice},
    intervals=intervals,
)
measures.define_measure(
    name="rx_weighted",
    numerator=had_rx,
    denominator=events.count_for_patient(),
    intervals=intervals,
)
