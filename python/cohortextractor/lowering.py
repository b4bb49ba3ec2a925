"""Each `patients.*` query of a study definition lowered, for one index date, onto
ehrfusion's query language over the TPP tables, with the TPP backend's semantics:

- a column's written value is never null: missing numbers and flags are 0 (IMD -1),
  missing strings and dates empty; flags are 1/0;
- dates are written to their `date_format` (the year alone when none is given);
- a period ("between", "on_or_before", "on_or_after") includes both ends;
- registrations and addresses count on a date when they start on or before it and
  end after it (no end date: still current).

A query returns a `Column`: its written value, and the date it matched on (for
`date_of`, `include_date_of_match` and date expressions naming the column)."""

import datetime
import re

from ehrfusion.language import BaseSeries, case, convert_value, days, function, maximum_of, minimum_of, months, value_series, when, years
from . import dates, files
from .expressions import InvalidExpressionError, Parser

class _TppTables:
    """The TPP tables, imported on first use (the engine provides their schemas
    only once a study is loaded)."""

    def __getattr__(self, name):
        from ehrql.tables import tpp as tables

        return getattr(tables, name)


tpp = _TppTables()

DEFAULTS = {"bool": 0, "int": 0, "float": 0.0, "str": "", "date": ""}
DATE_FORMATS = ("YYYY", "YYYY-MM", "YYYY-MM-DD")


# Queries that cannot be run over the TPP tables as ehrQL has them, and why.
UNAVAILABLE = {
    "admitted_to_icu": "the TPP tables ehrfusion reads (ehrQL's) have no ICNARC intensive care table",
    "with_death_recorded_in_cpns": "the TPP tables ehrfusion reads (ehrQL's) have no CPNS deaths table",
    "with_high_cost_drugs": "the TPP tables ehrfusion reads (ehrQL's) have no high cost drugs table",
    "with_an_isaric_record": "cohort-extractor returns every ISARIC record of a patient (several rows for one patient), which a dataset of one row per patient cannot reproduce",
    "with_complete_history_between": "cohort-extractor itself does not implement it (NotImplementedError)",
    "random_sample": "a random draw per patient, which ehrfusion's query language cannot express",
}


class StudyError(ValueError):
    """A study definition that cannot be run, in cohort-extractor's words."""


class Unavailable(StudyError):
    """A query that the TPP tables ehrfusion reads cannot answer."""


# Set while a study is loaded for expectations dummy data, which runs no query (as
# in cohort-extractor): a query the tables cannot answer then stands as an empty
# column, and its values are drawn from its expectations like any other.
EXPECTATIONS_ONLY = False


def empty_column(kind, date_format=None):
    nothing = value_series(False, "bool")
    if kind == "bool":
        return flag_column(nothing)
    if kind == "date":
        return date_column(case(when(nothing).then(datetime.date(1900, 1, 1))), date_format)
    return Column(kind, value_series(DEFAULTS[kind], kind))


class Column:
    """A lowered column: `kind` is cohort-extractor's column type; `value` the
    written (never null) patient series; `date` the date the value matched on (a
    nullable date series); for date columns `raw` is the date itself, truncated
    to the column's format."""

    def __init__(self, kind, value, date=None, raw=None, date_format=None, default=None, condition=None, categories=None):
        self.kind, self.value, self.date, self.raw, self.date_format = kind, value, date, raw, date_format
        self.default = DEFAULTS[kind] if default is None else default
        # For a flag: the condition it is 1 for, used directly where the flag is
        # tested (simpler plans, and dummy data sees what the population needs).
        self.condition = condition
        # For a text column whose values are known (categorised_as): those values,
        # so that a comparison with a number can convert them as SQL Server does.
        self.categories = categories


def open_ended(frame):
    """A sort key putting periods with no end date (TPP's 9999-12-31) last."""
    return case(when(frame.end_date.is_null()).then(1), otherwise=0)


def both(condition, other):
    return condition if other is None else condition & other


def flag(condition):
    return case(when(condition).then(1), otherwise=0)


def flag_column(condition, nullable=False, **kwargs):
    """A flag column; its condition stands in for it only when never null (a null
    condition gives 0, but its negation is not 1)."""
    return Column("bool", flag(condition), condition=None if nullable else condition, **kwargs)


def written(kind, series, default=None):
    default = DEFAULTS[kind] if default is None else default
    return series.when_null_then(default)


def truncated(date, date_format):
    if date_format in (None, "YYYY"):
        return date.to_first_of_year()
    if date_format == "YYYY-MM":
        return date.to_first_of_month()
    return date


def matches(rows, date, first, returning, date_format):
    """Whether, when (the first or last) and how often `rows` matched, for `returning`
    "binary_flag", "date" or "number_of_matches_in_period"; None for other values."""
    match_date = date.minimum_for_patient() if first else date.maximum_for_patient()
    if returning == "binary_flag":
        return flag_column(rows.exists_for_patient(), date=match_date)
    if returning == "date":
        return date_column(match_date, date_format)
    if returning == "number_of_matches_in_period":
        return Column("int", rows.count_for_patient(), date=match_date)
    return None


def date_column(date, date_format, match_date=None):
    """A date column: written as text cut to its format, empty when missing."""
    if date_format not in (None, *DATE_FORMATS):
        raise StudyError(f"Unhandled date format: {date_format}")
    text = function("FormatDate", "str", date, value_series(date_format or "YYYY", "str"))
    return Column("date", text.when_null_then(""), date=match_date if match_date is not None else date, raw=truncated(date, date_format), date_format=date_format or "YYYY")


