# Shaped like a real study: a helper module imported through the repository root
# (`analysis.codelists`), one from the definition's folder, parameters parsed both by
# argparse on sys.argv and by get_parameter, print() for progress, and a table
# written by an earlier action (table_from_file).
import argparse
import datetime
import sys

from ehrql import case, create_dataset, get_parameter, table_from_file, when, years
from ehrql.tables.core import clinical_events, medications, patients

from analysis.codelists import cardio, everything, first_two, groups, resp
from variables import events_in

parser = argparse.ArgumentParser()
parser.add_argument("--start-date", dest="start_date", required=True)
parser.add_argument("--groups", nargs="+", default=[])
parser.add_argument("--lookback", type=int, default=365)
args = parser.parse_args(sys.argv[1:])

lookback = get_parameter("lookback", type=int)
chosen = get_parameter("groups")
print(f"running {sys.argv[0]} from {args.start_date} for {chosen}")

start = datetime.date.fromisoformat(args.start_date)
end = start + datetime.timedelta(days=lookback)

cohort = table_from_file("output/cohort.arrow", columns={"sex": str, "birth_year": int})

codes = []
if "cardio" in chosen:
    codes += cardio
if "resp" in chosen:
    codes += resp

dataset = create_dataset()
dataset.define_population(cohort.exists_for_patient())
dataset.sex = cohort.sex
dataset.decade = (cohort.birth_year // 10) * 10
dataset.n_events = events_in(codes, start, end).count_for_patient()
dataset.n_any = events_in(everything, start, end).count_for_patient()
dataset.has_first_two = events_in(first_two, start, end).exists_for_patient()
latest = events_in(list(groups), start, end).sort_by(clinical_events.date).last_for_patient()
dataset.latest_group = latest.snomedct_code.to_category(groups)
dataset.latest_date = latest.date
dataset.age_band = case(
    when(patients.age_on(end) < 40).then("<40"),
    when(patients.age_on(end) < 65).then("40-64"),
    otherwise="65+",
)
dataset.medications = medications.where(medications.date.is_on_or_between(start, end)).count_for_patient()
