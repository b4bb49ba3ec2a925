//! Measures from a JSON document (no Python): the results ehrQL wrote for the same
//! definition, every output form, and the rules a document must keep.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn case() -> PathBuf {
    repo().join("testdata/measures/c01_basic_sex")
}

fn run(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ehrfusion")).args(args).current_dir(cwd).output().unwrap()
}

#[test]
fn a_json_document_gives_the_references_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("measures.csv");
    let res = run(&["generate-measures", "measures.json", "--dummy-tables", "../../data/csv", "--output", out.to_str().unwrap()], &case());
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(case().join("expected/measures.csv")).unwrap());
    // The same rows in one file per measure, and in every typed format.
    let split = dir.path().join("split");
    let res = run(&["generate-measures", "measures.json", "--dummy-tables", "../../data/csv", "--output", &format!("{}:csv", split.display())], &case());
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let own = std::fs::read_to_string(split.join("target_rx_by_sex.csv")).unwrap();
    assert!(own.starts_with("interval_start,interval_end,ratio,numerator,denominator,sex\r\n"), "{own}");
    assert_eq!(own.lines().count(), std::fs::read_to_string(&out).unwrap().lines().count());
    for ext in ["parquet", "arrow", "feather", "csv.gz"] {
        let file = dir.path().join(format!("measures.{ext}"));
        let res = run(&["generate-measures", "measures.json", "--dummy-tables", "../../data/csv", "--output", file.to_str().unwrap()], &case());
        assert!(res.status.success(), "{ext}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(std::fs::metadata(&file).unwrap().len() > 0);
    }
}

fn document() -> Value {
    serde_json::from_str(&std::fs::read_to_string(case().join("measures.json")).unwrap()).unwrap()
}

/// Run a changed copy of the document; the one-line error.
fn refused(change: impl FnOnce(&mut Value)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = document();
    change(&mut doc);
    std::fs::write(dir.path().join("m.json"), doc.to_string()).unwrap();
    let res = run(&["generate-measures", "m.json", "--dummy-tables", case().join("../../data/csv").to_str().unwrap(), "--output", "out.csv"], dir.path());
    assert_eq!(res.status.code(), Some(10), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(!dir.path().join("out.csv").exists());
    let err = String::from_utf8(res.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

#[test]
fn documents_keep_ehrqls_rules() {
    let measure = |doc: &mut Value| doc["measures"]["measures"][0].clone();
    let err = refused(|d| d["measures"]["measures"][0]["group_by"] = json!({"ratio": 11}));
    assert!(err.contains("disallowed `group_by` column name: ratio"), "{err}");
    let err = refused(|d| {
        let m = measure(d);
        d["measures"]["measures"].as_array_mut().unwrap().push(m);
    });
    assert!(err.contains("Measure already defined with name: target_rx_by_sex"), "{err}");
    let err = refused(|d| d["measures"]["measures"][0]["intervals"] = json!([["2020-02-01", "2020-01-01"]]));
    assert!(err.contains("Interval start date must be before end date"), "{err}");
    // An event-level numerator: the medications' dates (node 1).
    let err = refused(|d| d["measures"]["measures"][0]["numerator"] = json!(1));
    assert!(err.contains("invalid numerator"), "{err}");
    let err = refused(|d| {
        let nodes = d["nodes"].as_array_mut().unwrap();
        nodes.push(json!({"op": "Parameter", "name": "interval_middle", "type": "date"}));
    });
    assert!(err.contains("unknown parameter 'interval_middle'"), "{err}");
}

#[test]
fn interval_parameters_belong_to_measures() {
    // A dataset that uses INTERVAL's bounds has no interval to give them.
    let dir = tempfile::tempdir().unwrap();
    let mut doc = document();
    let nodes = doc["nodes"].as_array().unwrap().len();
    doc.as_object_mut().unwrap().remove("measures");
    // Node 6 is the "date is during INTERVAL" condition; node 7 filters by it.
    doc["nodes"].as_array_mut().unwrap().push(json!({"op": "Exists", "source": 7}));
    doc["dataset"] = json!({"population": nodes, "variables": {}});
    std::fs::write(dir.path().join("d.json"), doc.to_string()).unwrap();
    let res = run(&["generate-dataset", "d.json", "--dummy-tables", case().join("../../data/csv").to_str().unwrap()], dir.path());
    assert_eq!(res.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&res.stderr).contains("INTERVAL can only be used in measures"));
}
