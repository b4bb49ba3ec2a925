"""Writes schemas/*.json: the tables of ehrQL's public backend schemas (names, types,
constraints; descriptions in our own words), one file per backend.

Each file has two parts:

- "tables": the tables the backend serves, by the name their data has (a data
  directory's `<name>.csv`). The engine compiles these in and checks data, queries
  and dummy data against them.
- "modules": what each Python table module (`ehrql.tables.tpp`, `ehrql.tables.raw.core`,
  `ehrql.tables.beta.tpp`, ...) shows of those tables: its tables by their Python
  names, each naming the data table it reads, with the columns (a subset, in the
  module's order) and constraints that module declares. A raw module's table reads
  a table of its own (`ehrql.tables.raw.core.ons_deaths` is the event-level
  `ons_deaths_raw`); the v0 modules (`ehrql.tables.beta.*`) show ehrQL v0's columns
  of today's tables.

A backend serves its own modules and the core ones (core, raw.core, smoketest and
their v0 forms); a data table has every column any of them shows, with the
constraints of the first module listing it. Run `python3 schemas/make_schemas.py`
after editing; it refuses modules that disagree on a table's level or a column's type.

Constraints: not_null, unique, first_of_month, categories, regex, range
{min, max, step} (integers), general_range {min, max, includes_min, includes_max}
(numbers or ISO dates; either end may be absent), date_after [columns] (the date is on
or after those columns' dates). "dummy_data" holds constraints that only shape
generated dummy data.
"""

import copy
import json
import os


def col(name, type, desc="", dummy=None, **constraints):
    d = {"name": name, "type": type}
    if desc:
        d["description"] = desc
    if dummy:
        constraints["dummy_data"] = dummy
    if constraints:
        d["constraints"] = constraints
    return d


def since(date):
    """Dummy dates no earlier than `date` (when the data begins)."""
    return {"general_range": {"min": date}}


def after(*columns):
    """A date on or after those of other columns of the row."""
    return {"date_after": list(columns)}


def table(level, desc, *cols, data=None):
    t = {"level": level, "description": desc, "columns": list(cols)}
    if data:
        t["table"] = data
    return t


NN = dict(not_null=True)

# ---------------------------------------------------------------- ehrQL v1: core and tpp

patients = table("patient", "One row per patient registered in primary care.",
    col("date_of_birth", "date", "Date of birth, recorded to the month.", first_of_month=True, not_null=True),
    col("sex", "str", "Recorded sex.", categories=["female", "male", "intersex", "unknown"], not_null=True),
    col("date_of_death", "date", "Date of death in the primary care record."))
practice_registrations = [
    col("start_date", "date", "Date the registration began.", not_null=True),
    col("end_date", "date", "Date the registration ended; null while it is current.", dummy=dict(categories=[None])),
    col("practice_pseudo_id", "int", "Pseudonymised identifier of the practice.", not_null=True, dummy=dict(range={"min": 0, "max": 999}))]
ons_deaths = [col("date", "date", "Registered date of death.", dummy=since("2019-02-01")),
    col("underlying_cause_of_death", "ICD10Code", "Underlying cause of death.")] + [
    col(f"cause_of_death_{i:02d}", "ICD10Code", "A condition named on the death certificate.") for i in range(1, 16)]
