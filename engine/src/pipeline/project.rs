//! `project.yaml`: parsed and validated as the platform's pipeline library does it,
//! rule for rule and with its messages (on one line: the two that span lines have
//! their whitespace collapsed), for versions 1 to 5. Where that library
//! crashes (an empty file, an unknown version, a run line with an unclosed quote, a
//! cycle in `needs`) we give one clear line instead.

use std::collections::BTreeSet;
use std::path::Path;

use indexmap::IndexMap;
use serde_yaml_ng::Value;

use crate::error::{ErrorKind, Result};
use crate::{bail, err};

/// The newest project.yaml version (that of the pipeline library we follow).
pub const LATEST_VERSION: u32 = 5;
/// The action name that means every action.
pub const RUN_ALL: &str = "run_all";
/// File types a moderately sensitive output may have.
pub const LEVEL4_FILE_TYPES: [&str; 11] = [".csv", ".jpg", ".jpeg", ".png", ".svg", ".svgz", ".html", ".txt", ".log", ".json", ".md"];
/// Output privacy levels, in the order the library lists them.
pub const LEVELS: [&str; 3] = ["highly_sensitive", "moderately_sensitive", "minimally_sensitive"];

#[derive(Debug, Clone)]
pub struct Project {
    pub version: f64,
    /// `expectations: population_size` (1000 for versions before 3, as the library
    /// assumes; none for versions 4 and later, which have no expectations).
    pub population_size: Option<i64>,
    /// Actions in the file's order (an action named `run_all`, which versions before 5
    /// allow, included: see [`Project::all_actions`]).
    pub actions: IndexMap<String, Action>,
    /// Warnings the library gives (an old version, an action named run_all).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub name: String,
    pub run: Command,
    pub needs: Vec<String>,
    /// Privacy level → (output name → path pattern).
    pub outputs: IndexMap<String, IndexMap<String, String>>,
    pub config: Option<serde_json::Value>,
    pub dummy_data_file: Option<String>,
}

/// A `run:` line: `image:version args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub raw: String,
    pub parts: Vec<String>,
}

impl Command {
    /// The image name, without its version (`ehrql`, `python`, `cohortextractor`).
    pub fn image(&self) -> &str {
        self.parts[0].split(':').next().unwrap_or("")
    }

    pub fn version(&self) -> &str {
        self.parts[0].split_once(':').map(|(_, v)| v).unwrap_or("")
    }

    /// What follows the image.
    pub fn args(&self) -> &[String] {
        &self.parts[1..]
    }
}

impl Action {
    /// The command the job runs: the `run:` line, with `--config JSON` added when the
    /// action has a `config:`, as the job runner adds it (JSON as Python's
    /// `json.dumps` writes it, `'` escaped).
    pub fn command(&self) -> Vec<String> {
        let mut parts = self.run.parts.clone();
        if let Some(config) = &self.config {
            parts.push("--config".into());
            parts.push(python_json(config).replace('\'', "\\u0027"));
        }
        parts
    }

    /// Every output pattern with its privacy level.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outputs.iter().flat_map(|(level, named)| named.values().map(move |p| (p.as_str(), level.as_str())))
    }

    /// Whether the action runs on ehrfusion's engine (in this process) rather than as
    /// a script.
    pub fn runs_on_engine(&self) -> bool {
        matches!(self.run.image(), "ehrql" | "databuilder" | "cohortextractor")
    }

    /// Whether the action is a script run by an interpreter (or, with `--docker`, in
    /// the platform's image for it).
    pub fn is_script(&self) -> bool {
        matches!(self.run.image(), "python" | "r" | "stata-mp" | "jupyter")
    }

    /// Whether the action reads the database (its outputs then come from the engine).
    pub fn is_database_action(&self) -> bool {
        let sub = self.run.args().first().map(String::as_str);
        match self.run.image() {
            "ehrql" => matches!(sub, Some("generate-dataset" | "generate-measures")),
            "sqlrunner" => true,
            "cohortextractor" => matches!(sub, Some("generate_cohort" | "generate_codelist_report")),
            "databuilder" => sub == Some("generate-dataset"),
            _ => false,
        }
    }
}

