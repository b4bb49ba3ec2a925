"""Writes the synthetic test tables in data/csv (deterministic: fixed seed)."""
import random, datetime, csv, os
random.seed(7)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "csv")
N = 60
def d(y0, y1):
    start = datetime.date(y0, 1, 1).toordinal(); end = datetime.date(y1, 12, 31).toordinal()
    return datetime.date.fromordinal(random.randint(start, end))
snomed = ["22298006", "38341003", "44054006", "195967001", "73211009", "271737000", "60573004", "27113001", "56265001", "49436004"]
dmd = ["39113611000001102", "318423004", "41549009", "3214011000001100", "10525011000001107"]
icd = ["I21", "I219", "E119", "J449", "C349", "U071", "I64"]
patients, events, meds, regs, deaths = [], [], [], [], []
for pid in range(1, N + 1):
    dob = d(1930, 2015).replace(day=1)
    sex = random.choice(["female", "male", "female", "male", "intersex", "unknown"])
    dod = None
    if random.random() < 0.2:
        dod = d(2015, 2024)
        if dod < dob: dod = None
    patients.append([pid, dob.isoformat(), sex, dod.isoformat() if dod else ""])
    for _ in range(random.randint(0, 12)):
        date = d(2010, 2024)
        code = random.choice(snomed)
        value = "" if random.random() < 0.5 else round(random.uniform(12, 45), 1)
        if random.random() < 0.05: date = None
        events.append([pid, date.isoformat() if date else "", code, value])
    for _ in range(random.randint(0, 6)):
        meds.append([pid, d(2012, 2024).isoformat(), random.choice(dmd)])
    start = d(1995, 2018)
    for _ in range(random.randint(1, 3)):
        end = start + datetime.timedelta(days=random.randint(200, 4000))
        open_ended = random.random() < 0.4
        regs.append([pid, start.isoformat(), "" if open_ended else end.isoformat(), random.randint(1, 9)])
        if open_ended: break
        start = end + datetime.timedelta(days=random.randint(0, 60))
    if dod and random.random() < 0.8:
        causes = [random.choice(icd) if random.random() < 0.3 else "" for _ in range(15)]
        deaths.append([pid, dod.isoformat(), random.choice(icd)] + causes)
# a patient with events but no patients row, and a patients row with no events
events.append([N + 1, "2020-05-05", snomed[0], ""])
def write(name, header, rows):
    with open(os.path.join(out, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n"); w.writerow(header); w.writerows(rows)
write("patients", ["patient_id", "date_of_birth", "sex", "date_of_death"], patients)
write("clinical_events", ["patient_id", "date", "snomedct_code", "numeric_value"], events)
write("medications", ["patient_id", "date", "dmd_code"], meds)
write("practice_registrations", ["patient_id", "start_date", "end_date", "practice_pseudo_id"], regs)
write("ons_deaths", ["patient_id", "date", "underlying_cause_of_death"] + [f"cause_of_death_{i:02d}" for i in range(1, 16)], deaths)
print(len(patients), len(events), len(meds), len(regs), len(deaths))
