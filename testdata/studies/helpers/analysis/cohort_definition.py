from ehrql import create_dataset
from ehrql.tables.core import patients

dataset = create_dataset()
dataset.define_population(patients.date_of_birth.is_before("1990-01-01"))
dataset.sex = patients.sex
dataset.birth_year = patients.date_of_birth.year
