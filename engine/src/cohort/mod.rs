//! `ehrfusion cohortextractor ...`: cohort-extractor's command line over the same
//! engine. A study definition (`analysis/study_definition*.py`) is lowered by the
//! Python `cohortextractor` package to one query model per index date; the dates
//! run together in one pass over the tables (see [`onepass`]) and each is written as
//! cohort-extractor writes its files (`output/input[_suffix][_YYYY-MM-DD].csv|csv.gz|feather|dta|dta.gz`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use clap::{Args, Parser, Subcommand};

use crate::dummy::{self, DummyOptions};
use crate::error::{ErrorKind, Result, ResultExt};
use crate::model::QueryModel;
use crate::run::{self, Prepared};
use crate::source::Tables;
use crate::{bail, err};

mod measures;
mod onepass;
mod stata;
mod write;

const FORMATS: [&str; 5] = ["csv", "csv.gz", "feather", "dta", "dta.gz"];

#[derive(Parser)]
#[command(
    name = "ehrfusion cohortextractor",
    about = "Run cohort-extractor study definitions (analysis/study_definition*.py) unchanged.",
    after_help = "\
Examples:
  ehrfusion cohortextractor generate_cohort --expectations-population 1000   (every study definition, dummy data)
  ehrfusion cohortextractor generate_cohort --study-definition study_definition --index-date-range \"2019-01-01 to 2021-12-01 by month\" --output-dir=output/data --output-format=feather --expectations-population 1000
  ehrfusion cohortextractor generate_cohort --study-definition study_definition --data data/ --output-file output/input.csv.gz
  ehrfusion cohortextractor generate_cohort --study-definition study_definition --index-date-range \"2021-01-01 to 2021-12-01 by month\" --data data/ --per-date   (each date on its own)
  ehrfusion cohortextractor generate_cohort --study-definition study_definition --param region=London --data data/"
)]
pub struct CohortCli {
    /// Print the version of this cohort-extractor.
    #[arg(long)]
    version: bool,
    #[command(subcommand)]
    command: Option<CohortCommand>,
}

#[derive(Subcommand)]
enum CohortCommand {
    /// Extract the cohort of one study definition (or all) at one index date or a range.
    #[command(name = "generate_cohort")]
    GenerateCohort(GenerateCohortArgs),
    /// Compute the study definitions' `measures` from the cohort files generate_cohort wrote.
    #[command(name = "generate_measures")]
    GenerateMeasures(GenerateMeasuresArgs),
    /// cohort-extractor's other commands (refused with one line).
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Args)]
struct GenerateMeasuresArgs {
    /// The directory holding the cohort files, where the measures are written.
    #[arg(long, default_value = "output")]
    output_dir: PathBuf,
    /// The study definition whose `measures` to compute, or all of them.
    #[arg(long, default_value = "all")]
    study_definition: String,
    /// Do not regenerate a measure file that already exists.
    #[arg(long)]
    skip_existing: bool,
    /// key=value for the study's `params` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    params: Vec<String>,
}

#[derive(Args)]
struct GenerateCohortArgs {
    /// Directory for the output files (default: output).
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// csv (default), csv.gz, feather, dta or dta.gz (Stata 118, as pandas writes it).
    #[arg(long)]
    output_format: Option<String>,
    /// The full path of the output file, e.g. output/input.csv (one study definition only).
    #[arg(long)]
    output_file: Option<PathBuf>,
    /// The study definition to run (a module in analysis/), or all of them.
    #[arg(long, default_value = "all")]
    study_definition: String,
    /// Evaluate the study at a range of index dates: "DATE to DATE by month|week".
    #[arg(long, default_value = "")]
    index_date_range: String,
    /// Do not regenerate an output file that already exists.
    #[arg(long)]
    skip_existing: bool,
    /// key=value for the study's `params` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    params: Vec<String>,
    /// Dummy data for N patients, drawn from the study's expectations (see --dummy-data).
    #[arg(long, value_name = "N", default_value_t = 0)]
    expectations_population: usize,
    /// With --expectations-population: `expectations` draws each column from
    /// default_expectations / return_expectations, as cohort-extractor does;
    /// `consistent` generates TPP tables for N patients and runs the queries over them.
    #[arg(long, value_enum, default_value_t = DummyData::Expectations)]
    dummy_data: DummyData,
    /// Use this file as the output, after checking its columns.
    #[arg(long, value_name = "FILE")]
    dummy_data_file: Option<PathBuf>,
    /// A directory of real data: one file (or folder of files) per TPP table.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["expectations_population", "dummy_data_file"])]
    data: Option<PathBuf>,
    /// cohort-extractor's SQL Server connection: not used by ehrfusion (give --data).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long, hide = true)]
    temp_database_name: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long, hide = true)]
    with_end_date_fix: bool,
    /// Seed for dummy data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Run each index date of --index-date-range on its own, as cohort-extractor
    /// does (by default all dates run in one pass over the tables).
    #[arg(long)]
    per_date: bool,
    #[command(flatten)]
    cluster: crate::cli::ClusterArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DummyData {
    Expectations,
    Consistent,
}

