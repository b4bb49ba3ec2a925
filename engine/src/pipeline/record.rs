//! The record of job requests and their jobs: a SQLite database in the project's
//! `metadata/db.sqlite`, as the job runner keeps one. Every change of a job's state is
//! written (and committed) as it happens, so that a run that is killed leaves a record
//! the next run can read: jobs it left running are then marked failed.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};

use crate::err;
use crate::error::Result;

/// A job's state, as the job runner names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Failed,
    Succeeded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Failed => "failed",
            State::Succeeded => "succeeded",
        }
    }

    fn parse(text: &str) -> State {
        match text {
            "running" => State::Running,
            "failed" => State::Failed,
            "succeeded" => State::Succeeded,
            _ => State::Pending,
        }
    }
}

/// One job of a request: one run of one action.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub request_id: String,
    pub action: String,
    pub run_command: String,
    pub state: State,
    pub status_code: String,
    pub status_message: String,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub completed_at: Option<f64>,
    pub exit_code: Option<i64>,
    /// The outputs the job produced: path → privacy level.
    pub outputs: IndexMap<String, String>,
    /// Files the job wrote that no output pattern matched (kept when a pattern
    /// matched nothing, to show what the job did write).
    pub unmatched_outputs: Vec<String>,
    /// Moderately sensitive outputs that would not be released: path → why.
    pub level4_excluded_files: IndexMap<String, String>,
}

impl Job {
    /// Seconds the job ran for (none if it never started).
    pub fn runtime(&self) -> Option<f64> {
        Some(self.completed_at.unwrap_or_else(now) - self.started_at?)
    }
}

/// A job request: the actions asked for and how.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
    pub created_at: f64,
    pub requested_actions: Vec<String>,
    pub force_run_dependencies: bool,
    pub runner_pid: u32,
}

pub struct Record {
    db: Connection,
    pub metadata: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job_request (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    requested_actions TEXT NOT NULL,
    force_run_dependencies INTEGER NOT NULL,
    runner_pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS job (
    id TEXT PRIMARY KEY,
    job_request_id TEXT NOT NULL REFERENCES job_request(id),
    action TEXT NOT NULL,
    run_command TEXT NOT NULL,
    state TEXT NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    exit_code INTEGER,
    outputs TEXT NOT NULL DEFAULT '{}',
    unmatched_outputs TEXT NOT NULL DEFAULT '[]',
    level4_excluded_files TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS job_action ON job(action, created_at);
";

/// Seconds since the epoch, with the fraction.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// An identifier as the job runner makes them: 16 characters of lower-case base32.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    (0..16).map(|_| ALPHABET[rng.random_range(0..32)] as char).collect()
}

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> crate::Error + '_ {
    move |e| err!("{}: {e}", path.display())
}

impl Record {
    /// Open (creating if need be) the record of the project in `project_dir`.
    pub fn open(project_dir: &Path) -> Result<Record> {
        let metadata = project_dir.join("metadata");
        std::fs::create_dir_all(&metadata).map_err(|e| err!("{}: {e}", metadata.display()))?;
        let path = metadata.join("db.sqlite");
        let db = Connection::open(&path).map_err(db_error(&path))?;
        // Another runner in the same project waits for the lock rather than failing.
        db.busy_timeout(std::time::Duration::from_secs(30)).map_err(db_error(&path))?;
        db.execute_batch(SCHEMA).map_err(db_error(&path))?;
        Ok(Record { db, metadata })
    }

    fn path(&self) -> PathBuf {
        self.metadata.join("db.sqlite")
    }

