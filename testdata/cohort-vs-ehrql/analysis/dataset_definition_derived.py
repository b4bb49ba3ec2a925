# ehrQL counterpart of study_definition_derived.py, with the TPP backend's
# semantics spelled out: a summary "on the most recent day" is over the events of
# the latest day with a matching code; GP consultations are appointments in one
# of the statuses TPP counts as seen; a patient still registered somewhere has
# not deregistered (an open registration ends on 9999-12-31).
from ehrql import case, claim_permissions, create_dataset, days, when, years

from ehrql.tables.tpp import appointments, clinical_events as events, practice_registrations

claim_permissions("appointments")

covid = ["840539006", "1240751000000100"]
asthma = ["195967001", "389145006"]
asthma_kinds = {"195967001": "asthma", "389145006": "allergic", "266361008": "intrinsic"}
bp = ["271649006"]

index_date = "2020-03-01"
dataset = create_dataset()
dataset.configure_dummy_data(population_size=200)
current = practice_registrations.where(
    (practice_registrations.start_date <= index_date)
    & (practice_registrations.end_date.is_null() | (practice_registrations.end_date > index_date))
)
dataset.define_population(current.exists_for_patient())

dataset.covid_date = events.where(events.snomedct_code.is_in(covid) & (events.date >= index_date)).date.minimum_for_patient()
asthma_events = events.where(events.snomedct_code.is_in(asthma))
dataset.asthma_after_covid = asthma_events.where(
    asthma_events.date.is_on_or_between(dataset.covid_date - years(5), dataset.covid_date + days(28))
).exists_for_patient()
dataset.asthma_date = asthma_events.where(asthma_events.date <= index_date).date.maximum_for_patient()
dataset.earliest = case(
    when(dataset.covid_date.is_null()).then(dataset.asthma_date),
    when(dataset.asthma_date.is_null()).then(dataset.covid_date),
    when(dataset.covid_date <= dataset.asthma_date).then(dataset.covid_date),
    otherwise=dataset.asthma_date,
)
bp_events = events.where(events.snomedct_code.is_in(bp))
bp_date = bp_events.date.maximum_for_patient()
dataset.latest = case(
    when(dataset.covid_date.is_null()).then(bp_date),
    when(bp_date.is_null()).then(dataset.covid_date),
    when(dataset.covid_date >= bp_date).then(dataset.covid_date),
    otherwise=bp_date,
)
kinds = events.where(events.snomedct_code.is_in(list(asthma_kinds)))
last_kind = kinds.where(kinds.date <= index_date).sort_by(kinds.date).last_for_patient()
dataset.asthma_kind = last_kind.snomedct_code.to_category(asthma_kinds)
dataset.asthma_count = kinds.where(kinds.date.is_on_or_between("2018-03-01", "2020-03-31")).count_for_patient()
recent_bp = bp_events.where(bp_events.date.is_on_or_between("2015-03-01", index_date))
latest_day = recent_bp.date.maximum_for_patient()
dataset.bp_mean = recent_bp.where(recent_bp.date == latest_day).numeric_value.mean_for_patient()
dataset.bp_max = recent_bp.numeric_value.maximum_for_patient()
seen = appointments.where(appointments.status.is_in(["Arrived", "Waiting", "In Progress", "Finished", "Patient Walked Out", "Visit"]))
dataset.consultations = seen.where(seen.seen_date.is_on_or_between("2019-03-01", index_date)).count_for_patient()
last_end = practice_registrations.end_date.when_null_then("9999-12-31").maximum_for_patient()
dataset.deregistered = case(when((last_end >= index_date) & (last_end < "9999-12-31")).then(last_end))
# Missing numbers are 0 in cohort-extractor's expressions, a missing category ''.
bp_mean = dataset.bp_mean.when_null_then(0)
dataset.risk = case(
    when((bp_mean > 2.5) | ((dataset.asthma_count >= 2) & (dataset.consultations != 0))).then("high"),
    when((dataset.asthma_kind.when_null_then("") == "allergic") | (dataset.bp_max.when_null_then(0) > 1.5)).then("medium"),
    otherwise="low",
)