/// A written column of a study: its cohort-extractor type and date format.
#[derive(serde::Deserialize, Clone, Debug)]
struct StudyColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    categorical_int: bool,
}

/// Run `ehrfusion cohortextractor ARGS...` and return its exit status.
pub fn exit_status(args: Vec<String>, front_end: crate::frontend::FrontEnd) -> u8 {
    let cli = match CohortCli::try_parse_from(std::iter::once("ehrfusion cohortextractor".to_string()).chain(joined_params(args))) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code() as u8;
        }
    };
    match run(cli, front_end) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.kind().exit_code()
        }
    }
}

fn run(cli: CohortCli, front_end: crate::frontend::FrontEnd) -> Result<()> {
    if cli.version {
        println!("ehrfusion {} (cohort-extractor study definitions)", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    match cli.command {
        Some(CohortCommand::GenerateCohort(a)) => generate_cohort(a, front_end),
        Some(CohortCommand::GenerateMeasures(a)) => generate_measures(a, front_end),
        Some(CohortCommand::Other(a)) => {
            let name = a.first().cloned().unwrap_or_default();
            Err(err!("cohortextractor {name}: not provided by ehrfusion (it runs generate_cohort)").or_kind(ErrorKind::Usage))
        }
        None => Err(err!("give a command: generate_cohort (see ehrfusion cohortextractor --help)").or_kind(ErrorKind::Usage)),
    }
}

/// The study definitions of `analysis/`: (module name, suffix), sorted by name.
fn study_definitions(analysis: &Path) -> Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(analysis).map_err(|e| err!("{}: {e} (run from the study's folder, which holds analysis/)", analysis.display()).or_kind(ErrorKind::Usage))?;
    let mut found: Vec<(String, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let stem = name.strip_suffix(".py")?;
            let suffix = stem.strip_prefix("study_definition")?;
            let ok = suffix.is_empty() || (suffix.starts_with('_') && suffix.len() > 1 && suffix[1..].chars().all(|c| c.is_alphanumeric() || c == '_'));
            ok.then(|| (stem.to_string(), suffix.to_string()))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        bail!("No study definitions found in {} (files named study_definition*.py)", analysis.display());
    }
    Ok(found)
}

/// The arguments with the words after each `--param` (up to the next option) joined
/// into one, as cohort-extractor reads them: `--param n = 1`, as project.yaml files
/// sometimes write it, is `--param n=1`.
fn joined_params(args: Vec<String>) -> Vec<String> {
    use clap::CommandFactory;
    let command = CohortCli::command();
    let long: Vec<String> = command.get_subcommands().flat_map(|c| c.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect::<Vec<_>>()).collect();
    let mut out: Vec<String> = Vec::new();
    let mut joining = false;
    for a in args {
        if joining && is_argparse_value(&a, &long) {
            out.last_mut().expect("follows --param").push_str(&a);
            continue;
        }
        joining = false;
        if a == "--param" {
            out.push(a);
            out.push(String::new());
            joining = true;
        } else {
            out.push(a);
        }
    }
    // A `--param` with no words keeps clap's own message.
    if out.last().is_some_and(String::is_empty) && joining {
        out.pop();
    }
    out
}

/// Whether argparse takes a word as a value rather than an option: it does not start
/// with `-`, or is a negative number, or holds a space and names no option (nor a
/// prefix of one). So a misspelt `'--index-date_range=A to B by week'` after
/// `--param k=` becomes part of that parameter's value, as the reference reads it.
fn is_argparse_value(word: &str, long: &[String]) -> bool {
    if !word.starts_with('-') || word == "-" || word.parse::<f64>().is_ok() {
        return true;
    }
    let option = word.split_once('=').map_or(word, |(o, _)| o);
    word.contains(' ') && !long.iter().any(|l| l.starts_with(option))
}

fn parse_params(params: &[String]) -> std::result::Result<Vec<(String, String)>, String> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => Err(format!("--param {p}: expected KEY=VALUE")),
        })
        .collect()
}

