# The benchmark population: every generated patient is kept. The definition names
# every codelist of the workloads so that their codes are in the generator's code
# universe (each at a random Zipf rank).
#
#   ehrfusion create-dummy-tables benches/workloads/population.py DIR:parquet \
#       --profile population --population-size N
from pathlib import Path

from ehrql import codelist_from_csv, create_dataset
from ehrql.tables.tpp import addresses, clinical_events, medications, patients, practice_registrations

CODELISTS = Path(__file__).parent.parent / "codelists"
dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
for path in sorted(CODELISTS.glob("*.csv")):
    codes = codelist_from_csv(path, column="code")
    if path.stem in ("diabetes_drugs", "statins"):
        setattr(dataset, path.stem, medications.where(medications.dmd_code.is_in(codes)).exists_for_patient())
    else:
        setattr(dataset, path.stem, clinical_events.where(clinical_events.snomedct_code.is_in(codes)).exists_for_patient())
dataset.bmi_value = clinical_events.numeric_value.maximum_for_patient()
dataset.registered = practice_registrations.exists_for_patient()
dataset.address = addresses.imd_rounded.maximum_for_patient()
