# Assurance tests for dataset_definition.py (`ehrql assure`).
from datetime import date

from dataset_definition import dataset  # noqa: F401 (assure reads it from here)

test_data = {
    1: {
        "patients": {"date_of_birth": date(1950, 1, 1), "sex": "female"},
        "clinical_events": [
            {"date": date(2015, 3, 1), "snomedct_code": "38341003"},
            {"date": date(2016, 3, 1), "snomedct_code": "195967001"},
        ],
        "medications": [],
        "expected_in_population": True,
        "expected_columns": {"n_events": 2, "latest_group": "asthma", "age_band": "65+"},
    },
}