/// cohort-extractor's check before generating anything: the study's folders exist
/// (the platform would fail the job otherwise, even where nothing reads `codelists/`).
fn preflight() -> std::result::Result<(), String> {
    let missing: Vec<&str> = ["codelists/", "analysis/"].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("This command expects the following relative paths to exist: {} (run from the study's folder)", missing.join(", ")))
    }
}

/// The study definitions `--study-definition` names (`all`: every one).
fn select_studies(analysis: &Path, wanted: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let studies = study_definitions(analysis).map_err(|e| e.to_string())?;
    if wanted == "all" {
        return Ok(studies);
    }
    let chosen: Vec<_> = studies.iter().filter(|(n, _)| n == wanted).cloned().collect();
    if chosen.is_empty() {
        let names: Vec<_> = studies.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!("--study-definition: invalid choice '{wanted}' (choose from all, {})", names.join(", ")));
    }
    Ok(chosen)
}

fn generate_measures(args: GenerateMeasuresArgs, front_end: crate::frontend::FrontEnd) -> Result<()> {
    let usage = |m: String| err!("generate_measures: {m}").or_kind(ErrorKind::Usage);
    let params = parse_params(&args.params).map_err(usage)?;
    preflight().map_err(usage)?;
    let analysis = PathBuf::from("analysis");
    for (study, suffix) in select_studies(&analysis, &args.study_definition).map_err(usage)? {
        let path = analysis.join(format!("{study}.py"));
        eprintln!("Generating measure for {study} in {}", args.output_dir.display());
        let text = crate::frontend::load_study_measures(&path, &params, front_end).or_kind(ErrorKind::Definition)?;
        let list: Vec<measures::Measure> = serde_json::from_str(&text).map_err(|e| err!("{}: {e}", path.display()))?;
        measures::generate(&args.output_dir, &suffix, &list, args.skip_existing)?;
    }
    Ok(())
}

fn split_output_file(file: &Path) -> Option<(PathBuf, String, String)> {
    let name = file.file_name()?.to_string_lossy().to_string();
    let format = FORMATS.iter().filter(|f| name.ends_with(&format!(".{f}"))).max_by_key(|f| f.len())?;
    let stem = name.strip_suffix(&format!(".{format}"))?;
    if stem.is_empty() {
        return None;
    }
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    Some((if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }, stem.to_string(), format.to_string()))
}