impl Project {
    /// Read and validate `project.yaml` in `dir`.
    pub fn load(dir: &Path) -> Result<Project> {
        let path = dir.join("project.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => err!("{}: no project.yaml here (run from a study's folder, or give --project-dir)", dir.display()),
            _ => err!("{}: {e}", path.display()),
        })?;
        Project::parse(&text).map_err(|e| err!("project.yaml: {e}").or_kind(ErrorKind::Usage))
    }

    /// Validate the text of a project.yaml. Messages are the pipeline library's
    /// (without its "Invalid project" header), on one line.
    pub fn parse(text: &str) -> Result<Project> {
        let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| err!("{}", one_line(&e.to_string())))?;
        // `<<: *anchor` merges, as the library's YAML parser does.
        doc.apply_merge().map_err(|e| err!("{}", one_line(&e.to_string())))?;
        let Value::Mapping(top) = doc else {
            bail!("the file must be a mapping with `version`, `actions` and (for versions before 4) `expectations`");
        };
        let top = keyed(&top, "project")?;
        no_extra_keys(&top, &["version", "actions", "expectations"], "project")?;
        let version = match top.get("version") {
            None | Some(Value::Null) => bail!(
                "Project file must have a `version` attribute specifying which version of the project configuration format it uses (current latest version is {LATEST_VERSION})"
            ),
            Some(v) => number(v).ok_or_else(|| err!("`version` must be a number between 1 and {LATEST_VERSION}"))?,
        };
        // The library takes any number up to the latest (0, -1 and NaN act as version 1)
        // and crashes on a newer one.
        if version > LATEST_VERSION as f64 {
            bail!("The latest version is v{LATEST_VERSION}, but got v{}", python_float(version));
        }
        let features = Features::of(version);
        let mut warnings = vec![];
        if version != LATEST_VERSION as f64 {
            warnings.push(format!(
                "ProjectWarning: Your project file is using an old version ({}); consider updating to version {LATEST_VERSION}",
                python_float(version)
            ));
        }

        let Some(Value::Mapping(raw_actions)) = top.get("actions") else {
            bail!("Project `actions` section must be a dictionary of key/value pairs");
        };
        let mut actions = IndexMap::new();
        for (name, config) in keyed(raw_actions, "actions")? {
            if name == RUN_ALL {
                if features.no_run_all_action {
                    bail!("`run_all` is a reserved action name and is not allowed for user-defined actions.");
                }
                warnings.push("ProjectWarning: `run_all` is a reserved action name; user-defined actions with this name are ignored and will raise an error in later versions.".to_string());
            }
            let action = Action::build(&name, config)?;
            actions.insert(name, action);
        }
        if features.no_cohort_extractor
            && let Some(a) = actions.values().find(|a| a.run.parts[0].starts_with("cohortextractor"))
        {
            bail!("Action {} uses cohortextractor actions, which are not supported in this version.", a.name);
        }
        if features.no_latest_tag
            && let Some(a) = actions.values().find(|a| a.run.parts[0].ends_with(":latest"))
        {
            bail!("Action {} uses `{}`, which is not supported. Provide a version e.g. `:v2` instead", a.name, a.run.parts[0]);
        }
        let mut seen_runs: IndexMap<&str, Vec<&str>> = IndexMap::new();
        for action in actions.values() {
            if let Some(others) = seen_runs.get(action.run.raw.as_str()) {
                // The library joins the names with " ," (sic).
                bail!("Action {} has the same 'run' command as other actions: {}", action.name, others.join(" ,"));
            }
            seen_runs.entry(&action.run.raw).or_default().push(&action.name);
        }
        if features.unique_output_path {
            let mut seen = BTreeSet::new();
            // Levels in the library's order, whatever the file's.
            let in_library_order = actions.values().flat_map(|a| LEVELS.iter().flat_map(|l| a.outputs.get(*l)).flat_map(|named| named.values()));
            for pattern in in_library_order {
                if !seen.insert(pattern) {
                    bail!("Output path {pattern} is not unique");
                }
            }
        }
        for action in actions.values() {
            if let Some(unknown) = action.needs.iter().find(|n| !actions.contains_key(*n)) {
                bail!("Action `{}` references an unknown action in its `needs` list: {unknown}", action.name);
            }
        }
        check_no_cycles(&actions)?;