class Lowering:
    """Lowers the columns of one study definition at one index date, in order:
    each column may refer to the ones before it."""

    def __init__(self, index_date):
        self.index_date = index_date
        self.columns = {}

    # ------------------------------------------------------------ dates

    def date(self, text):
        """A date argument: a date constant, or a patient series for an expression
        over an earlier column (null where that column is empty)."""
        if text is None:
            return None
        if dates.parse(text) is None:
            return datetime.date.fromisoformat(text)
        function_name, name, quantity, units = dates.parse(text)
        column = self.columns.get(name)
        if column is None:
            raise StudyError(f"Unknown date column: {name} in: {text}")
        if column.kind != "date":
            raise StudyError(f"Column '{name}' is not a date in: {text}")
        if column.date_format == "YYYY":
            raise StudyError(f"Column '{name}' has a year-only date format 'YYYY' and so can't be used in date expressions in: {text}")
        d = column.raw
        if function_name:
            d = column_function(function_name, d)
        if units == "days":
            d = d + days(quantity)
        elif units:
            d = add_months_clipped(d, quantity * (12 if units == "years" else 1))
        return d

    def in_period(self, date, between):
        """Whether `date` lies in the period (both ends included); None when there
        is no period."""
        low, high = (self.date(b) for b in (between or (None, None)))
        if low is not None and high is not None:
            return date.is_on_or_between(low, high)
        if low is not None:
            return date.is_on_or_after(low)
        if high is not None:
            return date.is_on_or_before(high)
        return None

    def within(self, frame, date, between):
        condition = self.in_period(date, between)
        return frame if condition is None else frame.where(condition)

    # ------------------------------------------------------------ queries

    def lower(self, name, query_type, args):
        method = getattr(self, f"q_{query_type}", None)
        if method is None and query_type not in UNAVAILABLE:
            raise StudyError(f"{name}: patients.{query_type}() is not supported by ehrfusion yet")
        try:
            if query_type in UNAVAILABLE:
                raise Unavailable(f"patients.{query_type}(): {UNAVAILABLE[query_type]}")
            column = method(**args)
        except Unavailable as e:
            if not EXPECTATIONS_ONLY:
                raise StudyError(f"{name}: {e}") from None
            column = empty_column(args["column_type"], args.get("date_format"))
        self.columns[name] = column
        return column

    def q_fixed_value(self, value, column_type, date_format=None):
        if column_type == "date":
            d = datetime.date.fromisoformat(value)
            return date_column(value_series(d, "date"), "YYYY-MM-DD")
        ty = "int" if column_type == "bool" else column_type
        return Column(column_type, value_series(int(value) if column_type == "bool" else value, ty))

    def q_all(self, **_):
        return flag_column(tpp.patients.exists_for_patient())

    def q_sex(self, **_):
        sex = tpp.patients.sex
        letter = case(when(sex == "male").then("M"), when(sex == "female").then("F"), when(sex == "intersex").then("I"), when(sex == "unknown").then("U"))
        return Column("str", written("str", letter))

    def q_age_as_of(self, reference_date, **_):
        age = (self.date(reference_date) - tpp.patients.date_of_birth).years
        return Column("int", written("int", age))

    def q_date_of_birth(self, date_format=None, **_):
        return date_column(tpp.patients.date_of_birth, date_format)

    def q_registered_as_of(self, reference_date, **_):
        return self.q_registered_with_one_practice_between(reference_date, reference_date)

    def q_registered_with_one_practice_between(self, start_date, end_date, **_):
        regs = tpp.practice_registrations
        start, end = self.date(start_date), self.date(end_date)
        spanning = regs.where(regs.start_date.is_on_or_before(start) & (regs.end_date.is_after(end) | regs.end_date.is_null()))
        return flag_column(spanning.exists_for_patient())

    def q_with_complete_gp_consultation_history_between(self, start_date, end_date, **_):
        # As the TPP backend has it: one practice throughout, on SystmOne from the start.
        regs = tpp.practice_registrations
        start, end = self.date(start_date), self.date(end_date)
        spanning = regs.where(regs.start_date.is_on_or_before(start) & (regs.end_date.is_after(end) | regs.end_date.is_null()) & regs.practice_systmone_go_live_date.is_on_or_before(start))
        return flag_column(spanning.exists_for_patient())

    def q_with_gp_consultations(self, between=None, find_first_match_in_period=None, returning="binary_flag", date_format=None, **_):
        appointments = tpp.appointments
        # The statuses TPP counts as a consultation that took place.
        seen = appointments.where(appointments.status.is_in(["Arrived", "Waiting", "In Progress", "Finished", "Patient Walked Out", "Visit"]))
        rows = self.within(seen, seen.seen_date, between)
        match_date = rows.seen_date.minimum_for_patient() if find_first_match_in_period else rows.seen_date.maximum_for_patient()
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient(), date=match_date)
        if returning == "date":
            return date_column(match_date, date_format)
        if returning == "number_of_matches_in_period":
            return Column("int", rows.count_for_patient(), date=match_date)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def q_household_as_of(self, reference_date, returning=None, **_):
        if reference_date != "2020-02-01":
            raise StudyError("Household data only currently available for 2020-02-01")
        columns = {"pseudo_id": "household_pseudo_id", "household_size": "household_size"}
        if returning not in columns:
            raise Unavailable(f"household_as_of(returning={returning!r}): not in the TPP tables ehrfusion reads (pseudo_id and household_size are)")
        return Column("int", written("int", getattr(tpp.household_memberships_2020, columns[returning])))

    def q_which_exist_in_file(self, f_path, **_):
        table = patients_file_table(f_path, None, None)
        return flag_column(table.exists_for_patient())

    def q_with_value_from_file(self, f_path, returning, returning_type, date_format="YYYY-MM-DD", **_):
        if returning_type not in ("bool", "int", "float", "str", "date"):
            raise StudyError(f"Unexpected type {returning_type}")
        table = patients_file_table(f_path, returning, returning_type)
        value = table.value
        if returning_type == "date":
            return date_column(value, date_format)
        return Column(returning_type, written(returning_type, value))

    def q_admitted_to_hospital(self, between=None, returning="binary_flag", find_first_match_in_period=None, find_last_match_in_period=None, date_format=None,
                               with_these_diagnoses=None, with_these_primary_diagnoses=None, with_these_procedures=None, with_admission_method=None,
                               with_source_of_admission=None, with_discharge_destination=None, with_patient_classification=None,
                               with_admission_treatment_function_code=None, with_administrative_category=None, with_at_least_one_day_in_critical_care=False, **_):
        apcs = tpp.apcs
        rows = self.within(apcs, apcs.admission_date, between)
        unavailable = {"with_source_of_admission": with_source_of_admission, "with_admission_treatment_function_code": with_admission_treatment_function_code, "with_administrative_category": with_administrative_category}
        for name, value in unavailable.items():
            if value is not None:
                raise Unavailable(f"admitted_to_hospital({name}=...): the TPP tables ehrfusion reads have no such column")
        for column, values in (("admission_method", with_admission_method), ("discharge_destination", with_discharge_destination), ("patient_classification", with_patient_classification)):
            if values is not None:
                rows = rows.where(getattr(rows, column).is_in(as_list(values)))
        if with_at_least_one_day_in_critical_care:
            rows = rows.where(rows.days_in_critical_care > 0)
        if with_these_primary_diagnoses is not None:
            if with_these_primary_diagnoses.system != "icd10":
                raise StudyError("with_these_primary_diagnoses needs an icd10 codelist")
            # LIKE 'CODE%': an ICD-10 code starts with its only letter, so a prefix is a substring.
            primary = function("CastToStr", "str", rows.primary_diagnosis)
            rows = rows.where(any_of([primary.contains(code) for code in plain_codes(with_these_primary_diagnoses)]))
        for codes, column, system in ((with_these_diagnoses, "all_diagnoses", "icd10"), (with_these_procedures, "all_procedures", "opcs4")):
            if codes is not None:
                if codes.system != system:
                    raise StudyError(f"with_these_{'diagnoses' if system == 'icd10' else 'procedures'} needs an {system} codelist")
                codes_in = getattr(rows, column)
                rows = rows.where(any_of([codes_in.contains(code) for code in valid_codes(codes, "ICD10Code" if system == "icd10" else "OPCS4Code")]))
        first = bool(find_first_match_in_period)
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient(), date=rows.admission_date.minimum_for_patient() if first else rows.admission_date.maximum_for_patient())
        if returning in ("date_admitted", "date_discharged"):
            dates = rows.admission_date if returning == "date_admitted" else rows.discharge_date
            return date_column(dates.minimum_for_patient() if first else dates.maximum_for_patient(), date_format)
        if returning == "number_of_matches_in_period":
            return Column("int", rows.count_for_patient())
        if returning in ("total_bed_days_in_period", "total_critical_care_days_in_period"):
            for name, value in (("find_first_match_in_period", find_first_match_in_period), ("find_last_match_in_period", find_last_match_in_period)):
                if value:
                    raise StudyError(f"Cannot use '{name}' when returning '{returning}'")
            if returning == "total_bed_days_in_period":
                # TPP's length of stay counts nights, so a stay's bed days are one more.
                days_per_spell = (rows.discharge_date - rows.admission_date).days + 1
            else:
                days_per_spell = rows.days_in_critical_care
            # TPP counts each admission date once, with its longest spell; spells of
            # one patient admitted on the same day are all counted here.
            return Column("int", written("int", days_per_spell.sum_for_patient()))
        picks = {"primary_diagnosis": ("str", lambda r: function("CastToStr", "str", r.primary_diagnosis)), "admission_method": ("str", lambda r: r.admission_method),
                 "discharge_destination": ("str", lambda r: r.discharge_destination), "patient_classification": ("str", lambda r: r.patient_classification),
                 # TPP's Spell_PbR_CC_Day is text: the days written as text.
                 "days_in_critical_care": ("str", lambda r: function("CastToStr", "str", r.days_in_critical_care))}
        if returning in ("source_of_admission", "admission_treatment_function_code", "administrative_category", "duration_of_elective_wait"):
            raise Unavailable(f"admitted_to_hospital(returning={returning!r}): the TPP tables ehrfusion reads (ehrQL's apcs) have no such column")
        if returning not in picks:
            raise StudyError(f"Unsupported `returning` value: {returning}")
        kind, value = picks[returning]
        ordered = rows.sort_by(rows.admission_date, -rows.apcs_ident) if not first else rows.sort_by(rows.admission_date, rows.apcs_ident)
        picked = ordered.first_for_patient() if first else ordered.last_for_patient()
        return Column(kind, written(kind, value(picked)), date=picked.admission_date)

    def q_attended_emergency_care(self, between=None, returning="binary_flag", find_first_match_in_period=None, date_format=None, with_these_diagnoses=None, discharged_to=None, **_):
        ec = tpp.emergency_care_attendances
        rows = self.within(ec, ec.arrival_date, between)
        if with_these_diagnoses:
            codes = valid_codes(with_these_diagnoses, "SNOMEDCTCode") if hasattr(with_these_diagnoses, "has_categories") else [c for c in with_these_diagnoses]
            rows = rows.where(any_of([getattr(rows, f"diagnosis_{i:02d}").is_in(codes) for i in range(1, 25)]))
        if discharged_to:
            rows = rows.where(rows.discharge_destination.is_in(list(discharged_to)))
        first = bool(find_first_match_in_period)
        arrived = rows.arrival_date.minimum_for_patient() if first else rows.arrival_date.maximum_for_patient()
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient(), date=arrived)
        if returning == "date_arrived":
            return date_column(arrived, date_format)
        if returning == "number_of_matches_in_period":
            return Column("int", rows.count_for_patient())
        if returning == "discharge_destination":
            ordered = rows.sort_by(rows.arrival_date, rows.id) if first else rows.sort_by(rows.arrival_date, -rows.id)
            picked = ordered.first_for_patient() if first else ordered.last_for_patient()
            return Column("str", written("str", function("CastToStr", "str", picked.discharge_destination)), date=picked.arrival_date)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def q_with_test_result_in_sgss(self, pathogen=None, test_result="any", between=None, find_first_match_in_period=None, restrict_to_earliest_specimen_date=True, returning="binary_flag", date_format=None, **_):
        if pathogen != "SARS-CoV-2":
            raise StudyError("with_test_result_in_sgss() needs pathogen='SARS-CoV-2'")
        if test_result not in ("any", "positive", "negative"):
            raise StudyError(f"Unsupported test_result '{test_result}'")
        if returning == "case_category" and (not restrict_to_earliest_specimen_date or test_result != "positive"):
            raise StudyError("Due to limitations in the SGSS data we receive you can only use returning = 'case_category' with the options restrict_to_earliest_specimen_date = True, test_result = 'positive'")
        if returning == "number_of_matches_in_period" and restrict_to_earliest_specimen_date is not False:
            raise StudyError("Due to limitations in the SGSS data we receive you can only use returning = 'number_of_matches_in_period' with restrict_to_earliest_specimen_date = False")
        if returning in ("variant", "variant_detection_method", "symptomatic") and restrict_to_earliest_specimen_date:
            raise StudyError(f"Due to limitations in the SGSS data we receive you can only use returning = '{returning}' with the option restrict_to_earliest_specimen_date = False")
        if returning == "case_category":
            raise Unavailable("with_test_result_in_sgss(returning='case_category'): the TPP tables ehrfusion reads (ehrQL's sgss_covid_all_tests) have no case category")
        tests = tpp.sgss_covid_all_tests
        first = bool(find_first_match_in_period)
        if returning in ("s_gene_target_failure", "variant", "variant_detection_method", "symptomatic"):
            return self._sgss_value(tests, test_result, between, first, restrict_to_earliest_specimen_date, returning)
        if returning not in ("binary_flag", "date", "number_of_matches_in_period"):
            raise StudyError(f"Unsupported `returning` value: {returning}")

        def of_result(positive):
            rows = tests.where(tests.is_positive if positive else ~tests.is_positive)
            # SGSS's "earliest specimen" tables: each patient's first specimen of that result.
            return rows.specimen_taken_date.minimum_for_patient() if restrict_to_earliest_specimen_date else None

        if restrict_to_earliest_specimen_date:
            dates = {"positive": [of_result(True)], "negative": [of_result(False)], "any": [of_result(True), of_result(False)]}[test_result]
            in_period = [both(d.is_not_null(), self.in_period(d, between)) for d in dates]
            kept = [case(when(c).then(d)) for c, d in zip(in_period, dates)]
            match_date = kept[0] if len(kept) == 1 else (minimum_of(*kept) if first else maximum_of(*kept))
            if returning == "binary_flag":
                return Column("bool", flag(match_date.is_not_null()), date=match_date)
            return date_column(match_date, date_format)
        rows = tests if test_result == "any" else tests.where(tests.is_positive if test_result == "positive" else ~tests.is_positive)
        rows = self.within(rows, rows.specimen_taken_date, between)
        match_date = rows.specimen_taken_date.minimum_for_patient() if first else rows.specimen_taken_date.maximum_for_patient()
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient(), date=match_date)
        if returning == "date":
            return date_column(match_date, date_format)
        return Column("int", rows.count_for_patient())

    def _sgss_value(self, tests, test_result, between, first, earliest, returning):
        """A value of a patient's first (or last) test in the period, as TPP picks it
        from the positive and negative tests (a negative test has no S-gene,
        variant or detection method: ''). With `earliest`, the tests are each
        patient's first specimen of each result (SGSS's "earliest" tables), dated
        within the period."""

        def value(row, positive):
            if returning == "symptomatic":
                return case(when(row.was_symptomatic).then("Y"), when(~row.was_symptomatic).then("N"))
            if not positive:
                return value_series("", "str")
            if returning == "s_gene_target_failure":
                return function("CastToStr", "str", row.sgtf_status)
            if returning == "variant_detection_method":
                return row.variant_detection_method
            # TPP tidies the variant's placeholders away.
            variant = row.variant
            return case(
                when(variant.is_in(["(blank)", "none", "N/A"])).then(""),
                when(variant == "VOC-20DEC-01 detected").then("VOC-20DEC-01"),
                otherwise=variant,
            )

        results = {"positive": [True], "negative": [False], "any": [True, False]}[test_result]
        candidates = []
        for positive in results:
            rows = tests.where(tests.is_positive if positive else ~tests.is_positive)
            if earliest:
                row = rows.sort_by(rows.specimen_taken_date).first_for_patient()
                in_period = both(row.specimen_taken_date.is_not_null(), self.in_period(row.specimen_taken_date, between))
                candidates.append((case(when(in_period).then(row.specimen_taken_date)), value(row, positive)))
            else:
                rows = self.within(rows, rows.specimen_taken_date, between)
                ordered = rows.sort_by(rows.specimen_taken_date)
                row = ordered.first_for_patient() if first else ordered.last_for_patient()
                candidates.append((row.specimen_taken_date, value(row, positive)))
        if len(candidates) == 1:
            date, picked = candidates[0]
        else:
            (pos_date, pos_value), (neg_date, neg_value) = candidates
            # The positive test when both fall on the same day (TPP's order is arbitrary there).
            closer = pos_date <= neg_date if first else pos_date >= neg_date
            take_positive = pos_date.is_not_null() & (neg_date.is_null() | closer)
            date = case(when(take_positive).then(pos_date), otherwise=neg_date)
            picked = case(when(take_positive).then(pos_value), when(neg_date.is_not_null()).then(neg_value))
        return Column("str", written("str", case(when(date.is_not_null()).then(picked))), date=date)

    def q_outpatient_appointment_date(self, returning="binary_flag", attended=None, is_first_attendance=None, with_these_treatment_function_codes=None, with_these_procedures=None, between=None, date_format="YYYY-MM-DD", find_first_match_in_period=None, **_):
        opa = tpp.opa
        rows = self.within(opa, opa.appointment_date, between)
        if with_these_procedures is not None:
            if getattr(with_these_procedures, "system", None) != "opcs4":
                raise StudyError("outpatient_appointment_date(with_these_procedures=...) needs an opcs4 codelist")
            # TPP joins the appointment's procedures and matches the primary one as
            # LIKE '%code%': here, appointments whose id is among the patient's
            # appointments with such a procedure.
            procedures = tpp.opa_proc
            primary = function("CastToStr", "str", procedures.primary_procedure_code)
            matching = procedures.where(any_of([primary.contains(code) for code in plain_codes(with_these_procedures)]))
            rows = rows.where(rows.opa_ident.is_in(matching.opa_ident))
        if attended:
            rows = rows.where(rows.attendance_status.is_in(["5", "6"]))
        if is_first_attendance:
            rows = rows.where(rows.first_attendance.is_in(["1", "3"]))
        if with_these_treatment_function_codes:
            rows = rows.where(rows.treatment_function_code.is_in(as_list(with_these_treatment_function_codes)))
        first = bool(find_first_match_in_period)
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient())
        if returning == "date":
            return date_column(rows.appointment_date.minimum_for_patient() if first else rows.appointment_date.maximum_for_patient(), date_format)
        if returning == "number_of_matches_in_period":
            return Column("int", rows.count_for_patient())
        if returning == "consultation_medium_used":
            ordered = rows.sort_by(rows.appointment_date)
            picked = ordered.first_for_patient() if first else ordered.last_for_patient()
            return Column("str", written("str", picked.consultation_medium_used))
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def _current(self, frame, date):
        d = self.date(date)
        return frame.where(frame.start_date.is_on_or_before(d) & (frame.end_date.is_after(d) | frame.end_date.is_null()))

    def q_registered_practice_as_of(self, date, returning=None, **_):
        columns = {"stp_code": ("str", "practice_stp"), "nuts1_region_name": ("str", "practice_nuts1_region_name"), "pseudo_id": ("int", "practice_pseudo_id")}
        if returning in ("msoa", "msoa_code") or (returning or "").startswith("rct__"):
            raise Unavailable(f"registered_practice_as_of(returning={returning!r}): the TPP tables ehrfusion reads have no such practice property")
        if returning not in columns:
            raise StudyError(f"Unsupported `returning` value: {returning}")
        kind, column = columns[returning]
        regs = self._current(tpp.practice_registrations, date)
        # Latest start first, then the longest (no end date is the longest).
        latest = regs.sort_by(regs.start_date, open_ended(regs), regs.end_date, -regs.practice_pseudo_id).last_for_patient()
        return Column(kind, written(kind, getattr(latest, column)))

    def q_address_as_of(self, date, returning=None, round_to_nearest=None, **_):
        if returning == "index_of_multiple_deprivation":
            if round_to_nearest != 100:
                raise StudyError("address_as_of(returning='index_of_multiple_deprivation') needs round_to_nearest=100")
            kind, column, default = "int", "imd_rounded", -1
        elif returning == "rural_urban_classification":
            if round_to_nearest is not None:
                raise StudyError("address_as_of(returning='rural_urban_classification') takes no round_to_nearest")
            kind, column, default = "int", "rural_urban_classification", 0
        elif returning in ("msoa", "msoa_code"):
            kind, column, default = "str", "msoa_code", ""
        else:
            raise StudyError(f"Unsupported `returning` value: {returning}")
        latest = self._address_on(date)
        return Column(kind, written(kind, getattr(latest, column), default), default=default)

    def _address_on(self, date):
        addresses = self._current(tpp.addresses, date)
        # Latest start, then latest end, then one with a postcode, then the lowest id.
        with_postcode = case(when(addresses.has_postcode).then(1), otherwise=0)
        return addresses.sort_by(addresses.start_date, open_ended(addresses), addresses.end_date, with_postcode, -addresses.address_id).last_for_patient()

    def q_care_home_status_as_of(self, date, categorised_as, column_type, **_):
        address = self._address_on(date)

        def yes_no(flag):
            return written("str", case(when(flag).then("Y"), when(~flag).then("N")))

        # The names an expression may use, as the TPP backend defines them (a
        # potential care home is the matched address's id there: non-zero).
        names = {
            "IsPotentialCareHome": Column("int", flag(address.care_home_is_potential_match)),
            "LocationRequiresNursing": Column("str", yes_no(address.care_home_requires_nursing)),
            "LocationDoesNotRequireNursing": Column("str", yes_no(address.care_home_does_not_require_nursing)),
        }
        category = self.q_categorised_as(categorised_as, column_type, columns=names)
        # A patient with no address on the date gets the column's empty value, not the default category.
        # (A current address has a start date on or before the date.)
        value = case(when(address.start_date.is_not_null()).then(category.value), otherwise=DEFAULTS[column_type])
        return Column(column_type, value)

    def q_died_from_any_cause(self, between=None, returning="binary_flag", date_format=None, **_):
        return self.q_with_these_codes_on_death_certificate(None, between=between, returning=returning, date_format=date_format)

    def q_with_these_codes_on_death_certificate(self, codelist=None, between=None, match_only_underlying_cause=False, returning="binary_flag", date_format=None, **_):
        deaths = tpp.ons_deaths
        condition = deaths.exists_for_patient()
        if codelist is not None:
            if codelist.system != "icd10":
                raise StudyError(f"with_these_codes_on_death_certificate() needs an icd10 codelist, not {codelist.system}")
            codes = valid_codes(codelist, "ICD10Code")
            columns = ["underlying_cause_of_death"] + ([] if match_only_underlying_cause else [f"cause_of_death_{i:02d}" for i in range(1, 16)])
            condition = condition & any_of([getattr(deaths, c).is_in(codes) for c in columns])
        period = self.in_period(deaths.date, between)
        if period is not None:
            condition = condition & period
        if returning == "binary_flag":
            return flag_column(condition, nullable=True)
        if returning == "date_of_death":
            return date_column(case(when(condition).then(deaths.date)), date_format)
        if returning == "underlying_cause_of_death":
            return Column("str", written("str", case(when(condition).then(function("CastToStr", "str", deaths.underlying_cause_of_death)))))
        if returning == "place_of_death":
            return Column("str", written("str", case(when(condition).then(deaths.place))))
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def q_with_death_recorded_in_primary_care(self, between=None, returning="binary_flag", date_format=None, **_):
        died = tpp.patients.date_of_death
        # TPP records the living with a death date of 9999-12-31, outside any period.
        condition = both(died.is_not_null(), self.in_period(died, between))
        if returning == "binary_flag":
            return flag_column(condition, nullable=True)
        if returning == "date_of_death":
            return date_column(case(when(condition).then(died)), date_format)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def q_date_deregistered_from_all_supported_practices(self, between=None, date_format=None, **_):
        regs = tpp.practice_registrations
        # An open registration (no end date) counts as ending on 9999-12-31: after any period.
        still_registered = regs.where(regs.end_date.is_null()).exists_for_patient()
        last_end = regs.end_date.maximum_for_patient()
        condition = both(~still_registered & last_end.is_not_null(), self.in_period(last_end, between))
        return date_column(case(when(condition).then(last_end)), date_format)

    def q_with_vaccination_record(self, tpp=None, emis=None, **kwargs):
        args = dict(tpp or {})
        args.update({k: v for k, v in kwargs.items() if k in ("between", "returning", "date_format", "find_first_match_in_period", "find_last_match_in_period")})
        return self.q_with_tpp_vaccination_record(**args)

    def q_with_tpp_vaccination_record(self, target_disease_matches=None, product_name_matches=None, between=None, returning="binary_flag", date_format=None, find_first_match_in_period=None, find_last_match_in_period=None, **_):
        vaccinations = tpp.vaccinations
        rows = self.within(vaccinations, vaccinations.date, between)
        # Tested for None, not truth: a study may pass a pandas Series, whose truth
        # is an error; TPP's backend then takes it as one value, as here.
        if target_disease_matches is not None:
            rows = rows.where(rows.target_disease.is_in(as_list(target_disease_matches)))
        if product_name_matches is not None:
            rows = rows.where(rows.product_name.is_in(as_list(product_name_matches)))
        match_date = rows.date.minimum_for_patient() if find_first_match_in_period else rows.date.maximum_for_patient()
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient(), date=match_date)
        if returning == "date":
            return date_column(match_date, date_format)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def q_with_these_clinical_events(self, codelist, **kwargs):
        code_column = {"ctv3": "ctv3_code", "snomed": "snomedct_code", "snomedct": "snomedct_code"}.get(codelist.system)
        if code_column is None:
            raise StudyError(f"with_these_clinical_events() needs a ctv3 or snomed codelist, not {codelist.system!r}")
        return self._events(tpp.clinical_events, code_column, codelist, **kwargs)

    def q_with_these_medications(self, codelist, **kwargs):
        if codelist.system != "snomed":
            raise StudyError(f"with_these_medications() needs a snomed (dm+d) codelist, not {codelist.system!r}")
        if kwargs.get("returning") == "numeric_value":
            raise StudyError("Unsupported `returning` value: numeric_value")
        return self._events(tpp.medications, "dmd_code", codelist, **kwargs)

    def _events(self, frame, code_column, codelist, between=None, find_first_match_in_period=None, find_last_match_in_period=None, returning="binary_flag", date_format=None, ignore_missing_values=False, ignore_days_where_these_codes_occur=None, episode_defined_as=None, include_reference_range_columns=False, **_):
        if include_reference_range_columns:
            frame = tpp.clinical_events_ranges
        if episode_defined_as is not None and returning != "number_of_episodes":
            raise StudyError("episode_defined_as needs returning='number_of_episodes'")
        code = getattr(frame, code_column)
        rows = frame.where(code.is_in(valid_codes(codelist, code._type)))
        rows = self.within(rows, rows.date, between)
        if ignore_days_where_these_codes_occur is not None:
            # As TPP: no event on a day when the patient has a clinical event with one
            # of these codes in the same period (an event with no date is kept).
            ignored = self._clinical_events_with(ignore_days_where_these_codes_occur, between, "ignore_days_where_these_codes_occur needs")
            rows = rows.where(rows.date.is_null() | rows.date.is_not_in(ignored.date))
        if ignore_missing_values:
            rows = rows.where(rows.numeric_value != 0)
        first = bool(find_first_match_in_period)
        counted = matches(rows, rows.date, first, returning, date_format)
        if counted is not None:
            return counted
        if returning == "number_of_episodes":
            return Column("int", written("int", rows.date.count_episodes_for_patient(days(washout_days(episode_defined_as)))))
        ordered = rows.sort_by(rows.date)
        picked = ordered.first_for_patient() if first else ordered.last_for_patient()
        if returning == "numeric_value":
            column = Column("float", written("float", picked.numeric_value), date=picked.date)
            column.picked = picked
            return column
        if returning == "code":
            return Column("str", written("str", function("CastToStr", "str", getattr(picked, code_column))), date=picked.date)
        if returning == "category":
            if not codelist.has_categories:
                raise StudyError("Cannot return categories because the supplied codelist does not have any categories defined")
            categories = {c: cat for c, cat in valid_codes(codelist, code._type, with_categories=True)}
            # Numeric categories (ethnicity's "1" to "5", say) convert to numbers
            # where an expression compares them with one, as SQL Server converts
            # them; a missing value is the empty text, which converts to 0.
            numeric = all(re.fullmatch(r"-?\d+(\.\d*)?", str(c)) for c in categories.values())
            known = sorted({str(c) for c in categories.values()} | {""}) if numeric else None
            return Column("str", written("str", getattr(picked, code_column).to_category(categories)), date=picked.date, categories=known)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def _clinical_events_with(self, codelist, between, needs):
        """Clinical events with a code of `codelist` (ctv3 or snomed) in the period;
        `needs` starts the error for a codelist of another system."""
        code_column = {"ctv3": "ctv3_code", "snomed": "snomedct_code"}.get(getattr(codelist, "system", None))
        if code_column is None:
            raise StudyError(f"{needs} a ctv3 or snomed codelist, not {getattr(codelist, 'system', None)!r}")
        events = tpp.clinical_events
        code = getattr(events, code_column)
        rows = events.where(code.is_in(valid_codes(codelist, code._type)))
        return self.within(rows, rows.date, between)

    def _summarised(self, how, codelist, on_most_recent_day_of_measurement=None, between=None, **_):
        rows = self._clinical_events_with(codelist, between, "needs")
        day = None
        if on_most_recent_day_of_measurement:
            day = rows.date.maximum_for_patient()
            rows = rows.where(rows.date == day)
        value = getattr(rows.numeric_value, how)()
        return Column("float", written("float", value), date=day)

    def q_mean_recorded_value(self, codelist, **kwargs):
        return self._summarised("mean_for_patient", codelist, **kwargs)

    def q_min_recorded_value(self, codelist, **kwargs):
        return self._summarised("minimum_for_patient", codelist, **kwargs)

    def q_max_recorded_value(self, codelist, **kwargs):
        return self._summarised("maximum_for_patient", codelist, **kwargs)

    def q_most_recent_bmi(self, between=None, minimum_age_at_measurement=16, **_):
        events = tpp.clinical_events
        dob = tpp.patients.date_of_birth
        min_age = int(minimum_age_at_measurement)

        def latest(codes, period):
            rows = self.within(events.where(events.ctv3_code.is_in(codes)), events.date, period)
            row = rows.sort_by(rows.date).last_for_patient()
            # The age test applies to the latest reading (SQL's DATEDIFF counts year boundaries).
            old_enough = (row.date.year - dob.year) >= min_age
            return case(when(old_enough).then(row.numeric_value)), case(when(old_enough).then(row.date)), old_enough

        weight, weight_date, _w = latest(["X76C7", "22A.."], between)
        height, height_date, _h = latest(["XM01E", "229.."], (None, (between or (None, None))[1]))
        bmi, bmi_date, _b = latest(["22K.."], between)
        computed = case(when(height != 0.0).then(weight / (height * height)))
        value = case(when(computed.is_not_null()).then(computed), otherwise=bmi)
        rounded = ((value * 10.0 + 0.5) // 1).as_float() / 10.0
        date = case(when(weight.is_null() | height.is_null()).then(bmi_date), otherwise=weight_date)
        return Column("float", written("float", rounded), date=date)

    def q_with_ethnicity_from_sus(self, returning=None, use_most_frequent_code=None, **_):
        if returning not in ("code", "group_6", "group_16"):
            raise StudyError(f"Unknown value for 'returning' ({returning}), valid options are: code, group_6, group_16")
        if not use_most_frequent_code:
            raise StudyError("use_most_frequent_code must be set to 'True'")
        code = tpp.ethnicity_from_sus.code
        if returning == "code":
            return Column("str", written("str", code))
        letters = "ABCDEFGHJKLMNPRS"
        if returning == "group_16":
            groups = {letter: str(i + 1) for i, letter in enumerate(letters)}
        else:
            groups = dict(zip(letters, "1112222333344455"))
        return Column("str", written("str", code.map_values(groups), "0"), default="0")

    def q_with_healthcare_worker_flag_on_covid_vaccine_record(self, returning="binary_flag", **_):
        if returning != "binary_flag":
            raise StudyError(f"Unsupported `returning` value: {returning}")
        occupations = tpp.occupation_on_covid_vaccine_record
        return flag_column(occupations.where(occupations.is_healthcare_worker).exists_for_patient())

    def q_with_these_decision_support_values(self, algorithm, between=None, find_first_match_in_period=None, returning="numeric_value", date_format=None, ignore_missing_values=False, **_):
        # TPP's algorithm type 1 is the electronic frailty index, version 1.0.
        if algorithm != "electronic_frailty_index":
            raise StudyError(f"Unsupported `algorithm` value: {algorithm}")
        values = tpp.decision_support_values.electronic_frailty_index()
        rows = self.within(values, values.calculation_date, between)
        if ignore_missing_values:
            rows = rows.where(rows.numeric_value != 0)
        first = bool(find_first_match_in_period)
        counted = matches(rows, rows.calculation_date, first, returning, date_format)
        if counted is not None:
            return counted
        if returning == "numeric_value":
            ordered = rows.sort_by(rows.calculation_date)
            picked = ordered.first_for_patient() if first else ordered.last_for_patient()
            return Column("float", written("float", picked.numeric_value), date=picked.calculation_date)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    def q_with_covid_therapeutics(self, with_these_statuses=None, with_these_therapeutics=None, with_these_indications=None, between=None, returning="binary_flag", date_format=None,
                                  find_first_match_in_period=None, find_last_match_in_period=None, include_date_of_match=False, episode_defined_as=None, **_):
        rows = tpp.covid_therapeutics
        if with_these_statuses:
            rows = rows.where(rows.current_status.is_in([status.strip() for status in as_list(with_these_statuses)]))
        if with_these_therapeutics:
            # TPP matches `Intervention LIKE '%name%'` under a case-insensitive collation.
            intervention = function("LowerCase", "str", rows.intervention)
            rows = rows.where(any_of([intervention.contains(name.lower()) for name in as_list(with_these_therapeutics)]))
        if with_these_indications:
            valid = ["hospital_onset", "hospitalised_with", "non_hospitalised"]
            for indication in as_list(with_these_indications):
                if indication not in valid:
                    raise StudyError(f"'{indication}' is not a valid indication; options are {', '.join(valid)}")
            rows = rows.where(rows.covid_indication.is_in(as_list(with_these_indications)))
        rows = self.within(rows, rows.treatment_start_date, between)
        if returning == "number_of_episodes":
            for name, value in (("find_first_match_in_period", find_first_match_in_period), ("find_last_match_in_period", find_last_match_in_period), ("include_date_of_match", include_date_of_match)):
                if value:
                    raise StudyError(f"Cannot use '{name}' when returning 'number_of_episodes'")
            return Column("int", written("int", rows.treatment_start_date.count_episodes_for_patient(days(washout_days(episode_defined_as)))))
        if episode_defined_as:
            raise StudyError("Can only use 'episode_defined_as' when returning 'number_of_episodes'")
        if returning == "number_of_matches_in_period":
            return Column("int", rows.count_for_patient())
        if returning == "risk_group":
            raise Unavailable("with_covid_therapeutics(returning='risk_group'): the TPP tables ehrfusion reads hold the risk groups already joined in another order and wording (ehrQL's covid_therapeutics.risk_cohort), so cohort-extractor's value cannot be rebuilt")
        picked = self._therapeutic_form(rows, bool(find_first_match_in_period))
        started = picked.treatment_start_date
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient(), date=started)
        if returning == "date":
            return date_column(started, date_format)
        if returning == "region":
            return Column("str", written("str", picked.region), date=started)
        if returning == "therapeutic":
            name = function("TrimSpaces", "str", picked.intervention)
            listed = function("ReplaceIgnoringCase", "str", name, value_series(" and ", "str"), value_series(",", "str"))
            return Column("str", written("str", listed), date=started)
        raise StudyError(f"Unsupported `returning` value: {returning}")

    @staticmethod
    def _therapeutic_form(rows, first):
        """Each patient's first or last form by treatment start, as TPP orders them:
        the start date (missing first when ascending, last when descending), then
        the form's other fields ascending."""
        ties = (rows.received, rows.current_status, rows.intervention, rows.region, rows.risk_cohort)
        if first:
            return rows.sort_by(rows.treatment_start_date, *ties).first_for_patient()
        start = rows.treatment_start_date
        missing_last = case(when(start.is_null()).then(1), otherwise=0)
        latest_first = -(start - datetime.date(1900, 1, 1)).days
        return rows.sort_by(missing_last, latest_first, *ties).first_for_patient()

    def q_with_record_in_ukrr(self, from_dataset=None, returning=None, between=None, date_format=None, **_):
        datasets = ["2019_prevalence", "2020_prevalence", "2021_prevalence", "2020_incidence", "2020_ckd"]
        if from_dataset not in datasets:
            raise StudyError(f"Unsupported Dataset passed to argument `from_dataset`: {from_dataset}")
        ukrr = tpp.ukrr
        rows = ukrr.where(ukrr.dataset == from_dataset)
        rows = self.within(rows, rows.rrt_start_date, between)
        if returning == "binary_flag":
            return flag_column(rows.exists_for_patient())
        # A patient has one row in each UKRR dataset.
        row = rows.sort_by(rows.rrt_start_date).last_for_patient()
        if returning == "rrt_start_date":
            return date_column(row.rrt_start_date, date_format)
        kinds = {"renal_centre": "str", "treatment_modality_start": "str", "treatment_modality_prevalence": "str", "latest_creatinine": "int", "latest_egfr": "float"}
        if returning not in kinds:
            raise StudyError(f"Unsupported `returning` value: {returning}")
        kind = kinds[returning]
        value = getattr(row, returning)
        if kind == "int":
            # UKRR's creatinine is a whole number; ehrQL's table holds it as float.
            value = value.as_int()
        return Column(kind, written(kind, value))

    def q_value_from(self, source, returning, date_format=None, **_):
        column = self.columns[source]
        if returning in ("lower_bound", "upper_bound"):
            return Column("float", written("float", getattr(column.picked, returning)))
        if returning == "comparator":
            return Column("str", written("str", column.picked.comparator))
        if returning != "date":
            raise StudyError(f"Unhandled returning type '{returning}'")
        if column.date is None:
            raise StudyError(f"There is no date of match for column '{source}'")
        return date_column(column.date, date_format)

    def q_categorised_as(self, category_definitions, column_type, date_format=None, columns=None, **_):
        definitions = dict(category_definitions)
        defaults = [k for k, v in definitions.items() if v == "DEFAULT"]
        if len(defaults) != 1:
            raise StudyError("At least one category must be given the definition 'DEFAULT'" if not defaults else "At most one default category can be defined")
        default = defaults[0]
        definitions.pop(default)
        ty = {"bool": "int", "date": "str"}.get(column_type, column_type)
        conditions = [(category, self.condition(expression, columns)) for category, expression in definitions.items()]
        cases = [when(c).then(category_value(category, ty)) for category, c in conditions]
        value = case(*cases, otherwise=category_value(default, ty)) if cases else value_series(category_value(default, ty), ty)
        if column_type == "bool" and list(definitions) == [1]:
            return flag_column(conditions[0][1])
        if column_type == "date":
            iso = datetime.date.fromisoformat
            raw = case(*[when(c).then(iso(category)) for category, c in conditions], otherwise=iso(default)) if conditions else value_series(iso(default), "date")
            return Column("date", value, date=raw, raw=raw, date_format="YYYY-MM-DD")
        return Column(column_type, value, categories=[str(k) for k in category_definitions] if column_type == "str" else None)

    def condition(self, expression, columns=None):
        try:
            return Parser(str(expression), _Operations(self.columns if columns is None else columns)).parse()
        except InvalidExpressionError as e:
            raise StudyError(str(e)) from None

    def q_aggregate_of(self, column_names, aggregate_function, column_type, **_):
        sources = [self.columns[n] for n in column_names]
        pick = maximum_of if aggregate_function == "MAX" else minimum_of
        # Empty values take no part, as if they were missing.
        present = [case(when(c.value != c.default).then(c.value)) for c in sources]
        value = pick(*present) if len(present) > 1 else present[0]
        first = sources[0]
        if column_type == "date":
            raws = [c.raw for c in sources]
            raw = pick(*raws) if len(raws) > 1 else raws[0]
            return Column("date", value.when_null_then(""), date=raw, raw=raw, date_format=first.date_format)
        return Column(column_type, value.when_null_then(first.default), default=first.default)