fn generate_cohort(args: GenerateCohortArgs, front_end: crate::frontend::FrontEnd) -> Result<()> {
    let usage = |m: String| err!("generate_cohort: {m}").or_kind(ErrorKind::Usage);
    if args.database_url.is_some() || std::env::var_os("DATABASE_URL").is_some() {
        return Err(usage("ehrfusion reads data files, not a database: give --data DIR (one file per TPP table)".into()));
    }
    if args.expectations_population == 0 && args.dummy_data_file.is_none() && args.data.is_none() {
        return Err(usage("one of the arguments --expectations-population --dummy-data-file --data is required".into()));
    }
    let (output_dir, output_name, format) = match &args.output_file {
        Some(file) => {
            let (dir, stem, format) = split_output_file(file).ok_or_else(|| usage(format!("--output-file must have a supported extension: {}", FORMATS.join(", "))))?;
            if let Some(d) = &args.output_dir {
                if d != &dir {
                    return Err(usage(format!("--output-dir '{}' does not match directory in --output-file", d.display())));
                }
            }
            if let Some(f) = &args.output_format {
                if f != &format {
                    return Err(usage(format!("--output-format '{f}' does not match format in --output-file")));
                }
            }
            (dir, Some(stem), format)
        }
        None => (args.output_dir.clone().unwrap_or_else(|| PathBuf::from("output")), None, args.output_format.clone().unwrap_or_else(|| "csv".into())),
    };
    let writer_format = write::CohortFormat::parse(&format).ok_or_else(|| usage(format!("--output-format: invalid choice '{format}' (choose from {})", FORMATS.join(", "))))?;
    let params = parse_params(&args.params).map_err(usage)?;
    preflight().map_err(usage)?;
    let analysis = PathBuf::from("analysis");
    let studies = select_studies(&analysis, &args.study_definition).map_err(usage)?;
    if args.dummy_data_file.is_some() && studies.len() > 1 {
        return Err(usage("You can only provide dummy data for a single study definition".into()));
    }
    if output_name.is_some() && studies.len() > 1 {
        return Err(usage("You can only use the --output-file argument with a single study definition".into()));
    }
    let threads = args.threads.unwrap_or_else(run::default_threads);
    for (study, suffix) in &studies {
        let path = analysis.join(format!("{study}.py"));
        eprintln!("Generating cohort for {study} in {}", output_dir.display());
        // Expectations dummy data and a dummy data file run no query, as in cohort-extractor.
        let no_queries = args.data.is_none() && (args.dummy_data == DummyData::Expectations || args.dummy_data_file.is_some());
        let (columns_json, runs) = crate::frontend::load_study(&path, &args.index_date_range, &params, no_queries, front_end).or_kind(ErrorKind::Definition)?;
        let columns: Vec<StudyColumn> = serde_json::from_str(&columns_json).map_err(|e| err!("{}: {e}", path.display()))?;
        let name = output_name.clone().unwrap_or_else(|| "input".into());
        let suffix = if output_name.is_some() { "" } else { suffix.as_str() };
        let target = |date: &str| {
            let date = if date.is_empty() { String::new() } else { format!("_{date}") };
            output_dir.join(format!("{name}{suffix}{date}.{format}"))
        };
        if let Some(file) = &args.dummy_data_file {
            let out = target(runs.first().map(|r| r.0.as_str()).unwrap_or(""));
            copy_dummy_data_file(file, &out, &format, &columns)?;
            eprintln!("Successfully created cohort and covariates at {}", out.display());
            continue;
        }
        if args.data.is_none() && args.dummy_data == DummyData::Expectations {
            let frames = crate::frontend::study_expectations(&path, &args.index_date_range, &params, args.expectations_population, args.seed, front_end).or_kind(ErrorKind::Definition)?;
            for (date, text) in frames {
                let out = target(&date);
                if args.skip_existing && out.exists() {
                    eprintln!("Not regenerating pre-existing file at {}", out.display());
                    continue;
                }
                write::write_text_cohort(&out, writer_format, &text, &columns)?;
                eprintln!("Successfully created cohort and covariates at {}", out.display());
            }
            continue;
        }
        // Every date's model is checked before any runs.
        let runs = runs
            .into_iter()
            .map(|(date, model)| Ok((date, Prepared::new(model).map_err(|e| err!("{}: {e}", path.display()).or_kind(ErrorKind::Definition))?)))
            .collect::<Result<Vec<_>>>()?;
        for (d, _) in runs.iter().filter(|(d, _)| args.skip_existing && target(d).exists()) {
            eprintln!("Not regenerating pre-existing file at {}", target(d).display());
        }
        let pending: Vec<(String, Prepared)> = runs.into_iter().filter(|(d, _)| !(args.skip_existing && target(d).exists())).collect();
        let Some((_, first)) = pending.first() else { continue };
        let local = run::session(threads);
        let rt = run::runtime(threads)?;
        let ctx = args.cluster.session(&local, &rt, threads, args.data.as_deref())?;
        let providers = match &args.data {
            Some(d) => first.open_tables(Tables::Data(d), threads).or_kind(ErrorKind::File)?,
            None => {
                let options = DummyOptions { population_size: args.expectations_population, seed: args.seed, timeout: dummy::DEFAULT_TIMEOUT, progress: true, profile: dummy::Profile::Query };
                let mut tables: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
                let outcome = rt.block_on(dummy::generate(&local, first, &options, threads, |name, rows| {
                    tables.entry(name.to_string()).or_default().push(rows);
                    Ok(())
                }))?;
                if outcome.timed_out {
                    eprintln!(
                        "warning: found only {} of {} dummy patients in the population within {:.0} seconds; writing those",
                        outcome.patients,
                        options.population_size,
                        options.timeout.as_secs_f64()
                    );
                }
                dummy::into_providers(first, tables, threads)?
            }
        };
        let written = |date: &str, results: &run::TableResult| -> Result<PathBuf> {
            let out = target(date);
            write::write_cohort(&out, writer_format, results, &columns)?;
            Ok(out)
        };
        let write = |date: &str, results: &run::TableResult| -> Result<()> {
            eprintln!("Successfully created cohort and covariates at {}", written(date, results)?.display());
            Ok(())
        };
        let one_date = |date: &str, prepared: &Prepared| -> Result<()> {
            if !date.is_empty() {
                eprintln!("Setting index_date to {date}");
            }
            let results = args.cluster.context(rt.block_on(run::execute(&ctx, prepared, &providers)))?;
            write(date, &results.dataset)
        };
        if args.per_date || pending.len() == 1 {
            for (date, prepared) in &pending {
                one_date(date, prepared)?;
            }
            continue;
        }
        let models: Vec<QueryModel> = pending.iter().map(|(_, p)| p.model.clone()).collect();
        let per_pass = rt.block_on(onepass::dates_per_pass(&ctx, &providers))?;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| err!("{e}"))?;
        for pass in onepass::unify(&models) {
            if pass.dates.len() == 1 {
                let (date, prepared) = &pending[pass.dates[0]];
                one_date(date, prepared)?;
                continue;
            }
            let prepared = Prepared::for_measures(pass.model.clone())?;
            let positions: Vec<usize> = (0..pass.dates.len()).collect();
            for chunk in positions.chunks(per_pass) {
                let dates: Vec<&str> = chunk.iter().map(|&k| pending[pass.dates[k]].0.as_str()).collect();
                eprintln!("Setting index_date to each of {} dates, {} to {}, in one pass", dates.len(), dates[dates.len() - 1], dates[0]);
                let results = args.cluster.context(rt.block_on(onepass::execute(&ctx, &prepared, &pass.intervals(chunk)?, &providers)))?;
                // The dates' files are written side by side; what is said of them, in order.
                let written: Vec<Result<PathBuf>> = pool.install(|| {
                    use rayon::prelude::*;
                    dates.par_iter().zip(&results).map(|(date, result)| written(date, result)).collect()
                });
                for out in written {
                    eprintln!("Successfully created cohort and covariates at {}", out?.display());
                }
            }
        }
    }
    Ok(())
}

