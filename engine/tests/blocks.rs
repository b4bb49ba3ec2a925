//! Datasets (and measures) computed in blocks of patients are those computed in one
//! go: the benchmark workloads over a patient-ordered parquet population with small
//! row groups, with and without blocks.

mod common;

use common::{ehrfusion_ok, population, repo};
use ehrfusion::model::schema::Schema;
use ehrfusion::source::blocks::patient_blocks;

#[test]
fn blocks_of_patients_give_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    population(dir.path());
    let data = dir.path().join("data");
    let schema = Schema::backend("tpp").unwrap();
    let used: Vec<String> = ["patients", "clinical_events", "medications"].map(String::from).into();
    let blocks = patient_blocks(&data, &schema, &used, 30_000).unwrap();
    assert!(blocks.len() > 3, "expected several blocks, got {blocks:?}");
    assert!(blocks.windows(2).all(|w| w[0].end.is_some() && w[0].end == w[1].first), "blocks must tile the patients: {blocks:?}");
    assert_eq!(patient_blocks(&data, &schema, &used, u64::MAX).unwrap().len(), 1);

    for workload in ["diagnoses", "wide", "staged", "monthly"] {
        let definition = format!("benches/workloads/{workload}.py");
        let whole = dir.path().join(format!("{workload}-whole.csv"));
        let blocked = dir.path().join(format!("{workload}-blocked.csv"));
        let data = data.to_str().unwrap();
        ehrfusion_ok(&["generate-dataset", &definition, "--data", data, "--output", whole.to_str().unwrap()]);
        ehrfusion_ok(&["generate-dataset", &definition, "--data", data, "--output", blocked.to_str().unwrap(), "--block-rows", "30000"]);
        let (whole, blocked) = (std::fs::read_to_string(whole).unwrap(), std::fs::read_to_string(blocked).unwrap());
        assert!(whole.lines().count() > 100, "{workload}: too few patients to test: {}", whole.lines().count());
        assert_eq!(whole, blocked, "{workload}: blocks changed the dataset");
    }

    // Measures: each block's sums add up to those of the whole population.
    let data = data.to_str().unwrap();
    let mut outputs = Vec::new();
    for block_rows in ["100000000", "60000"] {
        let out = dir.path().join(format!("measures-{block_rows}.csv"));
        ehrfusion_ok(&[
            "generate-measures", "benches/workloads/measures.py", "--data", data, "--output", out.to_str().unwrap(),
            "--block-rows", block_rows, "--", "--intervals", "6",
        ]);
        outputs.push(std::fs::read_to_string(out).unwrap());
    }
    assert!(outputs[0].lines().count() > 50, "too few measure rows to test: {}", outputs[0].lines().count());
    assert_eq!(outputs[0], outputs[1], "blocks changed the measures");
}

#[test]
fn unordered_or_small_inputs_are_one_block() {
    let schema = Schema::backend("core").unwrap();
    let used: Vec<String> = ["patients", "clinical_events"].map(String::from).into();
    // The csv test data cannot be read by row group.
    let blocks = patient_blocks(&repo().join("testdata/data/csv"), &schema, &used, 1).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!((blocks[0].first, blocks[0].end), (None, None));
}
