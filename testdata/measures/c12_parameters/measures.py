# Parameters passed on the command line after `--`, read with get_parameter.
from ehrql import INTERVAL, create_measures, get_parameter, months, years
from ehrql.tables.core import medications, patients, practice_registrations

start = get_parameter("start")
count = get_parameter("count", type=int)
codes = get_parameter("codes")
min_age = get_parameter("min_age", type=int, default=18)

measures = create_measures()
measures.configure_disclosure_control(enabled=False)

eligible = practice_registrations.for_patient_on(INTERVAL.start_date).exists_for_patient() & (
    patients.age_on(INTERVAL.start_date) >= min_age
)
rx = medications.where(medications.date.is_during(INTERVAL)).where(
    medications.dmd_code.is_in(codes)
)

measures.define_measure(
    name="rx_by_sex",
    numerator=rx.exists_for_patient(),
    denominator=eligible,
    group_by={"sex": patients.sex},
    intervals=years(count).starting_on(start),
)
