//! Bad input gets a one-line error naming the file, line and column (or node), a
//! non-zero exit, and no output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Q;
use serde_json::json;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A copy of the CSV test tables that a test can break.
fn data_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("testdata/data/csv")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Run generate-dataset over bad data and expect ehrQL's exit code for a file error.
fn fails(definition: &Path, data: &Path) -> String {
    fails_with(definition, data, 11)
}

/// Run generate-dataset and expect failure with exit `code`; returns stderr, and
/// checks that the output directory holds nothing at all afterwards.
fn fails_with(definition: &Path, data: &Path, code: i32) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("sub/dataset.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_ehrfusion"))
        .args(["generate-dataset"])
        .arg(definition)
        .arg("--data")
        .arg(data)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "error should be one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let leftovers: Vec<_> = walk(out_dir.path());
    assert!(leftovers.is_empty(), "output left behind: {leftovers:?}");
    stderr
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn definition() -> PathBuf {
    repo().join("testdata/definitions/all_operations.json")
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

#[test]
fn missing_column() {
    let data = data_copy();
    let path = data.path().join("clinical_events.csv");
    edit(&path, |t| t.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n").collect());
    let err = fails(&definition(), data.path());
    assert!(err.contains("clinical_events.csv: missing column 'numeric_value' of table 'clinical_events'"), "{err}");
}

#[test]
fn unknown_column() {
    let data = data_copy();
    let path = data.path().join("medications.csv");
    edit(&path, |t| t.lines().enumerate().map(|(i, l)| format!("{l},{}\n", if i == 0 { "colour" } else { "x" })).collect());
    let err = fails(&definition(), data.path());
    assert!(err.contains("medications.csv: unknown column 'colour'"), "{err}");
}

#[test]
fn value_of_the_wrong_type() {
    let data = data_copy();
    let path = data.path().join("clinical_events.csv");
    edit(&path, |t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        let (head, _) = lines[3].rsplit_once(',').unwrap();
        lines[3] = format!("{head},high");
        lines.join("\n") + "\n"
    });
    let err = fails(&definition(), data.path());
    assert!(err.contains("clinical_events.csv: line 4, column 'numeric_value': 'high' is not a valid float"), "{err}");
}

#[test]
fn bad_date() {
    let data = data_copy();
    let path = data.path().join("patients.csv");
    edit(&path, |t| t.replacen("1959-01-01", "01/01/1959", 1));
    let err = fails(&definition(), data.path());
    assert!(err.contains("patients.csv: line 2, column 'date_of_birth': '01/01/1959' is not a valid date (YYYY-MM-DD)"), "{err}");
}

#[test]
fn duplicate_patient_in_a_patient_level_table() {
    let data = data_copy();
    let path = data.path().join("patients.csv");
    edit(&path, |t| t + "1,1980-01-01,female,\n");
    let err = fails(&definition(), data.path());
    assert!(err.contains("patients.csv: line 62, column 'patient_id': patient 1 appears more than once in patient-level table 'patients'"), "{err}");
}

#[test]
fn unknown_table_file() {
    let data = data_copy();
    std::fs::write(data.path().join("mystery.csv"), "patient_id\n1\n").unwrap();
    let err = fails(&definition(), data.path());
    assert!(err.contains("mystery.csv: unknown table 'mystery'"), "{err}");
}

#[test]
fn file_that_is_not_a_table() {
    let data = data_copy();
    std::fs::write(data.path().join("notes.txt"), "hello").unwrap();
    let err = fails(&definition(), data.path());
    assert!(err.contains("notes.txt: not a table file"), "{err}");
}

#[test]
fn missing_table_file() {
    let data = data_copy();
    std::fs::remove_file(data.path().join("medications.csv")).unwrap();
    let err = fails(&definition(), data.path());
    assert!(err.contains("no file for table 'medications'"), "{err}");
}

#[test]
fn parquet_column_of_the_wrong_type() {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let data = data_copy();
    std::fs::remove_file(data.path().join("medications.csv")).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Int64, false),
        Field::new("date", DataType::Utf8, true),
        Field::new("dmd_code", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![1])), Arc::new(StringArray::from(vec!["2020-01-01"])), Arc::new(StringArray::from(vec!["123"]))],
    )
    .unwrap();
    let file = std::fs::File::create(data.path().join("medications.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = fails(&definition(), data.path());
    assert!(err.contains("medications.parquet: column 'date' has type Utf8, which cannot hold date values"), "{err}");
}

#[test]
fn malformed_json_definition() {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("broken.json");
    std::fs::write(&def, "{\"format\": ").unwrap();
    let err = fails_with(&def, &repo().join("testdata/data/csv"), 10);
    assert!(err.contains("broken.json: invalid JSON"), "{err}");
}

/// Validate a model built with `build` and return its error.
fn model_error(build: impl FnOnce(&mut Q) -> (usize, Vec<(&'static str, usize)>)) -> String {
    let mut q = Q::new();
    let (pop, vars) = build(&mut q);
    let doc = q.document(pop, &vars, json!({}));
    let model = match ehrfusion::model::json::parse(&doc) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    match ehrfusion::run::Prepared::new(model) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn registered(q: &mut Q) -> usize {
    let p = q.select_patient_table("patients");
    q.agg("Exists", p)
}

#[test]
fn unknown_table_in_model() {
    let err = model_error(|q| {
        let t = q.select_table("clinical_eventz");
        (q.agg("Exists", t), vec![])
    });
    assert!(err.contains("node 0 (SelectTable): unknown table 'clinical_eventz'"), "{err}");
}

#[test]
fn unknown_column_in_model() {
    let err = model_error(|q| {
        let pop = registered(q);
        let p = q.select_patient_table("patients");
        let c = q.col(p, "age");
        (pop, vec![("age", c)])
    });
    assert!(err.contains("(SelectColumn): table 'patients' has no column 'age'"), "{err}");
}

#[test]
fn comparing_a_date_with_an_int() {
    let err = model_error(|q| {
        let pop = registered(q);
        let p = q.select_patient_table("patients");
        let dob = q.col(p, "date_of_birth");
        let n = q.int(2000);
        let cmp = q.f2("GT", dob, n);
        (pop, vec![("old", cmp)])
    });
    assert!(err.contains("(GT): both sides of a comparison must have the same type; found date and int"), "{err}");
}

#[test]
fn event_level_variable() {
    let err = model_error(|q| {
        let pop = registered(q);
        let e = q.select_table("clinical_events");
        let d = q.col(e, "date");
        (pop, vec![("dates", d)])
    });
    assert!(err.contains("variable 'dates'") && err.contains("has many values per patient"), "{err}");
}

#[test]
fn population_that_is_not_bool() {
    let err = model_error(|q| {
        let p = q.select_patient_table("patients");
        let d = q.col(p, "date_of_birth");
        (d, vec![])
    });
    assert!(err.contains("population") && err.contains("must be a bool series, not date"), "{err}");
}

#[test]
fn invalid_and_reserved_variable_names() {
    let err = model_error(|q| {
        let pop = registered(q);
        (pop, vec![("2nd", pop)])
    });
    assert!(err.contains("invalid variable name '2nd'"), "{err}");
    let err = model_error(|q| {
        let pop = registered(q);
        (pop, vec![("patient_id", pop)])
    });
    assert!(err.contains("'patient_id' is a reserved name"), "{err}");
}

#[test]
fn code_of_the_wrong_system() {
    let err = model_error(|q| {
        let pop = registered(q);
        let e = q.select_table("clinical_events");
        let c = q.col(e, "snomedct_code");
        let set = q.set("CTV3Code", json!(["XaBVJ"]));
        let f = q.f2("In", c, set);
        let ev = q.filter(e, f);
        let x = q.agg("Exists", ev);
        (pop, vec![("x", x)])
    });
    assert!(err.contains("(In): needs a series (lhs) and a set of values of the same type (rhs); found SNOMEDCTCode and set of CTV3Code"), "{err}");
}

#[test]
fn combining_series_from_different_tables() {
    let err = model_error(|q| {
        let pop = registered(q);
        let e = q.select_table("clinical_events");
        let m = q.select_table("medications");
        let (a, b) = (q.col(e, "date"), q.col(m, "date"));
        let eq = q.f2("EQ", a, b);
        let f = q.filter(e, eq);
        let x = q.agg("Exists", f);
        (pop, vec![("x", x)])
    });
    assert!(err.contains("cannot combine event-level series from different tables ('clinical_events' and 'medications')"), "{err}");
}

#[test]
fn forward_references_and_unknown_operations() {
    let doc = json!({"format": "ehrfusion-query-model", "version": 1, "nodes": [{"op": "Exists", "source": 1}], "dataset": {"population": 0}}).to_string();
    let err = ehrfusion::model::json::parse(&doc).unwrap_err().to_string();
    assert!(err.contains("node 0: 'source': refers to node 1, but a node may only refer to nodes listed before it"), "{err}");
    let doc = json!({"format": "ehrfusion-query-model", "version": 1, "nodes": [{"op": "Frobnicate"}], "dataset": {"population": 0}}).to_string();
    let err = ehrfusion::model::json::parse(&doc).unwrap_err().to_string();
    assert!(err.contains("node 0: unknown operation 'Frobnicate'"), "{err}");
    let doc = json!({"format": "ehrfusion-query-model", "version": 9, "nodes": [], "dataset": {"population": 0}}).to_string();
    let err = ehrfusion::model::json::parse(&doc).unwrap_err().to_string();
    assert!(err.contains("query model version 9 is not supported"), "{err}");
}

#[test]
fn explain_scans_each_table_once_per_stage() {
    // 40 variables over clinical_events with many different filters, plus values that
    // depend on each patient's first diagnosis (a second stage).
    let mut q = Q::new();
    let pop = registered(&mut q);
    let e = q.select_table("clinical_events");
    let (code, date, value) = (q.col(e, "snomedct_code"), q.col(e, "date"), q.col(e, "numeric_value"));
    let mut vars: Vec<(String, usize)> = Vec::new();
    for i in 0..10 {
        let codes = q.set("SNOMEDCTCode", json!([format!("{}", 1000 + i), format!("{}", 2000 + i)]));
        let is_in = q.f2("In", code, codes);
        let f = q.filter(e, is_in);
        let fd = q.col(f, "date");
        let sorted = q.sort(f, &[fd]);
        let first = q.first(sorted);
        vars.push((format!("first_{i}"), q.col(first, "date")));
        vars.push((format!("count_{i}"), q.agg("Count", f)));
        vars.push((format!("has_{i}"), q.agg("Exists", f)));
        let fv = q.col(f, "numeric_value");
        vars.push((format!("max_{i}"), q.agg("Max", fv)));
    }
    // Stage 2: events in the 90 days after the first diagnosis of codelist 0.
    let first0 = vars[0].1;
    let after = q.f2("GT", date, first0);
    let ninety = q.int(90);
    let limit = q.f2("DateAddDays", first0, ninety);
    let before = q.f2("LE", date, limit);
    let window = q.f2("And", after, before);
    let fw = q.filter(e, window);
    vars.push(("after_first".into(), q.agg("Count", fw)));
    let _ = value;
    let names: Vec<(&str, usize)> = vars.iter().map(|(n, i)| (n.as_str(), *i)).collect();
    let doc = q.document(pop, &names, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("wide.json");
    std::fs::write(&def, doc).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ehrfusion")).arg("explain").arg(&def).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let sections: Vec<&str> = text.split("== stage ").skip(1).collect();
    assert_eq!(sections.len(), 2, "expected two stages:\n{text}");
    for s in &sections {
        assert_eq!(s.matches("TableScan: clinical_events").count(), 1, "one scan of clinical_events per stage:\n{s}");
        assert!(s.matches("TableScan: patients").count() <= 1, "at most one scan of patients per stage:\n{s}");
    }
}

#[test]
fn duplicate_patient_in_a_parquet_patient_table() {
    use arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let data = data_copy();
    std::fs::remove_file(data.path().join("patients.csv")).unwrap();
    let schema = ehrfusion::source::table_arrow_schema(ehrfusion::model::Schema::backend("core").unwrap().table("patients").unwrap());
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 2])),
            Arc::new(Date32Array::from(vec![3000, 4000, 5000])),
            Arc::new(StringArray::from(vec!["male", "female", "female"])),
            Arc::new(Date32Array::from(vec![None, None, None])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(data.path().join("patients.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = fails(&definition(), data.path());
    assert!(err.contains("patients.parquet: row 3, column 'patient_id': patient 2 appears more than once in patient-level table 'patients'"), "{err}");
}

/// The core patients table as one batch: ids, sexes (some may be missing).
fn patients_batch(sexes: Vec<Option<&str>>) -> arrow::array::RecordBatch {
    use arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let schema = ehrfusion::source::table_arrow_schema(ehrfusion::model::Schema::backend("core").unwrap().table("patients").unwrap());
    let n = sexes.len();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(1..=n as i64)),
            Arc::new(Date32Array::from(vec![3000; n])),
            Arc::new(StringArray::from(sexes)),
            Arc::new(Date32Array::from(vec![None; n])),
        ],
    )
    .unwrap()
}

#[test]
fn a_value_outside_a_columns_categories_in_csv() {
    let data = data_copy();
    edit(&data.path().join("patients.csv"), |t| t.replacen(",male,", ",robot,", 1));
    let err = fails(&definition(), data.path());
    assert!(
        err.contains("patients.csv: line 2, column 'sex': 'robot' is not one of the column's categories ('female', 'male', 'intersex', 'unknown')"),
        "{err}"
    );
}

#[test]
fn no_value_in_a_not_null_column_in_csv() {
    let data = data_copy();
    edit(&data.path().join("patients.csv"), |t| t.replacen("1959-01-01,male,", "1959-01-01,,", 1));
    let err = fails(&definition(), data.path());
    assert!(err.contains("patients.csv: line 2, column 'sex': no value, but the column may not be null"), "{err}");
}

#[test]
fn constraints_in_parquet_and_arrow_name_the_row() {
    for (sexes, wanted) in [
        (vec![Some("male"), Some("female"), Some("other")], "row 3, column 'sex': 'other' is not one of the column's categories"),
        (vec![Some("male"), None, Some("female")], "row 2, column 'sex': no value, but the column may not be null"),
    ] {
        let batch = patients_batch(sexes);
        let data = data_copy();
        std::fs::remove_file(data.path().join("patients.csv")).unwrap();
        let file = std::fs::File::create(data.path().join("patients.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = fails(&definition(), data.path());
        assert!(err.contains(&format!("patients.parquet: {wanted}")), "{err}");

        std::fs::remove_file(data.path().join("patients.parquet")).unwrap();
        let file = std::fs::File::create(data.path().join("patients.arrow")).unwrap();
        let mut w = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let err = fails(&definition(), data.path());
        assert!(err.contains(&format!("patients.arrow: {wanted}")), "{err}");
    }
}

#[test]
fn a_not_null_column_that_dummy_tables_lack_reads_as_null() {
    // As in ehrQL: a column missing from a dummy table is null throughout, unchecked.
    let data = data_copy();
    edit(&data.path().join("patients.csv"), |t| t.lines().map(|l| l.splitn(3, ',').take(2).collect::<Vec<_>>().join(",") + "\n").collect());
    let out = Command::new(env!("CARGO_BIN_EXE_ehrfusion"))
        .args(["generate-dataset"])
        .arg(definition())
        .arg("--dummy-tables")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
