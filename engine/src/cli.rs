//! The `ehrfusion` command line, shared by the binary and the Python package's
//! `ehrfusion` and `ehrql` commands.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use arrow::array::RecordBatch;

use clap::{Args, Parser, Subcommand};
use datafusion::prelude::SessionContext;

use crate::cluster::stages::{ClusterRun, StageFiles};
use crate::error::{ErrorKind, Result, ResultExt};
use crate::measures::{self, PreparedMeasures};
use crate::model::QueryModel;
use crate::model::json::{self, Document};
use crate::dummy::{self, DummyOptions};
use crate::output::{self, ColumnInfo, Destination, TableWriter};
use crate::run::{self, Prepared};
use crate::source::{self, Format, Tables};
use crate::{bail, err};

const EXAMPLES: &str = "\
Examples:
  ehrfusion generate-dataset analysis/dataset_definition.py --output output/dataset.csv.gz   (dummy data)
  ehrfusion generate-dataset analysis/dataset_definition.py --data data/ --output output/dataset.csv.gz
  ehrfusion generate-measures analysis/measures.py --output output/measures.csv   (dummy data)
  ehrfusion create-dummy-tables analysis/dataset_definition.py dummy_tables:parquet
  ehrfusion generate-dataset testdata/definitions/diagnoses.json --data testdata/data/csv
  ehrfusion generate-dataset definition.py --data data/ --output output/:parquet -- --start-date 2020-01-01
  ehrfusion explain analysis/dataset_definition.py
  ehrfusion run run_all                  (a study's project.yaml pipeline)";

#[derive(Parser)]
#[command(name = "ehrfusion", version, about = "Cohort extraction for health-record research: runs ehrQL dataset definitions with DataFusion.", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a dataset definition and write one row per patient.
    #[command(after_help = "\
Examples:
  ehrfusion generate-dataset analysis/dataset_definition.py --output output/dataset.csv.gz   (dummy data)
  ehrfusion generate-dataset analysis/dataset_definition.py --population-size 5000 --seed 7
  ehrfusion generate-dataset analysis/dataset_definition.py --data data/ --output output/dataset.csv.gz
  ehrfusion generate-dataset definition.json --dummy-tables dummy/ --output output/dataset.parquet
  ehrfusion generate-dataset definition.py --data data/ --output output/:csv   (dataset and event tables)
  ehrfusion generate-dataset definition.py --data data/ -- --region London   (values for get_parameter)")]
    GenerateDataset(GenerateArgs),
    /// Run a measures definition: numerators over denominators for every interval and
    /// group, all intervals in one pass, with ehrQL's disclosure control.
    #[command(after_help = "\
Examples:
  ehrfusion generate-measures analysis/measures_definition.py --output output/measures.csv   (dummy data)
  ehrfusion generate-measures analysis/measures_definition.py --data data/ --output output/measures.arrow
  ehrfusion generate-measures analysis/measures_definition.py --dummy-tables dummy/ --output output/measures/:csv   (one file per measure)
  ehrfusion generate-measures analysis/measures_definition.py --data data/ -- --start-date 2020-01-01   (values for get_parameter)

Without --output the combined results are written to standard output as CSV.")]
    GenerateMeasures(MeasuresArgs),
    /// Write the dummy tables a definition would run over, one file per table.
    #[command(after_help = "\
Examples:
  ehrfusion create-dummy-tables analysis/dataset_definition.py dummy_tables
  ehrfusion create-dummy-tables analysis/dataset_definition.py dummy_tables:parquet --population-size 1000000
  ehrfusion generate-dataset analysis/dataset_definition.py --dummy-tables dummy_tables   (read them back)")]
    CreateDummyTables(CreateDummyTablesArgs),
    /// Show the plans a definition compiles to, stage by stage.
    #[command(after_help = "Examples:\n  ehrfusion explain analysis/dataset_definition.py\n  ehrfusion explain definition.json")]
    Explain(ExplainArgs),
    /// Run a definition's assurance tests: its `test_data` (patients' rows and the
    /// results expected for them) checked against what its `dataset` gives.
    #[command(after_help = "\
Examples:
  ehrfusion assure analysis/test_dataset_definition.py
  ehrfusion generate-dataset analysis/dataset_definition.py --test-data-file analysis/test_dataset_definition.py

Exit status 13 when a test fails, as in ehrQL.")]
    Assure(AssureArgs),
    /// ehrQL's dump-dataset-sql: ehrfusion runs DataFusion plans, not SQL, so this
    /// prints the plans (as `explain` does).
    #[command(hide = true)]
    DumpDatasetSql(DumpSqlArgs),
    /// Run a study's project.yaml actions as a job request: each job in a fresh working
    /// copy with only its `needs`' outputs, extraction actions on the engine, scripts
    /// with local interpreters; states, logs and runtimes kept in metadata/.
    #[command(after_help = "\
Examples:
  ehrfusion run run_all                              (every action that has not already succeeded)
  ehrfusion run generate_measures                    (and whatever it needs that has not succeeded)
  ehrfusion run generate_measures -f                 (its dependencies again too)
  ehrfusion run run_all --continue-on-error -j 2 --project-dir ../my-study
  ehrfusion run run_all --data data/                 (extraction actions over real tables)
  ehrfusion run run_all --data data/ --share-memory 8 (share scans, keeping at most 8 GiB)
  ehrfusion run run_all --docker                     (scripts in the platform's images)
  ehrfusion jobs                                     (the last job request's page)

Exit status 0 when every job succeeded, 1 when one failed, 2 for an invalid project.yaml or an
unknown action. See docs/pipelines.md.")]
    Run(RunArgs),
    /// Show a job request as the platform's page does: per action its status, status
    /// code and message, job identifier and runtime.
    #[command(after_help = "\
Examples:
  ehrfusion jobs                       (the latest request)
  ehrfusion jobs --list                (every request)
  ehrfusion jobs 3b5nqj2pkx7wcdte      (one request)
  ehrfusion jobs --html request.html   (the page as one HTML file)")]
    Jobs(JobsArgs),
    /// Start a process of a DataFusion Ballista cluster (scheduler or executor) that
    /// runs ehrfusion's plans; `generate-dataset --cluster df://HOST:PORT` sends them.
    #[command(subcommand, after_help = "\
Examples:
  ehrfusion cluster scheduler --bind 0.0.0.0 --port 50050
  ehrfusion cluster executor --scheduler df://HOST:50050 --bind 0.0.0.0 --external-host THIS-HOST --concurrency 8 --work-dir /scratch/ehrfusion
  ehrfusion generate-dataset analysis/dataset_definition.py --data /shared/data --cluster df://HOST:50050 --output output/dataset.parquet

See \"Running on a cluster\" in README.md.")]
    Cluster(ClusterCommand),
    /// Run cohort-extractor study definitions: `ehrfusion cohortextractor generate_cohort ...`
    /// (see `ehrfusion cohortextractor --help`).
    #[command(disable_help_flag = true)]
    Cohortextractor {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// ehrQL commands that ehrfusion does not provide: refused with one line.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Start a scheduler: it takes plans from clients and hands their stages to executors.
    Scheduler {
        /// The address to listen on (0.0.0.0 for every interface).
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value_t = 50050)]
        port: u16,
    },
    /// Start an executor: it runs the stages the scheduler gives it.
    Executor {
        /// The scheduler, df://HOST:PORT.
        #[arg(long, default_value = "df://127.0.0.1:50050")]
        scheduler: String,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// The host name or address the scheduler, other executors and clients reach
        /// this executor at (default: --bind; required when --bind is 0.0.0.0 or ::).
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// The port stage results are fetched from (Arrow Flight).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// The port the scheduler sends tasks to.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once (default: all cores).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Where stage results are written (default: a temporary directory).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
}

