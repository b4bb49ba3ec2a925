//! Dummy data: tables generated for a definition, consistent with its query, with
//! `population_size` patients who satisfy its population.
//!
//! Candidate patients are generated in batches (in parallel); the definition runs
//! over each batch and the patients in its population are kept, until there are
//! enough of them or the time allowed runs out. Every patient's rows depend only on
//! the seed and the patient, so kept patients are exactly those the definition
//! selects when it runs over the written tables.

pub mod file;
mod generate;
mod hints;
mod pattern;

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{BooleanArray, Int64Array, RecordBatch};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use generate::{Generator, Profile};
pub use hints::Hints;

use crate::compile::{Planner, Providers};
use crate::error::{ErrorKind, Result, ResultExt};
use crate::run::Prepared;
use crate::source::{self, Tables, table_arrow_schema};
use crate::{bail, err};

/// ehrQL's defaults.
pub const DEFAULT_POPULATION_SIZE: usize = 10;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct DummyOptions {
    pub population_size: usize,
    pub seed: u64,
    pub timeout: Duration,
    /// Show a progress bar (when standard error is a terminal).
    pub progress: bool,
    pub profile: Profile,
}

/// What a run found: how many patients, and whether time ran out first.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub patients: usize,
    pub timed_out: bool,
}

/// The population size from a project's `project.yaml` (in the definition's folder
/// or the nearest folder above it), under `expectations: population_size`.
pub fn population_size_from_project(definition: &Path) -> Result<Option<usize>> {
    let start = std::fs::canonicalize(definition).unwrap_or_else(|_| definition.to_path_buf());
    let mut dir = start.parent();
    while let Some(d) = dir {
        let path = d.join("project.yaml");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| err!("{}: {e}", path.display()))?;
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| err!("{}: {}", path.display(), e.to_string().replace('\n', " ")))?;
            let size = &doc["expectations"]["population_size"];
            return match size {
                serde_yaml_ng::Value::Null => Ok(None),
                v => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
                    Some(n) => Ok(Some(n as usize)),
                    None => bail!("{}: expectations: population_size must be a whole number, not {v:?}", path.display()),
                },
            };
        }
        dir = d.parent();
    }
    Ok(None)
}

/// Generate dummy tables for a definition, passing the kept patients' rows to `sink`
/// batch by batch (table name, rows).
pub async fn generate(
    ctx: &SessionContext,
    prepared: &Prepared,
    options: &DummyOptions,
    threads: usize,
    mut sink: impl FnMut(&str, RecordBatch) -> Result<()>,
) -> Result<Outcome> {
    let generator = generator(prepared, options.seed, options.profile)?;
    let inline = prepared.open_tables(Tables::Empty, 1).or_kind(ErrorKind::File)?;
    let started = Instant::now();
    let progress = progress_bar(options);
    let wanted = options.population_size;
    let (mut found, mut tried, mut next_id) = (0usize, 0usize, 1i64);
    while found < wanted {
        if started.elapsed() > options.timeout {
            progress.finish_and_clear();
            return Ok(Outcome { patients: found, timed_out: true });
        }
        let remaining = wanted - found;
        let rate = if tried == 0 { 1.0 } else { (found as f64 / tried as f64).max(0.002) };
        let size = ((remaining as f64 / rate) * 1.2).ceil().clamp(256.0, 65_536.0) as i64;
        let batch = generator.chunk(next_id..next_id + size)?;
        next_id += size;
        tried += size as usize;
        let kept = population_of(ctx, prepared, &batch, &inline, threads).await?;
        let kept: Vec<i64> = kept.into_iter().take(remaining).collect();
        found += kept.len();
        progress.set_position(found as u64);
        let keep: HashSet<i64> = kept.into_iter().collect();
        for (table, rows) in batch {
            let pids = rows.column(0).as_any().downcast_ref::<Int64Array>().expect("patient_id");
            let mask: BooleanArray = pids.values().iter().map(|p| Some(keep.contains(p))).collect();
            let rows = arrow::compute::filter_record_batch(&rows, &mask)?;
            if rows.num_rows() > 0 {
                sink(&table, rows)?;
            }
        }
    }
    progress.finish_and_clear();
    Ok(Outcome { patients: found, timed_out: false })
}

/// A generator for the tables the definition reads (not the inline ones it defines).
pub fn generator(prepared: &Prepared, seed: u64, profile: Profile) -> Result<Generator> {
    let hints = Hints::collect(&prepared.model, &prepared.infos);
    let tables = prepared
        .analysis
        .tables
        .iter()
        .map(|t| prepared.model.schema.table(t).cloned())
        .collect::<Result<Vec<_>>>()?;
    Ok(Generator::new(tables, &hints, seed, profile))
}

fn progress_bar(options: &DummyOptions) -> ProgressBar {
    if !options.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(options.population_size as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("dummy data {bar:40} {pos}/{len} patients ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The patients of a batch who are in the population, in id order.
async fn population_of(
    ctx: &SessionContext,
    prepared: &Prepared,
    batch: &[(String, RecordBatch)],
    inline: &Providers,
    threads: usize,
) -> Result<Vec<i64>> {
    let mut providers = inline.clone();
    for (name, rows) in batch {
        let parts = source::split(vec![rows.clone()], threads);
        providers.insert(name.clone(), Arc::new(MemTable::try_new(rows.schema(), parts)?) as Arc<dyn TableProvider>);
    }
    let mut planner = Planner::new(&prepared.analysis, &providers);
    planner.materialise_stages(ctx).await?;
    let batches = crate::run::collect_with_metrics(ctx, planner.population_plan()?, "dummy population").await?;
    let mut ids = Vec::new();
    for b in batches {
        ids.extend(b.column(0).as_any().downcast_ref::<Int64Array>().expect("patient_id").values().iter().copied());
    }
    Ok(ids)
}

/// Dummy tables held in memory, as table providers.
pub fn into_providers(prepared: &Prepared, tables: BTreeMap<String, Vec<RecordBatch>>, threads: usize) -> Result<Providers> {
    let mut providers = prepared.open_tables(Tables::Empty, threads)?;
    for (name, batches) in tables {
        let schema = table_arrow_schema(prepared.model.schema.table(&name)?);
        providers.insert(name, Arc::new(MemTable::try_new(schema, source::split(batches, threads))?));
    }
    Ok(providers)
}
