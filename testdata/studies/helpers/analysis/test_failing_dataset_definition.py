from datetime import date

from dataset_definition import dataset  # noqa: F401 (a test file that fails on purpose)

test_data = {
    1: {
        "patients": {"date_of_birth": date(1950, 2, 3), "sex": "other"},
        "clinical_events": [{"date": date(2015, 3, 1), "snomedct_code": "38341003", "colour": "red"}],
        "medications": [],
        "expected_in_population": True,
        "expected_columns": {"n_events": 5, "age_band": "65+"},
    },
    2: {
        "patients": [{"date_of_birth": date(1950, 1, 1), "sex": "male"}, {"date_of_birth": date(1951, 1, 1), "sex": "male"}],
        "clinical_events": [],
        "medications": [],
        "expected_in_population": False,
    },
    3: {
        "patients": {"date_of_birth": date(1950, 1, 1), "sex": "male"},
        "clinical_events": [],
        "medications": [],
        "expected_columns": {"nonsense": 1},
    },
}