core = {
  "clinical_events": table("event", "Clinical and consultation events coded in primary care.",
      col("date", "date", "Date of the event."), col("snomedct_code", "SNOMEDCTCode", "SNOMED-CT code of the event."),
      col("numeric_value", "float", "Numeric value recorded with the event, if any.")),
  "medications": table("event", "Medications issued in primary care, coded in dm+d.",
      col("date", "date", "Date the prescription was issued."), col("dmd_code", "DMDCode", "dm+d code of the medication.")),
  "ons_deaths": table("patient", "Deaths registered with the ONS (earliest registration per patient).", *ons_deaths),
  "patients": patients,
  "practice_registrations": table("event", "Registrations of patients with practices.", *practice_registrations),
}
ec_diag = [col(f"diagnosis_{i:02d}", "SNOMEDCTCode", "A diagnosis of the attendance (SNOMED-CT, limited subset).") for i in range(1, 25)]
tpp = {
  "addresses": table("event", "Home addresses registered by patients, one row per address period.",
      col("address_id", "int", "Identifier of the address."),
      col("start_date", "date", "Date the patient moved in."),
      col("end_date", "date", "Date the patient moved out.", dummy=after("start_date")),
      col("address_type", "int", "0 permanent, 1 temporary, 3 correspondence only.", categories=[0, 1, 3]),
      col("rural_urban_classification", "int", "Rural-urban class, 1 (major conurbation) to 8 (sparse rural village).", range={"min": 1, "max": 8}),
      col("imd_rounded", "int", "Index of Multiple Deprivation rank of the LSOA, rounded to 100 (lower is more deprived).", range={"min": 0, "max": 32800, "step": 100}),
      col("msoa_code", "str", "Middle Layer Super Output Area code.", regex="E020[0-9]{5}"),
      col("has_postcode", "bool", "Whether a valid postcode is recorded."),
      col("care_home_is_potential_match", "bool", "Whether the address may be a care home (TPP's matching)."),
      col("care_home_requires_nursing", "bool", "Matched care home provides nursing."),
      col("care_home_does_not_require_nursing", "bool", "Matched care home does not provide nursing.")),
  "apcs": table("event", "Admitted patient care spells from the Secondary Uses Service.",
      col("apcs_ident", "int", "Spell identifier shared by the APCS tables.", not_null=True),
      col("admission_date", "date", "Admission date of the spell.", dummy=since("2016-04-01")),
      col("discharge_date", "date", "Discharge date of the spell.", dummy={**after("admission_date"), **since("2016-04-01")}),
      col("discharge_destination", "str", "Two-character discharge destination code."),
      col("discharge_method", "str", "Discharge method code."),
      col("spell_core_hrg_sus", "str", "Core Healthcare Resource Group code of the spell."),
      col("admission_method", "str", "Admission method code."),
      col("primary_diagnosis", "ICD10Code", "Primary diagnosis."),
      col("secondary_diagnosis", "ICD10Code", "First listed secondary diagnosis."),
      col("all_diagnoses", "ICD10MultiCodeString", "All diagnoses: ICD-10 codes without dots, comma-separated, episodes separated by ||."),
      col("all_procedures", "OPCS4MultiCodeString", "All procedures: OPCS-4 codes without dots, comma-separated, episodes separated by ||."),
      col("days_in_critical_care", "int", "Days or part-days spent in critical care."),
      col("patient_classification", "str", "Patient classification code.")),
  "apcs_cost": table("event", "Costs of admitted patient care spells.",
      col("apcs_ident", "int", "Spell identifier shared by the APCS tables.", not_null=True),
      col("grand_total_payment_mff", "float", "Grand total payment including market forces factor."),
      col("tariff_initial_amount", "float", "Base national tariff."),
      col("tariff_total_payment", "float", "Total payment under the national tariff."),
      col("admission_date", "date", "Admission date of the spell.", dummy=since("2016-04-01")),
      col("discharge_date", "date", "Discharge date of the spell.", dummy={**after("admission_date"), **since("2016-04-01")})),
  "appointments": table("event", "Appointments booked with primary care.",
      col("booked_date", "date", "Date the appointment was booked."),
      col("start_date", "date", "Date the appointment was due to start.", dummy=after("booked_date")),
      col("seen_date", "date", "Date the patient was seen.", dummy=after("booked_date", "start_date")),
      col("status", "str", "Status of the appointment.", categories=["Booked", "Arrived", "Did Not Attend", "In Progress", "Finished", "Requested", "Blocked", "Visit", "Waiting", "Cancelled by Patient", "Cancelled by Unit", "Cancelled by Other Service", "No Access Visit", "Cancelled Due To Death", "Patient Walked Out"])),
  "clinical_events": table("event", "Clinical and consultation events; each is recorded once with a CTV3 code and once with a SNOMED-CT code.",
      col("date", "date", "Date of the event."), col("snomedct_code", "SNOMEDCTCode", "SNOMED-CT code (null on CTV3 rows)."),
      col("ctv3_code", "CTV3Code", "CTV3 code (null on SNOMED-CT rows)."), col("numeric_value", "float", "Numeric value recorded with the event, if any."),
      col("consultation_id", "int", "Identifier of the consultation the event belongs to.")),
  "clinical_events_ranges": table("event", "Clinical events with the comparator and reference range of their numeric value.",
      col("date", "date", "Date of the event."), col("snomedct_code", "SNOMEDCTCode", "SNOMED-CT code."),
      col("ctv3_code", "CTV3Code", "CTV3 code."), col("numeric_value", "float", "Numeric value recorded with the event."),
      col("lower_bound", "float", "Lower bound of the reference range."), col("upper_bound", "float", "Upper bound of the reference range."),
      col("comparator", "str", "Comparator recorded with the value.", categories=["~", "=", ">=", ">", "<", "<="]),
      col("consultation_id", "int", "Identifier of the consultation the event belongs to.")),
  "covid_therapeutics": table("event", "COVID-19 antiviral and antibody treatment forms (NHS England).",
      col("covid_indication", "str", "Treatment setting.", categories=["non_hospitalised", "hospitalised_with", "hospital_onset"]),
      col("current_status", "str", "Status of the form.", categories=["Approved", "Treatment Complete", "Treatment Not Started", "Treatment Stopped"]),
      col("intervention", "str", "Name of the therapeutic."),
      col("received", "date", "Date the form was submitted."),
      col("region", "str", "NHS England region of the submitting unit."),
      col("risk_cohort", "str", "Comma-separated high-risk groups."),
      col("treatment_start_date", "date", "Planned or actual treatment start date.")),
  "decision_support_values": table("event", "Values computed by decision support algorithms such as the electronic frailty index.",
      col("calculation_date", "date", "Date the value was calculated.", dummy=dict(categories=["2020-12-08"], not_null=True)),
      col("numeric_value", "float", "Computed value."),
      col("algorithm_description", "str", "Name of the algorithm."),
      col("algorithm_version", "str", "Version of the algorithm.")),
  "ec": table("event", "Emergency care attendances (ECDS): core details.",
      col("ec_ident", "int", "Attendance identifier shared by the EC tables.", not_null=True),
      col("arrival_date", "date", "Date of arrival at the emergency department.", dummy=since("2017-10-01")),
      col("sus_hrg_code", "str", "Core HRG code derived by SUS+.", regex="[a-zA-Z]{2}[0-9]{2}[a-zA-Z]")),
  "ec_cost": table("event", "Emergency care attendances: costs.",
      col("ec_ident", "int", "Attendance identifier shared by the EC tables.", not_null=True),
      col("grand_total_payment_mff", "float", "Grand total payment including market forces factor."),
      col("tariff_total_payment", "float", "Total payment under the national tariff."),
      col("arrival_date", "date", "Date of arrival at the emergency department.", dummy={**after("ec_injury_date"), **since("2017-10-01")}),
      col("ec_decision_to_admit_date", "date", "Date of the decision to admit, if any.", dummy={**after("ec_injury_date", "arrival_date"), **since("2017-10-01")}),
      col("ec_injury_date", "date", "Date of injury, if any.", dummy=since("2017-10-01"))),
  "emergency_care_attendances": table("event", "Emergency care attendances with discharge destination and diagnoses.",
      col("id", "int", "Attendance identifier shared by the EC tables.", not_null=True),
      col("arrival_date", "date", "Date of arrival at the emergency department.", dummy=since("2017-10-01")),
      col("discharge_destination", "SNOMEDCTCode", "Intended destination after discharge."), *ec_diag),
  "ethnicity_from_sus": table("patient", "Most frequent national ethnicity code across SUS tables.",
      col("code", "str", "First character of the national ethnicity code.", categories=list("ABCDEFGHJKLMNPRS"))),
  "household_memberships_2020": table("patient", "Household membership inferred by TPP as of 2020-02-01.",
      col("household_pseudo_id", "int", "Pseudonymised household identifier."), col("household_size", "int", "Number of people in the household.")),
  "medications": table("event", "Medications issued in primary care, coded in dm+d.",
      col("date", "date", "Date the prescription was issued."), col("dmd_code", "DMDCode", "dm+d code of the medication."),
      col("consultation_id", "int", "Identifier of the consultation the issue belongs to.")),
  "occupation_on_covid_vaccine_record": table("event", "Health or care worker status recorded at COVID-19 vaccination.",
      col("is_healthcare_worker", "bool", "Whether the person said they were a health or care worker.")),
  "ons_deaths": table("patient", "Deaths registered with the ONS (earliest registration per patient), with place of death.", *ons_deaths,
      col("place", "str", "Place of death.", categories=["Care Home", "Elsewhere", "Home", "Hospice", "Hospital", "Other communal establishment"])),
  "opa": table("event", "Outpatient appointments: core details.",
      col("opa_ident", "int", "Appointment identifier shared by the OPA tables.", not_null=True),
      col("appointment_date", "date", "Date of the appointment.", dummy={**after("referral_request_received_date"), **since("2019-04-01")}),
      col("attendance_status", "str", "Attended or did-not-attend code.", categories=["5", "6", "7", "2", "3", "4", "0"]),
      col("consultation_medium_used", "str", "Consultation mechanism code.", categories=["01", "02", "03", "04", "05", "09", "10", "11", "98"]),
      col("first_attendance", "str", "First or follow-up attendance code.", categories=["1", "2", "3", "4", "5", "9"]),
      col("hrg_code", "str", "HRG code of the activity.", regex="[a-zA-Z]{2}[0-9]{2}[a-zA-Z]"),
      col("outcome_of_attendance", "str", "Outcome of the attendance.", categories=["1", "2", "3", "4", "5"]),
      col("referral_request_received_date", "date", "Date the referral was received.", dummy=since("2019-04-01")),
      col("treatment_function_code", "str", "Treatment function code.")),
  "opa_cost": table("event", "Outpatient appointments: costs.",
      col("opa_ident", "int", "Appointment identifier shared by the OPA tables.", not_null=True),
      col("tariff_opp", "float", "Base national tariff where a procedure tariff applies."),
      col("grand_total_payment_mff", "float", "Grand total payment including market forces factor."),
      col("tariff_total_payment", "float", "Total payment under the national tariff."),
      col("appointment_date", "date", "Date of the appointment.", dummy={**after("referral_request_received_date"), **since("2019-04-01")}),
      col("referral_request_received_date", "date", "Date the referral was received.", dummy=since("2019-04-01"))),
  "opa_diag": table("event", "Outpatient appointments: diagnoses (often absent).",
      col("opa_ident", "int", "Appointment identifier shared by the OPA tables.", not_null=True),
      col("primary_diagnosis_code", "ICD10Code", "Primary diagnosis (ICD-10)."),
      col("primary_diagnosis_code_read", "CTV3Code", "Primary diagnosis (Read)."),
      col("secondary_diagnosis_code_1", "ICD10Code", "Secondary diagnosis (ICD-10)."),
      col("secondary_diagnosis_code_1_read", "CTV3Code", "Secondary diagnosis (Read)."),
      col("appointment_date", "date", "Date of the appointment.", dummy={**after("referral_request_received_date"), **since("2019-04-01")}),
      col("referral_request_received_date", "date", "Date the referral was received.", dummy=since("2019-04-01"))),
  "opa_proc": table("event", "Outpatient appointments: procedures.",
      col("opa_ident", "int", "Appointment identifier shared by the OPA tables.", not_null=True),
      col("primary_procedure_code", "OPCS4Code", "Primary procedure (OPCS-4)."),
      col("primary_procedure_code_read", "CTV3Code", "Primary procedure (Read)."),
      col("procedure_code_2", "OPCS4Code", "Second procedure (OPCS-4)."),
      col("procedure_code_2_read", "CTV3Code", "Second procedure (Read)."),
      col("appointment_date", "date", "Date of the appointment.", dummy={**after("referral_request_received_date"), **since("2019-04-01")}),
      col("referral_request_received_date", "date", "Date the referral was received.", dummy=since("2019-04-01"))),
  "open_prompt": table("event", "Responses to OpenPROMPT questionnaires.",
      col("ctv3_code", "CTV3Code", "Response (or question) as a CTV3 code.", not_null=True),
      col("snomedct_code", "SNOMEDCTCode", "Response (or question) as a SNOMED-CT code."),
      col("creation_date", "date", "Date the survey was administered.", not_null=True),
      col("consultation_date", "date", "Response as a date, or the survey date.", not_null=True),
      col("consultation_id", "int", "Survey identifier.", not_null=True),
      col("numeric_value", "float", "Response as a number.")),
  "parents": table("patient", "Pseudonymous identifier of the patient's mother where recorded.",
      col("mother_id", "int", "patient_id of the mother.")),
  "patients": patients,
  "practice_registrations": table("event", "Registrations of patients with practices.", *practice_registrations,
      col("practice_stp", "str", "ONS code of the practice's STP.", regex="E540000[0-9]{2}"),
      col("practice_nuts1_region_name", "str", "NUTS1 region of the practice.", categories=["North East", "North West", "Yorkshire and The Humber", "East Midlands", "West Midlands", "East", "London", "South East", "South West"]),
      col("practice_systmone_go_live_date", "date", "Date the practice started using SystmOne.")),
  "sgss_covid_all_tests": table("event", "SARS-CoV-2 test results from SGSS.",
      col("specimen_taken_date", "date", "Date the specimen was taken.", not_null=True, dummy=since("2020-01-01")),
      col("is_positive", "bool", "Whether the test was positive.", not_null=True),
      col("lab_report_date", "date", "Date the laboratory reported.", not_null=True, dummy={**after("specimen_taken_date"), **since("2020-01-01")}),
      col("was_symptomatic", "bool", "Whether symptoms were reported; null if unknown."),
      col("sgtf_status", "int", "S-gene target failure status, 0 to 9.", range={"min": 0, "max": 9}),
      col("variant", "str", "Identified variant (free text)."),
      col("variant_detection_method", "str", "How the variant was identified.", categories=["Private Lab Sequencing", "Reflex Assay", "Sanger Provisional Result"])),
  "ukrr": table("event", "UK Renal Registry cohorts.",
      col("dataset", "str", "Cohort the row belongs to.", categories=["2019_prevalence", "2020_prevalence", "2021_prevalence", "2020_incidence", "2020_ckd"]),
      col("renal_centre", "str", "Main renal centre code."),
      col("rrt_start_date", "date", "Latest start of renal replacement therapy."),
      col("latest_creatinine", "float", "Most recent creatinine."),
      col("latest_egfr", "float", "Most recent eGFR."),
      col("treatment_modality_start", "str", "Treatment modality at rrt_start_date."),
      col("treatment_modality_prevalence", "str", "Treatment modality in the prevalence data.")),
  "vaccinations": table("event", "Administered vaccinations.",
      col("vaccination_id", "int", "Vaccination identifier."), col("date", "date", "Date administered."),
      col("target_disease", "str", "Disease the vaccine targets."), col("product_name", "str", "Product name.")),
  "wl_clockstops": table("event", "Waiting list completed referral-to-treatment pathways (WLMDS clock stops).",
      col("activity_treatment_function_code", "str", "Treatment function.", regex="[a-zA-Z0-9]{3}"),
      col("priority_type_code", "str", "Priority type.", categories=["routine", "urgent", "two week wait"]),
      col("pseudo_organisation_code_patient_pathway_identifier_issuer", "str", "Pseudonymised issuer of the pathway identifier."),
      col("pseudo_patient_pathway_identifier", "str", "Pseudonymised pathway identifier."),
      col("pseudo_referral_identifier", "str", "Pseudonymised referral identifier."),
      col("referral_request_received_date", "date", "Date the original referral was received."),
      col("referral_to_treatment_period_end_date", "date", "Clock stop.", dummy=after("referral_to_treatment_period_start_date")),
      col("referral_to_treatment_period_start_date", "date", "Clock start."),
      col("source_of_referral_for_outpatients", "str", "Source of referral."),
      col("waiting_list_type", "str", "Waiting list type on completion.", categories=["ORTT", "IRTT", "PTLO", "PTLI", "RTTO", "RTTI"]),
      col("week_ending_date", "date", "Sunday of the week the row relates to.")),
  "wl_openpathways": table("event", "Waiting list open pathways (WLMDS), one row per waiting week.",
      col("activity_treatment_function_code", "str", "Treatment function.", regex="[a-zA-Z0-9]{3}"),
      col("current_pathway_period_start_date", "date", "Latest clock start of the pathway period."),
      col("priority_type_code", "str", "Priority type.", categories=["routine", "urgent", "two week wait"]),
      col("pseudo_organisation_code_patient_pathway_identifier_issuer", "str", "Pseudonymised issuer of the pathway identifier."),
      col("pseudo_patient_pathway_identifier", "str", "Pseudonymised pathway identifier."),
      col("pseudo_referral_identifier", "str", "Pseudonymised referral identifier."),
      col("referral_request_received_date", "date", "Date the original referral was received."),
      col("referral_to_treatment_period_end_date", "date", "Null while the pathway is open.", dummy=after("referral_to_treatment_period_start_date")),
      col("referral_to_treatment_period_start_date", "date", "Latest clock start; null for non-current pathways."),
      col("source_of_referral", "str", "Referral source code.", regex="[a-zA-Z0-9]{2}"),
      col("waiting_list_type", "str", "Waiting list type.", categories=["ORTT", "IRTT", "ONON", "INON", "PTLO", "PTLI", "RTTO", "RTTI"]),
      col("week_ending_date", "date", "Sunday of the week the row relates to.")),
}