        let expectations = top.get("expectations").filter(|v| !v.is_null());
        let population_size = if features.no_cohort_extractor {
            if expectations.is_some() {
                bail!(
                    "Project includes `expectations` section, which is not supported in this version. This section is only applicable to deprecated cohortextractor actions; you can safely remove it."
                );
            }
            None
        } else if features.expectations_population {
            let Some(e) = expectations else { bail!("Project must include `expectations` section") };
            Some(population_size(e)?)
        } else {
            // Before version 3 the library replaces whatever is there by 1000.
            Some(1000)
        };
        Ok(Project { version, population_size, actions, warnings })
    }

    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// The actions `run_all` runs: every one in the file's order, except one named
    /// `run_all` (which the library warns is ignored).
    pub fn all_actions(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str).filter(|a| *a != RUN_ALL)
    }
}

/// Which rules apply to a version (the library's feature flags).
struct Features {
    unique_output_path: bool,
    expectations_population: bool,
    no_cohort_extractor: bool,
    no_run_all_action: bool,
    no_latest_tag: bool,
}

impl Features {
    fn of(version: f64) -> Features {
        Features {
            unique_output_path: version >= 2.0,
            // Only version 3 exactly requires expectations (3.5 does not, as in the library).
            expectations_population: version == 3.0,
            no_cohort_extractor: version >= 4.0,
            no_run_all_action: version >= 5.0,
            no_latest_tag: version >= 5.0,
        }
    }
}

impl Action {
    fn build(name: &str, config: &Value) -> Result<Action> {
        let Value::Mapping(config) = config else {
            bail!("Configuration for action {name} must be a dictionary of key/value pairs");
        };
        let config = keyed(config, name)?;
        for key in ["run", "outputs"] {
            if !config.contains_key(key) {
                bail!("Action {name} must contain a configuration for '{key}'");
            }
        }
        no_extra_keys(&config, &["run", "outputs", "needs", "config", "dummy_data_file"], &format!("action {name}"))?;
        let Some(Value::Mapping(raw_outputs)) = config.get("outputs") else {
            bail!("`outputs` section for action {name} must be a dictionary of key/value pairs");
        };
        // A plain date is a date to the library's YAML parser, not a string.
        let Some(Value::String(run)) = config.get("run").filter(|v| !v.as_str().is_some_and(looks_like_a_yaml_date)) else {
            bail!("`run` section for action {name} must be a string");
        };
        let needs = match config.get("needs") {
            None | Some(Value::Null) => vec![],
            // The library crashes on a name that is not a string (`needs: [2017]`).
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err!("`needs` section for action {name} must list action names as strings, not {}", one_line(&serde_yaml_ng::to_string(v).unwrap_or_default()))))
                .collect::<Result<_>>()?,
            Some(_) => bail!("`needs` section for action {name} must be a list"),
        };
        let action_config = match config.get("config") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Mapping(_)) => Some(serde_json::to_value(v).map_err(|e| err!("`config` section for action {name}: {e}"))?),
            Some(_) => bail!("`config` section for action {name} must be a dictionary of key/value pairs"),
        };
        let dummy_data_file = match config.get("dummy_data_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => bail!("`dummy_data_file` section for action {name} must be a string"),
        };
        let outputs = build_outputs(name, raw_outputs)?;
        let run = parse_run(name, run)?;
        if let Some(n) = needs.iter().find(|n| n.contains(' ')) {
            bail!("`needs` actions should be separated with commas, but {name} needs `{n}`");
        }
        let action = Action { name: name.to_string(), run, needs, outputs, config: action_config, dummy_data_file };
        if run_starts_with(&action.run.raw, &["cohortextractor"], &["generate_cohort"]) {
            check_cohortextractor_outputs(&action)?;
        }
        if run_starts_with(&action.run.raw, &["ehrql", "databuilder"], &["generate-dataset", "generate_dataset"]) {
            check_ehrql_outputs(&action)?;
        }
        Ok(action)
    }
}