fn cluster(command: ClusterCommand) -> Result<()> {
    // Deep plans are encoded and decoded recursively: give threads room for them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .map_err(|e| err!("cannot start worker threads: {e}"))?;
    match command {
        ClusterCommand::Scheduler { bind, port } => rt.block_on(crate::cluster::run_scheduler(crate::cluster::SchedulerOptions { bind, port })),
        ClusterCommand::Executor { scheduler, bind, external_host, port, grpc_port, concurrency, work_dir } => {
            rt.block_on(crate::cluster::run_executor(crate::cluster::ExecutorOptions {
                scheduler,
                bind,
                external_host,
                port,
                grpc_port,
                concurrency: concurrency.unwrap_or_else(run::default_threads),
                work_dir: work_dir.map(|d| d.to_string_lossy().into_owned()),
            }))
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// Actions to run (`run_all` for every action).
    actions: Vec<String>,
    /// Run the requested actions' dependencies again even if they already succeeded.
    #[arg(short = 'f', long)]
    force_run_dependencies: bool,
    /// Keep starting jobs that do not depend on a failed one.
    #[arg(long)]
    continue_on_error: bool,
    /// Jobs to run at once (extraction jobs take turns on the engine).
    #[arg(short = 'j', long = "jobs", visible_short_alias = 'c', visible_alias = "concurrency", value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// The study's folder, holding project.yaml.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// Real tables for extraction actions (one file or folder per table); without it
    /// they run on dummy data, as `opensafely run` does.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// With --data, share scans between extraction jobs: the parquet columns one job
    /// decodes are kept, up to GIB GiB, for the next jobs that read them. Off by
    /// default: it trades much memory for a little time (docs/pipelines.md).
    #[arg(long, value_name = "GIB", requires = "data")]
    share_memory: Option<f64>,
    /// Run python, r, stata-mp and jupyter actions in the platform's images
    /// (ghcr.io/opensafely-core/IMAGE:VERSION) with Docker, not local interpreters.
    #[arg(long)]
    docker: bool,
}

#[derive(Args)]
struct JobsArgs {
    /// The job request's identifier (default: the latest).
    request: Option<String>,
    /// The study's folder, holding project.yaml and metadata/.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// Write the page as one self-contained HTML file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// List every job request instead.
    #[arg(long, conflicts_with_all = ["request", "html"])]
    list: bool,
}

/// The definition and how to run it, common to every command.
#[derive(Args)]
struct DefinitionArgs {
    /// The dataset definition: an ehrQL file (.py) or a JSON query model (.json).
    definition: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

impl DefinitionArgs {
    fn prepare(&self, parameters: &[String], front_end: PythonFrontEnd) -> Result<(Prepared, DummySettings, usize)> {
        let (prepared, settings) = prepare(&self.definition, parameters, front_end)?;
        Ok((prepared, settings, self.threads.unwrap_or_else(run::default_threads)))
    }
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    def: DefinitionArgs,
    /// Where to write the dataset: FILE.csv, .csv.gz, .arrow, .feather or .parquet, or
    /// DIR:FORMAT for the dataset and its event tables. Without it, prints a table.
    #[arg(long, short)]
    output: Option<String>,
    /// A directory of real data: one file (or folder of files) per table, named after
    /// the table (clinical_events.parquet, patients.csv, ...).
    /// (`--dsn`, ehrQL's name for it, is accepted too.)
    #[arg(long, value_name = "DIR", visible_alias = "dsn", conflicts_with = "dummy_tables")]
    data: Option<PathBuf>,
    /// A directory of dummy tables in the same layout; tables missing from it are empty.
    #[arg(long, value_name = "DIR")]
    dummy_tables: Option<PathBuf>,
    /// Use this dummy dataset (csv, csv.gz, arrow, feather, parquet) instead of running
    /// the query, after checking its columns, types and categories.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "dummy_tables"])]
    dummy_data_file: Option<PathBuf>,
    /// Run this file's assurance tests first (see `assure`); stop if any fails.
    #[arg(long, value_name = "FILE")]
    test_data_file: Option<PathBuf>,
    /// With --data in parquet files ordered by patient_id, compute the dataset in
    /// blocks of patients holding about N input rows each: memory follows N, not the
    /// number of patients.
    #[arg(long, value_name = "N", default_value_t = source::blocks::DEFAULT_BLOCK_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    block_rows: u64,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    dummy: DummyArgs,
    /// Parameters for get_parameter(), after `--`: `-- --name value`.
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

/// How dummy data is made when no data is given.
#[derive(Args)]
struct DummyArgs {
    /// Dummy patients to generate (default: the definition's configure_dummy_data,
    /// then `expectations: population_size` in project.yaml, then 10).
    #[arg(long, value_name = "N")]
    population_size: Option<usize>,
    /// Seed for dummy data: the same seed gives the same tables.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seconds allowed for finding patients who satisfy the population (default: the
    /// definition's configure_dummy_data timeout, else 60).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// How much data per patient: `query` (a few rows near the query's dates and
    /// codes) or `population` (realistic volumes and code frequencies, for benchmarks).
    #[arg(long, value_enum, default_value_t = dummy::Profile::Query)]
    profile: dummy::Profile,
}

#[derive(Args)]
struct MeasuresArgs {
    #[command(flatten)]
    def: DefinitionArgs,
    /// Where to write the results: FILE.csv, .csv.gz, .arrow, .feather or .parquet for
    /// all measures in one table, or DIR:FORMAT for one file per measure (named after
    /// it). Without it, CSV on standard output.
    #[arg(long, short)]
    output: Option<String>,
    /// A directory of real data: one file (or folder of files) per table.
    /// (`--dsn`, ehrQL's name for it, is accepted too.)
    #[arg(long, value_name = "DIR", visible_alias = "dsn", conflicts_with = "dummy_tables")]
    data: Option<PathBuf>,
    /// A directory of dummy tables in the same layout; tables missing from it are empty.
    #[arg(long, value_name = "DIR")]
    dummy_tables: Option<PathBuf>,
    /// Use these dummy results (one file of all measures, or DIR:FORMAT with one file
    /// per measure) instead of computing them, after checking their columns and types.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "dummy_tables"])]
    dummy_data_file: Option<PathBuf>,
    /// With --data in parquet files ordered by patient_id, compute in blocks of
    /// patients holding about N input rows each.
    #[arg(long, value_name = "N", default_value_t = source::blocks::DEFAULT_BLOCK_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    block_rows: u64,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    dummy: DummyArgs,
    /// Parameters for get_parameter(), after `--`: `-- --name value`.
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

/// Where plans run: here, or on a cluster.
#[derive(Args)]
pub struct ClusterArg {
    /// Run the plans on a DataFusion Ballista cluster: the scheduler at df://HOST:PORT
    /// (see `ehrfusion cluster`). Every executor must read --data at the same path;
    /// --threads is then the partitions per stage.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// With --cluster: where executors write stage results, a folder every executor
    /// and the scheduler can read and write (default: `.ehrfusion-stages` inside
    /// --data; over dummy data, they travel inside the plans). Emptied when the run ends.
    #[arg(long, value_name = "DIR", requires = "cluster")]
    stage_dir: Option<PathBuf>,
    /// With --cluster: blocks of patients whose jobs run on the cluster at once.
    #[arg(long, value_name = "N", default_value_t = 2, requires = "cluster")]
    blocks_at_once: usize,
}

impl ClusterArg {
    /// Errors of a run on a cluster say so (they may come from any of its processes).
    pub fn context<T>(&self, result: Result<T>) -> Result<T> {
        match &self.cluster {
            Some(url) => result.map_err(|e| {
                let kind = e.kind();
                err!("on the cluster at {url}: {e}").or_kind(kind)
            }),
            None => result,
        }
    }

    /// The session plans run in: `local`, or one on the cluster, whose stage results
    /// go to files in --stage-dir or inside `data` (the tables every executor reads).
    pub fn session(&self, local: &SessionContext, rt: &tokio::runtime::Runtime, threads: usize, data: Option<&Path>) -> Result<SessionContext> {
        let Some(url) = &self.cluster else { return Ok(local.clone()) };
        if self.blocks_at_once == 0 {
            return Err(err!("--blocks-at-once must be at least 1").or_kind(ErrorKind::Usage));
        }
        let stages = match (&self.stage_dir, data) {
            (Some(dir), _) => Some(StageFiles::create(dir, false).or_kind(ErrorKind::Usage)?),
            (None, Some(data)) => Some(StageFiles::create(&data.join(".ehrfusion-stages"), true).or_kind(ErrorKind::Usage)?),
            (None, None) => None,
        };
        let run = ClusterRun { stages, blocks_at_once: self.blocks_at_once };
        rt.block_on(crate::cluster::session(url, threads, run)).or_kind(ErrorKind::Usage)
    }
}

#[derive(Args)]
struct CreateDummyTablesArgs {
    #[command(flatten)]
    def: DefinitionArgs,
    /// Directory to write one file per table to, as DIR (csv) or DIR:FORMAT
    /// (csv, csv.gz, arrow, feather, parquet).
    output: String,
    #[command(flatten)]
    dummy: DummyArgs,
    /// Parameters for get_parameter(), after `--`: `-- --name value`.
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

#[derive(Args)]
struct AssureArgs {
    /// The test file: a dataset definition that also defines `test_data`.
    test_data_file: PathBuf,
    /// Parameters for the definition, after `--`.
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

#[derive(Args)]
struct DumpSqlArgs {
    #[command(flatten)]
    def: DefinitionArgs,
    /// Accepted for ehrQL compatibility; the plans do not depend on it.
    #[arg(long)]
    backend: Option<String>,
    /// Accepted for ehrQL compatibility; the plans do not depend on it.
    #[arg(long)]
    query_engine: Option<String>,
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    def: DefinitionArgs,
    /// Also show the stages each plan becomes on a cluster (as a Ballista scheduler
    /// splits it; nothing is sent to one).
    #[arg(long)]
    cluster: bool,
    /// Parameters for get_parameter(), after `--`: `-- --name value`.
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

/// Whether Python definitions use the front end compiled into this program or the
/// one the running Python interpreter imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PythonFrontEnd {
    Embedded,
    Installed,
}

#[cfg(feature = "python")]
impl From<PythonFrontEnd> for crate::frontend::FrontEnd {
    fn from(front_end: PythonFrontEnd) -> Self {
        match front_end {
            PythonFrontEnd::Embedded => crate::frontend::FrontEnd::Embedded,
            PythonFrontEnd::Installed => crate::frontend::FrontEnd::Installed,
        }
    }
}

/// What a definition says about its dummy data (`configure_dummy_data`).
#[derive(Debug, Default, Clone)]
pub struct DummySettings {
    pub population_size: Option<usize>,
    pub timeout: Option<f64>,
    /// Permissions the definition's restricted tables need: (permission, why).
    pub required_permissions: Vec<(String, String)>,
    /// Permissions the definition claimed with `claim_permissions` (for dummy data).
    pub claimed_permissions: Vec<String>,
}

impl DummySettings {
    /// Refuse a run that uses restricted tables without their permissions: those
    /// claimed in the definition for dummy data, those granted in EHRQL_PERMISSIONS
    /// (a JSON list) for real data, as ehrQL does.
    fn check_permissions(&self, definition: &Path, real_data: bool) -> Result<()> {
        let available: Vec<String> = if real_data {
            let granted = std::env::var("EHRQL_PERMISSIONS").unwrap_or_default();
            let granted = if granted.trim().is_empty() { "[]".to_string() } else { granted };
            serde_json::from_str(&granted).map_err(|e| err!("EHRQL_PERMISSIONS must be a JSON list of permission names: {e}").or_kind(ErrorKind::Usage))?
        } else {
            self.claimed_permissions.clone()
        };
        let missing: Vec<&(String, String)> = self.required_permissions.iter().filter(|(p, _)| !available.contains(p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let listed = missing.iter().map(|(p, why)| format!("{p} ({why})")).collect::<Vec<_>>().join("; ");
        let advice = if real_data {
            "if you think you should have them, contact OpenSAFELY support".to_string()
        } else {
            let all: Vec<String> = self.claimed_permissions.iter().chain(missing.iter().map(|(p, _)| p)).map(|p| format!("\"{p}\"")).collect();
            format!("to work with dummy data, claim them: claim_permissions({})", all.join(", "))
        };
        Err(err!("{}: missing permissions: {listed}; {advice}", definition.display()).or_kind(ErrorKind::Permission))
    }
}

/// Which part of a definition file a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    Dataset,
    Measures,
    /// Measures if the file has them, else its dataset.
    Either,
}

/// Read a definition: a JSON query model, or a Python (ehrQL) file.
pub fn load_definition(path: &Path, parameters: &[String], front_end: PythonFrontEnd) -> Result<(QueryModel, DummySettings)> {
    match load_document(path, parameters, Wanted::Dataset, front_end)? {
        (Document::Dataset(model), settings) => Ok((model, settings)),
        (Document::Measures(_), _) => bail!("{}: defines measures, not a dataset: run it with generate-measures", path.display()),
    }
}

/// Read a definition's dataset or measures.
pub fn load_document(path: &Path, parameters: &[String], wanted: Wanted, front_end: PythonFrontEnd) -> Result<(Document, DummySettings)> {
    let name = path.to_string_lossy();
    if name.ends_with(".py") {
        return load_python(path, parameters, wanted, front_end);
    }
    let shown = path.display();
    if !name.to_lowercase().ends_with(".json") {
        bail!("{shown}: not a definition file (expected an ehrQL definition, .py, or a JSON query model, .json)");
    }
    if !parameters.is_empty() {
        bail!("parameters after -- are only used by Python definitions");
    }
    let text = std::fs::read_to_string(path).map_err(|e| err!("{shown}: {e}"))?;
    let doc = json::parse_document(&text).map_err(|e| err!("{shown}: {e}"))?;
    match (&doc, wanted) {
        (Document::Dataset(_), Wanted::Measures) => bail!("{shown}: Did not find a variable called 'measures' in measures definition file (this document defines a dataset)"),
        (Document::Measures(_), Wanted::Dataset) => bail!("{shown}: Did not find a variable called 'dataset' in dataset definition file (this document defines measures)"),
        _ => Ok((doc, DummySettings::default())),
    }
}

#[cfg(feature = "python")]
fn load_python(path: &Path, parameters: &[String], wanted: Wanted, front_end: PythonFrontEnd) -> Result<(Document, DummySettings)> {
    use crate::frontend::{Kind, load_document};
    let fe = front_end.into();
    let kind = match wanted {
        Wanted::Dataset => Kind::Dataset,
        Wanted::Measures => Kind::Measures,
        Wanted::Either => Kind::Either,
    };
    let (model, config) = load_document(path, parameters, kind, fe)?;
    let required_permissions = config
        .get("required_permissions")
        .and_then(|v| v.as_object())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let claimed_permissions = config
        .get("claimed_permissions")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let settings = DummySettings {
        population_size: config.get("population_size").and_then(|v| v.as_u64()).map(|n| n as usize),
        timeout: config.get("timeout").and_then(|v| v.as_f64()),
        required_permissions,
        claimed_permissions,
    };
    Ok((model, settings))
}

#[cfg(not(feature = "python"))]
fn load_python(path: &Path, _: &[String], _: Wanted, _: PythonFrontEnd) -> Result<(Document, DummySettings)> {
    bail!("{}: this build of ehrfusion has no Python support; give a JSON query model", path.display())
}

fn prepare(definition: &Path, parameters: &[String], front_end: PythonFrontEnd) -> Result<(Prepared, DummySettings)> {
    let (model, settings) = load_definition(definition, parameters, front_end).or_kind(ErrorKind::Definition)?;
    let prepared = Prepared::new(model).map_err(|e| err!("{}: {e}", definition.display()).or_kind(ErrorKind::Definition))?;
    Ok((prepared, settings))
}

/// A definition ready to run: a dataset, or measures.
enum Loaded {
    Dataset(Prepared),
    Measures(PreparedMeasures),
}

fn prepare_document(definition: &Path, parameters: &[String], wanted: Wanted, front_end: PythonFrontEnd) -> Result<(Loaded, DummySettings)> {
    let (doc, settings) = load_document(definition, parameters, wanted, front_end).or_kind(ErrorKind::Definition)?;
    let at = |e: crate::error::Error| err!("{}: {e}", definition.display()).or_kind(ErrorKind::Definition);
    let loaded = match doc {
        Document::Dataset(model) => Loaded::Dataset(Prepared::new(model).map_err(at)?),
        Document::Measures(model) => Loaded::Measures(PreparedMeasures::new(model).map_err(at)?),
    };
    Ok((loaded, settings))
}

impl DummyArgs {
    /// For measures: the command line, then the definition, then ehrQL's guess from
    /// the numbers of denominators, intervals and groups.
    fn measures_options(&self, measures: &PreparedMeasures, settings: &DummySettings) -> DummyOptions {
        let population_size = self.population_size.or(settings.population_size).unwrap_or_else(|| measures.model.default_population_size());
        let timeout = self.timeout.or(settings.timeout).map(Duration::from_secs_f64).unwrap_or(dummy::DEFAULT_TIMEOUT);
        DummyOptions { population_size, seed: self.seed, timeout, progress: true, profile: self.profile }
    }

    /// The options in force: this command line, then the definition, then the
    /// project's project.yaml, then ehrQL's defaults.
    fn options(&self, definition: &Path, settings: &DummySettings) -> Result<DummyOptions> {
        let population_size = match self.population_size.or(settings.population_size) {
            Some(n) => n,
            None => dummy::population_size_from_project(definition)?.unwrap_or(dummy::DEFAULT_POPULATION_SIZE),
        };
        let timeout = self.timeout.or(settings.timeout).map(Duration::from_secs_f64).unwrap_or(dummy::DEFAULT_TIMEOUT);
        Ok(DummyOptions { population_size, seed: self.seed, timeout, progress: true, profile: self.profile })
    }
}

fn report(outcome: &dummy::Outcome, options: &DummyOptions) {
    if outcome.timed_out {
        eprintln!(
            "warning: found only {} of {} dummy patients who satisfy the population within {:.0} seconds; writing those (raise --timeout, or make the population easier to satisfy)",
            outcome.patients,
            options.population_size,
            options.timeout.as_secs_f64()
        );
    }
}

fn generate(args: GenerateArgs, front_end: PythonFrontEnd) -> Result<()> {
    let destination = Destination::parse(args.output.as_deref()).or_kind(ErrorKind::Usage)?;
    if let Some(tests) = &args.test_data_file {
        assure(tests, &args.parameters, front_end)?;
    }
    let (mut prepared, settings, threads) = args.def.prepare(&args.parameters, front_end)?;
    settings.check_permissions(&args.def.definition, args.data.is_some())?;
    // Dummy data: the patients ehrQL's in-memory engine would consider.
    prepared.patients_from_all_tables = args.data.is_none();
    if let Some(file) = &args.dummy_data_file {
        if !prepared.analysis.event_tables.is_empty() {
            bail!("--dummy-data-file cannot stand in for a dataset with event tables");
        }
        let dataset = dummy::file::read(file, &prepared.dataset_columns()).or_kind(ErrorKind::File)?;
        print!("{}", run::write(&run::Results { dataset, event_tables: vec![] }, &destination)?);
        return Ok(());
    }
    let local = run::session(threads);
    let rt = run::runtime(threads)?;
    let ctx = args.cluster.session(&local, &rt, threads, args.data.as_deref())?;
    let providers = match (&args.data, &args.dummy_tables) {
        (Some(d), _) => prepared.open_tables(Tables::Data(d), threads).or_kind(ErrorKind::File)?,
        (None, Some(d)) => prepared.open_tables(Tables::DummyTables(d), threads).or_kind(ErrorKind::File)?,
        (None, None) => {
            let options = args.dummy.options(&args.def.definition, &settings)?;
            let mut tables: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
            let outcome = rt.block_on(dummy::generate(&local, &prepared, &options, threads, |name, rows| {
                tables.entry(name.to_string()).or_default().push(rows);
                Ok(())
            }))?;
            report(&outcome, &options);
            dummy::into_providers(&prepared, tables, threads)?
        }
    };
    let blocks = match &args.data {
        Some(d) => source::blocks::patient_blocks(d, &prepared.model.schema, &prepared.analysis.tables, args.block_rows).or_kind(ErrorKind::File)?,
        None => vec![Default::default()],
    };
    if destination == Destination::Console {
        let results = args.cluster.context(rt.block_on(run::execute_blocks(&ctx, &prepared, &providers, &blocks)))?;
        print!("{}", run::write(&results, &destination)?);
        return Ok(());
    }
    args.cluster.context(rt.block_on(run::execute_to_files(&ctx, &prepared, &providers, &blocks, &destination)))
}

fn generate_measures(args: MeasuresArgs, front_end: PythonFrontEnd) -> Result<()> {
    let destination = Destination::parse(args.output.as_deref()).or_kind(ErrorKind::Usage)?;
    let (loaded, settings) = prepare_document(&args.def.definition, &args.parameters, Wanted::Measures, front_end)?;
    let Loaded::Measures(mut pm) = loaded else { bail!("{}: expected measures", args.def.definition.display()) };
    if args.data.is_none() {
        // Dummy data: the patients ehrQL's in-memory engine would consider.
        pm.consider_patients_from_all_tables();
    }
    let threads = args.def.threads.unwrap_or_else(run::default_threads);
    settings.check_permissions(&args.def.definition, args.data.is_some())?;
    let results = if let Some(file) = &args.dummy_data_file {
        let results = measures::file::read(file, &pm).or_kind(ErrorKind::File)?;
        if pm.model.disclosure_control { measures::disclosure_control(&results)? } else { results }
    } else {
        let local = run::session(threads);
        let rt = run::runtime(threads)?;
        let ctx = args.cluster.session(&local, &rt, threads, args.data.as_deref())?;
        let providers = match (&args.data, &args.dummy_tables) {
            (Some(d), _) => pm.open_tables(Tables::Data(d), threads).or_kind(ErrorKind::File)?,
            (None, Some(d)) => pm.open_tables(Tables::DummyTables(d), threads).or_kind(ErrorKind::File)?,
            (None, None) => {
                let dummy_dataset = pm.dummy_dataset()?;
                let options = args.dummy.measures_options(&pm, &settings);
                let mut tables: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
                let outcome = rt.block_on(dummy::generate(&local, &dummy_dataset, &options, threads, |name, rows| {
                    tables.entry(name.to_string()).or_default().push(rows);
                    Ok(())
                }))?;
                report(&outcome, &options);
                let mut providers = pm.open_tables(Tables::Empty, threads)?;
                providers.extend(dummy::into_providers(&dummy_dataset, tables, threads)?);
                providers
            }
        };
        let blocks = match &args.data {
            Some(d) => pm.blocks(d, args.block_rows).or_kind(ErrorKind::File)?,
            None => vec![Default::default()],
        };
        args.cluster.context(rt.block_on(measures::execute(&ctx, &pm, &providers, &blocks)))?
    };
    measures::write(&pm, &results, &destination)
}

fn create_dummy_tables(args: CreateDummyTablesArgs, front_end: PythonFrontEnd) -> Result<()> {
    let (dir, format, extension) = match args.output.rsplit_once(':') {
        Some((dir, fmt)) => match Format::from_name(fmt) {
            Some(f) => (PathBuf::from(dir), f, fmt.to_string()),
            None => return Err(err!("{}: unknown format '{fmt}' (use csv, csv.gz, arrow, feather or parquet)", args.output).or_kind(ErrorKind::Usage)),
        },
        None => (PathBuf::from(&args.output), Format::Csv, "csv".to_string()),
    };
    let (loaded, settings) = prepare_document(&args.def.definition, &args.parameters, Wanted::Either, front_end)?;
    let threads = args.def.threads.unwrap_or_else(run::default_threads);
    let (prepared, options) = match loaded {
        Loaded::Dataset(p) => {
            let options = args.dummy.options(&args.def.definition, &settings)?;
            (p, options)
        }
        Loaded::Measures(pm) => (pm.dummy_dataset()?, args.dummy.measures_options(&pm, &settings)),
    };
    let mut writers: BTreeMap<String, TableWriter> = BTreeMap::new();
    for name in &prepared.analysis.tables {
        let table = prepared.model.schema.table(name)?;
        let mut columns = vec![ColumnInfo::patient_id()];
        columns.extend(table.columns.iter().map(|c| ColumnInfo::plain(&c.name, c.ty.clone(), true)));
        writers.insert(name.clone(), TableWriter::create(&dir.join(format!("{name}.{extension}")), format, columns)?);
    }
    let ctx = run::session(threads);
    let outcome = run::runtime(threads)?.block_on(dummy::generate(&ctx, &prepared, &options, threads, |name, rows| {
        writers.get_mut(name).ok_or_else(|| err!("no writer for table '{name}'"))?.write(&rows)
    }))?;
    report(&outcome, &options);
    let pending = writers.into_values().map(TableWriter::finish).collect::<Result<Vec<_>>>()?;
    output::commit(pending)
}

/// Run an assurance test file: the report goes to standard output when every test
/// passes, else to standard error with exit status 13.
#[cfg(feature = "python")]
fn assure(test_file: &Path, parameters: &[String], front_end: PythonFrontEnd) -> Result<()> {
    use crate::frontend;
    let fe = front_end.into();
    if !test_file.to_string_lossy().ends_with(".py") {
        return Err(err!("{}: an assurance test file is a Python definition (.py)", test_file.display()).or_kind(ErrorKind::Usage));
    }
    let scratch = tempfile::tempdir().map_err(|e| err!("cannot make a temporary directory: {e}"))?;
    let tables = scratch.path().join("tables");
    std::fs::create_dir(&tables).map_err(|e| err!("{}: {e}", tables.display()))?;
    let model = frontend::assurance_prepare(test_file, parameters, &tables, fe).or_kind(ErrorKind::Definition)?;
    let prepared = Prepared::new(model).map_err(|e| err!("{}: {e}", test_file.display()).or_kind(ErrorKind::Definition))?;
    let threads = 1;
    let ctx = run::session(threads);
    let providers = prepared
        .open_tables(Tables::TestData(&tables), threads)
        .map_err(|e| err!("{}: test data: {e}", test_file.display()).or_kind(ErrorKind::Definition))?;
    let results = scratch.path().join("results.csv");
    let destination = Destination::File(results.clone(), Format::Csv);
    run::runtime(threads)?.block_on(run::execute_to_files(&ctx, &prepared, &providers, &[Default::default()], &destination))?;
    let (passed, report) = frontend::assurance_report(test_file, &results, fe).or_kind(ErrorKind::Definition)?;
    if passed {
        println!("{report}");
        return Ok(());
    }
    eprintln!("{report}");
    Err(err!("{}: the assurance tests failed", test_file.display()).or_kind(ErrorKind::Assurance))
}

#[cfg(not(feature = "python"))]
fn assure(test_file: &Path, _: &[String], _: PythonFrontEnd) -> Result<()> {
    bail!("{}: this build of ehrfusion has no Python support, which assurance tests need", test_file.display())
}

/// ehrQL commands this program does not provide, with what to use instead.
fn refuse(args: &[String]) -> Result<()> {
    let command = args.first().map(String::as_str).unwrap_or("");
    let why = match command {
        "debug" | "graph-query" | "serialize-definition" => "use `ehrfusion explain DEFINITION` to see what a definition computes".to_string(),
        "test-connection" | "isolation-report" | "backend-admin" => "ehrfusion reads data files, not a database server".to_string(),
        "dump-example-data" | "sandbox" => "ehrfusion ships no tutorial data".to_string(),
        _ => return Err(err!("unknown command '{command}' (see ehrfusion --help)").or_kind(ErrorKind::Usage)),
    };
    Err(err!("`{command}` is an ehrQL command that ehrfusion does not provide: {why}").or_kind(ErrorKind::Usage))
}

fn explain(args: ExplainArgs, front_end: PythonFrontEnd) -> Result<()> {
    let (loaded, _) = prepare_document(&args.def.definition, &args.parameters, Wanted::Either, front_end)?;
    let threads = args.def.threads.unwrap_or_else(run::default_threads);
    let ctx = run::session(threads);
    let rt = run::runtime(threads)?;
    let text = match loaded {
        Loaded::Dataset(prepared) => rt.block_on(run::explain(&ctx, &prepared, args.cluster.then_some(threads)))?,
        Loaded::Measures(pm) => rt.block_on(pm.explain(&ctx, args.cluster.then_some(threads)))?,
    };
    print!("{text}");
    Ok(())
}

/// Run the command line; errors are printed as one line on standard error.
pub fn main<I, T>(args: I, front_end: PythonFrontEnd) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    ExitCode::from(exit_status(args, front_end))
}

/// Run the command line and return its exit status: 0, or ehrQL's code for the
/// kind of failure (2 usage, 10 definition, 11 input file, 12 permission, 13 assurance).
pub fn exit_status<I, T>(args: I, front_end: PythonFrontEnd) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code() as u8;
        }
    };
    #[cfg(feature = "python")]
    if let Command::Cohortextractor { args } = cli.command {
        return crate::cohort::exit_status(args, front_end.into());
    }
    if let Command::Run(a) = cli.command {
        let options = crate::pipeline::RunOptions {
            actions: a.actions,
            force_run_dependencies: a.force_run_dependencies,
            continue_on_error: a.continue_on_error,
            jobs: a.jobs as usize,
            project_dir: a.project_dir,
            data: a.data,
            docker: a.docker,
            share_memory: match a.share_memory {
                Some(gib) if !(gib >= 0.0 && gib.is_finite()) => {
                    eprintln!("error: --share-memory {gib}: expected a number of GiB, 0 or more");
                    return 2;
                }
                Some(gib) => (gib * (1u64 << 30) as f64) as usize,
                None => 0,
            },
        };
        return match crate::pipeline::run(options, front_end) {
            Ok(status) => status,
            Err(e) => {
                eprintln!("error: {e}");
                e.kind().exit_code()
            }
        };
    }
    let result = match cli.command {
        Command::GenerateDataset(a) => generate(a, front_end),
        Command::GenerateMeasures(a) => generate_measures(a, front_end),
        Command::CreateDummyTables(a) => create_dummy_tables(a, front_end),
        Command::Explain(a) => explain(a, front_end),
        Command::Assure(a) => assure(&a.test_data_file, &a.parameters, front_end),
        Command::DumpDatasetSql(a) => {
            eprintln!("note: ehrfusion runs DataFusion plans, not SQL; these are the plans for {}", a.def.definition.display());
            explain(ExplainArgs { def: a.def, cluster: false, parameters: a.parameters }, front_end)
        }
        Command::Jobs(a) => crate::pipeline::jobs(&a.project_dir, a.request.as_deref(), a.html.as_deref(), a.list),
        Command::Cluster(c) => cluster(c),
        Command::Run(_) => unreachable!("handled above"),
        Command::Other(args) => refuse(&args),
        Command::Cohortextractor { .. } => Err(err!("this build of ehrfusion has no Python support, which study definitions need")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.kind().exit_code()
        }
    }
}
