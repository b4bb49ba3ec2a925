//! Running one job as the platform does: in a fresh working copy holding the
//! project's code and only the outputs of the actions it needs, with
//! `OPENSAFELY_BACKEND=expectations`; then its declared outputs are found (a pattern
//! that matches nothing fails the job), moderately sensitive ones checked, and the
//! outputs copied back into the project. Extraction actions (ehrQL, cohort-extractor)
//! run inside this process on the engine; scripts run with a local interpreter.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::SystemTime;

use indexmap::IndexMap;

use super::project::{Action, LEVEL4_FILE_TYPES, Project};
use crate::cli::PythonFrontEnd;
use crate::err;
use crate::error::Result;

/// Largest moderately sensitive file, and most CSV rows, released as the platform's
/// defaults allow.
pub const LEVEL4_MAX_FILESIZE: u64 = 16 * 1024 * 1024;
pub const LEVEL4_MAX_CSV_ROWS: usize = 5000;

/// What every job of a run shares.
pub struct Context {
    /// The project folder (absolute).
    pub project_dir: PathBuf,
    pub project: Project,
    /// Real tables for extraction actions; dummy data when none.
    pub data: Option<PathBuf>,
    pub front_end: PythonFrontEnd,
    /// Run script actions in the platform's images with Docker, not local interpreters.
    pub docker: bool,
    /// Extraction actions run one at a time: each uses every core, and each changes
    /// the process's working directory and output while it runs.
    pub engine: Mutex<()>,
}

/// How a job ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub exit_code: Option<i64>,
    /// `succeeded`, `nonzero_exit`, `unmatched_patterns` or `internal_error`.
    pub status_code: &'static str,
    /// The job's status message, as the record and the console show it.
    pub message: String,
    /// The message as the job's log gives it (none for a plain non-zero exit).
    pub log_message: Option<String>,
    /// Files the job wrote that no pattern matched (with unmatched patterns only).
    pub unmatched_outputs: Vec<String>,
    /// The log's "did you mean" list.
    pub hint: Option<String>,
    /// Output file → privacy level.
    pub outputs: IndexMap<String, String>,
    /// Moderately sensitive outputs that would not be released, with why.
    pub level4_excluded_files: IndexMap<String, String>,
}

/// Run `action` in a working copy; its output (stdout and stderr) goes to `log`.
/// `inputs` are the files of the needed actions' last successful runs.
pub fn run_job(ctx: &Context, action: &Action, inputs: &[String], log: &mut File, progress: &dyn Fn(&str)) -> Outcome {
    match run_in_working_copy(ctx, action, inputs, log, progress) {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = writeln!(log, "error: {e}");
            let message = format!("Internal error: {e}");
            Outcome { status_code: "internal_error", log_message: Some(message.clone()), message, ..Default::default() }
        }
    }
}