fn build_outputs(name: &str, raw: &serde_yaml_ng::Mapping) -> Result<IndexMap<String, IndexMap<String, String>>> {
    let raw = keyed(raw, name)?;
    if LEVELS.iter().all(|l| raw.get(*l).is_none_or(|v| v.is_null())) {
        bail!("must specify at least one output of: {}", LEVELS.join(", "));
    }
    no_extra_keys(&raw, &LEVELS, &format!("`outputs` section for action {name}"))?;
    let mut outputs = IndexMap::new();
    // The library checks the levels in this order, whatever the file's order.
    for level in LEVELS {
        let named = match raw.get(level) {
            None | Some(Value::Null) => continue,
            Some(Value::Mapping(m)) => keyed(m, name)?,
            Some(_) => bail!("`{level}` section for action {name} must be a dictionary of key/value pairs"),
        };
        let mut patterns = IndexMap::new();
        for (output, pattern) in named {
            let Value::String(pattern) = pattern else { bail!("`{output}` output for action {name} must be a string") };
            check_pattern(pattern, level).map_err(|why| err!("Output path {pattern} is invalid: {why}"))?;
            patterns.insert(output, pattern.clone());
        }
        outputs.insert(level.to_string(), patterns);
    }
    // Keep the file's order of levels for listing.
    outputs.sort_by_cached_key(|level, _| raw.get_index_of(level.as_str()));
    Ok(outputs)
}

/// The library's rules for output patterns; the error is the reason alone.
pub fn check_pattern(pattern: &str, level: &str) -> Result<(), String> {
    if pattern.contains('\\') {
        return Err("contains back slashes (use forward slashes only)".into());
    }
    for expr in ["**", "?", "["] {
        if pattern.contains(expr) {
            return Err(format!("contains '{expr}' (only the * wildcard character is supported)"));
        }
    }
    let suffix = suffix(pattern);
    if suffix.is_empty() || suffix.ends_with('*') {
        return Err("output paths must have a file type extension at the end".into());
    }
    if level == "moderately_sensitive" && !LEVEL4_FILE_TYPES.contains(&suffix) {
        return Err(format!("{} is not an allowed file type for moderately_sensitive outputs", python_path(pattern)));
    }
    if normpath(pattern) != pattern {
        return Err("is not in standard form (contains double slashes or '..' elements)".into());
    }
    if pattern == "metadata" || pattern.starts_with("metadata/") {
        return Err("should not include the metadata directory".into());
    }
    let b = pattern.as_bytes();
    if pattern.starts_with('/') || (b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'/') {
        return Err("is an absolute path".into());
    }
    Ok(())
}

/// The extension of a path's last part as Python's `PurePath.suffix` gives it.
fn suffix(path: &str) -> &str {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match name.rfind('.') {
        Some(i) if i > 0 && i < name.len() - 1 => &name[i..],
        _ => "",
    }
}

/// A path as Python prints a `Path`: repeated and trailing slashes and `.` parts gone.
fn python_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let joined = parts.join("/");
    if absolute { format!("/{joined}") } else if joined.is_empty() { ".".into() } else { joined }
}

/// `posixpath.normpath`: repeated slashes, `.` and `..` parts resolved.
fn normpath(path: &str) -> String {
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = vec![];
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if !parts.is_empty() && parts.last() != Some(&"..") => {
                parts.pop();
            }
            ".." if !initial.is_empty() => {}
            p => parts.push(p),
        }
    }
    let joined = format!("{initial}{}", parts.join("/"));
    if joined.is_empty() { ".".into() } else { joined }
}

fn parse_run(name: &str, run: &str) -> Result<Command> {
    if run.is_empty() {
        bail!("run must have a value, {name} has an empty run key");
    }
    let parts = shlex::split(run).ok_or_else(|| err!("the `run` command of action {name} has an unclosed quote: {run}"))?;
    let Some(first) = parts.first() else { bail!("run must have a value, {name} has an empty run key") };
    let (image, version) = first.split_once(':').unwrap_or((first, ""));
    if !valid_version(version) {
        bail!("Action command {image} must have a version specified in the form :vN (e.g. {image}:v2)");
    }
    Ok(Command { raw: run.to_string(), parts })
}