core["ons_deaths"]["description"] = "Deaths registered with the ONS: the earliest registration of each patient."


def ons_deaths_raw(*extra):
    return table("event", "Every death registration with the ONS (a few patients have more than one).",
        col("date", "date", "Registered date of death."), *extra, *ons_deaths[1:], data="ons_deaths_raw")


place = tpp["ons_deaths"]["columns"][-1]
raw_core = {"ons_deaths": ons_deaths_raw()}
smoketest = {"patients": table("patient", "The one column every backend has, for a minimal end-to-end test.", patients["columns"][0])}


def yes_no(name, desc):
    return col(name, "str", desc, categories=["YES", "NO", "Unknown"])


isaric = table("event", "ISARIC/CO-CIN records of hospital admissions for COVID-19, as provided (mostly text).",
    col("age", "str", "Age at admission, as recorded."),
    col("age_factor", "str", "Unit of the recorded age."),
    col("calc_age", "str", "Age at admission, as computed by the source."),
    col("sex", "str", "Sex at birth."),
    *[col(f"ethnic___{i}", "str", f"Ethnic group option {i} ticked.") for i in range(1, 11)],
    col("covid19_vaccine", "str", "Whether a COVID-19 vaccine was received."),
    col("covid19_vaccined", "date", "Date of the first COVID-19 vaccine dose."),
    col("covid19_vaccine2d", "date", "Date of the second COVID-19 vaccine dose."),
    col("covid19_vaccined_nk", "str", "Whether the vaccination dates are unknown."),
    col("corona_ieorres", "str", "Suspected or confirmed infection with the pathogen of public interest."),
    col("coriona_ieorres2", "str", "Proven or high likelihood of infection with the pathogen."),
    col("coriona_ieorres3", "str", "Infection proven by a positive test."),
    col("inflammatory_mss", "str", "Meets the case definition of paediatric multisystem inflammatory syndrome."),
    col("cestdat", "date", "Onset date of the first symptom."),
    yes_no("chrincard", "Chronic cardiac disease."),
    yes_no("hypertension_mhyn", "Hypertension."),
    yes_no("chronicpul_mhyn", "Chronic pulmonary disease (not asthma)."),
    yes_no("asthma_mhyn", "Asthma."),
    yes_no("renal_mhyn", "Chronic kidney disease."),
    yes_no("mildliver", "Mild liver disease."),
    yes_no("modliv", "Moderate or severe liver disease."),
    yes_no("chronicneu_mhyn", "Chronic neurological disorder."),
    yes_no("malignantneo_mhyn", "Malignant neoplasm."),
    yes_no("chronichaemo_mhyn", "Chronic haematological disease."),
    yes_no("aidshiv_mhyn", "AIDS or HIV."),
    yes_no("obesity_mhyn", "Obesity (clinician-defined)."),
    col("diabetes_type_mhyn", "str", "Diabetes and its type.", categories=["NO", "1", "2", "N/K"]),
    yes_no("diabetescom_mhyn", "Diabetes with complications."),
    yes_no("diabetes_mhyn", "Diabetes without complications."),
    yes_no("rheumatologic_mhyn", "Rheumatological disorder."),
    yes_no("dementia_mhyn", "Dementia."),
    yes_no("malnutrition_mhyn", "Malnutrition."),
    col("smoking_mhyn", "str", "Smoking status.", categories=["Yes", "Never Smoked", "Former Smoker", "N/K"]),
    col("hostdat", "date", "Date of admission (or of first hospital attendance)."),
    col("hooccur", "str", "Whether the patient was transferred from another facility."),
    col("hostdat_transfer", "date", "Date of admission at the transferring facility."),
    col("hostdat_transfernk", "str", "Whether the transfer admission date is unknown."),
    col("readm_cov19", "str", "Whether this is a readmission with COVID-19."),
    col("dsstdat", "date", "Date of enrolment."),
    col("dsstdtc", "date", "Date of outcome."),
    data="isaric_raw")


