//! Which jobs a request makes, as the job runner decides: every requested action
//! runs; a dependency runs unless its last run succeeded (and, here, its outputs are
//! still in the project), or always with `--force-run-dependencies`; `run_all` asks
//! for every action that has not already succeeded.

use indexmap::IndexMap;

use super::project::{Project, RUN_ALL};
use crate::bail;
use crate::error::Result;

/// What the record says of an action's last job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Previous {
    Never,
    Succeeded,
    /// Succeeded, but some of its outputs have since gone from the project.
    OutputsMissing,
    Failed,
}

/// A job to create: its action and the actions (of this request) it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub action: String,
    pub waits_for: Vec<String>,
}

/// The jobs of a request, dependencies before the jobs that need them.
pub fn plan(project: &Project, requested: &[String], force_run_dependencies: bool, previous: impl Fn(&str) -> Previous) -> Result<Vec<Planned>> {
    for name in requested {
        if name != RUN_ALL && project.action(name).is_none() {
            bail!("Action '{name}' not found in project.yaml");
        }
    }
    let run_all = requested.iter().any(|r| r == RUN_ALL);
    let roots: Vec<&str> = if run_all { project.all_actions().collect() } else { requested.iter().map(String::as_str).collect() };
    let mut planned: IndexMap<String, Planned> = IndexMap::new();
    let mut skipped: Vec<String> = vec![];
    for root in roots {
        add(project, root, requested, force_run_dependencies, &previous, &mut planned, &mut skipped);
    }
    // Empty only for `run_all` when every action has already succeeded: nothing to
    // do, which the job runner counts as success.
    Ok(planned.into_values().collect())
}

fn add(
    project: &Project,
    action: &str,
    requested: &[String],
    force: bool,
    previous: &impl Fn(&str) -> Previous,
    planned: &mut IndexMap<String, Planned>,
    skipped: &mut Vec<String>,
) {
    if planned.contains_key(action) || skipped.iter().any(|s| s == action) {
        return;
    }
    // As in the job runner: `run_all` expands to actions that are not "requested" by
    // name, so those that already succeeded are not run again.
    let explicitly = requested.iter().any(|r| r == action);
    let rerun = explicitly || force || !matches!(previous(action), Previous::Succeeded);
    if !rerun {
        skipped.push(action.to_string());
        return;
    }
    let spec = &project.actions[action];
    let mut waits_for = vec![];
    for need in &spec.needs {
        add(project, need, requested, force, previous, planned, skipped);
        if planned.contains_key(need) {
            waits_for.push(need.clone());
        }
    }
    planned.insert(action.to_string(), Planned { action: action.to_string(), waits_for });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        // a <- b <- c, and d alone
        Project::parse(
            "version: '4'
actions:
  a: {run: 'python:v2 a.py', outputs: {highly_sensitive: {x: output/a.csv}}}
  b: {run: 'python:v2 b.py', needs: [a], outputs: {highly_sensitive: {x: output/b.csv}}}
  c: {run: 'python:v2 c.py', needs: [b], outputs: {highly_sensitive: {x: output/c.csv}}}
  d: {run: 'python:v2 d.py', outputs: {highly_sensitive: {x: output/d.csv}}}
",
        )
        .unwrap()
    }

    fn actions(plan: &[Planned]) -> Vec<&str> {
        plan.iter().map(|p| p.action.as_str()).collect()
    }

    fn requested(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dependencies_that_succeeded_are_skipped_with_their_own() {
        let p = project();
        let plan = plan(&p, &requested(&["c"]), false, |a| if a == "b" { Previous::Succeeded } else { Previous::Never }).unwrap();
        assert_eq!(actions(&plan), ["c"]);
        assert!(plan[0].waits_for.is_empty());
    }

    #[test]
    fn failed_missing_or_never_run_dependencies_run_first() {
        let p = project();
        for previous in [Previous::Never, Previous::Failed, Previous::OutputsMissing] {
            let plan = plan(&p, &requested(&["c"]), false, |a| if a == "a" { Previous::Succeeded } else { previous }).unwrap();
            assert_eq!(actions(&plan), ["b", "c"]);
            assert_eq!(plan[1].waits_for, ["b"]);
        }
    }

    #[test]
    fn requested_actions_always_run_and_force_runs_every_dependency() {
        let p = project();
        assert_eq!(actions(&plan(&p, &requested(&["b"]), false, |_| Previous::Succeeded).unwrap()), ["b"]);
        assert_eq!(actions(&plan(&p, &requested(&["c"]), true, |_| Previous::Succeeded).unwrap()), ["a", "b", "c"]);
    }

    #[test]
    fn run_all_runs_what_has_not_succeeded() {
        let p = project();
        assert_eq!(actions(&plan(&p, &requested(&["run_all"]), false, |_| Previous::Never).unwrap()), ["a", "b", "c", "d"]);
        let plan_ = plan(&p, &requested(&["run_all"]), false, |a| if a == "d" { Previous::Failed } else { Previous::Succeeded }).unwrap();
        assert_eq!(actions(&plan_), ["d"]);
        assert!(plan(&p, &requested(&["run_all"]), false, |_| Previous::Succeeded).unwrap().is_empty());
    }

    #[test]
    fn unknown_actions_are_refused() {
        let e = plan(&project(), &requested(&["nope"]), false, |_| Previous::Never).unwrap_err();
        assert_eq!(e.to_string(), "Action 'nope' not found in project.yaml");
    }
}