/// `v1`, `v2.3`, `v1-pre`, `dev` or `latest`.
fn valid_version(version: &str) -> bool {
    if matches!(version, "dev" | "latest") {
        return true;
    }
    let Some(rest) = version.strip_prefix('v') else { return false };
    let rest = rest.strip_suffix("-pre").unwrap_or(rest);
    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Whether a run line begins `IMAGE:TAG SUBCOMMAND` (one space, any tag): the
/// library tests the raw text this way, so `generate-dataset-x` counts and a double
/// space does not.
fn run_starts_with(raw: &str, images: &[&str], subcommands: &[&str]) -> bool {
    images.iter().any(|image| {
        let Some(rest) = raw.strip_prefix(image).and_then(|r| r.strip_prefix(':')) else { return false };
        let tag_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        tag_end > 0 && rest[tag_end..].strip_prefix(' ').is_some_and(|after| subcommands.iter().any(|s| after.starts_with(s)))
    })
}

fn check_cohortextractor_outputs(action: &Action) -> Result<()> {
    if action.outputs.len() != 1 {
        bail!("A `generate_cohort` action must have exactly one output; {} had {}", action.name, action.outputs.len());
    }
    let mut dirs: Vec<String> = vec![];
    for dir in action.patterns().map(|(p, _)| parent(p)) {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let has_output_dir = action.run.parts.iter().any(|a| a == "--output-dir" || a.starts_with("--output-dir="));
    if dirs.len() != 1 && !has_output_dir {
        let listed: Vec<String> = dirs.iter().map(|d| format!(" - {d}/")).collect();
        bail!("{}", one_line(&format!("generate_cohort command should produce output in only one directory, found {}:\n{}", dirs.len(), listed.join("\n"))));
    }
    Ok(())
}

fn check_ehrql_outputs(action: &Action) -> Result<()> {
    let name = &action.name;
    let has = |level: &str| action.outputs.get(level).is_some_and(|m| !m.is_empty());
    if has("moderately_sensitive") || has("minimally_sensitive") {
        bail!("`{name}` action uses `generate-dataset` and so all outputs must be labelled `highly_sensitive`");
    }
    let parts = &action.run.parts;
    let spec = parts.iter().enumerate().find_map(|(i, a)| {
        if a == "--output" {
            Some(parts.get(i + 1).cloned().unwrap_or_default())
        } else {
            a.strip_prefix("--output=").map(str::to_string)
        }
    });
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        bail!("`{name}` action does not provide an `--output` argument specifying where the results of `generate-dataset` should be stored");
    };
    let patterns: Vec<&str> = action.outputs.get("highly_sensitive").map(|m| m.values().map(String::as_str).collect()).unwrap_or_default();
    let (directory, extension) = split_directory_and_extension(&spec);
    let matches = match &extension {
        Some(ext) => {
            let glob = glob::Pattern::new(&format!("{}/*{ext}", glob::Pattern::escape(&directory)));
            patterns.iter().all(|p| glob.as_ref().is_ok_and(|g| g.matches(p)))
        }
        None => patterns.contains(&spec.as_str()),
    };
    if !matches {
        let expected = match &extension {
            Some(ext) => format!("{directory}/:{}", &ext[1..]),
            None => spec.clone(),
        };
        bail!("{}", one_line(&format!("output specification must match the `--output` argument in the `run` command got: {} but was expecting: {expected}", patterns.join(" "))));
    }
    Ok(())
}

/// `DIR/:FORMAT` or `DIR:FORMAT` → (DIR, Some(".FORMAT")); a plain file → (file, None).
fn split_directory_and_extension(spec: &str) -> (String, Option<String>) {
    let (parent, name) = match spec.rsplit_once('/') {
        Some((p, n)) => (p.to_string(), n),
        None => (".".to_string(), spec),
    };
    match name.rsplit_once(':') {
        None => (python_path(spec), None),
        Some(("", ext)) => (python_path(&parent), Some(format!(".{ext}"))),
        Some((dir, ext)) => (python_path(&format!("{parent}/{dir}")), Some(format!(".{ext}"))),
    }
}

fn parent(pattern: &str) -> String {
    match pattern.rsplit_once('/') {
        Some((p, _)) => python_path(p),
        None => ".".into(),
    }
}

/// Refuse a `needs` cycle, naming it (the library recurses without end on one).
fn check_no_cycles(actions: &IndexMap<String, Action>) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit<'a>(name: &'a str, actions: &'a IndexMap<String, Action>, marks: &mut IndexMap<&'a str, Mark>, path: &mut Vec<&'a str>) -> Result<()> {
        match marks.get(name).copied().unwrap_or(Mark::New) {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name);
                bail!("the `needs` of actions form a cycle: {}", cycle.join(" -> "));
            }
            Mark::New => {}
        }
        marks.insert(name, Mark::Visiting);
        path.push(name);
        for need in &actions[name].needs {
            visit(need, actions, marks, path)?;
        }
        path.pop();
        marks.insert(name, Mark::Done);
        Ok(())
    }
    let mut marks = IndexMap::new();
    for name in actions.keys() {
        visit(name, actions, &mut marks, &mut vec![])?;
    }
    Ok(())
}