def as_text(spec, desc, data):
    """A table whose columns are all text, as a raw extract holds them."""
    cols = [col(c["name"], "str", c.get("description", "")) for c in spec["columns"]]
    return table(spec["level"], desc, *cols, data=data)


medication_status = col("medication_status", "int", "Status code of the prescription (0 to 28).", range={"min": 0, "max": 28})
quantity = col("quantity", "str", "Quantity prescribed, as written.")
repeat_id = col("repeat_medication_id", "int", "Identifier of the repeat prescription the issue belongs to.")
raw_tpp = {
    "apcs_cost_historical": table("event", "Costs of admitted patient care spells before the current APCS feed.",
        *[col(c["name"], c["type"], c["description"], **({"not_null": True} if c["name"] == "apcs_ident" else {})) for c in tpp["apcs_cost"]["columns"]]),
    "apcs_historical": table("event", "Admitted patient care spells before the current APCS feed.",
        col("apcs_ident", "int", "Spell identifier shared by the historical APCS tables.", not_null=True),
        col("admission_date", "date", "Admission date of the spell."),
        col("discharge_date", "date", "Discharge date of the spell."),
        col("spell_core_hrg_sus", "str", "Core Healthcare Resource Group code of the spell.")),
    "isaric": isaric,
    "medications": table("event", "Every medication issue in primary care, with its status, quantity and repeat prescription.",
        *tpp["medications"]["columns"], medication_status, quantity, repeat_id, data="medications_raw"),
    "ons_deaths": ons_deaths_raw(place),
    "repeat_medications": table("event", "Repeat prescriptions set up in primary care (each issue is a row of medications).",
        col("date", "date", "Date the repeat prescription was set up."),
        col("dmd_code", "DMDCode", "dm+d code of the medication."),
        col("consultation_id", "int", "Identifier of the consultation it was set up in."),
        col("repeat_medication_id", "int", "Identifier of the repeat prescription."),
        medication_status, quantity,
        col("start_date", "date", "Date the repeat prescription starts."),
        col("end_date", "date", "Date the repeat prescription ends."),
        data="repeat_medications_raw"),
    "wl_clockstops": as_text(tpp["wl_clockstops"], "Waiting list clock stops as supplied, every column text.", "wl_clockstops_raw"),
    "wl_openpathways": as_text(tpp["wl_openpathways"], "Waiting list open pathways as supplied, every column text.", "wl_openpathways_raw"),
}
# ---------------------------------------------------------------- EMIS

