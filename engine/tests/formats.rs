//! One dataset that uses every operation, run over the test tables in every input
//! format, written in every output format and read back: all results must agree.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use common::rows_of;
use ehrfusion::model::Schema;
use ehrfusion::source::Columns;
use ehrfusion::source::csv::read_csv;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ehrfusion"))
}

/// Copy the CSV test tables into `dir` in another format, written by Arrow's own
/// writers (not ehrfusion's), optionally as a folder of two files per table.
fn convert(dir: &Path, ext: &str, folders: bool) {
    let schema = Schema::backend("core").unwrap();
    for entry in std::fs::read_dir(repo().join("testdata/data/csv")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let (batch, _, _) = read_csv(&path, schema.table(&name).unwrap(), Columns::AllRequired).unwrap();
        let parts = if folders {
            std::fs::create_dir_all(dir.join(&name)).unwrap();
            let half = batch.num_rows() / 2;
            vec![
                (dir.join(&name).join(format!("part-0.{ext}")), batch.slice(0, half)),
                (dir.join(&name).join(format!("part-1.{ext}")), batch.slice(half, batch.num_rows() - half)),
            ]
        } else {
            vec![(dir.join(format!("{name}.{ext}")), batch)]
        };
        for (target, b) in parts {
            match ext {
                "parquet" => {
                    let mut w = ArrowWriter::try_new(File::create(&target).unwrap(), b.schema(), None).unwrap();
                    w.write(&b).unwrap();
                    w.close().unwrap();
                }
                "arrow" | "feather" => {
                    let mut w = FileWriter::try_new(File::create(&target).unwrap(), &b.schema()).unwrap();
                    w.write(&b).unwrap();
                    w.finish().unwrap();
                }
                "csv.gz" | "csv" => {
                    let mut text = Vec::new();
                    {
                        let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut text);
                        w.write(&b).unwrap();
                    }
                    if ext == "csv" {
                        std::fs::write(&target, text).unwrap();
                    } else {
                        use std::io::Write;
                        let mut gz = flate2::write::GzEncoder::new(File::create(&target).unwrap(), flate2::Compression::fast());
                        gz.write_all(&text).unwrap();
                        gz.finish().unwrap();
                    }
                }
                other => panic!("{other}"),
            }
        }
    }
}

fn read_output(path: &Path) -> Vec<Vec<String>> {
    let name = path.to_string_lossy().to_string();
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        let reader = ehrfusion::source::csv::open_maybe_gzip(path).unwrap();
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(reader);
        return r.records().skip(1).map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect();
    }
    let batches: Vec<_> = if name.ends_with(".parquet") {
        ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
    } else {
        FileReader::try_new(File::open(path).unwrap(), None).unwrap().map(|b| b.unwrap()).collect()
    };
    rows_of(&batches)
}

