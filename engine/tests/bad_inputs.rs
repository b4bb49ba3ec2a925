//! The bad-input catalogue (`testdata/bad-inputs/`): every case is a folder holding
//! its inputs and
//!
//! - `command`: the arguments after `ehrfusion`, split on spaces, run in a copy of
//!   the folder; `OUT/` stands for an output directory of the case's own;
//! - `expected`: `exit N` (or `signal`, for a run that is killed), then the one line
//!   the run must print on stderr (with `OUT/` for the output directory);
//! - optionally `setup`, one step per line:
//!   `existing-output FILE` (a previous output at `OUT/FILE` must stay as it was),
//!   `file-size-limit BYTES` (a full disk, simulated: writes past that size fail),
//!   `dummy-tables N DIR` (make N patients of dummy tables for `dataset_definition.py`
//!   in DIR first), `kill-while-writing SIGNAL` (send SIGNAL once the run has an
//!   output open).
//!
//! Every case must fail as expected and leave no output file, partial or not, in the
//! output directory or the working copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn catalogue() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("testdata/bad-inputs")
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for relative in files(from) {
        let target = to.join(&relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&relative), target).unwrap();
    }
}

enum Step {
    ExistingOutput(String),
    FileSizeLimit(u64),
    DummyTables(String, String),
    KillWhileWriting(i32),
}

fn steps(case: &Path) -> Vec<Step> {
    let Ok(text) = std::fs::read_to_string(case.join("setup")) else { return vec![] };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["existing-output", file] => Step::ExistingOutput(file.to_string()),
                ["file-size-limit", bytes] => Step::FileSizeLimit(bytes.parse().unwrap()),
                ["dummy-tables", n, dir] => Step::DummyTables(n.to_string(), dir.to_string()),
                ["kill-while-writing", "SIGINT"] => Step::KillWhileWriting(libc::SIGINT),
                ["kill-while-writing", "SIGTERM"] => Step::KillWhileWriting(libc::SIGTERM),
                ["kill-while-writing", "SIGKILL"] => Step::KillWhileWriting(libc::SIGKILL),
                _ => panic!("{}: unknown setup step {line:?}", case.display()),
            }
        })
        .collect()
}

const PREVIOUS: &str = "an earlier run's output\n";

/// Whether process `pid` has a file open in `dir` (an output being written).
fn writing_in(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()).any(|target| target.starts_with(dir))
}

/// Run one case; the failure message if it did not go as expected.
fn run_case(case: &Path) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let work = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // Canonical, so that paths the process reports compare equal.
    let out_dir = out.path().canonicalize().unwrap();
    copy_dir(case, work.path());
    let expected = std::fs::read_to_string(case.join("expected")).map_err(|e| format!("{name}: expected: {e}"))?;
    let mut expected_lines = expected.lines();
    let outcome = expected_lines.next().unwrap_or_default().to_string();
    let message = expected_lines.next().map(str::to_string);
    let command = std::fs::read_to_string(case.join("command")).map_err(|e| format!("{name}: command: {e}"))?;
    let out_prefix = format!("{}/", out_dir.display());
    let args: Vec<String> = command.split_whitespace().map(|a| a.replace("OUT/", &out_prefix)).collect();

    let mut limit = None;
    let mut kill = None;
    let mut previous = Vec::new();
    for step in steps(case) {
        match step {
            Step::ExistingOutput(file) => {
                let path = out_dir.join(&file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, PREVIOUS).unwrap();
                previous.push(path);
            }
            Step::FileSizeLimit(bytes) => limit = Some(bytes),
            Step::DummyTables(n, dir) => {
                let made = Command::new(env!("CARGO_BIN_EXE_ehrfusion"))
                    .current_dir(work.path())
                    .args(["create-dummy-tables", "dataset_definition.py", &format!("{dir}:parquet"), "--population-size", &n])
                    .output()
                    .unwrap();
                assert!(made.status.success(), "{name}: setup: {}", String::from_utf8_lossy(&made.stderr));
            }
            Step::KillWhileWriting(signal) => kill = Some(signal),
        }
    }
    let before = files(work.path());

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ehrfusion"));
    cmd.current_dir(work.path()).args(&args).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(bytes) = limit {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Writes past the limit fail with EFBIG instead of killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let rl = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(signal) = kill {
        let start = Instant::now();
        loop {
            if writing_in(child.id(), &out_dir) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(child.id() as i32, signal) };
                break;
            }
            if child.try_wait().unwrap().is_some() {
                return Err(format!("{name}: the run ended before it had an output open, so it was never interrupted"));
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                return Err(format!("{name}: no output opened in 120 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).replace(&out_prefix, "OUT/");

    let mut problems = Vec::new();
    match outcome.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["exit", code] => {
            if result.status.code().map(|c| c.to_string()).as_deref() != Some(*code) {
                problems.push(format!("exit status {:?}, expected {code}", result.status));
            }
        }
        ["signal"] => {
            use std::os::unix::process::ExitStatusExt;
            if result.status.success() || (result.status.signal().is_none() && result.status.code().is_none()) {
                problems.push(format!("exit status {:?}, expected a failure", result.status));
            }
        }
        _ => panic!("{name}: expected: first line must be `exit N` or `signal`, not {outcome:?}"),
    }
    if let Some(message) = &message {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines != [message.as_str()] {
            problems.push(format!("stderr was {stderr:?}, expected the one line {message:?}"));
        }
    }
    let left: Vec<_> = files(&out_dir).into_iter().filter(|p| !previous.contains(&out_dir.join(p))).collect();
    if !left.is_empty() {
        problems.push(format!("left in the output directory: {left:?}"));
    }
    for path in &previous {
        if std::fs::read_to_string(path).ok().as_deref() != Some(PREVIOUS) {
            problems.push(format!("the earlier output {} was changed", path.display()));
        }
    }
    let added: Vec<_> = files(work.path()).difference(&before).cloned().collect();
    if !added.is_empty() {
        problems.push(format!("files added to the working copy: {added:?}"));
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{name}: {}", problems.join("; "))) }
}

#[test]
fn every_bad_input_fails_cleanly() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(catalogue()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 60, "the catalogue has {} cases", cases.len());
    let only = std::env::var("BAD_INPUT").ok();
    // BAD_INPUT=text runs only the cases whose names contain it.
    let chosen: Vec<&PathBuf> =
        cases.iter().filter(|c| only.as_ref().is_none_or(|o| c.file_name().unwrap().to_string_lossy().contains(o.as_str()))).collect();
    let failures: Vec<String> = chosen.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), chosen.len(), failures.join("\n"));
}
