//! `ehrfusion run` and `ehrfusion jobs`: a study's `project.yaml` pipeline run
//! natively, as the platform runs a job request. [`project`] parses and validates
//! the file, [`schedule`] decides which jobs a request makes, [`execute`] runs one job
//! in its working copy, and [`record`] keeps every job's state, status and times in
//! `metadata/db.sqlite`, writes `metadata/ACTION.log`, and shows a request as the
//! platform's job-request page does ([`page`]).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use indexmap::IndexMap;

use crate::cli::PythonFrontEnd;
use crate::err;
use crate::error::{ErrorKind, Result};

pub mod execute;
pub mod page;
pub mod project;
pub mod record;
pub mod schedule;

use execute::{Context, Outcome};
use project::Project;
use record::{Job, Record, State};
use schedule::Previous;

/// How a run was asked for.
pub struct RunOptions {
    pub actions: Vec<String>,
    pub force_run_dependencies: bool,
    pub continue_on_error: bool,
    pub jobs: usize,
    pub project_dir: PathBuf,
    pub data: Option<PathBuf>,
    /// Run script actions in the platform's Docker images.
    pub docker: bool,
    /// Bytes of decoded columns the request's extraction jobs may share (0: none).
    pub share_memory: usize,
}

/// The runner's own messages. They go to the standard error the program started
/// with, even while an in-process job has the process's output pointed at its log.
struct Console(Mutex<File>);

impl Console {
    fn new() -> Console {
        // SAFETY: dup of our own standard error; the new descriptor is owned by the File.
        let fd = unsafe { libc::dup(std::io::stderr().as_raw_fd()) };
        let file = if fd >= 0 { unsafe { File::from_raw_fd(fd) } } else { File::options().write(true).open("/dev/null").expect("/dev/null") };
        Console(Mutex::new(file))
    }

    fn say(&self, text: &str) {
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
    }
}

