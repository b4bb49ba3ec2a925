# Workload (e), ehrQL measures: three measures over monthly intervals (60 months from
# January 2019 by default; `-- --intervals N` for N months), each grouped by sex, age
# band at the interval start and the region of the practice the patient is
# registered with on the interval start. Denominator: registered and alive on the
# interval start. Numerators: any diabetes code in the month, any statin
# prescription in the month, and the number of BMI codes in the month. Disclosure
# control is off so that every system's figures can be compared exactly.
#
#   ehrfusion generate-measures benches/workloads/measures.py --data DIR --output out.csv
#   python -m ehrql generate-measures benches/workloads/measures.py --dummy-tables DIR --output out.csv
from pathlib import Path

from ehrql import INTERVAL, case, codelist_from_csv, create_measures, get_parameter, months, when
from ehrql.tables.tpp import clinical_events, medications, patients, practice_registrations

CODELISTS = Path(__file__).parent.parent / "codelists"
diabetes = codelist_from_csv(CODELISTS / "diabetes.csv", column="code")
statins = codelist_from_csv(CODELISTS / "statins.csv", column="code")
bmi = codelist_from_csv(CODELISTS / "bmi.csv", column="code")

intervals = months(get_parameter("intervals", type=int, default=60)).starting_on("2019-01-01")

registration = practice_registrations.for_patient_on(INTERVAL.start_date)
age = patients.age_on(INTERVAL.start_date)
age_band = case(
    when((age >= 0) & (age < 18)).then("0-17"),
    when((age >= 18) & (age < 40)).then("18-39"),
    when((age >= 40) & (age < 65)).then("40-64"),
    when((age >= 65) & (age < 80)).then("65-79"),
    when(age >= 80).then("80+"),
)

events = clinical_events.where(clinical_events.date.is_during(INTERVAL))
prescriptions = medications.where(medications.date.is_during(INTERVAL))

measures = create_measures()
measures.configure_disclosure_control(enabled=False)
measures.define_defaults(
    denominator=registration.exists_for_patient() & patients.is_alive_on(INTERVAL.start_date),
    intervals=intervals,
    group_by={"sex": patients.sex, "age_band": age_band, "region": registration.practice_nuts1_region_name},
)
measures.define_measure(
    name="diabetes_code",
    numerator=events.where(events.snomedct_code.is_in(diabetes)).exists_for_patient(),
)
measures.define_measure(
    name="statin_prescription",
    numerator=prescriptions.where(prescriptions.dmd_code.is_in(statins)).exists_for_patient(),
)
measures.define_measure(
    name="bmi_recordings",
    numerator=events.where(events.snomedct_code.is_in(bmi)).count_for_patient(),
)