fn generate(definition: &str, data: &Path, output: &str) {
    let out = bin()
        .args(["generate-dataset", definition, "--data"])
        .arg(data)
        .args(["--output", output])
        .output()
        .unwrap();
    assert!(out.status.success(), "generate-dataset failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_input_and_output_format_gives_identical_results() {
    let definition = repo().join("testdata/definitions/all_operations.json");
    let definition = definition.to_str().unwrap();
    let csv_data = repo().join("testdata/data/csv");
    let work = tempfile::tempdir().unwrap();
    let reference_dir = work.path().join("reference");
    generate(definition, &csv_data, &format!("{}/:csv", reference_dir.display()));
    let reference_path = reference_dir.join("dataset.csv");
    let reference = read_output(&reference_path);
    let reference_events = read_output(&reference_dir.join("diabetes_events.csv"));
    assert!(reference.len() > 20, "the test population should be non-trivial, got {} rows", reference.len());
    // Every variable has at least one non-null value except the deliberately null one.
    let header: Vec<String> = csv::Reader::from_path(&reference_path).unwrap().headers().unwrap().iter().map(str::to_string).collect();
    for (i, name) in header.iter().enumerate() {
        if name != "null_value" {
            assert!(reference.iter().any(|r| !r[i].is_empty()), "column {name} is empty for every patient");
        }
    }
    let inputs: Vec<(&str, bool)> = vec![("csv.gz", false), ("parquet", false), ("arrow", false), ("feather", false), ("parquet", true), ("csv", true)];
    for (ext, folders) in inputs {
        let data = work.path().join(format!("data-{ext}-{folders}"));
        std::fs::create_dir_all(&data).unwrap();
        convert(&data, ext, folders);
        for out_ext in ["csv", "csv.gz", "arrow", "feather", "parquet"] {
            let out = work.path().join(format!("out-{ext}-{folders}-{out_ext}"));
            generate(definition, &data, &format!("{}/:{out_ext}", out.display()));
            let got = read_output(&out.join(format!("dataset.{out_ext}")));
            assert_eq!(got, reference, "input {ext} (folders: {folders}), output {out_ext} differs from the CSV reference");
            let events = read_output(&out.join(format!("diabetes_events.{out_ext}")));
            assert_eq!(events, reference_events, "input {ext} (folders: {folders}), event table in {out_ext} differs");
        }
    }
}

#[test]
fn event_tables_go_to_a_directory_output() {
    let definition = repo().join("testdata/definitions/all_operations.json");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    generate(definition.to_str().unwrap(), &repo().join("testdata/data/csv"), &format!("{}/:csv", dir.display()));
    let dataset = read_output(&dir.join("dataset.csv"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("dataset.csv")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "outputs are readable files, not private temporary ones");
    }
    let events = read_output(&dir.join("diabetes_events.csv"));
    assert!(!events.is_empty());
    let in_population: std::collections::HashSet<&str> = dataset.iter().map(|r| r[0].as_str()).collect();
    for row in &events {
        assert!(in_population.contains(row[0].as_str()), "event row for patient {} outside the population", row[0]);
        assert!(["44054006", "73211009"].contains(&row[2].as_str()), "unexpected code {}", row[2]);
    }
    let mut sorted = events.clone();
    sorted.sort_by_key(|r| r[0].parse::<i64>().unwrap());
    assert_eq!(sorted.iter().map(|r| &r[0]).collect::<Vec<_>>(), events.iter().map(|r| &r[0]).collect::<Vec<_>>());
    // A single-file output cannot hold event tables.
    let out = bin()
        .args(["generate-dataset", definition.to_str().unwrap(), "--data"])
        .arg(repo().join("testdata/data/csv"))
        .args(["--output"])
        .arg(work.path().join("single.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("event tables (diabetes_events)"));
    assert!(!work.path().join("single.csv").exists());
}

#[test]
fn typed_outputs_use_small_integers_and_dictionaries() {
    let definition = repo().join("testdata/definitions/all_operations.json");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("d/dataset.arrow");
    generate(definition.to_str().unwrap(), &repo().join("testdata/data/csv"), &format!("{}/d/:arrow", work.path().display()));
    let reader = FileReader::try_new(File::open(&out).unwrap(), None).unwrap();
    let schema = reader.schema();
    use arrow::datatypes::DataType::*;
    assert_eq!(schema.field_with_name("patient_id").unwrap().data_type(), &Int64);
    // Integer types are sized as ehrQL sizes them: counts fit 16 unsigned bits, other
    // computed integers (year, month, ...) are int64.
    assert_eq!(schema.field_with_name("diabetes_events").unwrap().data_type(), &UInt16);
    assert_eq!(schema.field_with_name("birth_month").unwrap().data_type(), &Int64);
    assert_eq!(schema.field_with_name("birth_year").unwrap().data_type(), &Int64);
    assert!(matches!(schema.field_with_name("sex").unwrap().data_type(), Dictionary(_, _)));
    assert!(matches!(schema.field_with_name("age_band").unwrap().data_type(), Dictionary(_, _)));
    assert_eq!(schema.field_with_name("age").unwrap().data_type(), &Int64);
    assert_eq!(schema.field_with_name("latest_bmi").unwrap().data_type(), &Float64);
    assert_eq!(schema.field_with_name("first_diabetes_date").unwrap().data_type(), &Date32);
}

#[test]
fn console_output_shows_a_table() {
    let definition = repo().join("testdata/definitions/diagnoses.json");
    let out = bin()
        .args(["generate-dataset", definition.to_str().unwrap(), "--data"])
        .arg(repo().join("testdata/data/csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().nth(1).unwrap();
    for col in ["patient_id", "sex", "age", "first_asthma_date", "asthma_events", "died", "death_date"] {
        assert!(header.contains(col), "header {header:?} lacks {col}");
    }
    assert!(text.lines().count() > 5);
}