/// Run a request; the exit status is 0 when every job succeeded.
pub fn run(options: RunOptions, front_end: PythonFrontEnd) -> Result<u8> {
    let project_dir = std::fs::canonicalize(&options.project_dir).map_err(|e| err!("{}: {e}", options.project_dir.display()).or_kind(ErrorKind::Usage))?;
    let project = Project::load(&project_dir)?;
    let console = Console::new();
    for warning in &project.warnings {
        console.say(&format!("warning: {warning}"));
    }
    let names = std::iter::once(project::RUN_ALL).chain(project.all_actions()).collect::<Vec<_>>().join(", ");
    if options.actions.is_empty() {
        return Err(err!("name the actions to run (the actions are: {names})").or_kind(ErrorKind::Usage));
    }
    let data = match &options.data {
        Some(d) => Some(std::fs::canonicalize(d).map_err(|e| err!("--data {}: {e}", d.display()).or_kind(ErrorKind::Usage))?),
        None => None,
    };
    let _lock = lock_project(&project_dir)?;
    // Holding the lock, no other run uses the working copies a killed run left.
    let work = execute::work_dir(&project_dir);
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| err!("{}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| err!("{}: {e}", work.display()))?;
    let record = Record::open(&project_dir)?;
    let interrupted = record.recover_interrupted()?;
    if !interrupted.is_empty() {
        console.say(&format!("note: an earlier run was interrupted; its unfinished jobs are marked failed (internal_error): {}", interrupted.join(", ")));
    }
    let mut previous = IndexMap::new();
    for action in project.actions.keys() {
        let last = match record.latest_job(action)? {
            None => Previous::Never,
            Some(job) if job.state != State::Succeeded => Previous::Failed,
            Some(job) if job.outputs.keys().all(|f| project_dir.join(f).is_file()) => Previous::Succeeded,
            Some(_) => Previous::OutputsMissing,
        };
        previous.insert(action.as_str(), last);
    }
    let planned = schedule::plan(&project, &options.actions, options.force_run_dependencies, |a| previous[a])
        .map_err(|e| err!("{e} (the actions are: {names})").or_kind(ErrorKind::Usage))?;
    if planned.is_empty() {
        console.say("=> All actions already completed successfully\n   Use -f option to force everything to re-run");
        return Ok(0);
    }
    if options.docker && planned.iter().any(|p| project.actions[&p.action].is_script()) {
        execute::docker_preflight()?;
    }
    let request = record.create_request(&options.actions, options.force_run_dependencies)?;
    let ctx = Context { project_dir, project, data, front_end, docker: options.docker, engine: Mutex::new(()) };
    let mut jobs = create_jobs(&ctx, &record, &request, &planned)?;
    // Extraction jobs over the same real tables decode each column once between them.
    let extractions = planned.iter().filter(|p| ctx.project.actions[&p.action].runs_on_engine()).count();
    let _sharing = (ctx.data.is_some() && extractions > 1 && options.share_memory > 0).then(|| crate::source::shared::enable(options.share_memory));
    console.say(&format!("\nRunning actions: {}\n", jobs.keys().cloned().collect::<Vec<_>>().join(", ")));
    let outcomes = run_jobs(&ctx, &record, &console, &planned, &mut jobs, &options)?;
    console.say(&summary(&jobs, &outcomes, &ctx.project_dir));
    let all_succeeded = jobs.values().all(|j| j.state == State::Succeeded);
    Ok(if all_succeeded { 0 } else { 1 })
}

/// The request's jobs, recorded as created.
fn create_jobs(ctx: &Context, record: &Record, request: &record::Request, planned: &[schedule::Planned]) -> Result<IndexMap<String, Job>> {
    let mut jobs = IndexMap::new();
    for p in planned {
        let job = Job {
            id: record::new_id(),
            request_id: request.id.clone(),
            action: p.action.clone(),
            run_command: project::command_line(&execute::job_command(ctx, &ctx.project.actions[&p.action])),
            state: State::Pending,
            status_code: "created".into(),
            status_message: "Created".into(),
            created_at: record::now(),
            started_at: None,
            completed_at: None,
            exit_code: None,
            outputs: IndexMap::new(),
            unmatched_outputs: vec![],
            level4_excluded_files: IndexMap::new(),
        };
        record.insert_job(&job)?;
        jobs.insert(p.action.clone(), job);
    }
    Ok(jobs)
}

/// Run the jobs, each on a thread of its own once its dependencies have succeeded,
/// at most `options.jobs` at a time; record every change of state. A job whose
/// dependency failed fails without starting; after any failure nothing new starts
/// unless `--continue-on-error`. Returns how each job that ran ended.
fn run_jobs(ctx: &Context, record: &Record, console: &Console, planned: &[schedule::Planned], jobs: &mut IndexMap<String, Job>, options: &RunOptions) -> Result<IndexMap<String, Outcome>> {
    let mut outcomes = IndexMap::new();
    let mut stopping = false;
    std::thread::scope(|scope| -> Result<()> {
        let (done_tx, done_rx) = mpsc::channel::<(String, Outcome)>();
        let mut running = 0usize;
        // The engine runs one extraction at a time (each uses every core), so a
        // second waits for the first before it starts: its runtime is its own, and
        // its slot can run a script meanwhile.
        let mut extracting: Option<String> = None;
        loop {
            // Dependencies come before the jobs that need them, so one pass settles
            // every job whose dependency has failed.
            for p in planned {
                let job = jobs.get(&p.action).expect("planned job");
                if job.state != State::Pending {
                    continue;
                }
                let failed_dependency = p.waits_for.iter().any(|n| jobs[n].state == State::Failed);
                let ready = p.waits_for.iter().all(|n| jobs[n].state == State::Succeeded);
                let job = jobs.get_mut(&p.action).expect("planned job");
                if failed_dependency || stopping {
                    (job.status_code, job.status_message) = if failed_dependency {
                        ("dependency_failed".into(), "Not starting as dependency failed".into())
                    } else {
                        ("cancelled_by_user".into(), "Not started: an earlier job failed (use --continue-on-error to run the others)".into())
                    };
                    job.state = State::Failed;
                    job.completed_at = Some(record::now());
                    record.update_job(job)?;
                } else if ready && running < options.jobs.max(1) && !(ctx.project.actions[&p.action].runs_on_engine() && extracting.is_some()) {
                    if ctx.project.actions[&p.action].runs_on_engine() {
                        extracting = Some(p.action.clone());
                    }
                    job.state = State::Running;
                    (job.status_code, job.status_message) = ("executing".into(), "Executing job on the backend".into());
                    job.started_at = Some(record::now());
                    record.update_job(job)?;
                    let inputs = inputs_of(ctx, record, &p.action)?;
                    let (tx, name, ids) = (done_tx.clone(), p.action.clone(), (job.id.clone(), job.request_id.clone()));
                    scope.spawn(move || {
                        let progress = |message: &str| console.say(&format!("{name}: {message}"));
                        let outcome = run_logged(ctx, &ctx.project.actions[&name], (&ids.0, &ids.1), &inputs, &progress);
                        progress(&outcome.message);
                        let _ = tx.send((name.clone(), outcome));
                    });
                    running += 1;
                }
            }
            if running == 0 {
                return Ok(());
            }
            let (action, outcome) = done_rx.recv().map_err(|e| err!("a job's thread stopped: {e}"))?;
            running -= 1;
            if extracting.as_ref() == Some(&action) {
                extracting = None;
            }
            let job = jobs.get_mut(&action).expect("running job");
            finish(job, &outcome);
            record.update_job(job)?;
            stopping |= job.state == State::Failed && !options.continue_on_error;
            outcomes.insert(action, outcome);
        }
    })?;
    Ok(outcomes)
}

/// The output files of the needed actions' last successful runs.
fn inputs_of(ctx: &Context, record: &Record, action: &str) -> Result<Vec<String>> {
    let mut files = vec![];
    for need in &ctx.project.actions[action].needs {
        if let Some(job) = record.latest_job(need)?.filter(|j| j.state == State::Succeeded) {
            files.extend(job.outputs.keys().cloned());
        }
    }
    Ok(files)
}

/// Run a job with its output in `metadata/ACTION.log`, followed by the summary the
/// platform appends.
fn run_logged(ctx: &Context, action: &project::Action, (job_id, request_id): (&str, &str), inputs: &[String], progress: &dyn Fn(&str)) -> Outcome {
    let metadata = ctx.project_dir.join("metadata");
    let log_path = metadata.join(format!("{}.log", action.name));
    let partial = metadata.join(format!(".{}.log.partial", action.name));
    let mut log = match File::create(&partial) {
        Ok(f) => f,
        Err(e) => return Outcome { status_code: "internal_error", message: format!("Internal error: {}: {e}", partial.display()), ..Default::default() },
    };
    let created = record::now();
    let outcome = execute::run_job(ctx, action, inputs, &mut log, progress);
    let _ = write!(log, "{}", record::log_summary(job_id, request_id, created, &outcome));
    drop(log);
    if std::fs::rename(&partial, &log_path).is_ok() {
        progress(&format!("Logs written to: {}", log_path.display()));
    }
    outcome
}

fn finish(job: &mut Job, outcome: &Outcome) {
    job.completed_at = Some(record::now());
    job.exit_code = outcome.exit_code;
    job.status_code = outcome.status_code.to_string();
    job.status_message = outcome.message.clone();
    job.outputs = outcome.outputs.clone();
    job.unmatched_outputs = outcome.unmatched_outputs.clone();
    job.level4_excluded_files = outcome.level4_excluded_files.clone();
    job.state = if outcome.status_code == "succeeded" { State::Succeeded } else { State::Failed };
}

/// What the console says at the end, as `opensafely run` says it: a block per job
/// that ran (failed ones last), with its message, log file, outputs and, for a job
/// that exited with an error, the end of its log. Jobs that never started are on
/// the job-request page (`ehrfusion jobs`) instead.
fn summary(jobs: &IndexMap<String, Job>, outcomes: &IndexMap<String, Outcome>, project_dir: &Path) -> String {
    let mut ran: Vec<&Job> = jobs.values().filter(|j| outcomes.contains_key(&j.action)).collect();
    ran.sort_by(|a, b| (a.state == State::Failed).cmp(&(b.state == State::Failed)).then(a.started_at.partial_cmp(&b.started_at).unwrap_or(std::cmp::Ordering::Equal)));
    if ran.is_empty() {
        return "\n=> No jobs completed".into();
    }
    let mut text = String::new();
    for job in ran {
        let outcome = &outcomes[&job.action];
        text.push_str(&format!("\n=> {}\n", job.action));
        for line in job.status_message.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(&format!("   {line}\n"));
        }
        if !outcome.unmatched_outputs.is_empty() {
            text.push_str("\n   Did you mean to match one of these files instead?\n");
            for file in &outcome.unmatched_outputs {
                text.push_str(&format!("    - {file}\n"));
            }
        }
        text.push_str(&format!("\n   log file: metadata/{}.log\n   outputs:\n", job.action));
        text.push_str(&record::two_columns(&outcome.outputs, "(no outputs)", 5));
        text.push('\n');
        if !outcome.level4_excluded_files.is_empty() {
            text.push_str("   invalid moderately_sensitive outputs:\n");
            text.push_str(&record::two_columns(&outcome.level4_excluded_files, "", 5));
            text.push('\n');
        }
        if job.status_code == "nonzero_exit" {
            let log = std::fs::read_to_string(project_dir.join("metadata").join(format!("{}.log", job.action))).unwrap_or_default();
            let output = log.split("\n=============JOB SUMMARY=============\n").next().unwrap_or("");
            let lines: Vec<&str> = output.lines().map(str::trim).collect();
            if !output.trim().is_empty() {
                let shown = &lines[lines.len().saturating_sub(32)..];
                text.push_str(&format!("\n   logs{}:\n\n", if lines.len() > 32 { " (truncated)" } else { "" }));
                for line in shown {
                    text.push_str(&format!("     {line}\n"));
                }
            }
        }
    }
    text
}

