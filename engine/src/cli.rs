//! The `ehrfusion` command line, shared by the binary and the Python package's
//! `ehrfusion` and `ehrql` commands.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::Result;
use crate::model::QueryModel;
use crate::output::Destination;
use crate::run::{self, Prepared};
use crate::source::Tables;
use crate::{bail, err};

const EXAMPLES: &str = "\
Examples:
  ehrfusion generate-dataset analysis/dataset_definition.py --data data/ --output output/dataset.csv.gz
  ehrfusion generate-dataset testdata/definitions/diagnoses.json --data testdata/data/csv
  ehrfusion generate-dataset definition.py --data data/ --output output/:parquet -- --start-date 2020-01-01
  ehrfusion explain analysis/dataset_definition.py";

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
  ehrfusion generate-dataset analysis/dataset_definition.py --data data/
  ehrfusion generate-dataset analysis/dataset_definition.py --data data/ --output output/dataset.csv.gz
  ehrfusion generate-dataset definition.json --dummy-tables dummy/ --output output/dataset.parquet
  ehrfusion generate-dataset definition.py --data data/ --output output/:csv   (dataset and event tables)
  ehrfusion generate-dataset definition.py --data data/ -- --region London   (values for get_parameter)")]
    GenerateDataset(GenerateArgs),
    /// Show the plans a definition compiles to, stage by stage.
    #[command(after_help = "Examples:\n  ehrfusion explain analysis/dataset_definition.py\n  ehrfusion explain definition.json")]
    Explain(ExplainArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// The dataset definition: an ehrQL file (.py) or a JSON query model (.json).
    definition: PathBuf,
    /// Where to write the dataset: FILE.csv, .csv.gz, .arrow, .feather or .parquet, or
    /// DIR:FORMAT for the dataset and its event tables. Without it, prints a table.
    #[arg(long, short)]
    output: Option<String>,
    /// A directory of real data: one file (or folder of files) per table, named after
    /// the table (clinical_events.parquet, patients.csv, ...).
    #[arg(long, value_name = "DIR", conflicts_with = "dummy_tables")]
    data: Option<PathBuf>,
    /// A directory of dummy tables in the same layout; tables missing from it are empty.
    #[arg(long, value_name = "DIR")]
    dummy_tables: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Parameters for get_parameter(), after `--`: `-- --name value`.
    #[arg(last = true, value_name = "PARAMETERS")]
    parameters: Vec<String>,
}

#[derive(Args)]
struct ExplainArgs {
    /// The dataset definition: an ehrQL file (.py) or a JSON query model (.json).
    definition: PathBuf,
    /// Worker threads to plan for (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Parameters for get_parameter(), after `--`.
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

/// Read a definition: a JSON query model, or a Python (ehrQL) file.
pub fn load_definition(path: &Path, parameters: &[String], front_end: PythonFrontEnd) -> Result<QueryModel> {
    let name = path.to_string_lossy();
    if name.ends_with(".py") {
        return load_python(path, parameters, front_end);
    }
    if !parameters.is_empty() {
        bail!("parameters after -- are only used by Python definitions");
    }
    run::load_definition(path)
}

#[cfg(feature = "python")]
fn load_python(path: &Path, parameters: &[String], front_end: PythonFrontEnd) -> Result<QueryModel> {
    use crate::frontend::{FrontEnd, load};
    let fe = match front_end {
        PythonFrontEnd::Embedded => FrontEnd::Embedded,
        PythonFrontEnd::Installed => FrontEnd::Installed,
    };
    Ok(load(path, parameters, fe)?.0)
}

#[cfg(not(feature = "python"))]
fn load_python(path: &Path, _: &[String], _: PythonFrontEnd) -> Result<QueryModel> {
    bail!("{}: this build of ehrfusion has no Python support; give a JSON query model", path.display())
}

fn generate(args: GenerateArgs, front_end: PythonFrontEnd) -> Result<()> {
    let destination = Destination::parse(args.output.as_deref())?;
    let prepared = Prepared::new(load_definition(&args.definition, &args.parameters, front_end)?)
        .map_err(|e| err!("{}: {e}", args.definition.display()))?;
    let threads = args.threads.unwrap_or_else(run::default_threads);
    let tables = match (&args.data, &args.dummy_tables) {
        (Some(d), _) => Tables::Data(d),
        (None, Some(d)) => Tables::DummyTables(d),
        (None, None) => bail!("no data given: use --data DIR for real tables or --dummy-tables DIR for dummy tables"),
    };
    let providers = prepared.open_tables(tables, threads)?;
    let ctx = run::session(threads);
    let results = run::runtime(threads)?.block_on(run::execute(&ctx, &prepared, &providers))?;
    print!("{}", run::write(&results, &destination)?);
    Ok(())
}

fn explain(args: ExplainArgs, front_end: PythonFrontEnd) -> Result<()> {
    let prepared = Prepared::new(load_definition(&args.definition, &args.parameters, front_end)?)
        .map_err(|e| err!("{}: {e}", args.definition.display()))?;
    let threads = args.threads.unwrap_or_else(run::default_threads);
    let ctx = run::session(threads);
    print!("{}", run::runtime(threads)?.block_on(run::explain(&ctx, &prepared))?);
    Ok(())
}

/// Run the command line; errors are printed as one line on standard error.
pub fn main<I, T>(args: I, front_end: PythonFrontEnd) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let result = match cli.command {
        Command::GenerateDataset(a) => generate(a, front_end),
        Command::Explain(a) => explain(a, front_end),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
