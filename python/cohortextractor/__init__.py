"""cohort-extractor's study definition language, run by ehrfusion: study
definitions written for `cohortextractor generate_cohort` import from here
unchanged and lower onto ehrfusion's query model."""

from . import patients
from .codelistlib import codelist, codelist_from_csv, combine_codelists, filter_codes_by_category
from .measure import Measure
from .study_definition import StudyDefinition

__version__ = "ehrfusion"


class MissingParameterError(KeyError):
    pass


class ParamDict(dict):
    """`params["key"]` for `--param key=value`; a missing key says which."""

    def __getitem__(self, key):
        try:
            return super().__getitem__(key)
        except KeyError:
            raise MissingParameterError(f"missing parameter {key!r}: pass it with --param {key}=VALUE") from None


params = ParamDict()

__all__ = ["StudyDefinition", "Measure", "codelist", "codelist_from_csv", "filter_codes_by_category", "combine_codelists", "params", "patients"]