emis = {
  "clinical_events": core["clinical_events"],
  "medications": core["medications"],
  "ons_deaths": core["ons_deaths"],
  "patients": table("patient", "Patients in primary care, with their current practice registration.",
      col("date_of_birth", "date", "Date of birth, recorded to the month.", first_of_month=True, not_null=True),
      col("sex", "str", "Recorded sex.", categories=["female", "male", "unknown"], not_null=True),
      col("date_of_death", "date", "Date of death in the primary care record."),
      col("registration_start_date", "date", "Date the current registration began.", not_null=True),
      col("registration_end_date", "date", "Date the current registration ended."),
      col("practice_pseudo_id", "str", "Pseudonymised identifier of the practice.", not_null=True),
      col("rural_urban_classification", "int", "Rural-urban class, 1 (major conurbation) to 8 (sparse rural village).", range={"min": 1, "max": 8}),
      col("imd_rounded", "int", "Index of Multiple Deprivation rank, rounded to 100 (lower is more deprived).", range={"min": 0, "max": 32800, "step": 100})),
  "practice_registrations": core["practice_registrations"],
  "vaccinations": table("event", "Administered vaccinations, by SNOMED-CT procedure code.",
      col("date", "date", "Date administered."), col("procedure_code", "SNOMEDCTCode", "SNOMED-CT code of the vaccination procedure.")),
}
raw_emis = {"ons_deaths": ons_deaths_raw()}