/// `--dummy-data-file`: the file becomes the output once its extension and columns
/// match the study's.
fn copy_dummy_data_file(file: &Path, out: &Path, format: &str, columns: &[StudyColumn]) -> Result<()> {
    let name = file.to_string_lossy();
    if !name.ends_with(&format!(".{format}")) {
        return Err(err!("Expected dummy data file with extension .{format}; got {}", file.display()).or_kind(ErrorKind::File));
    }
    if format.starts_with("csv") {
        let reader: Box<dyn std::io::Read> = {
            let f = std::fs::File::open(file).map_err(|e| err!("{}: {e}", file.display()).or_kind(ErrorKind::File))?;
            if format == "csv.gz" { Box::new(flate2::read::GzDecoder::new(f)) } else { Box::new(f) }
        };
        let mut csv = csv::Reader::from_reader(reader);
        let header: Vec<String> = csv.headers().map_err(|e| err!("{}: {e}", file.display()).or_kind(ErrorKind::File))?.iter().map(str::to_string).collect();
        let missing: Vec<&str> = std::iter::once("patient_id").chain(columns.iter().map(|c| c.name.as_str())).filter(|c| !header.iter().any(|h| h == c)).collect();
        if !missing.is_empty() {
            return Err(err!("{}: missing columns: {}", file.display(), missing.join(", ")).or_kind(ErrorKind::File));
        }
    }
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err!("{}: {e}", dir.display()))?;
    }
    std::fs::copy(file, out).map_err(|e| err!("{}: {e}", out.display()))?;
    Ok(())
}
