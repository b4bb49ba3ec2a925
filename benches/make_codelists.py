"""Writes the benchmark workloads' codelists (benches/codelists/*.csv).

The codes are made up but shaped like SNOMED-CT and dm+d identifiers. The population
generator places every code a definition mentions into its code universe at a
random Zipf rank, so each codelist mixes common and rare codes.

    python3 benches/make_codelists.py
"""
import csv
import random
from pathlib import Path

OUT = Path(__file__).parent / "codelists"
SYMPTOMS = [
    "abdominal_pain", "back_pain", "breathlessness", "chest_pain", "cough", "diarrhoea",
    "dizziness", "fatigue", "fever", "headache", "joint_pain", "nausea", "palpitations",
    "rash", "sleep_problems", "sore_throat", "urinary_symptoms", "weight_loss", "wheeze",
    "anxiety",
]
COMPLICATIONS = ["retinopathy", "neuropathy", "nephropathy", "foot_ulcer", "hypoglycaemia"]


def write(name, codes, description):
    with open(OUT / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["code", "term"])
        for i, code in enumerate(codes):
            w.writerow([code, f"{description} {i + 1}"])


def main():
    rng = random.Random(20261121)
    used = set()

    def codes(n, lo, hi):
        out = []
        while len(out) < n:
            c = str(rng.randrange(lo, hi))
            if c not in used:
                used.add(c)
                out.append(c)
        return out

    OUT.mkdir(exist_ok=True)
    for name in SYMPTOMS:
        write(f"symptom_{name}", codes(rng.randrange(8, 30), 100_000_000, 999_999_999), name.replace("_", " "))
    for name in COMPLICATIONS:
        write(f"complication_{name}", codes(rng.randrange(5, 15), 100_000_000, 999_999_999), name.replace("_", " "))
    write("diabetes", codes(25, 100_000_000, 999_999_999), "diabetes diagnosis")
    write("bmi", codes(2, 100_000_000, 999_999_999), "body mass index")
    write("diabetes_drugs", codes(40, 10_000_000_000, 99_999_999_999), "antidiabetic")
    write("statins", codes(20, 10_000_000_000, 99_999_999_999), "statin")


if __name__ == "__main__":
    main()
