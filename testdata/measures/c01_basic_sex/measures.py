# Proportion of patients with any prescription in a year who were prescribed a
# particular product, broken down by sex. Bool numerator / bool denominator.
from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import medications, patients

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

rx_in_year = medications.where(medications.date.is_during(INTERVAL))
target_rx = rx_in_year.where(medications.dmd_code.is_in(["41549009", "318423004"]))

measures.define_measure(
    name="target_rx_by_sex",
    numerator=target_rx.exists_for_patient(),
    denominator=rx_in_year.exists_for_patient()
    & patients.sex.is_in(["male", "female"]),
    group_by={"sex": patients.sex},
    intervals=years(6).starting_on("2016-01-01"),
)
