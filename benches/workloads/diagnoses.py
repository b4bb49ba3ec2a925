# Workload (a), diagnoses and deaths: patients diagnosed with diabetes in either of
# two periods, their diagnoses per period, death, sex and latest BMI.
from pathlib import Path

from ehrql import codelist_from_csv, create_dataset
from ehrql.tables.tpp import clinical_events, patients

CODELISTS = Path(__file__).parent.parent / "codelists"
diabetes = codelist_from_csv(CODELISTS / "diabetes.csv", column="code")
bmi_codes = codelist_from_csv(CODELISTS / "bmi.csv", column="code")

diagnoses = clinical_events.where(clinical_events.snomedct_code.is_in(diabetes))
early = diagnoses.where(diagnoses.date.is_on_or_between("2010-01-01", "2014-12-31"))
late = diagnoses.where(diagnoses.date.is_on_or_between("2015-01-01", "2019-12-31"))

dataset = create_dataset()
dataset.define_population(early.exists_for_patient() | late.exists_for_patient())
dataset.diagnoses_2010_2014 = early.count_for_patient()
dataset.diagnoses_2015_2019 = late.count_for_patient()
dataset.sex = patients.sex
dataset.date_of_death = patients.date_of_death
dataset.age_at_death = patients.age_on(patients.date_of_death)

bmi = clinical_events.where(
    clinical_events.snomedct_code.is_in(bmi_codes)
    & clinical_events.numeric_value.is_not_null()
    & clinical_events.date.is_on_or_before("2019-12-31")
)
latest_bmi = bmi.sort_by(bmi.date, bmi.numeric_value).last_for_patient()
dataset.latest_bmi = latest_bmi.numeric_value
dataset.latest_bmi_date = latest_bmi.date
