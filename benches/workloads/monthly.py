# Workload (d), the shape of a measures study: the same variables at 24 monthly
# index dates (registered through the month, diabetes diagnoses and statin
# prescriptions in the month): 72 variables.
from datetime import date, timedelta
from pathlib import Path

from ehrql import codelist_from_csv, create_dataset
from ehrql.tables.tpp import clinical_events, medications, practice_registrations

CODELISTS = Path(__file__).parent.parent / "codelists"
diabetes = codelist_from_csv(CODELISTS / "diabetes.csv", column="code")
statins = codelist_from_csv(CODELISTS / "statins.csv", column="code")


def month(i):
    """The first and last day of the i-th month from January 2018."""
    start = date(2018 + i // 12, 1 + i % 12, 1)
    following = date(2018 + (i + 1) // 12, 1 + (i + 1) % 12, 1)
    return start, following - timedelta(days=1)


dataset = create_dataset()
first, _ = month(0)
_, last = month(23)
dataset.define_population(
    practice_registrations.where(practice_registrations.start_date.is_on_or_before(last))
    .except_where(practice_registrations.end_date.is_before(first))
    .exists_for_patient()
)
diagnoses = clinical_events.where(clinical_events.snomedct_code.is_in(diabetes))
prescriptions = medications.where(medications.dmd_code.is_in(statins))
for i in range(24):
    start, end = month(i)
    label = start.strftime("%Y_%m")
    setattr(dataset, f"registered_{label}", practice_registrations.spanning(start, end).exists_for_patient())
    setattr(dataset, f"diagnoses_{label}", diagnoses.where(diagnoses.date.is_on_or_between(start, end)).count_for_patient())
    setattr(dataset, f"statins_{label}", prescriptions.where(prescriptions.date.is_on_or_between(start, end)).count_for_patient())