emisv2 = {
    "addresses": table("event", "The address of each registration period (derived from the patient record: at most one at a time).",
        col("start_date", "date", "Date the registration began."),
        col("end_date", "date", "Date the registration ended.", dummy=after("start_date")),
        col("imd_rounded", "int", "Index of Multiple Deprivation rank, rounded to 100 (lower is more deprived).", range={"min": 0, "max": 32800, "step": 100}),
        col("msoa_code", "str", "Middle Layer Super Output Area code.", regex="E020[0-9]{5}")),
    "clinical_events": core["clinical_events"],
    "medications": core["medications"],
    "patients": core["patients"],
    "practice_registrations": table("event", "Registrations with practices (derived from the patient record: at most one at a time).",
        col("start_date", "date", "Date the registration began.", not_null=True),
        col("end_date", "date", "Date the registration ended; null while it is current.", dummy=dict(categories=[None]))),
}

# ---------------------------------------------------------------- ehrQL v0 (ehrql.tables.beta.*)


def v0(spec, columns=None, **constraints):
    """ehrQL v0's form of a table: no dummy-data constraints, optionally only some
    columns (in v0's order) and other constraints for some of them."""
    t = copy.deepcopy(spec)
    for c in t["columns"]:
        c.get("constraints", {}).pop("dummy_data", None)
        if c.get("constraints") == {}:
            del c["constraints"]
    if columns is not None:
        by_name = {c["name"]: c for c in t["columns"]}
        t["columns"] = [by_name[n] for n in columns]
    for name, changes in constraints.items():
        c = next(c for c in t["columns"] if c["name"] == name)
        c.setdefault("constraints", {}).update(changes)
    return t


