//! Dummy data: population_size honoured (and where it comes from), determinism by
//! seed, schema constraints on generated tables, consistency with the query, the
//! timeout, and a researcher's own dummy data file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn ehrfusion(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ehrfusion")).current_dir(dir).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stderr).unwrap()
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(ehrfusion::source::csv::open_maybe_gzip(path).unwrap());
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    (header, r.records().map(|x| x.unwrap().iter().map(str::to_string).collect()).collect())
}

const DEFINITION: &str = r#"
from ehrql import create_dataset, codelist_from_csv, days
from ehrql.tables.tpp import patients, clinical_events, practice_registrations, medications, ons_deaths, addresses, apcs

index_date = "2022-03-31"
dataset = create_dataset()
dataset.define_population(practice_registrations.for_patient_on(index_date).exists_for_patient() & patients.is_alive_on(index_date) & (patients.age_on(index_date) >= 18))
dataset.age = patients.age_on(index_date)
dataset.sex = patients.sex
asthma = clinical_events.where(clinical_events.snomedct_code.is_in(["195967001", "38341003"]))
dataset.asthma_first = asthma.sort_by(asthma.date).first_for_patient().date
dataset.asthma_code = asthma.sort_by(asthma.date).first_for_patient().snomedct_code
dataset.asthma_count = asthma.where(asthma.date.is_on_or_before(index_date)).count_for_patient()
dataset.meds = medications.where(medications.dmd_code.is_in(["39113611000001102"])).count_for_patient()
dataset.died_ons = ons_deaths.exists_for_patient()
dataset.imd = addresses.for_patient_on(index_date).imd_quintile
dataset.admitted_for_mi = apcs.where(apcs.all_diagnoses.contains("I21")).exists_for_patient()
"#;

/// A project folder holding a definition (and optionally a project.yaml).
fn project(definition: &str, yaml_size: Option<usize>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("analysis")).unwrap();
    std::fs::write(dir.path().join("analysis/dataset_definition.py"), definition).unwrap();
    if let Some(n) = yaml_size {
        std::fs::write(dir.path().join("project.yaml"), format!("version: '3.0'\nexpectations:\n  population_size: {n}\nactions: {{}}\n")).unwrap();
    }
    dir
}

fn rows_generated(dir: &Path, extra: &[&str]) -> usize {
    let mut args = vec!["generate-dataset", "analysis/dataset_definition.py", "--output", "out/dataset.csv"];
    args.extend_from_slice(extra);
    ok(ehrfusion(dir, &args));
    csv_rows(&dir.join("out/dataset.csv")).1.len()
}

#[test]
fn exactly_population_size_rows() {
    let p = project(DEFINITION, None);
    for n in [1, 10, 137, 2000] {
        assert_eq!(rows_generated(p.path(), &["--population-size", &n.to_string()]), n, "population size {n}");
    }
}

#[test]
fn population_size_precedence() {
    // project.yaml alone
    let p = project(DEFINITION, Some(42));
    assert_eq!(rows_generated(p.path(), &[]), 42);
    // the definition's configure_dummy_data beats project.yaml
    let configured = format!("{DEFINITION}\ndataset.configure_dummy_data(population_size=25)\n");
    let p = project(&configured, Some(42));
    assert_eq!(rows_generated(p.path(), &[]), 25);
    // the command line beats both
    assert_eq!(rows_generated(p.path(), &["--population-size", "7"]), 7);
    // ehrQL's default
    let p = project(DEFINITION, None);
    assert_eq!(rows_generated(p.path(), &[]), 10);
    // project.yaml in a folder above the definition's
    let p = project(DEFINITION, Some(33));
    std::fs::create_dir_all(p.path().join("analysis/sub")).unwrap();
    std::fs::rename(p.path().join("analysis/dataset_definition.py"), p.path().join("analysis/sub/def.py")).unwrap();
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/sub/def.py", "--output", "o.csv"]));
    assert_eq!(csv_rows(&p.path().join("o.csv")).1.len(), 33);
}

