# A study run for several index dates (get_parameter) over a cohort list supplied
# as a file (table_from_file).
import datetime

from ehrql import create_dataset, get_parameter
from ehrql.tables import PatientFrame, Series, table_from_file
from ehrql.tables.core import clinical_events, medications, patients

index_date = get_parameter("index_date", default="2020-01-01")
lookback_days = int(get_parameter("lookback_days", default="365"))


@table_from_file("analysis/cohort.csv")
class cohort(PatientFrame):
    arm = Series(str)
    enrolled_on = Series(datetime.date)
    weight = Series(float)


dataset = create_dataset()
dataset.define_population(cohort.exists_for_patient() & patients.is_alive_on(index_date))
dataset.arm = cohort.arm
dataset.enrolled_on = cohort.enrolled_on
dataset.weight = cohort.weight
dataset.days_enrolled = (datetime.date.fromisoformat(index_date) - cohort.enrolled_on).days
recent = medications.where(medications.date.is_on_or_between(datetime.date.fromisoformat(index_date) - datetime.timedelta(days=lookback_days), index_date))
dataset.recent_prescriptions = recent.count_for_patient()
dataset.distinct_medicines = recent.dmd_code.count_distinct_for_patient()
dataset.last_event_code = clinical_events.sort_by(clinical_events.date).last_for_patient().snomedct_code