    /// Mark as failed every job left pending or running. Called by a runner that
    /// holds the project's lock, so no other runner is working on them: whoever left
    /// them was killed. The next run then proceeds from a consistent record. Returns
    /// the actions of the jobs so marked.
    pub fn recover_interrupted(&self) -> Result<Vec<String>> {
        let path = self.path();
        let mut stmt = self.db.prepare("SELECT action FROM job WHERE state IN ('pending', 'running') ORDER BY rowid").map_err(db_error(&path))?;
        let actions = stmt
            .query_map([], |r| r.get(0))
            .map_err(db_error(&path))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(db_error(&path))?;
        self.db
            .execute(
                "UPDATE job SET state = 'failed', status_code = 'internal_error', status_message = ?1, completed_at = ?2 WHERE state IN ('pending', 'running')",
                params!["Job was interrupted: its runner stopped before it finished", now()],
            )
            .map_err(db_error(&path))?;
        Ok(actions)
    }

    pub fn create_request(&self, requested_actions: &[String], force_run_dependencies: bool) -> Result<Request> {
        let request = Request {
            id: new_id(),
            created_at: now(),
            requested_actions: requested_actions.to_vec(),
            force_run_dependencies,
            runner_pid: std::process::id(),
        };
        self.db
            .execute(
                "INSERT INTO job_request (id, created_at, requested_actions, force_run_dependencies, runner_pid) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    request.id,
                    request.created_at,
                    json(&request.requested_actions),
                    request.force_run_dependencies,
                    request.runner_pid
                ],
            )
            .map_err(db_error(&self.path()))?;
        Ok(request)
    }

    pub fn insert_job(&self, job: &Job) -> Result<()> {
        self.db
            .execute(
                "INSERT INTO job (id, job_request_id, action, run_command, state, status_code, status_message, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![job.id, job.request_id, job.action, job.run_command, job.state.as_str(), job.status_code, job.status_message, job.created_at],
            )
            .map_err(db_error(&self.path()))?;
        Ok(())
    }

    /// Write a job's state, status and times as they are now.
    pub fn update_job(&self, job: &Job) -> Result<()> {
        self.db
            .execute(
                "UPDATE job SET state = ?2, status_code = ?3, status_message = ?4, started_at = ?5, completed_at = ?6, exit_code = ?7, outputs = ?8, unmatched_outputs = ?9, level4_excluded_files = ?10 WHERE id = ?1",
                params![
                    job.id,
                    job.state.as_str(),
                    job.status_code,
                    job.status_message,
                    job.started_at,
                    job.completed_at,
                    job.exit_code,
                    json(&job.outputs),
                    json(&job.unmatched_outputs),
                    json(&job.level4_excluded_files)
                ],
            )
            .map_err(db_error(&self.path()))?;
        Ok(())
    }

    /// The most recent job of an action, in any request.
    pub fn latest_job(&self, action: &str) -> Result<Option<Job>> {
        let path = self.path();
        self.db
            .query_row(&format!("SELECT {JOB_COLUMNS} FROM job WHERE action = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"), [action], job_from_row)
            .optional()
            .map_err(db_error(&path))
    }

    /// A request (the latest if `id` is none) and its jobs, in the order they were made.
    pub fn request(&self, id: Option<&str>) -> Result<Option<(Request, Vec<Job>)>> {
        let path = self.path();
        let select = "SELECT id, created_at, requested_actions, force_run_dependencies, runner_pid FROM job_request";
        let to_request = |r: &rusqlite::Row| -> rusqlite::Result<Request> {
            Ok(Request {
                id: r.get(0)?,
                created_at: r.get(1)?,
                requested_actions: from_json(r, 2)?,
                force_run_dependencies: r.get(3)?,
                runner_pid: r.get(4)?,
            })
        };
        let request = match id {
            Some(id) => self.db.query_row(&format!("{select} WHERE id = ?1"), [id], to_request),
            None => self.db.query_row(&format!("{select} ORDER BY created_at DESC, rowid DESC LIMIT 1"), [], to_request),
        }
        .optional()
        .map_err(db_error(&path))?;
        let Some(request) = request else { return Ok(None) };
        let mut stmt = self.db.prepare(&format!("SELECT {JOB_COLUMNS} FROM job WHERE job_request_id = ?1 ORDER BY rowid")).map_err(db_error(&path))?;
        let jobs = stmt
            .query_map([&request.id], job_from_row)
            .map_err(db_error(&path))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error(&path))?;
        Ok(Some((request, jobs)))
    }

    /// Every request, newest first: (id, created_at, number of jobs).
    pub fn requests(&self) -> Result<Vec<(String, f64, i64)>> {
        let path = self.path();
        let mut stmt = self
            .db
            .prepare("SELECT job_request.id, job_request.created_at, COUNT(job.id) FROM job_request LEFT JOIN job ON job.job_request_id = job_request.id GROUP BY job_request.id ORDER BY job_request.created_at DESC, job_request.rowid DESC")
            .map_err(db_error(&path))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(db_error(&path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_error(&path))
    }
}

