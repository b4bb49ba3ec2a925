"""`Measure`: a ratio over a study's columns, kept as cohort-extractor defines it
(ehrfusion's `cohortextractor generate_measures` is not built yet)."""


class Measure:
    POPULATION_COLUMN = "population"

    def __init__(self, id, denominator, numerator, group_by=None, small_number_suppression=False):
        self.id, self.denominator, self.numerator = id, denominator, numerator
        if group_by is None:
            self.group_by = []
        elif not isinstance(group_by, (list, tuple)):
            self.group_by = [group_by]
        else:
            self.group_by = list(group_by)
        self.small_number_suppression = small_number_suppression
        if self.group_by != [self.POPULATION_COLUMN]:
            for role in ("numerator", "denominator"):
                if getattr(self, role) in self.group_by:
                    raise ValueError(f"Column '{getattr(self, role)}' appears in both {role} and group_by")
