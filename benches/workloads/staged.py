# Workload (c), staged: what happens in the 90 days after each patient's first
# diabetes diagnosis (the window depends on a value computed per patient first).
from pathlib import Path

from ehrql import codelist_from_csv, create_dataset, days
from ehrql.tables.tpp import clinical_events, medications, patients

CODELISTS = Path(__file__).parent.parent / "codelists"
diabetes = codelist_from_csv(CODELISTS / "diabetes.csv", column="code")
diabetes_drugs = codelist_from_csv(CODELISTS / "diabetes_drugs.csv", column="code")

first_diagnosis = clinical_events.where(clinical_events.snomedct_code.is_in(diabetes)).date.minimum_for_patient()

dataset = create_dataset()
dataset.define_population(first_diagnosis.is_not_null())
dataset.first_diagnosis = first_diagnosis
dataset.age_at_diagnosis = patients.age_on(first_diagnosis)
dataset.sex = patients.sex

after = clinical_events.where(clinical_events.date.is_on_or_between(first_diagnosis, first_diagnosis + days(90)))
dataset.events_90d = after.count_for_patient()
complication_codes = []
for path in sorted(CODELISTS.glob("complication_*.csv")):
    codes = codelist_from_csv(path, column="code")
    complication_codes += list(codes)
    setattr(dataset, f"{path.stem.removeprefix('complication_')}_90d", after.where(after.snomedct_code.is_in(codes)).count_for_patient())
dataset.first_complication = after.where(after.snomedct_code.is_in(complication_codes)).date.minimum_for_patient()

issued = medications.where(medications.date.is_on_or_between(first_diagnosis, first_diagnosis + days(90)))
dataset.prescriptions_90d = issued.count_for_patient()
dataset.diabetes_drugs_90d = issued.where(issued.dmd_code.is_in(diabetes_drugs)).count_for_patient()
dataset.first_diabetes_drug = issued.where(issued.dmd_code.is_in(diabetes_drugs)).date.minimum_for_patient()
