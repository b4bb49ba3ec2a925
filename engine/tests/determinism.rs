//! The same inputs give byte-identical outputs: run after run, on 1, 2 or 4 threads,
//! in one block of patients or many, in every output format.

mod common;

use common::{ehrfusion_ok, population};

/// The output of one run of `args` writing to `file` in `dir`, as bytes.
fn output_of(dir: &std::path::Path, file: &str, args: &[&str]) -> Vec<u8> {
    let path = dir.join(file);
    let _ = std::fs::remove_file(&path);
    let target = path.to_str().unwrap().to_string();
    // Before any `--`, after which come the definition's parameters.
    let mut all: Vec<&str> = args[..2].to_vec();
    all.extend(["--output", &target]);
    all.extend(&args[2..]);
    ehrfusion_ok(&all);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{args:?}: {}: {e}", path.display()))
}

/// (threads, block rows) of the runs compared; the first runs twice.
const SETTINGS: [(&str, &str); 4] = [("2", "100000000"), ("1", "100000000"), ("2", "20000"), ("4", "7000")];

#[test]
fn outputs_are_byte_identical_across_runs_threads_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    population(dir.path());
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases: Vec<(&str, &str)> = ["csv", "csv.gz", "arrow", "parquet"]
        .into_iter()
        .map(|format| ("wide", format))
        .chain([("staged", "csv"), ("monthly", "parquet"), ("diagnoses", "arrow")])
        .collect();
    for (workload, format) in cases {
        let definition = format!("benches/workloads/{workload}.py");
        let file = format!("{workload}.{format}");
        let run = |threads: &str, block_rows: &str| {
            output_of(dir.path(), &file, &["generate-dataset", &definition, "--data", data, "--threads", threads, "--block-rows", block_rows])
        };
        let first = run(SETTINGS[0].0, SETTINGS[0].1);
        assert!(first.len() > 1000, "{file}: too small an output to test ({} bytes)", first.len());
        assert!(run(SETTINGS[0].0, SETTINGS[0].1) == first, "{file}: a second run gave different bytes");
        for (threads, block_rows) in &SETTINGS[1..] {
            assert!(run(threads, block_rows) == first, "{file}: {threads} threads, blocks of {block_rows} rows gave different bytes");
        }
    }
    // Measures: every interval's groups in the same order, whatever the threads.
    let measures = |threads: &str, block_rows: &str| {
        output_of(
            dir.path(),
            "measures.csv",
            &["generate-measures", "benches/workloads/measures.py", "--data", data, "--threads", threads, "--block-rows", block_rows, "--", "--intervals", "6"],
        )
    };
    let first = measures(SETTINGS[0].0, SETTINGS[0].1);
    assert!(first.len() > 1000, "measures: too small an output to test");
    for (threads, block_rows) in &SETTINGS {
        assert!(measures(threads, block_rows) == first, "measures: {threads} threads, blocks of {block_rows} rows gave different bytes");
    }
}
