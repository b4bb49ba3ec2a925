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

# The same patients as TPP-shaped tables (extra columns, plus addresses and apcs).
tpp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tpp")
os.makedirs(tpp, exist_ok=True)
ctv3 = {"22298006": "X200E", "38341003": "XE0Uc", "44054006": "X40J5", "195967001": "H33..", "73211009": "C10..",
        "271737000": "XE0ra", "60573004": "22K..", "27113001": "22A..", "56265001": "G3...", "49436004": "G573."}
def write_to(folder, name, header, rows):
    with open(os.path.join(folder, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n"); w.writerow(header); w.writerows(rows)
write_to(tpp, "patients", ["patient_id", "date_of_birth", "sex", "date_of_death"], patients)
tpp_events = []
for i, (pid, date, code, value) in enumerate(events):
    tpp_events.append([pid, date, code, "", value, 1000 + i])
    tpp_events.append([pid, date, "", ctv3[code], value, 1000 + i])
write_to(tpp, "clinical_events", ["patient_id", "date", "snomedct_code", "ctv3_code", "numeric_value", "consultation_id"], tpp_events)
write_to(tpp, "medications", ["patient_id", "date", "dmd_code", "consultation_id"], [m + [5000 + i] for i, m in enumerate(meds)])
regions = ["North East", "London", "South West", "East", "West Midlands"]
write_to(tpp, "practice_registrations", ["patient_id", "start_date", "end_date", "practice_pseudo_id", "practice_stp", "practice_nuts1_region_name", "practice_systmone_go_live_date"],
         [r + [f"E540000{r[3]:02d}", regions[r[3] % len(regions)], "2009-04-01"] for r in regs])
places = ["Home", "Hospital", "Care Home", "Hospice"]
write_to(tpp, "ons_deaths", ["patient_id", "date", "underlying_cause_of_death"] + [f"cause_of_death_{i:02d}" for i in range(1, 16)] + ["place"],
         [d + [places[d[0] % 4]] for d in deaths])
addresses = []
for pid in range(1, N + 1):
    start = d(1990, 2015)
    for k in range(random.randint(1, 2)):
        end = start + datetime.timedelta(days=random.randint(300, 5000))
        last = k == 1 or random.random() < 0.5
        addresses.append([pid, 100000 + len(addresses), start.isoformat(), "" if last else end.isoformat(), random.choice([0, 0, 0, 1]),
                          random.randint(1, 8), random.randrange(0, 32900, 100), f"E020{random.randint(0, 99999):05d}",
                          "T" if random.random() < 0.9 else "F", "F", "F", "F"])
        if last: break
        start = end
write_to(tpp, "addresses", ["patient_id", "address_id", "start_date", "end_date", "address_type", "rural_urban_classification", "imd_rounded",
                            "msoa_code", "has_postcode", "care_home_is_potential_match", "care_home_requires_nursing", "care_home_does_not_require_nursing"], addresses)
icd_codes = ["I219", "E119", "J449", "N179", "I801", "A419", "J189"]
apcs_rows = []
for pid in range(1, N + 1):
    for _ in range(random.choice([0, 0, 0, 1, 2])):
        adm = d(2012, 2024)
        diags = ",".join(random.sample(icd_codes, random.randint(1, 3)))
        apcs_rows.append([pid, 7000 + len(apcs_rows), adm.isoformat(), (adm + datetime.timedelta(days=random.randint(0, 20))).isoformat(),
                          "19", "1", "", "11", diags.split(",")[0], "", "||" + diags + " ", "", random.randint(0, 3), "1"])
write_to(tpp, "apcs", ["patient_id", "apcs_ident", "admission_date", "discharge_date", "discharge_destination", "discharge_method",
                       "spell_core_hrg_sus", "admission_method", "primary_diagnosis", "secondary_diagnosis", "all_diagnoses",
                       "all_procedures", "days_in_critical_care", "patient_classification"], apcs_rows)
print("tpp:", len(tpp_events), len(addresses), len(apcs_rows))
