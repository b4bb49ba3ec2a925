from ehrql import INTERVAL, create_measures, years
from ehrql.tables.core import patients

my_measures = create_measures()
my_measures.define_measure(
    name="everyone",
    numerator=patients.sex == "female",
    denominator=patients.exists_for_patient(),
    intervals=years(1).starting_on("2020-01-01"),
)
