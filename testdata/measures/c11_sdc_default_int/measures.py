# Disclosure control on, with integer numerator and denominator (event counts
# over two-year windows), so the rounded values are larger.
from datetime import date

from ehrql import INTERVAL, create_measures
from ehrql.tables.core import clinical_events, medications, patients

measures = create_measures()

events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
rx = medications.where(medications.date.is_during(INTERVAL))
intervals = [
    (date(2012, 1, 1), date(2013, 12, 31)),
    (date(2016, 1, 1), date(2017, 12, 31)),
]

measures.define_measure(
    name="coded_events",
    numerator=events.where(clinical_events.snomedct_code.is_in(["44054006", "22298006", "56265001"])).count_for_patient(),
    denominator=events.count_for_patient(),
    intervals=intervals,
)
measures.define_measure(
    name="rx_per_patient_by_sex",
    numerator=rx.count_for_patient(),
    denominator=patients.exists_for_patient(),
    group_by={"sex": patients.sex},
    intervals=intervals,
)