/// Hold `metadata/.lock` for the run: one runner per project at a time. The lock
/// goes with the process, so a killed runner leaves none behind.
fn lock_project(project_dir: &Path) -> Result<File> {
    let metadata = project_dir.join("metadata");
    std::fs::create_dir_all(&metadata).map_err(|e| err!("{}: {e}", metadata.display()))?;
    let path = metadata.join(".lock");
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| err!("{}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(err!("another `ehrfusion run` is running in {} (wait for it to finish)", project_dir.display()));
    }
    Ok(file)
}

/// `ehrfusion jobs`: a request as the platform's job-request page shows it.
pub fn jobs(project_dir: &Path, request: Option<&str>, html: Option<&Path>, list: bool) -> Result<()> {
    let project_dir = std::fs::canonicalize(project_dir).map_err(|e| err!("{}: {e}", project_dir.display()).or_kind(ErrorKind::Usage))?;
    if !project_dir.join("metadata").join("db.sqlite").exists() {
        return Err(err!("{}: no job requests yet (run `ehrfusion run ACTION` first)", project_dir.display()).or_kind(ErrorKind::Usage));
    }
    let record = Record::open(&project_dir)?;
    if list {
        for (id, created, count) in record.requests()? {
            println!("{id}  {}  {count} job{}", page::timestamp(created), if count == 1 { "" } else { "s" });
        }
        return Ok(());
    }
    let Some((request, jobs)) = record.request(request)? else {
        return Err(err!("no job request {} in {}", request.unwrap_or(""), project_dir.display()).or_kind(ErrorKind::Usage));
    };
    match html {
        Some(path) => {
            let text = page::html(&request, &jobs, &project_dir);
            std::fs::write(path, text).map_err(|e| err!("{}: {e}", path.display()))?;
        }
        None => print!("{}", page::text(&request, &jobs)),
    }
    Ok(())
}