def without(spec, *names):
    return [c["name"] for c in spec["columns"] if c["name"] not in names]


V0_CORE = ["clinical_events", "medications", "ons_deaths", "patients"]
beta_core = {n: v0(core[n]) for n in V0_CORE}
# Not in any ehrQL v0: earlier ehrfusion releases offered practice_registrations here
# (testdata/studies/diagnoses-v0 uses it), so it stays.
beta_core["practice_registrations"] = v0(core["practice_registrations"])
beta_raw_core = {"ons_deaths": v0(raw_core["ons_deaths"])}
beta_smoketest = {n: v0(t) for n, t in smoketest.items()}
beta_tpp = {n: v0(tpp[n]) for n in [
    "addresses", "apcs_cost", "appointments", "ec", "ec_cost", "emergency_care_attendances", "ethnicity_from_sus",
    "household_memberships_2020", "occupation_on_covid_vaccine_record", "opa_cost", "opa_diag", "opa_proc", "open_prompt",
    "patients", "sgss_covid_all_tests", "vaccinations"]}
beta_tpp.update({
    "apcs": v0(tpp["apcs"], ["apcs_ident", "admission_date", "discharge_date", "spell_core_hrg_sus"]),
    "clinical_events": v0(tpp["clinical_events"], ["date", "snomedct_code", "ctv3_code", "numeric_value"]),
    "hospital_admissions": table("event", "Hospital admissions (ehrQL v0; its data are those of apcs, which replaced it).",
        col("id", "int", "Spell identifier (apcs_ident)."),
        col("admission_date", "date", "Admission date of the spell."),
        col("discharge_date", "date", "Discharge date of the spell."),
        col("admission_method", "str", "Admission method code."),
        col("all_diagnoses", "str", "All diagnoses of the spell's episodes, as one string."),
        col("patient_classification", "str", "Patient classification code."),
        col("days_in_critical_care", "int", "Days or part-days spent in critical care."),
        col("primary_diagnoses", "str", "The primary diagnosis (one code despite the name; superseded by primary_diagnosis)."),
        col("primary_diagnosis", "ICD10Code", "Primary diagnosis.")),
    "medications": v0(tpp["medications"], ["date", "dmd_code"]),
    "ons_deaths": v0(tpp["ons_deaths"], ["date", "place", "underlying_cause_of_death"] + [f"cause_of_death_{i:02d}" for i in range(1, 16)]),
    "opa": v0(tpp["opa"], without(tpp["opa"], "outcome_of_attendance", "referral_request_received_date")),
    "practice_registrations": v0(tpp["practice_registrations"], without(tpp["practice_registrations"], "practice_systmone_go_live_date")),
    "wl_clockstops": v0(tpp["wl_clockstops"], waiting_list_type={"categories": ["ORTT", "IRTT"]}),
    "wl_openpathways": v0(tpp["wl_openpathways"], waiting_list_type={"categories": ["ORTT", "IRTT", "ONON", "INON"]}),
})
beta_raw_tpp = {n: v0(raw_tpp[n]) for n in ["apcs_cost_historical", "apcs_historical", "isaric", "ons_deaths", "wl_clockstops", "wl_openpathways"]}
beta_emis = {n: v0(core[n]) for n in V0_CORE}
beta_raw_emis = {"ons_deaths": v0(raw_core["ons_deaths"])}