const JOB_COLUMNS: &str =
    "id, job_request_id, action, run_command, state, status_code, status_message, created_at, started_at, completed_at, exit_code, outputs, unmatched_outputs, level4_excluded_files";

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("maps and lists of strings serialise")
}

/// A JSON column read back (an error, not an empty value, if it does not parse).
fn from_json<T: serde::de::DeserializeOwned>(r: &rusqlite::Row, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn job_from_row(r: &rusqlite::Row) -> rusqlite::Result<Job> {
    let state: String = r.get(4)?;
    Ok(Job {
        id: r.get(0)?,
        request_id: r.get(1)?,
        action: r.get(2)?,
        run_command: r.get(3)?,
        state: State::parse(&state),
        status_code: r.get(5)?,
        status_message: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        completed_at: r.get(9)?,
        exit_code: r.get(10)?,
        outputs: from_json(r, 11)?,
        unmatched_outputs: from_json(r, 12)?,
        level4_excluded_files: from_json(r, 13)?,
    })
}

/// What the platform appends to a job's log after its output: a marker line, the
/// job's identifiers, exit code, times and status, then its outputs by level.
pub fn log_summary(job_id: &str, request_id: &str, created_at: f64, outcome: &super::execute::Outcome) -> String {
    let mut text = String::from("\n=============JOB SUMMARY=============\n");
    let fields = [
        ("job_definition_id", Some(job_id.to_string())),
        ("job_definition_rap_id", Some(request_id.to_string())),
        ("exit_code", outcome.exit_code.map(|c| c.to_string())),
        ("created_at", Some((created_at as i64).to_string())),
        ("completed_at", Some((now() as i64).to_string())),
        ("status_message", outcome.log_message.clone()),
        ("hint", outcome.hint.clone()),
    ];
    for (key, value) in fields {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            text.push_str(&format!("{key}: {value}\n"));
        }
    }
    text.push_str("\noutputs:\n");
    text.push_str(&two_columns(&outcome.outputs, "(no outputs)", 2));
    if !outcome.level4_excluded_files.is_empty() {
        text.push_str("\n\nInvalid moderately_sensitive outputs:\n");
        text.push_str(&two_columns(&outcome.level4_excluded_files, "", 2));
    }
    text.push('\n');
    text
}

/// Two columns sorted, both padded, joined by "  - ", indented (the job runner's
/// table of outputs).
pub fn two_columns(rows: &IndexMap<String, String>, empty: &str, indent: usize) -> String {
    let indent = " ".repeat(indent);
    if rows.is_empty() {
        return format!("{indent}{empty}");
    }
    let mut sorted: Vec<(&String, &String)> = rows.iter().collect();
    sorted.sort();
    let (w0, w1) = (sorted.iter().map(|r| r.0.chars().count()).max().unwrap_or(0), sorted.iter().map(|r| r.1.chars().count()).max().unwrap_or(0));
    sorted.iter().map(|(a, b)| format!("{indent}{a:<w0$}  - {b:<w1$}")).collect::<Vec<_>>().join("\n")
}