fn run_in_working_copy(ctx: &Context, action: &Action, inputs: &[String], log: &mut File, progress: &dyn Fn(&str)) -> Result<Outcome> {
    progress("Preparing your code and workspace files");
    let copy = tempfile::Builder::new()
        .prefix(&format!("{}-", action.name))
        .tempdir_in(work_dir(&ctx.project_dir))
        .map_err(|e| err!("cannot make a working copy: {e}"))?;
    let work = copy.path();
    let every_output: Vec<glob::Pattern> = ctx.project.actions.values().flat_map(|a| a.patterns().map(|(p, _)| p.to_string())).filter_map(|p| glob::Pattern::new(&p).ok()).collect();
    progress(&format!("Copying in code from {}", ctx.project_dir.display()));
    copy_code(&ctx.project_dir, work, &every_output)?;
    for file in inputs {
        let from = ctx.project_dir.join(file);
        if !from.is_file() {
            return Err(err!("The file {file} doesn't exist in workspace {} as requested for action {}", ctx.project_dir.display(), action.name));
        }
        progress(&format!("Copying input file: {file}"));
        copy_file(&from, &work.join(file))?;
    }
    progress("Prepared and ready to run");
    // What the copy holds now, to tell the files the job wrote from the ones it was given.
    let given = modified_times(work)?;
    progress("Executing job on the backend");
    let exit_code = run_command(ctx, action, work, log)?;
    let _ = log.flush();
    progress("Recording job results");

    let (outputs, unmatched) = find_outputs(work, action)?;
    // As the local job runner does, whatever the job matched is kept, even when it
    // failed; files it wrote that no pattern matches are dropped with the copy.
    for file in outputs.keys() {
        progress(&format!("Extracting output file: {file}"));
    }
    persist_outputs(&ctx.project_dir, work, &outputs)?;
    let mut outcome = Outcome { exit_code: Some(exit_code), outputs, ..Default::default() };
    if exit_code != 0 {
        outcome.status_code = "nonzero_exit";
        outcome.log_message = (exit_code == 137).then(|| "Job killed by OpenSAFELY admin or memory limits".to_string());
        outcome.message = match &outcome.log_message {
            Some(why) => format!("Job exited with an error: {why}"),
            None => "Job exited with an error".to_string(),
        };
        return Ok(outcome);
    }
    if !unmatched.is_empty() {
        outcome.status_code = "unmatched_patterns";
        outcome.message = format!("No outputs found matching patterns:\n - {}", unmatched.join("\n - "));
        // The log's wording, odd indentation and all, is the job runner's.
        outcome.log_message = Some(format!("\n  No outputs found matching patterns:\n - {}", unmatched.join("\n   - ")));
        let written = modified_times(work)?.into_iter().filter(|(f, t)| given.get(f) != Some(t)).map(|(f, _)| f);
        outcome.unmatched_outputs = written.filter(|f| !outcome.outputs.contains_key(f)).collect();
        if !outcome.unmatched_outputs.is_empty() {
            outcome.hint = Some(format!("\n  Did you mean to match one of these files instead?\n - {}", outcome.unmatched_outputs.join("\n   - ")));
        }
        return Ok(outcome);
    }
    for (file, level) in &outcome.outputs {
        if level == "moderately_sensitive"
            && let Some(why) = level4_problem(&work.join(file), file)
        {
            outcome.level4_excluded_files.insert(file.clone(), why);
        }
    }
    outcome.status_code = "succeeded";
    outcome.log_message = Some("Completed successfully".to_string());
    outcome.message = match outcome.level4_excluded_files.len() {
        0 => "Completed successfully".to_string(),
        n => format!("Completed successfully, but {n} file(s) marked as moderately_sensitive were excluded. See job log for details."),
    };
    Ok(outcome)
}

/// Where jobs' working copies are made: `metadata/.work/` (on the project's own
/// filesystem; a run that is killed leaves its copies there for the next to clear).
pub fn work_dir(project_dir: &Path) -> PathBuf {
    project_dir.join("metadata").join(".work")
}

/// Copy the project's files into the working copy: not `.git`, not `metadata/`, and
/// no action's outputs (a job sees only the outputs of the actions it needs).
fn copy_code(project: &Path, work: &Path, outputs: &[glob::Pattern]) -> Result<()> {
    for file in walk(project, &|rel| rel == ".git" || rel == "metadata")? {
        if !outputs.iter().any(|p| p.matches_with(&file, MATCH)) {
            copy_file(&project.join(&file), &work.join(&file))?;
        }
    }
    Ok(())
}

/// How output patterns match, as Python's `Path.glob`: `*` stays within a folder.
const MATCH: glob::MatchOptions = glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

/// Every file under `root` (relative, with `/`), sorted, skipping folders `skip` says.
fn walk(root: &Path, skip: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut files = vec![];
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(&rel) };
        let entries = std::fs::read_dir(&dir).map_err(|e| err!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| err!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = std::fs::metadata(entry.path()).map_err(|e| err!("{}: {e}", entry.path().display()))?;
            if kind.is_dir() {
                if !skip(&path) {
                    pending.push(path);
                }
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err!("{}: {e}", parent.display()))?;
    }
    std::fs::copy(from, to).map_err(|e| err!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    Ok(())
}