fn dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_same_tables() {
    let p = project(DEFINITION, None);
    for (dir, seed) in [("a", "3"), ("b", "3"), ("c", "4")] {
        ok(ehrfusion(p.path(), &["create-dummy-tables", "analysis/dataset_definition.py", &format!("{dir}:parquet"), "--population-size", "300", "--seed", seed]));
    }
    let (a, b, c) = (dir_files(&p.path().join("a")), dir_files(&p.path().join("b")), dir_files(&p.path().join("c")));
    assert_eq!(a.len(), 7, "one file per table used: {:?}", a.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert!(a == b, "the same seed must give byte-identical tables");
    assert!(a != c, "a different seed should give different tables");
}

#[test]
fn generated_tables_hold_every_schema_constraint() {
    let p = project(DEFINITION, None);
    ok(ehrfusion(p.path(), &["create-dummy-tables", "analysis/dataset_definition.py", "tables", "--population-size", "500"]));
    let schema = ehrfusion::model::Schema::backend("tpp").unwrap();
    let (_, patients) = csv_rows(&p.path().join("tables/patients.csv"));
    let life: std::collections::HashMap<String, (String, String)> =
        patients.iter().map(|r| (r[0].clone(), (r[1].clone(), r[3].clone()))).collect();
    for entry in std::fs::read_dir(p.path().join("tables")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let table = schema.table(&name).unwrap();
        let (header, rows) = csv_rows(&path);
        assert!(!rows.is_empty(), "{name} is empty");
        if table.is_patient_level() {
            let ids: std::collections::HashSet<_> = rows.iter().map(|r| &r[0]).collect();
            assert_eq!(ids.len(), rows.len(), "{name}: one row per patient");
        }
        for (i, col) in table.columns.iter().enumerate() {
            assert_eq!(header[i + 1], col.name);
            let k = &col.constraints;
            let re = k.regex.as_ref().map(|r| regex::Regex::new(&format!("^(?:{r})$")).unwrap());
            for row in &rows {
                let v = &row[i + 1];
                if v.is_empty() {
                    assert!(!k.not_null, "{name}.{}: null in a not-null column", col.name);
                    continue;
                }
                if let Some(cats) = &k.categories {
                    assert!(cats.iter().any(|c| c.as_str().map_or(c.to_string(), str::to_string) == *v), "{name}.{}: {v} not a category", col.name);
                }
                if let Some(r) = &k.range {
                    let n: i64 = v.parse().unwrap();
                    assert!(n >= r.min && n <= r.max && (n - r.min) % r.step == 0, "{name}.{}: {n} out of range", col.name);
                }
                if k.first_of_month {
                    assert!(v.ends_with("-01"), "{name}.{}: {v} is not a first of month", col.name);
                }
                if let Some(re) = &re {
                    assert!(re.is_match(v), "{name}.{}: {v} does not match", col.name);
                }
                if col.ty == ehrfusion::model::ValueType::Date && name != "patients" {
                    let (dob, death) = &life[&row[0]];
                    assert!(v >= dob, "{name}.{}: {v} before birth ({dob})", col.name);
                    if !death.is_empty() && ["clinical_events", "medications", "ons_deaths"].contains(&name.as_str()) {
                        assert!(v <= death, "{name}.{}: {v} after death ({death})", col.name);
                    }
                }
            }
        }
    }
}

#[test]
fn rerunning_over_written_tables_gives_the_same_dataset() {
    let p = project(DEFINITION, None);
    for format in ["csv", "parquet"] {
        ok(ehrfusion(p.path(), &["create-dummy-tables", "analysis/dataset_definition.py", &format!("t-{format}:{format}"), "--population-size", "250", "--seed", "9"]));
        ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--dummy-tables", &format!("t-{format}"), "--output", &format!("from-tables-{format}.csv")]));
    }
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--population-size", "250", "--seed", "9", "--output", "direct.csv"]));
    let direct = std::fs::read_to_string(p.path().join("direct.csv")).unwrap();
    assert_eq!(direct.lines().count(), 251);
    for format in ["csv", "parquet"] {
        assert_eq!(std::fs::read_to_string(p.path().join(format!("from-tables-{format}.csv"))).unwrap(), direct, "{format}");
    }
}

#[test]
fn dummy_values_follow_the_query() {
    let p = project(DEFINITION, None);
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--population-size", "300", "--output", "d.csv"]));
    let (header, rows) = csv_rows(&p.path().join("d.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for name in ["asthma_first", "asthma_code", "imd"] {
        let filled = rows.iter().filter(|r| !r[col(name)].is_empty()).count();
        assert!(filled > 30, "{name}: only {filled} of 300 patients have a value");
    }
    for name in ["died_ons", "admitted_for_mi"] {
        assert!(rows.iter().any(|r| r[col(name)] == "T"), "{name} is never true");
        assert!(rows.iter().any(|r| r[col(name)] == "F"), "{name} is never false");
    }
    for r in &rows {
        let code = &r[col("asthma_code")];
        assert!(code.is_empty() || code == "195967001" || code == "38341003", "code {code} is not from the codelist");
        assert!(r[col("age")].parse::<i64>().unwrap() >= 18 && r[col("age")].parse::<i64>().unwrap() <= 110);
        assert!(["female", "male", "intersex", "unknown"].contains(&r[col("sex")].as_str()));
    }
    assert!(rows.iter().any(|r| r[col("meds")] != "0"), "some patients should have the medication the query counts");
}

#[test]
fn timeout_reports_and_writes_what_it_has() {
    let unsatisfiable = DEFINITION.replace("dataset.define_population(", "dataset.define_population(patients.date_of_birth.is_before('1800-01-01') & ");
    let p = project(&unsatisfiable, None);
    let out = ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--timeout", "1", "--output", "d.csv"]);
    let stderr = ok(out);
    assert!(stderr.contains("warning: found only 0 of 10 dummy patients who satisfy the population within 1 seconds"), "{stderr}");
    assert_eq!(csv_rows(&p.path().join("d.csv")).1.len(), 0);
}

#[test]
fn real_studies_get_plausible_dummy_data() {
    let studies = repo().join("testdata/studies");
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("symptoms.csv");
    ok(ehrfusion(&studies.join("symptoms"), &["generate-dataset", "analysis/dataset_definition.py", "--output", target.to_str().unwrap()]));
    let (header, rows) = csv_rows(&target);
    assert_eq!(rows.len(), 1000, "population_size from the study's project.yaml");
    for (i, name) in header.iter().enumerate() {
        if name.ends_with("_ever") || name == "first_diagnosis" || name == "region" {
            let filled = rows.iter().filter(|r| !r[i].is_empty() && r[i] != "F").count();
            assert!(filled > 50, "{name}: only {filled} patients have a value");
        }
    }
}

#[test]
fn dummy_data_file_is_checked_and_used() {
    let p = project(DEFINITION, None);
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--population-size", "20", "--output", "mine.csv"]));
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--dummy-data-file", "mine.csv", "--output", "out.csv"]));
    assert_eq!(std::fs::read(p.path().join("mine.csv")).unwrap(), std::fs::read(p.path().join("out.csv")).unwrap());
    // Columns the definition does not have are ignored, as ehrQL ignores them: the
    // output holds the definition's columns only.
    let text = std::fs::read_to_string(p.path().join("mine.csv")).unwrap();
    let wider: String = text.lines().enumerate().map(|(i, l)| if i == 0 { format!("registered,{l},note\n") } else { format!("T,{l},x\n") }).collect();
    std::fs::write(p.path().join("wider.csv"), wider).unwrap();
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--dummy-data-file", "wider.csv", "--output", "out2.csv"]));
    assert_eq!(text, std::fs::read_to_string(p.path().join("out2.csv")).unwrap());
    // A renamed column, a wrong type and an impossible category are each named.
    let text = std::fs::read_to_string(p.path().join("mine.csv")).unwrap();
    for (broken, message) in [
        (text.replacen("asthma_count", "asthma_cnt", 1), "bad.csv: missing column 'asthma_count'"),
        (text.replacen(",F,", ",no,", 1), "is not a valid bool (T or F)"),
        (text.replace(",female,", ",woman,"), "bad.csv: column 'sex': 'woman' (row "),
    ] {
        std::fs::write(p.path().join("bad.csv"), &broken).unwrap();
        let out = ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--dummy-data-file", "bad.csv", "--output", "never.csv"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "expected {message:?} in {err}");
        assert!(!p.path().join("never.csv").exists());
    }
}

#[test]
fn raw_v0_and_emisv2_tables_get_dummy_data_within_their_dummy_constraints() {
    let p = project(
        r#"
from ehrql import claim_permissions, create_dataset
from ehrql.tables.raw.tpp import ons_deaths as raw_deaths, isaric, wl_clockstops
from ehrql.tables.beta.tpp import hospital_admissions
from ehrql.tables.tpp import apcs, practice_registrations, decision_support_values
from ehrql.tables.smoketest import patients

claim_permissions("isaric", "waiting_list")
dataset = create_dataset()
dataset.define_population(patients.exists_for_patient())
dataset.deaths = raw_deaths.count_for_patient()
dataset.isaric = isaric.where(isaric.asthma_mhyn == "YES").count_for_patient()
dataset.waits = wl_clockstops.where(wl_clockstops.week_ending_date.contains("2021")).count_for_patient()
dataset.admissions = hospital_admissions.where(hospital_admissions.primary_diagnoses.contains("I2")).count_for_patient()
dataset.spells = apcs.count_for_patient()
dataset.practice = practice_registrations.for_patient_on("2020-01-01").practice_pseudo_id
dataset.efi = decision_support_values.electronic_frailty_index().count_for_patient()
"#,
        None,
    );
    ok(ehrfusion(p.path(), &["create-dummy-tables", "analysis/dataset_definition.py", "tables", "--population-size", "300"]));
    for table in ["ons_deaths_raw", "isaric_raw", "wl_clockstops_raw", "hospital_admissions", "apcs"] {
        let (_, rows) = csv_rows(&p.path().join(format!("tables/{table}.csv")));
        assert!(!rows.is_empty(), "{table} is empty");
    }
    let (header, rows) = csv_rows(&p.path().join("tables/apcs.csv"));
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    for row in &rows {
        let (admitted, discharged) = (&row[at("admission_date")], &row[at("discharge_date")]);
        assert!(admitted.is_empty() || admitted.as_str() >= "2016-04-01", "admitted {admitted}");
        assert!(admitted.is_empty() || discharged.is_empty() || discharged >= admitted, "discharged {discharged} before {admitted}");
    }
    let (header, rows) = csv_rows(&p.path().join("tables/practice_registrations.csv"));
    let id = header.iter().position(|h| h == "practice_pseudo_id").unwrap();
    assert!(rows.iter().all(|r| r[id].parse::<i64>().unwrap() <= 999));
    let (header, rows) = csv_rows(&p.path().join("tables/decision_support_values.csv"));
    let date = header.iter().position(|h| h == "calculation_date").unwrap();
    assert!(rows.iter().all(|r| r[date] == "2020-12-08"), "calculation dates follow the dummy category");
    ok(ehrfusion(p.path(), &["generate-dataset", "analysis/dataset_definition.py", "--dummy-tables", "tables", "--output", "out.csv"]));

    let v2 = project(
        r#"
from ehrql import create_dataset
from ehrql.tables.emisv2 import patients, addresses, practice_registrations

dataset = create_dataset()
dataset.define_population(practice_registrations.exists_for_patient_on("2020-01-01"))
dataset.imd = addresses.for_patient_on("2020-01-01").imd_rounded
dataset.age = patients.age_on("2020-01-01")
"#,
        None,
    );
    ok(ehrfusion(v2.path(), &["generate-dataset", "analysis/dataset_definition.py", "--population-size", "50", "--output", "out.csv"]));
}
