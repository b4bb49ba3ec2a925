# Helpers imported from the definition's own folder (`from variables import ...`).
from ehrql.tables.core import clinical_events


def events_in(codes, start, end):
    return clinical_events.where(clinical_events.snomedct_code.is_in(codes)).where(
        clinical_events.date.is_on_or_between(start, end)
    )
