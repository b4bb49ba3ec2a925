//! project.yaml validation against the platform's pipeline library: every case in
//! testdata/pipeline/validation holds a project.yaml and what the library said of
//! it (`expected.txt`, written by running the library; `warnings.txt` when it warned).
//!
//! - `OK`: ours accepts it too, with the same warnings.
//! - `ProjectValidationError: Invalid project: <message>`: ours refuses it with the
//!   same message, its whitespace collapsed onto one line.
//! - a YAML error (the library passes on its YAML parser's text) or a crash of the
//!   library (`TypeError`, `ValueError`, ...): ours refuses it with one line.
//! - `ehrfusion.txt` beside them: a file the library accepts and ours refuses on
//!   purpose (a `needs` cycle, on which the job runner recurses without end), with
//!   our message on its first line and why on the next.

use std::path::Path;

use ehrfusion::pipeline::project::Project;

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn project_files_are_judged_as_the_pipeline_library_judges_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pipeline/validation");
    let mut cases: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() > 200, "the corpus is missing");
    let mut failures = vec![];
    let (mut accepted, mut same_message, mut refused) = (0, 0, 0);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(case.join("project.yaml")).unwrap();
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        let ours = Project::parse(&text);
        if let Ok(ours_on_purpose) = std::fs::read_to_string(case.join("ehrfusion.txt")) {
            // Where we refuse what the library accepts, on purpose: the file says why.
            let wanted = ours_on_purpose.lines().next().unwrap_or("").to_string();
            match ours {
                Err(e) if e.to_string() == wanted => refused += 1,
                other => failures.push(format!("{name}: {:?}, wanted the refusal: {wanted}", other.map(|_| "accepted").map_err(|e| e.to_string()))),
            }
            continue;
        }
        if expected.trim() == "OK" {
            match ours {
                Ok(project) => {
                    let warnings = std::fs::read_to_string(case.join("warnings.txt")).unwrap_or_default();
                    let theirs: Vec<&str> = warnings.lines().filter(|l| !l.is_empty()).map(|l| l.trim_start_matches("UserWarning: ")).collect();
                    if project.warnings != theirs {
                        failures.push(format!("{name}: warnings {:?}, the library's {theirs:?}", project.warnings));
                    }
                    accepted += 1;
                }
                Err(e) => failures.push(format!("{name}: refused ({e}), the library accepts it")),
            }
            continue;
        }
        let message = match ours {
            Ok(_) => {
                failures.push(format!("{name}: accepted, the library says {}", one_line(&expected)));
                continue;
            }
            Err(e) => e.to_string(),
        };
        if message.contains('\n') {
            failures.push(format!("{name}: the message spans lines: {message:?}"));
        }
        if let Some(theirs) = expected.strip_prefix("ProjectValidationError: Invalid project:") {
            if one_line(&message) != one_line(theirs) {
                failures.push(format!("{name}:\n   ours: {message}\n  their: {}", one_line(theirs)));
            }
            same_message += 1;
        } else {
            refused += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    eprintln!("{accepted} accepted, {same_message} refused with the library's message, {refused} refused where the library's YAML parser or a crash speaks");
}

#[test]
fn run_lines_split_into_image_version_and_arguments() {
    let project = Project::parse(
        "version: 4
actions:
  extract:
    run: ehrql:v1 generate-dataset analysis/dataset_definition.py --output output/dataset.csv.gz -- --region 'North East'
    outputs: {highly_sensitive: {dataset: output/dataset.csv.gz}}
  report:
    run: python:v2 analysis/report.py
    needs: [extract]
    outputs: {moderately_sensitive: {table: output/report*.csv, figure: output/plot.png}}
",
    )
    .unwrap();
    let extract = project.action("extract").unwrap();
    assert_eq!(extract.run.image(), "ehrql");
    assert_eq!(extract.run.version(), "v1");
    assert_eq!(extract.run.args().last().unwrap(), "North East");
    assert!(extract.is_database_action());
    let report = project.action("report").unwrap();
    assert!(!report.is_database_action());
    assert_eq!(report.needs, ["extract"]);
    let patterns: Vec<(&str, &str)> = report.patterns().collect();
    assert_eq!(patterns, [("output/report*.csv", "moderately_sensitive"), ("output/plot.png", "moderately_sensitive")]);
    assert_eq!(project.population_size, None);
}

#[test]
fn cycles_and_crashes_of_the_library_are_one_clear_line() {
    let cycle = Project::parse(
        "version: 4
actions:
  a: {run: 'python:v2 a.py', needs: [c], outputs: {highly_sensitive: {x: output/a.csv}}}
  b: {run: 'python:v2 b.py', needs: [a], outputs: {highly_sensitive: {x: output/b.csv}}}
  c: {run: 'python:v2 c.py', needs: [b], outputs: {highly_sensitive: {x: output/c.csv}}}
",
    )
    .unwrap_err();
    assert_eq!(cycle.to_string(), "the `needs` of actions form a cycle: a -> c -> b -> a");
    let newer = Project::parse("version: 6\nactions: {}\n").unwrap_err();
    assert_eq!(newer.to_string(), "The latest version is v5, but got v6.0");
    let quote = Project::parse("version: 4\nactions:\n  a: {run: \"python:v2 'a.py\", outputs: {highly_sensitive: {x: output/a.csv}}}\n").unwrap_err();
    assert!(quote.to_string().contains("unclosed quote"), "{quote}");
    assert!(Project::parse("").is_err());
}

#[test]
fn an_actions_config_is_passed_as_the_job_runner_passes_it() {
    let project = Project::parse(
        "version: 5
actions:
  report:
    run: python:v2 a.py
    config: {a: 1, b: [x, \"it's\"], é: true, n: null, f: 1.5}
    outputs: {moderately_sensitive: {table: output/t.csv}}
",
    )
    .unwrap();
    let command = project.action("report").unwrap().command();
    // Python's json.dumps, with ' escaped, as the job runner adds it; and shlex.join.
    let config = r#"{"a": 1, "b": ["x", "it\u0027s"], "\u00e9": true, "n": null, "f": 1.5}"#;
    assert_eq!(command, ["python:v2", "a.py", "--config", config]);
    assert_eq!(ehrfusion::pipeline::project::command_line(&command), format!("python:v2 a.py --config '{config}'"));
}