/// The files each of the action's patterns matches in `dir` (file → level), and the
/// patterns that match none.
pub fn find_outputs(dir: &Path, action: &Action) -> Result<(IndexMap<String, String>, Vec<String>)> {
    let files = walk(dir, &|_| false)?;
    let mut outputs = IndexMap::new();
    let mut unmatched = vec![];
    for (pattern, level) in action.patterns() {
        let glob = glob::Pattern::new(pattern).map_err(|e| err!("output pattern {pattern}: {e}"))?;
        let matched: Vec<&String> = files.iter().filter(|f| glob.matches_with(f, MATCH)).collect();
        if matched.is_empty() {
            unmatched.push(pattern.to_string());
        }
        for file in matched {
            outputs.insert(file.clone(), level.to_string());
        }
    }
    Ok((outputs, unmatched))
}

/// Every file under `dir` with the time it was last changed.
fn modified_times(dir: &Path) -> Result<IndexMap<String, Option<SystemTime>>> {
    Ok(walk(dir, &|_| false)?.into_iter().map(|f| {
        let time = std::fs::metadata(dir.join(&f)).and_then(|m| m.modified()).ok();
        (f, time)
    }).collect())
}

/// Why a moderately sensitive file would not be released to level 4, if it would not.
fn level4_problem(path: &Path, name: &str) -> Option<String> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mb = |b: u64| (b as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0;
    let suffix = Path::new(name).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    if size > LEVEL4_MAX_FILESIZE {
        return Some(format!("File size of {}Mb is larger that limit of {}Mb.", mb(size), mb(LEVEL4_MAX_FILESIZE)));
    }
    if !LEVEL4_FILE_TYPES.contains(&suffix.as_str()) {
        return Some(format!("File type of {suffix} is not valid level 4 file"));
    }
    if suffix != ".csv" {
        return None;
    }
    let mut reader = csv::Reader::from_path(path).ok()?;
    let mut problems = vec![];
    if reader.headers().is_ok_and(|h| h.iter().any(|c| c == "patient_id")) {
        problems.push("File has patient_id column".to_string());
    }
    let rows = reader.records().count();
    if rows > LEVEL4_MAX_CSV_ROWS {
        problems.push(format!("File row count ({rows}) exceeds maximum allowed rows ({LEVEL4_MAX_CSV_ROWS})"));
    }
    (!problems.is_empty()).then(|| problems.join(","))
}

/// Run the action's command in `work`, its output going to `log`; the exit status.
fn run_command(ctx: &Context, action: &Action, work: &Path, log: &mut File) -> Result<i64> {
    let args = job_command(ctx, action)[1..].to_vec();
    match action.run.image() {
        "ehrql" | "databuilder" => Ok(in_process(ctx, work, log, || crate::cli::exit_status(std::iter::once("ehrfusion".to_string()).chain(args), ctx.front_end))),
        "cohortextractor" => Ok(in_process(ctx, work, log, || cohortextractor(ctx, args))),
        image if ctx.docker && action.is_script() => in_image(work, log, image, action.run.version(), &args),
        // As the platform's images do: `python ARGS`, unless the first argument names a
        // program (`python analysis/x.py`, `jupyter nbconvert ...`), which then runs.
        "python" => match args.split_first() {
            Some((first, rest)) if matches!(first.as_str(), "python" | "python3") => script(work, log, "python3", rest, "Python"),
            Some((first, rest)) if !first.contains('/') && on_path(first) => script(work, log, first, rest, "Python"),
            _ => script(work, log, "python3", &args, "Python"),
        },
        "r" => match args.split_first() {
            Some((first, rest)) if first == "Rscript" => script(work, log, "Rscript", rest, "R"),
            _ => script(work, log, "Rscript", &args, "R"),
        },
        "stata-mp" => script(work, log, "stata-mp", &["-b".into(), "do".into()].into_iter().chain(args).collect::<Vec<_>>(), "Stata"),
        "jupyter" => match args.split_first() {
            Some((program, rest)) => script(work, log, program, rest, "Jupyter"),
            None => Err(err!("the jupyter action {} names no command", action.name)),
        },
        "sqlrunner" => Err(err!("sqlrunner actions query the platform's database; ehrfusion cannot run {}", action.name)),
        // Any other image is a reusable action (opensafely-actions/NAME at a tag), whose
        // code the platform fetches from its repository.
        other => Err(err!(
            "action {}: {other}:{} is a reusable action (opensafely-actions/{other}); ehrfusion runs ehrql, cohortextractor, python, r, stata-mp and jupyter actions, and fetches no action code",
            action.name,
            action.run.version()
        )),
    }
}