class _Operations:
    """Values of the expression language: (series or constant, type), the type
    one of int, float, str or bool (a condition)."""

    def __init__(self, columns):
        self.columns = columns
        self.conditions = {id(c.value): c.condition for c in columns.values() if c.condition is not None}
        self.categories = {id(c.value): c.categories for c in columns.values() if c.categories is not None}
        # For a date column: its date, which is missing exactly when the text is empty.
        self.dates = {id(c.value): c.raw for c in columns.values() if c.kind == "date" and c.raw is not None}

    def column(self, name):
        try:
            c = self.columns[name]
        except KeyError:
            raise InvalidExpressionError(f"Unknown column: {name}") from None
        return (c.value, {"bool": "int", "date": "str"}.get(c.kind, c.kind))

    def empty(self, name):
        c = self.columns[name]
        return (c.default, type_of_constant(c.default))

    def literal(self, value):
        return (value, type_of_constant(value))

    def compare(self, op, left, right):
        (a, ta), (b, tb) = left, right
        if "bool" in (ta, tb):
            raise InvalidExpressionError(f"cannot compare a condition with {op}")
        # SQL Server compares text with a number by converting the text.
        if ta == "str" and tb in ("int", "float"):
            a, ta = self.as_number(a, tb), tb
        elif tb == "str" and ta in ("int", "float"):
            b, tb = self.as_number(b, ta), ta
        if op in ("=", "!=") and id(a) in self.conditions and type(b) is int and b in (0, 1):
            holds = self.conditions[id(a)]
            return (holds if (op == "=") == (b == 1) else ~holds, "bool")
        # A date column tested for being empty (a bare date column, say) tests its
        # date for null, rather than formatting every date to compare the text.
        if op in ("=", "!=") and id(a) in self.dates and isinstance(b, str) and b == "":
            raw = self.dates[id(a)]
            return (raw.is_null() if op == "=" else raw.is_not_null(), "bool")
        if {ta, tb} == {"int", "float"}:
            a, b = as_float(a), as_float(b)
        elif ta != tb:
            raise InvalidExpressionError(f"cannot compare a {ta} with a {tb}")
        ops = {"=": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b}
        return (ops[op](), "bool")

    def as_number(self, text, ty):
        """Text as SQL Server converts it to an int or float, for a constant or a
        column whose values are known."""
        def convert(t):
            if t == "":
                return 0
            try:
                return int(t) if ty == "int" else float(t)
            except ValueError:
                raise InvalidExpressionError(f"Conversion failed when converting the varchar value '{t}' to data type {ty}") from None

        if not isinstance(text, BaseSeries):
            return convert(text)
        categories = self.categories.get(id(text))
        if categories is None:
            raise InvalidExpressionError(f"cannot compare a str column with a {ty}: only the values of categorised_as columns convert to numbers")
        return case(*[when(text == c).then(convert(c)) for c in categories])

    def logical(self, op, left, right):
        for _, t in (left, right):
            if t != "bool":
                raise InvalidExpressionError(f"{op} needs conditions on both sides")
        a, b = left[0], right[0]
        if not isinstance(a, BaseSeries) and not isinstance(b, BaseSeries):
            return ((a and b) if op == "AND" else (a or b), "bool")
        a, b = as_condition(a), as_condition(b)
        return ((a & b) if op == "AND" else (a | b), "bool")

    def negate(self, value):
        if value[1] != "bool":
            raise InvalidExpressionError("NOT needs a condition")
        v = value[0]
        return ((not v) if not isinstance(v, BaseSeries) else ~v, "bool")

    def arithmetic(self, op, left, right):
        (a, ta), (b, tb) = left, right
        if ta not in ("int", "float") or tb not in ("int", "float"):
            raise InvalidExpressionError(f"arithmetic ({op}) needs numbers")
        ty = "int" if ta == tb == "int" else "float"
        if ty == "float":
            a, b = as_float(a), as_float(b)
        if op == "/":
            # SQL Server divides integers as integers.
            return ((a // b) if ty == "int" else (a / b), ty)
        return ({"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[op](), ty)

    def as_condition(self, value):
        if value[1] != "bool":
            raise InvalidExpressionError("it is not a condition")
        return as_condition(value[0])


def as_condition(v):
    return v if isinstance(v, BaseSeries) else value_series(bool(v), "bool")


def as_float(v):
    return v.as_float() if isinstance(v, BaseSeries) and v._type == "int" else (float(v) if not isinstance(v, BaseSeries) else v)


def type_of_constant(v):
    if isinstance(v, bool):
        return "int"
    return {int: "int", float: "float", str: "str"}[type(v)]


def category_value(category, ty):
    if ty == "str":
        return str(category)
    if ty == "float":
        return float(category)
    return int(category)


def washout_days(episode_defined_as):
    """The N of "series of events each <= N days apart": a new episode starts more
    than N days after the event before it (none given: every day with an event is one)."""
    if episode_defined_as is None:
        return 0
    m = re.match(r"^series of events each <= (\d+) days apart$", episode_defined_as)
    if not m:
        raise StudyError("Argument `episode_defined_as` must match pattern: ^series of events each <= (\\d+) days apart$")
    return int(m.group(1))


def as_list(value):
    """The values of an argument: a string is one value, a list, tuple or set its
    items. Anything else (a pandas Series, say) is one value written as text, as
    cohort-extractor's TPP backend quotes it, so it matches nothing."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [str(value)]


def patients_file_table(f_path, returning, returning_type):
    """A CSV file of patient_id (and a `returning` column) as a patient table, its
    values typed as the TPP backend's upload types them (bool as 0/1). With
    expectations dummy data no query runs, and the file's columns are checked but
    not turned into a table (the dummy data takes them from the file)."""
    from ehrfusion.tables import PatientFrame, Series, table_from_rows

    if not str(f_path).endswith((".csv", ".csv.gz")):
        raise StudyError(f"Unexpected file type {f_path}")
    if returning is not None and not re.fullmatch(r"\w+", returning, re.ASCII):
        raise StudyError("The column name given by `returning` should contain only alphanumeric characters and the underscore character")
    ty = {"bool": int, "int": int, "float": float, "str": str, "date": datetime.date, None: bool}[returning_type]
    try:
        header, rows = files.read_rows(f_path)
    except OSError as e:
        raise StudyError(f"{f_path}: {e.strerror}") from None
    for name in ["patient_id"] + ([returning] if returning else []):
        if name not in header:
            raise StudyError(f"{f_path}: no column named {name!r}")
    cls = type("patients_from_file", (PatientFrame,), {"value": Series(ty)})
    if EXPECTATIONS_ONLY:
        return table_from_rows([])(cls)
    texts = files.column(header, rows, returning) if returning else ["1"] * len(rows)
    table = []
    for (line, _), pid, text in zip(rows, files.column(header, rows, "patient_id"), texts):
        try:
            if text in ("", None):
                value = None
            elif returning_type == "bool":
                value = 0 if text.strip().lower() in ("0", "false", "f") else 1
            elif returning_type == "date":
                value = datetime.date.fromisoformat(text.strip()[:10])
            elif returning_type is None:
                value = True
            else:
                value = ty(text)
            table.append((int(pid), value))
        except (ValueError, TypeError) as e:
            raise StudyError(f"{f_path}, line {line}: {e}") from None
    return table_from_rows(table)(cls)


def any_of(conditions):
    """The OR of the conditions, as a balanced tree: a codelist of thousands of
    codes nests only a dozen deep."""
    if not conditions:
        return value_series(False, "bool")
    if len(conditions) == 1:
        return conditions[0]
    half = len(conditions) // 2
    return any_of(conditions[:half]) | any_of(conditions[half:])


def plain_codes(codelist):
    return [item[0] if codelist.has_categories else item for item in codelist]


def valid_codes(codelist, ty, with_categories=False):
    """The codes of a codelist that can occur in a column of type `ty` (a code that
    is not a valid code of the column's system matches nothing, as in SQL)."""
    out = []
    for item in codelist:
        code = item[0] if codelist.has_categories else item
        try:
            convert_value(code, ty)
        except Exception:  # noqa: BLE001 (an invalid code cannot match)
            continue
        out.append((code, item[1] if codelist.has_categories else None) if with_categories else code)
    return out


def column_function(name, d):
    """A date function of a date expression, applied per patient (as SQL Server's
    EOMONTH and DATEFROMPARTS do)."""
    first_of_year = d.to_first_of_year()
    if name == "first_day_of_month":
        return d.to_first_of_month()
    if name == "last_day_of_month":
        return d.to_first_of_month() + months(1) - days(1)
    if name == "first_day_of_year":
        return first_of_year
    if name == "last_day_of_year":
        return first_of_year + years(1) - days(1)
    if name == "first_day_of_nhs_financial_year":
        return case(when(d.month < 4).then(first_of_year - years(1) + months(3)), otherwise=first_of_year + months(3))
    if name == "last_day_of_nhs_financial_year":
        return case(when(d.month >= 4).then(first_of_year + years(1) + months(3) - days(1)), otherwise=first_of_year + months(3) - days(1))
    if name == "first_day_of_school_year":
        return case(when(d.month < 9).then(first_of_year - years(1) + months(8)), otherwise=first_of_year + months(8))
    if name == "last_day_of_school_year":
        return case(when(d.month >= 9).then(first_of_year + years(1) + months(8) - days(1)), otherwise=first_of_year + months(8) - days(1))
    raise StudyError(f"Unknown date function '{name}'")


def add_months_clipped(d, n):
    """DATEADD(MONTH, n, d): a day past the end of the target month becomes its last
    day (ehrQL's month arithmetic rolls forward instead)."""
    rolled = d + months(n)
    return case(when(rolled.day == d.day).then(rolled), otherwise=rolled.to_first_of_month() - days(1))
