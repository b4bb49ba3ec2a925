//! The `ehrfusion` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ehrfusion::output::Destination;
use ehrfusion::run::{self, Prepared};
use ehrfusion::source::Tables;

const EXAMPLES: &str = "\
Examples:
  ehrfusion generate-dataset testdata/definitions/diagnoses.json --data testdata/data/csv
  ehrfusion generate-dataset definition.json --data data/ --output output/dataset.csv.gz
  ehrfusion generate-dataset definition.json --data data/ --output output/:parquet
  ehrfusion explain definition.json";

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
  ehrfusion generate-dataset definition.json --data data/
  ehrfusion generate-dataset definition.json --data data/ --output output/dataset.csv.gz
  ehrfusion generate-dataset definition.json --dummy-tables dummy/ --output output/dataset.parquet
  ehrfusion generate-dataset definition.json --data data/ --output output/:csv   (dataset and event tables)")]
    GenerateDataset(GenerateArgs),
    /// Show the plans a definition compiles to, stage by stage.
    #[command(after_help = "Example:\n  ehrfusion explain definition.json")]
    Explain(ExplainArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// The dataset definition: a JSON query model (.json).
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
}

#[derive(Args)]
struct ExplainArgs {
    /// The dataset definition: a JSON query model (.json).
    definition: PathBuf,
    /// Worker threads to plan for (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("start the async runtime")
}

fn generate(args: GenerateArgs) -> ehrfusion::Result<()> {
    let destination = Destination::parse(args.output.as_deref())?;
    let prepared = Prepared::new(run::load_definition(&args.definition)?)?;
    let threads = args.threads.unwrap_or_else(run::default_threads);
    let tables = match (&args.data, &args.dummy_tables) {
        (Some(d), _) => Tables::Data(d),
        (None, Some(d)) => Tables::DummyTables(d),
        (None, None) => {
            return Err(ehrfusion::Error::new(
                "no data given: use --data DIR for real tables or --dummy-tables DIR for dummy tables",
            ));
        }
    };
    let providers = prepared.open_tables(tables, threads)?;
    let ctx = run::session(threads);
    let results = runtime(threads).block_on(run::execute(&ctx, &prepared, &providers))?;
    print!("{}", run::write(&results, &destination)?);
    Ok(())
}

fn explain(args: ExplainArgs) -> ehrfusion::Result<()> {
    let prepared = Prepared::new(run::load_definition(&args.definition)?)?;
    let threads = args.threads.unwrap_or_else(run::default_threads);
    let ctx = run::session(threads);
    print!("{}", runtime(threads).block_on(run::explain(&ctx, &prepared))?);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::GenerateDataset(a) => generate(a),
        Command::Explain(a) => explain(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