/// The command a job runs, as the job runner records it: the action's (with its
/// `config`), and what the runner adds to extraction commands.
pub fn job_command(ctx: &Context, action: &Action) -> Vec<String> {
    let mut command = action.command();
    let args = command.split_off(1);
    command.extend(match action.run.image() {
        "ehrql" | "databuilder" => ehrql_args(ctx, args),
        "cohortextractor" => cohortextractor_args(ctx, action, args),
        _ => args,
    });
    command
}

/// An ehrQL command line as the action gives it (the job runner adds nothing: dummy
/// data is whatever the `run:` line asks for). When the run has real tables, their
/// `--data` goes before the definition's own arguments (those after `--`) and the
/// line's dummy data options are dropped, as a real backend ignores them.
fn ehrql_args(ctx: &Context, mut args: Vec<String>) -> Vec<String> {
    let reads_tables = matches!(args.first().map(String::as_str), Some("generate-dataset" | "generate_dataset" | "generate-measures"));
    if let (Some(data), true) = (&ctx.data, reads_tables) {
        args = without_options(args, &["--dummy-data-file", "--dummy-tables"]);
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.splice(at..at, ["--data".to_string(), data.display().to_string()]);
    }
    args
}

/// The arguments without these options and their values (`--x V` or `--x=V`), up to
/// a `--` (after which the arguments are the definition's).
fn without_options(args: Vec<String>, options: &[&str]) -> Vec<String> {
    let mut kept = vec![];
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            kept.push(arg);
            kept.extend(args.by_ref());
            break;
        }
        if options.contains(&arg.as_str()) {
            args.next();
        } else if !options.iter().any(|o| arg.starts_with(&format!("{o}="))) {
            kept.push(arg);
        }
    }
    kept
}

/// A cohort-extractor command line with what the job runner adds to
/// `generate_cohort`: the action's `dummy_data_file`, else the project's
/// expectations population (here, `--data` when the run has real tables), and the
/// outputs' folder when they share one.
fn cohortextractor_args(ctx: &Context, action: &Action, mut args: Vec<String>) -> Vec<String> {
    let given = |args: &[String], flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if args.first().is_some_and(|a| a == "generate_cohort") {
        if ctx.data.is_some() {
            args = without_options(args, &["--expectations-population", "--dummy-data-file"]);
        }
        if !given(&args, "--data") && !given(&args, "--expectations-population") && !given(&args, "--dummy-data-file") {
            args.push(match (&ctx.data, &action.dummy_data_file) {
                (Some(data), _) => format!("--data={}", data.display()),
                (None, Some(file)) => format!("--dummy-data-file={file}"),
                (None, None) => format!("--expectations-population={}", ctx.project.population_size.unwrap_or(1000)),
            });
        }
        let dirs: std::collections::BTreeSet<&str> = action.patterns().map(|(p, _)| p.rsplit_once('/').map_or(".", |(d, _)| d)).collect();
        if let (1, false) = (dirs.len(), given(&args, "--output-dir")) {
            args.push(format!("--output-dir={}", dirs.first().expect("one folder")));
        }
    }
    args
}

#[cfg(feature = "python")]
fn cohortextractor(ctx: &Context, args: Vec<String>) -> u8 {
    crate::cohort::exit_status(args, ctx.front_end.into())
}

#[cfg(not(feature = "python"))]
fn cohortextractor(_: &Context, _: Vec<String>) -> u8 {
    eprintln!("error: this build of ehrfusion has no Python support, which study definitions need");
    1
}