fn population_size(expectations: &Value) -> Result<i64> {
    let Value::Mapping(e) = expectations else {
        bail!("Project `expectations` section must be a dictionary of key/value pairs");
    };
    let e = keyed(e, "expectations")?;
    if !e.contains_key("population_size") {
        bail!("Project `expectations` section must include `population_size` section");
    }
    no_extra_keys(&e, &["population_size"], "project `expectations` section")?;
    let size = match &e["population_size"] {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().replace('_', "").parse::<i64>().ok(),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    };
    size.ok_or_else(|| err!("Project expectations population size must be a number"))
}

/// A mapping's keys as text (YAML allows other keys; the library's would fail on them).
fn keyed<'a>(mapping: &'a serde_yaml_ng::Mapping, whose: &str) -> Result<IndexMap<String, &'a Value>> {
    mapping
        .iter()
        .map(|(k, v)| scalar_text(k).map(|k| (k, v)).ok_or_else(|| err!("{whose}: a key that is not a name: {}", one_line(&serde_yaml_ng::to_string(k).unwrap_or_default()))))
        .collect()
}

/// `2020-01-01` (or `2020-1-1`, with or without a time): YAML 1.1's timestamp form.
fn looks_like_a_yaml_date(text: &str) -> bool {
    let date = text.split(['T', 't', ' ']).next().unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && (1..=2).contains(&parts[1].len())
        && (1..=2).contains(&parts[2].len())
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

fn no_extra_keys(mapping: &IndexMap<String, &Value>, allowed: &[&str], whose: &str) -> Result<()> {
    let extra: Vec<&str> = mapping.keys().map(String::as_str).filter(|k| !allowed.contains(k)).collect();
    if !extra.is_empty() {
        bail!("Unexpected parameters ({}) in {whose}", extra.join(", "));
    }
    Ok(())
}

/// A YAML value as Python's `float()` takes it.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace('_', "").parse::<f64>().ok().filter(|f| f.is_finite()),
        Value::Bool(b) => Some(*b as u8 as f64),
        _ => None,
    }
}

/// A float as Python prints it (`3.0`, `3.5`).
fn python_float(f: f64) -> String {
    match f {
        f if f.is_nan() => "nan".into(),
        f if f.is_infinite() => if f > 0.0 { "inf" } else { "-inf" }.into(),
        f if f.fract() == 0.0 => format!("{f:.1}"),
        f => f.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A command as one line, each part quoted as Python's `shlex.join` quotes it (as
/// the job runner records commands): left alone when made only of word characters
/// and `@%+=:,./-`, else in single quotes.
pub fn command_line(parts: &[String]) -> String {
    let quote = |part: &String| -> String {
        let safe = |c: char| c.is_alphanumeric() || "_@%+=:,./-".contains(c);
        if !part.is_empty() && part.chars().all(safe) { part.clone() } else { format!("'{}'", part.replace('\'', "'\"'\"'")) }
    };
    parts.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// JSON as Python's `json.dumps` writes it: `", "` and `": "` between items, and
/// every character outside ASCII escaped.
fn python_json(value: &serde_json::Value) -> String {
    struct Spaced;
    impl serde_json::ser::Formatter for Spaced {
        fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut out = vec![];
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Spaced);
    serde::Serialize::serialize(value, &mut ser).expect("JSON values serialise");
    // Outside ASCII can only be inside strings, where \uXXXX means the same.
    String::from_utf8_lossy(&out).chars().fold(String::new(), |mut s, c| {
        if c.is_ascii() {
            s.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                s.push_str(&format!("\\u{unit:04x}"));
            }
        }
        s
    })
}