# ---------------------------------------------------------------- backends

# Each module, with the backend whose file holds it.
MODULES = {
    "ehrql.tables.core": ("core", core),
    "ehrql.tables.raw.core": ("core", raw_core),
    "ehrql.tables.smoketest": ("core", smoketest),
    "ehrql.tables.beta.core": ("core", beta_core),
    "ehrql.tables.beta.raw.core": ("core", beta_raw_core),
    "ehrql.tables.beta.smoketest": ("core", beta_smoketest),
    "ehrql.tables.tpp": ("tpp", tpp),
    "ehrql.tables.raw.tpp": ("tpp", raw_tpp),
    "ehrql.tables.beta.tpp": ("tpp", beta_tpp),
    "ehrql.tables.beta.raw.tpp": ("tpp", beta_raw_tpp),
    "ehrql.tables.emis": ("emis", emis),
    "ehrql.tables.raw.emis": ("emis", raw_emis),
    "ehrql.tables.beta.emis": ("emis", beta_emis),
    "ehrql.tables.beta.raw.emis": ("emis", beta_raw_emis),
    "ehrql.tables.emisv2": ("emisv2", emisv2),
}
CORE_V1 = ["ehrql.tables.core", "ehrql.tables.raw.core", "ehrql.tables.smoketest"]
CORE_V0 = ["ehrql.tables.beta.core", "ehrql.tables.beta.raw.core", "ehrql.tables.beta.smoketest"]
# The modules each backend serves; the first to list a table or column gives its
# description and constraints.
BACKENDS = {
    "core": ("Tables available in every primary-care backend.", CORE_V1 + CORE_V0),
    "tpp": ("Tables of the OpenSAFELY-TPP backend (primary care and linked data).",
            ["ehrql.tables.tpp", "ehrql.tables.raw.tpp"] + CORE_V1 + ["ehrql.tables.beta.tpp", "ehrql.tables.beta.raw.tpp"] + CORE_V0),
    "emis": ("Tables of the OpenSAFELY-EMIS backend.",
             ["ehrql.tables.emis", "ehrql.tables.raw.emis"] + CORE_V1 + ["ehrql.tables.beta.emis", "ehrql.tables.beta.raw.emis"] + CORE_V0),
    "emisv2": ("Tables of the second OpenSAFELY-EMIS backend (registrations and addresses derived from the patient record).",
               ["ehrql.tables.emisv2", "ehrql.tables.smoketest", "ehrql.tables.beta.smoketest"]),
}


def view(name, spec):
    """A module's table as written to the file: the data table it reads, and its own
    level, description and columns."""
    return {"table": spec.get("table", name), "level": spec["level"], "description": spec["description"],
            "columns": copy.deepcopy(spec["columns"])}


def data_tables(backend, modules):
    tables = {}
    for module in modules:
        for name, spec in MODULES[module][1].items():
            v = view(name, spec)
            where = f"{module}.{name}"
            t = tables.setdefault(v["table"], {"level": v["level"], "description": v["description"], "columns": []})
            if t["level"] != v["level"]:
                raise SystemExit(f"{backend}: {where} is {v['level']}-level but table '{v['table']}' is {t['level']}-level")
            known = {c["name"]: c for c in t["columns"]}
            for c in v["columns"]:
                if c["name"] not in known:
                    t["columns"].append(c)
                elif known[c["name"]]["type"] != c["type"]:
                    raise SystemExit(f"{backend}: {where}.{c['name']} is {c['type']} but table '{v['table']}' has it as {known[c['name']]['type']}")
    return dict(sorted(tables.items()))


here = os.path.dirname(os.path.abspath(__file__))
for backend, (description, served) in BACKENDS.items():
    doc = {
        "format_version": 1,
        "backend": backend,
        "description": description,
        "tables": data_tables(backend, served),
        "modules": {
            module: {name: view(name, spec) for name, spec in sorted(tables.items())}
            for module, (home, tables) in MODULES.items() if home == backend
        },
    }
    with open(os.path.join(here, f"{backend}.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