/// Run `f` (one of our own commands) in `work` with the process's standard output
/// and error going to `log`, holding the engine lock for the duration.
fn in_process(ctx: &Context, work: &Path, log: &mut File, f: impl FnOnce() -> u8) -> i64 {
    let _engine = ctx.engine.lock().unwrap_or_else(|p| p.into_inner());
    let status = redirect::with_output_to(log, work, || std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match status {
        Ok(Ok(code)) => code as i64,
        Ok(Err(_)) => {
            let _ = writeln!(log, "error: ehrfusion stopped on an internal error (a panic)");
            1
        }
        Err(e) => {
            let _ = writeln!(log, "error: {e}");
            1
        }
    }
}

/// Whether a program of this name is on `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    })
}

/// The platform's images run in `/workspace`, and run lines may name it
/// (`--output-dir=/workspace/output`): such an argument names the working copy here.
fn in_working_copy(arg: &str, work: &Path) -> String {
    const WORKSPACE: &str = "/workspace";
    let (option, path) = match arg.split_once('=') {
        Some((option, path)) if option.starts_with('-') => (format!("{option}="), path),
        _ => (String::new(), arg),
    };
    match path.strip_prefix(WORKSPACE) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{option}{}{rest}", work.display()),
        _ => arg.to_string(),
    }
}

/// Run a script with a local interpreter.
fn script(work: &Path, log: &mut File, program: &str, args: &[String], language: &str) -> Result<i64> {
    let args: Vec<String> = args.iter().map(|a| in_working_copy(a, work)).collect();
    spawn(work, log, program, &args, language)
}

