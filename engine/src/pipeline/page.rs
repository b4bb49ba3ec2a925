//! A job request as the platform's page shows it: per job its action, status,
//! status code and message and identifier; for the request when it was created,
//! started and finished and its runtime, the sum of its jobs' runtimes. As text for
//! the terminal, or as one self-contained HTML file.

use std::path::Path;

use super::record::{Job, Request, State};

/// A time as the page shows it (UTC).
pub fn timestamp(seconds: f64) -> String {
    chrono::DateTime::from_timestamp(seconds as i64, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// A duration as the platform shows it: `HH:MM:SS`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The request's status, as the platform sums up its jobs.
pub fn request_status(jobs: &[Job]) -> &'static str {
    if jobs.iter().any(|j| j.state == State::Running) {
        "running"
    } else if jobs.iter().any(|j| j.state == State::Failed) {
        "failed"
    } else if jobs.iter().all(|j| j.state == State::Succeeded) {
        "succeeded"
    } else {
        "pending"
    }
}

struct Summary {
    created: String,
    started: String,
    finished: String,
    runtime: String,
}

fn summarise(request: &Request, jobs: &[Job]) -> Summary {
    let started = jobs.iter().filter_map(|j| j.started_at).reduce(f64::min);
    let finished = if jobs.iter().all(|j| matches!(j.state, State::Succeeded | State::Failed)) { jobs.iter().filter_map(|j| j.completed_at).reduce(f64::max) } else { None };
    let runtime: f64 = jobs.iter().filter_map(Job::runtime).sum();
    Summary {
        created: timestamp(request.created_at),
        started: started.map(timestamp).unwrap_or_else(|| "-".into()),
        finished: finished.map(timestamp).unwrap_or_else(|| "-".into()),
        runtime: duration(runtime),
    }
}

fn status_line(job: &Job) -> String {
    format!("{}: {}", job.status_code, job.status_message.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
}

/// The page as text.
pub fn text(request: &Request, jobs: &[Job]) -> String {
    let s = summarise(request, jobs);
    let mut out = format!(
        "Job request {}  ({})\n  requested: {}{}\n  created: {}  started: {}  finished: {}  runtime: {}\n\n",
        request.id,
        request_status(jobs),
        request.requested_actions.join(" "),
        if request.force_run_dependencies { "  (dependencies forced)" } else { "" },
        s.created,
        s.started,
        s.finished,
        s.runtime
    );
    let rows: Vec<[String; 5]> = jobs
        .iter()
        .map(|j| [j.action.clone(), j.state.as_str().to_string(), status_line(j), j.id.clone(), j.runtime().map(duration).unwrap_or_else(|| "-".into())])
        .collect();
    let headers = ["action", "status", "status code: message", "job", "runtime"];
    let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].len()]).max().unwrap_or(0)).collect();
    let line = |cells: [&str; 5]| -> String {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| if i == 4 { c.to_string() } else { format!("{c:<w$}", w = widths[i]) }).collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(headers));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page as one HTML file with its own styles (no scripts, no external files).
pub fn html(request: &Request, jobs: &[Job], project_dir: &Path) -> String {
    let s = summarise(request, jobs);
    let status = request_status(jobs);
    let mut rows = String::new();
    for j in jobs {
        let mut outputs: Vec<String> = j
            .outputs
            .iter()
            .map(|(f, l)| {
                let excluded = j.level4_excluded_files.get(f).map(|why| format!(" <span class=\"excluded\">not releasable: {}</span>", escape(why))).unwrap_or_default();
                format!("<li><code>{}</code> <span class=\"level\">{}</span>{excluded}</li>", escape(f), escape(l))
            })
            .collect();
        outputs.extend(j.unmatched_outputs.iter().map(|f| format!("<li><code>{}</code> <span class=\"excluded\">written, matched no pattern</span></li>", escape(f))));
        rows.push_str(&format!(
            "<tr><td class=\"action\">{action}</td><td><span class=\"badge {state}\">{state}</span></td><td>{status}</td><td><code>{id}</code></td><td>{runtime}</td><td><ul>{outputs}</ul></td></tr>\n",
            state = j.state.as_str(),
            action = escape(&j.action),
            status = escape(&status_line(j)),
            id = escape(&j.id),
            runtime = j.runtime().map(duration).unwrap_or_else(|| "-".into()),
            outputs = outputs.join("")
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Job request {id}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2937; }}
h1 {{ font-size: 1.5rem; margin-bottom: 0.25rem; }}
.project {{ color: #6b7280; margin-top: 0; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 0.25rem 1rem; }}
dt {{ font-weight: 600; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 1.5rem; }}
th, td {{ text-align: left; padding: 0.5rem 0.75rem; border-bottom: 1px solid #e5e7eb; vertical-align: top; }}
th {{ background: #f3f4f6; }}
ul {{ margin: 0; padding-left: 1rem; }}
.badge {{ padding: 0.1rem 0.5rem; border-radius: 0.75rem; font-size: 0.85rem; font-weight: 600; }}
.succeeded {{ background: #d1fae5; color: #065f46; }}
.failed {{ background: #fee2e2; color: #991b1b; }}
.running {{ background: #dbeafe; color: #1e40af; }}
.pending {{ background: #f3f4f6; color: #374151; }}
.level {{ color: #6b7280; font-size: 0.85rem; }}
.excluded {{ color: #991b1b; font-size: 0.85rem; }}
</style>
</head>
<body>
<h1>Job request <code>{id}</code> <span class="badge {status}">{status}</span></h1>
<p class="project">{project}</p>
<dl>
<dt>Requested actions</dt><dd>{requested}</dd>
<dt>Force run dependencies</dt><dd>{force}</dd>
<dt>Created</dt><dd>{created}</dd>
<dt>Started</dt><dd>{started}</dd>
<dt>Finished</dt><dd>{finished}</dd>
<dt>Runtime</dt><dd>{runtime}</dd>
</dl>
<table>
<thead><tr><th>Action</th><th>Status</th><th>Status code: message</th><th>Job identifier</th><th>Runtime</th><th>Outputs</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"#,
        id = escape(&request.id),
        project = escape(&project_dir.display().to_string()),
        requested = escape(&request.requested_actions.join(", ")),
        force = if request.force_run_dependencies { "yes" } else { "no" },
        created = s.created,
        started = s.started,
        finished = s.finished,
        runtime = s.runtime,
    )
}
