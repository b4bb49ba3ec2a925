//! The same plans on a DataFusion Ballista cluster: a scheduler and two executors on
//! loopback, started as `ehrfusion cluster` child processes, give datasets and
//! measures byte for byte equal to a local run's.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ehrfusion_ok, population, repo};

/// Child processes killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run the ehrfusion binary in `dir`, with extra environment variables. A run that
/// has not ended within five minutes fails the test (a job a scheduler loses track
/// of would otherwise wait for ever).
fn ehrfusion_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ehrfusion"))
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not end within five minutes: {}", std::fs::read_to_string(&err).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: std::fs::read(out).unwrap(), stderr: std::fs::read(err).unwrap() }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ehrfusion"))
        .current_dir(repo())
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()))
        .spawn()
        .unwrap()
}

fn wait_for_port(port: u16, processes: &mut Processes, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        for child in &mut processes.0 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{what}: a cluster process exited early ({status})");
            }
        }
        assert!(Instant::now() < deadline, "{what} did not listen on port {port} within a minute");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and two executors (one task slot each) on loopback; the scheduler's URL.
fn cluster(dir: &Path) -> (Processes, String) {
    let mut processes = Processes(vec![]);
    let scheduler = free_port();
    processes.0.push(start(&["cluster", "scheduler", "--port", &scheduler.to_string()], &dir.join("scheduler.log")));
    wait_for_port(scheduler, &mut processes, "the scheduler");
    let url = format!("df://127.0.0.1:{scheduler}");
    for i in 0..2 {
        let (flight, grpc) = (free_port(), free_port());
        let work = dir.join(format!("executor-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let args = [
            "cluster", "executor", "--scheduler", &url, "--port", &flight.to_string(), "--grpc-port", &grpc.to_string(),
            "--concurrency", "1", "--work-dir", work.to_str().unwrap(),
        ];
        processes.0.push(start(&args, &dir.join(format!("executor-{i}.log"))));
        wait_for_port(flight, &mut processes, "an executor");
    }
    (processes, url)
}

#[test]
fn a_loopback_cluster_gives_the_local_results() {
    let dir = tempfile::tempdir().unwrap();
    population(dir.path());
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (_processes, url) = cluster(dir.path());

    // (name, arguments of both runs, arguments of the cluster run only)
    let mut runs: Vec<(String, Vec<String>, Vec<String>)> = ["diagnoses", "wide", "staged", "monthly"]
        .iter()
        .map(|w| (w.to_string(), vec!["generate-dataset".to_string(), format!("benches/workloads/{w}.py"), "--data".into(), data.into()], vec![]))
        .collect();
    // Blocks of patients: one job per block, two blocks' jobs at once by default.
    let staged_in_blocks = ["generate-dataset", "benches/workloads/staged.py", "--data", data, "--block-rows", "30000"].map(String::from);
    runs.push(("staged in blocks".into(), staged_in_blocks.clone().into(), vec![]));
    runs.push(("staged, blocks one by one".into(), staged_in_blocks.clone().into(), vec!["--blocks-at-once".into(), "1".into()]));
    runs.push(("staged, three blocks at once".into(), staged_in_blocks.into(), vec!["--blocks-at-once".into(), "3".into()]));
    runs.push(("measures".into(), ["generate-measures", "benches/workloads/measures.py", "--data", data].map(String::from).into(), vec![]));
    for (name, args, cluster_only) in runs {
        let local = dir.path().join(format!("{}-local.csv", name.replace([' ', ','], "-")));
        let remote = dir.path().join(format!("{}-cluster.csv", name.replace([' ', ','], "-")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let parameters: &[&str] = if name == "measures" { &["--", "--intervals", "6"] } else { &[] };
        ehrfusion_ok(&[&args[..], &["--output", local.to_str().unwrap()], parameters].concat());
        let cluster_only: Vec<&str> = cluster_only.iter().map(String::as_str).collect();
        let on_cluster = [&args[..], &cluster_only, &["--cluster", &url, "--threads", "2", "--output", remote.to_str().unwrap()], parameters].concat();
        let run = ehrfusion_in(&repo(), &on_cluster, &[("EHRFUSION_METRICS", "1")]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{name}: {stderr}");
        // Stage results were written by the executors into the data folder, and removed.
        if name.starts_with("staged") {
            let stages = format!("written by the cluster to {data}/.ehrfusion-stages/run-");
            assert!(stderr.contains(&stages), "{name}: no stage was written to the cluster's files: {stderr}");
        }
        assert!(!Path::new(data).join(".ehrfusion-stages").exists(), "{name}: the stage files were left behind");
        let (local, remote) = (std::fs::read_to_string(local).unwrap(), std::fs::read_to_string(remote).unwrap());
        assert!(local.lines().count() > 50, "{name}: too few rows to compare: {}", local.lines().count());
        assert_eq!(local, remote, "{name}: the cluster's output differs from the local one");
    }
    // The measures' registrations were grouped by patient on the cluster too: the plan
    // sent to it holds `ehr_runs`, which only our codec can encode.
    let shown = ehrfusion_ok(&["explain", "benches/workloads/measures.py", "--cluster", "--", "--intervals", "6"]);
    assert!(shown.contains("each row counted, grouped by patient"), "{shown}");
    assert!(shown.split("-- cluster stage").skip(1).any(|stage| stage.contains("ehr_runs_ehr_pick_last")), "{shown}");
    let study = dir.path().join("study");
    std::fs::create_dir_all(study.join("analysis")).unwrap();
    std::fs::create_dir_all(study.join("codelists")).unwrap();
    std::fs::write(study.join("analysis/study_definition.py"), STUDY).unwrap();
    std::fs::copy(repo().join("benches/codelists/diabetes.csv"), study.join("codelists/diabetes.csv")).unwrap();
    cohort(&study, data, &["--output-dir", "local"]);
    cohort(&study, data, &["--output-dir", "cluster", "--cluster", &url, "--threads", "2"]);
    for date in ["2020-01-01", "2020-02-01", "2020-03-01"] {
        let name = format!("input_{date}.csv");
        let (local, remote) = (std::fs::read_to_string(study.join("local").join(&name)).unwrap(), std::fs::read_to_string(study.join("cluster").join(&name)).unwrap());
        assert!(local.lines().count() > 50, "{name}: too few rows to compare");
        assert_eq!(local, remote, "{name}: the cluster's cohort differs from the local one");
    }

    // The executors did the work: each job leaves a folder of stage results (beside
    // DataFusion's own `datafusion-*` scratch folders).
    let is_job = |e: &std::fs::DirEntry| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with("datafusion-");
    let jobs: usize = (0..2).map(|i| std::fs::read_dir(dir.path().join(format!("executor-{i}"))).unwrap().map(Result::unwrap).filter(is_job).count()).sum();
    assert!(jobs >= 7, "expected the executors to have run every job, found {jobs} job folders");
    // And the scheduler had no trouble with any of them (a failed task status update
    // leaves a job running for ever).
    let scheduler_log = std::fs::read_to_string(dir.path().join("scheduler.err")).unwrap();
    assert!(!scheduler_log.contains("ERROR"), "the scheduler logged errors: {scheduler_log}");
}

/// The bundled ehrQL studies over the csv test tables (which travel inside the plans,
/// being held in memory) give their golden outputs on the cluster.
#[test]
fn the_test_studies_give_their_golden_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (_processes, url) = cluster(dir.path());
    let cases: [(&str, &str, &[&str], &str); 4] = [
        ("diagnoses-v0", "csv", &[], "dataset.csv"),
        ("symptoms", "tpp", &[], "dataset.csv"),
        ("parameters", "csv", &[], "dataset.csv"),
        ("parameters", "csv", &["--", "--index_date", "2021-06-01", "--lookback_days", "730"], "dataset_2021.csv"),
    ];
    for (study, data, parameters, expected) in cases {
        let folder = repo().join("testdata/studies").join(study);
        let out = dir.path().join(format!("{study}-{expected}"));
        let data = format!("../../data/{data}");
        let args = ["generate-dataset", "analysis/dataset_definition.py", "--data", &data, "--cluster", &url, "--threads", "2", "--output", out.to_str().unwrap()];
        let run = ehrfusion_in(&folder, &[&args[..], parameters].concat(), &[]);
        assert!(run.status.success(), "{study}: {}", String::from_utf8_lossy(&run.stderr));
        // The golden files keep Unix line ends; CSV rows end with CRLF, as ehrQL writes them.
        let golden = std::fs::read_to_string(folder.join("expected").join(expected)).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap().replace("\r\n", "\n"), golden, "{study} {parameters:?}");
    }
}

#[test]
fn a_killed_executor_s_tasks_go_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    population(dir.path());
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (mut processes, url) = cluster(dir.path());
    let local = dir.path().join("local.csv");
    ehrfusion_ok(&["generate-dataset", "benches/workloads/wide.py", "--data", data, "--output", local.to_str().unwrap()]);
    // Killed without a word to the scheduler, which still counts on it.
    processes.0[2].kill().unwrap();
    processes.0[2].wait().unwrap();
    let remote = dir.path().join("cluster.csv");
    ehrfusion_ok(&["generate-dataset", "benches/workloads/wide.py", "--data", data, "--cluster", &url, "--threads", "2", "--output", remote.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(local).unwrap(), std::fs::read_to_string(remote).unwrap());
}

/// A cohort-extractor study at three index dates in one pass (the dates' values
/// travel with the plan as interval parameters).
const STUDY: &str = r#"
from cohortextractor import StudyDefinition, patients, codelist_from_csv

diabetes = codelist_from_csv("codelists/diabetes.csv", system="snomed", column="code")

study = StudyDefinition(
    index_date="2020-03-01",
    default_expectations={"date": {"earliest": "1900-01-01", "latest": "today"}, "rate": "uniform", "incidence": 0.5},
    population=patients.registered_as_of("index_date"),
    sex=patients.sex(),
    age=patients.age_as_of("index_date"),
    diabetes_events=patients.with_these_clinical_events(diabetes, between=["index_date - 1 year", "index_date"], returning="number_of_matches_in_period"),
    first_diabetes=patients.with_these_clinical_events(diabetes, on_or_before="index_date", returning="date", date_format="YYYY-MM-DD", find_first_match_in_period=True),
)
"#;

fn cohort(study: &Path, data: &str, extra: &[&str]) {
    let args = ["cohortextractor", "generate_cohort", "--data", data, "--index-date-range", "2020-01-01 to 2020-03-01 by month"];
    let run = ehrfusion_in(study, &[&args[..], extra].concat(), &[]);
    assert!(run.status.success(), "generate_cohort {extra:?}: {}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn an_unreachable_cluster_is_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dataset.csv");
    let closed = format!("df://127.0.0.1:{}", free_port());
    let args = ["generate-dataset", "testdata/definitions/diagnoses.json", "--data", "testdata/data/csv", "--cluster", &closed, "--output", out.to_str().unwrap()];
    let run = ehrfusion_in(&repo(), &args, &[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&closed), "{stderr}");
    assert!(!out.exists());

    let bad = ehrfusion_in(&repo(), &["generate-dataset", "testdata/definitions/diagnoses.json", "--data", "testdata/data/csv", "--cluster", "localhost:50050"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected df://HOST:PORT"));

    // An executor listening on every interface must say where others reach it.
    let wildcard = ehrfusion_in(&repo(), &["cluster", "executor", "--bind", "0.0.0.0", "--scheduler", &closed], &[]);
    assert_eq!(wildcard.status.code(), Some(2), "{wildcard:?}");
    assert!(String::from_utf8_lossy(&wildcard.stderr).contains("--external-host"), "{wildcard:?}");
}