/// Run a program in `work`, its output going to `log`; the exit status.
fn spawn(work: &Path, log: &mut File, program: &str, args: &[String], language: &str) -> Result<i64> {
    let out = log.try_clone().map_err(|e| err!("job log: {e}"))?;
    let err_out = log.try_clone().map_err(|e| err!("job log: {e}"))?;
    let mut command = std::process::Command::new(program);
    command.args(args).current_dir(work).env("OPENSAFELY_BACKEND", "expectations").stdin(Stdio::null()).stdout(out).stderr(err_out);
    // The script ends when the runner does (a killed runner must not leave it
    // writing into a working copy nobody will read).
    // SAFETY: prctl is async-signal-safe; it only asks the kernel for a signal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let status = command.status();
    match status {
        Ok(status) => Ok(status.code().map(i64::from).unwrap_or_else(|| 128 + signal_of(&status))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(err!("{language} actions need `{program}` on PATH, and there is none")),
        Err(e) => Err(err!("cannot run {program}: {e}")),
    }
}

/// Where the platform's images come from.
const REGISTRY: &str = "ghcr.io/opensafely-core";

/// The `docker run` arguments that run a script action in the platform's image, as
/// the local runner on Linux runs it: the working copy bind-mounted at `/workspace`,
/// no network, 2 CPUs and 4 GB (its defaults), the invoking user (so that outputs are
/// the user's), `OPENSAFELY_BACKEND=expectations`. Attached and removed when it ends,
/// where the runner detaches and removes it later.
pub fn docker_args(work: &Path, image: &str, version: &str, args: &[String]) -> Vec<String> {
    // SAFETY: geteuid and getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut out: Vec<String> = ["run", "--init", "--rm", "--label", "ehrfusion-local", "--cpus", "2.0", "--memory", "4G", "--network", "none"].map(String::from).to_vec();
    out.extend(["--mount".to_string(), format!("type=bind,source={},target=/workspace", work.display())]);
    out.extend(["--user".to_string(), format!("{uid}:{gid}"), "--env".into(), "HOME=/tmp".into()]);
    out.extend(["--env".to_string(), "OPENSAFELY_BACKEND=expectations".into()]);
    if image == "stata-mp" {
        // Passed on from the runner's own environment, as the runner does.
        out.extend(["--env".to_string(), "STATA_LICENSE".into()]);
    }
    out.push(format!("{REGISTRY}/{image}:{version}"));
    out.extend(args.iter().cloned());
    out
}

/// Whether Docker can run containers here, as `opensafely run` checks before a run
/// (its messages, on one line).
pub fn docker_preflight() -> Result<()> {
    if !on_path("docker") {
        return Err(err!("Could not find application: docker. You must have Docker installed to use --docker (without it, scripts run with local interpreters)"));
    }
    let info = std::process::Command::new("docker").arg("info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    match info {
        Ok(s) if s.success() => Ok(()),
        _ => Err(err!("There was an error running: docker info. It looks like you have Docker installed but have not started it")),
    }
}

/// Run a script action in the platform's image with Docker.
fn in_image(work: &Path, log: &mut File, image: &str, version: &str, args: &[String]) -> Result<i64> {
    // Inside the image the working copy is /workspace, as run lines expect.
    spawn(work, log, "docker", &docker_args(work, image, version, args), "Docker")
}

fn signal_of(status: &std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().map(i64::from).unwrap_or(0)
}

/// Pointing the process's standard output and error at a job's log, and its working
/// directory at the job's copy, for one in-process command.
mod redirect {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    use crate::err;
    use crate::error::Result;

    pub fn with_output_to<T>(log: &File, work: &Path, f: impl FnOnce() -> T) -> Result<T> {
        let cwd = std::env::current_dir().map_err(|e| err!("working directory: {e}"))?;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: dup/dup2/close on the standard descriptors and a file we own; the
        // saved descriptors are restored below, whatever `f` did.
        let saved = unsafe { [libc::dup(1), libc::dup(2)] };
        if saved.contains(&-1) {
            return Err(err!("cannot redirect the job's output: {}", std::io::Error::last_os_error()));
        }
        unsafe {
            libc::dup2(log.as_raw_fd(), 1);
            libc::dup2(log.as_raw_fd(), 2);
        }
        let previous_backend = std::env::var_os("OPENSAFELY_BACKEND");
        // SAFETY: the engine lock is held, so no other job reads the environment now.
        unsafe { std::env::set_var("OPENSAFELY_BACKEND", "expectations") };
        let result = std::env::set_current_dir(work).map(|_| f());
        let _ = std::env::set_current_dir(&cwd);
        unsafe {
            match previous_backend {
                Some(v) => std::env::set_var("OPENSAFELY_BACKEND", v),
                None => std::env::remove_var("OPENSAFELY_BACKEND"),
            }
        }
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        unsafe {
            libc::dup2(saved[0], 1);
            libc::dup2(saved[1], 2);
            libc::close(saved[0]);
            libc::close(saved[1]);
        }
        result.map_err(|e| err!("{}: {e}", work.display()))
    }
}

/// Copy a job's outputs back into the project, each through a temporary file
/// renamed into place. What the action's earlier runs wrote stays, as locally on
/// the platform.
fn persist_outputs(project: &Path, work: &Path, outputs: &IndexMap<String, String>) -> Result<()> {
    for file in outputs.keys() {
        let target = project.join(file);
        let partial = target.with_file_name(format!(".{}.ehrfusion-partial", target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
        copy_file(&work.join(file), &partial)?;
        std::fs::rename(&partial, &target).map_err(|e| err!("{}: {e}", target.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{in_working_copy, without_options};
    use std::path::Path;

    #[test]
    fn the_platforms_workspace_in_arguments_is_the_working_copy() {
        let work = Path::new("/tmp/copy");
        assert_eq!(in_working_copy("/workspace/analysis/a.ipynb", work), "/tmp/copy/analysis/a.ipynb");
        assert_eq!(in_working_copy("--output-dir=/workspace/output", work), "--output-dir=/tmp/copy/output");
        assert_eq!(in_working_copy("/workspace", work), "/tmp/copy");
        assert_eq!(in_working_copy("/workspaces/x", work), "/workspaces/x");
        assert_eq!(in_working_copy("analysis/a.py", work), "analysis/a.py");
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_are_dropped_with_their_values_but_not_after_the_definitions_arguments() {
        let args = strings(&["generate-dataset", "d.py", "--dummy-data-file", "x.csv", "--output", "o.csv", "--dummy-tables=t", "--", "--dummy-tables", "kept"]);
        assert_eq!(
            without_options(args, &["--dummy-data-file", "--dummy-tables"]),
            strings(&["generate-dataset", "d.py", "--output", "o.csv", "--", "--dummy-tables", "kept"])
        );
    }
}
