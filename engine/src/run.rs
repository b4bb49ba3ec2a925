//! Driving one extraction: load and check the definition, open the tables, run the
//! plans stage by stage, and write the results.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::compile::plan::placeholder;
use crate::compile::{Analysis, Planner, Providers, analyze};
use crate::error::Result;
use crate::model::validate::validate;
use crate::model::{NodeInfo, QueryModel, json};
use crate::output::{ColumnInfo, Destination, TableWriter, commit, console_table};
use crate::source::blocks::PatientRange;
use crate::source::{self, Tables};
use crate::{bail, err};

/// A definition that has been checked and analysed, ready to run.
pub struct Prepared {
    pub model: QueryModel,
    pub infos: Vec<NodeInfo>,
    pub analysis: Analysis,
    /// Consider every patient in any table the definition uses (set when running over
    /// dummy tables, as ehrQL's in-memory engine does), not only those in the tables
    /// the population uses (as its database engines do).
    pub patients_from_all_tables: bool,
}

impl Prepared {
    pub fn new(model: QueryModel) -> Result<Prepared> {
        if let Some(id) = model.nodes.iter().position(|n| matches!(n, crate::model::Node::Parameter { .. })) {
            bail!("node {id}: INTERVAL can only be used in measures (a dataset has no interval to give it a value)");
        }
        Self::for_measures(model)
    }

    /// Prepare a measure group's dataset, whose nodes may use the interval parameters.
    pub fn for_measures(model: QueryModel) -> Result<Prepared> {
        let infos = validate(&model)?;
        // Rewritten only where it still validates; the original's errors are the ones to show.
        let rewritten = crate::model::rewrite::exists_as_extreme(model.clone());
        let (model, infos) = match validate(&rewritten) {
            Ok(rewritten_infos) if rewritten.nodes != model.nodes => (rewritten, rewritten_infos),
            _ => (model, infos),
        };
        let analysis = analyze(&model, &infos)?;
        Ok(Prepared { model, infos, analysis, patients_from_all_tables: false })
    }

    /// The columns of the dataset, `patient_id` first, then variables in definition order.
    pub fn dataset_columns(&self) -> Vec<ColumnInfo> {
        let mut cols = vec![ColumnInfo::patient_id()];
        for (name, id) in &self.model.dataset.variables {
            cols.push(ColumnInfo::of(&self.model, &self.infos, name, *id));
        }
        cols
    }

    pub fn event_table_columns(&self, name: &str) -> Vec<ColumnInfo> {
        let mut cols = vec![ColumnInfo::patient_id()];
        for (cname, id) in &self.model.dataset.event_tables[name] {
            cols.push(ColumnInfo::of(&self.model, &self.infos, cname, *id));
        }
        cols
    }

    pub fn open_tables(&self, tables: Tables, threads: usize) -> Result<Providers> {
        source::open(&self.model, &self.analysis.tables, tables, threads)
    }
}

/// Read a JSON query model (Python definitions go through the front end first).
pub fn load_json(path: &Path) -> Result<QueryModel> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| err!("{shown}: {e}"))?;
    json::parse(&text).map_err(|e| err!("{shown}: {e}"))
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker threads that run plans.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    crate::output::parquet::set_threads(threads);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| err!("cannot start worker threads: {e}"))
}

/// Rows per batch in plans (DataFusion's default), and in tables held in memory.
pub const BATCH_ROWS: usize = 8192;

/// The settings of every session, local or on a cluster.
pub fn session_config(threads: usize) -> SessionConfig {
    let mut config = SessionConfig::new().with_target_partitions(threads.max(1)).with_batch_size(BATCH_ROWS);
    // DataFusion 55 proves more columns non-null in logical plans than in physical
    // ones (`CASE WHEN a IS NULL AND b IS NOT NULL THEN b ELSE 'x' END`), and then
    // refuses to plan an aggregate over them; the check is its documented workaround.
    config.options_mut().execution.skip_physical_aggregate_schema_check = true;
    config
}

pub fn session(threads: usize) -> SessionContext {
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(session_config(threads))
        .with_default_features()
        .with_physical_optimizer_rules(crate::compile::small_sides::CollectSmallSides::with_default_rules())
        .build();
    SessionContext::new_with_state(state)
}

/// The physical plan of a logical plan. DataFusion 55 can leave a sort-preserving
/// merge above a hash join that it swapped for statistics (a tiny or empty table in
/// a block of patients) and then refuses the plan it made ("SanityCheckPlan ... does
/// not satisfy order requirements"); planned again without swapping join inputs,
/// the plan is valid. Only that failure is retried: swapping is much faster
/// elsewhere (staged at 1M patients: 4.2 s with it, 11.0 s without). Found by the
/// differential tests (testdata/regressions/case-ca13814d127d981b.json and others).
pub async fn physical_plan(ctx: &SessionContext, plan: &datafusion::logical_expr::LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
    match ctx.state().create_physical_plan(plan).await {
        Err(e) if e.to_string().contains("SanityCheckPlan") => {
            let mut state = ctx.state();
            state.config_mut().options_mut().optimizer.join_reordering = false;
            Ok(state.create_physical_plan(plan).await?)
        }
        planned => Ok(planned?),
    }
}

/// Run a plan to completion. With `EHRFUSION_METRICS` set, the executed physical
/// plan and each operator's metrics (rows, time) go to standard error: the
/// profile of where a run spends its time.
pub async fn collect_with_metrics(ctx: &SessionContext, plan: datafusion::logical_expr::LogicalPlan, what: &str) -> Result<Vec<RecordBatch>> {
    let physical = physical_plan(ctx, &plan).await?;
    collect_physical(physical, ctx.task_ctx(), what).await
}

/// Run a physical plan, showing its metrics with `EHRFUSION_METRICS` set.
async fn collect_physical(physical: Arc<dyn ExecutionPlan>, task_ctx: Arc<TaskContext>, what: &str) -> Result<Vec<RecordBatch>> {
    let batches = datafusion::physical_plan::collect(physical.clone(), task_ctx).await?;
    if std::env::var_os("EHRFUSION_METRICS").is_some() {
        let shown = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(physical.as_ref()).indent(true);
        eprintln!("== {what}: executed plan with metrics ==\n{shown}");
    }
    Ok(batches)
}

/// [`collect_with_metrics`] in a task of its own, so that the caller can plan the
/// next piece of work (another block of patients) while this one runs.
pub async fn spawn_collect(ctx: &SessionContext, plan: datafusion::logical_expr::LogicalPlan, what: &'static str) -> Result<tokio::task::JoinHandle<Result<Vec<RecordBatch>>>> {
    let physical = physical_plan(ctx, &plan).await?;
    let task_ctx = ctx.task_ctx();
    Ok(tokio::spawn(collect_physical(physical, task_ctx, what)))
}

/// The rows of a task started by [`spawn_collect`].
pub async fn join_collect(task: tokio::task::JoinHandle<Result<Vec<RecordBatch>>>) -> Result<Vec<RecordBatch>> {
    task.await.map_err(|e| err!("a block of patients failed: {e}"))?
}

/// Stream a plan's rows into `sink`; with `EHRFUSION_METRICS` set, the executed
/// plan with each operator's metrics goes to standard error once the stream ends.
async fn stream_with_metrics(
    ctx: &SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
    what: &str,
    mut sink: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let physical = physical_plan(ctx, &plan).await?;
    // The plan's last operators (the merge into patient order) run in a task of
    // their own, so that the sink's work on a batch (encoding it into a file, on this
    // thread) overlaps with computing the next one.
    let rows = datafusion::physical_plan::execute_stream(physical.clone(), ctx.task_ctx())?;
    let mut rows = datafusion::physical_plan::common::spawn_buffered(rows, 2);
    while let Some(batch) = rows.next().await {
        sink(batch?)?;
    }
    if std::env::var_os("EHRFUSION_METRICS").is_some() {
        let shown = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(physical.as_ref()).indent(true);
        eprintln!("== {what}: executed plan with metrics ==\n{shown}");
    }
    Ok(())
}

/// The rows of one output table.
pub struct TableResult {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    pub batches: Vec<RecordBatch>,
}

impl TableResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

pub struct Results {
    pub dataset: TableResult,
    pub event_tables: Vec<TableResult>,
}

/// Run a prepared definition over opened tables.
pub async fn execute(ctx: &SessionContext, prepared: &Prepared, providers: &Providers) -> Result<Results> {
    execute_blocks(ctx, prepared, providers, &[PatientRange::default()]).await
}

/// Run a prepared definition block of patients by block (see [`source::blocks`]),
/// keeping the results in memory, in patient order.
pub async fn execute_blocks(ctx: &SessionContext, prepared: &Prepared, providers: &Providers, blocks: &[PatientRange]) -> Result<Results> {
    let mut dataset = TableResult { name: "dataset".into(), columns: prepared.dataset_columns(), batches: vec![] };
    let mut event_tables: Vec<TableResult> = prepared
        .analysis
        .event_tables
        .iter()
        .map(|t| TableResult { name: t.name.clone(), columns: prepared.event_table_columns(&t.name), batches: vec![] })
        .collect();
    each_block(ctx, prepared, providers, blocks, |table, batch| {
        match table {
            0 => dataset.batches.push(batch),
            i => event_tables[i - 1].batches.push(batch),
        }
        Ok(())
    })
    .await?;
    Ok(Results { dataset, event_tables })
}

/// The one loop over blocks: each block's dataset rows (table 0), then its rows of
/// each event table (table i + 1), handed to `sink` batch by batch, in patient order.
async fn each_block(
    ctx: &SessionContext,
    prepared: &Prepared,
    providers: &Providers,
    blocks: &[PatientRange],
    mut sink: impl FnMut(usize, RecordBatch) -> Result<()>,
) -> Result<()> {
    let progress = progress_bar(blocks.len());
    let at_once = crate::cluster::stages::blocks_at_once(ctx);
    if at_once < 2 {
        // Locally a block uses every core: blocks run one by one, their rows streamed.
        for range in blocks {
            block_rows(ctx, prepared, providers, *range, &mut sink).await?;
            progress.inc(1);
        }
    } else {
        // On a cluster one block's jobs rarely fill every executor: several run at
        // once, and each block's rows wait here until the blocks before it are handed on.
        let mut blocks = futures::stream::iter(blocks)
            .map(|range| async move {
                let mut rows = Vec::new();
                block_rows(ctx, prepared, providers, *range, |table, batch| {
                    rows.push((table, batch));
                    Ok(())
                })
                .await?;
                Ok::<_, crate::error::Error>(rows)
            })
            .buffered(at_once);
        while let Some(rows) = blocks.next().await {
            for (table, batch) in rows? {
                sink(table, batch)?;
            }
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    Ok(())
}

/// One block of patients: its stages, then its dataset rows and event tables' rows.
async fn block_rows(
    ctx: &SessionContext,
    prepared: &Prepared,
    providers: &Providers,
    range: PatientRange,
    mut sink: impl FnMut(usize, RecordBatch) -> Result<()>,
) -> Result<()> {
    let event_tables = &prepared.analysis.event_tables;
    let mut planner = Planner::new(&prepared.analysis, providers).for_patients(range).all_tables_patients(prepared.patients_from_all_tables);
    planner.materialise_stages(ctx).await?;
    let mut ids = Vec::new();
    stream_with_metrics(ctx, planner.dataset_plan()?, "the dataset", |batch| {
        if !event_tables.is_empty() {
            ids.push(batch.project(&[0])?);
        }
        sink(0, batch)
    })
    .await?;
    if !event_tables.is_empty() {
        let population = population_table(&ids)?;
        for (i, t) in event_tables.iter().enumerate() {
            stream_with_metrics(ctx, planner.event_table_plan(t, &population)?, &format!("event table {}", t.name), |batch| sink(i + 1, batch)).await?;
        }
    }
    Ok(())
}

fn population_table(dataset: &[RecordBatch]) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let schema = Arc::new(ArrowSchema::new(vec![Field::new("patient_id", DataType::Int64, false)]));
    let batches = dataset
        .iter()
        .map(|b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().expect("patient_id").clone();
            Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)])?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// Run a prepared definition block of patients by block (see [`source::blocks`]),
/// streaming each block's rows into the output files, which appear only when every
/// block is written. Blocks are in patient order, so the outputs are too.
pub async fn execute_to_files(
    ctx: &SessionContext,
    prepared: &Prepared,
    providers: &Providers,
    blocks: &[PatientRange],
    destination: &Destination,
) -> Result<()> {
    let event_tables = &prepared.analysis.event_tables;
    let mut writers = match destination {
        Destination::File(path, format) => {
            if !event_tables.is_empty() {
                bail!(
                    "--output {}: this dataset has event tables ({}); write them all to a directory, e.g. --output output/:{}",
                    path.display(),
                    event_tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
                    format.extension()
                );
            }
            vec![TableWriter::create(path, *format, prepared.dataset_columns())?]
        }
        Destination::Directory(dir, format, extension) => {
            let mut w = vec![TableWriter::create(&dir.join(format!("dataset.{extension}")), *format, prepared.dataset_columns())?];
            for t in event_tables {
                w.push(TableWriter::create(&dir.join(format!("{}.{extension}", t.name)), *format, prepared.event_table_columns(&t.name))?);
            }
            w
        }
        Destination::Console => bail!("the console is not a file destination"),
    };
    each_block(ctx, prepared, providers, blocks, |table, batch| writers[table].write(&batch)).await?;
    commit(writers.into_iter().map(TableWriter::finish).collect::<Result<Vec<_>>>()?)
}

/// Progress over blocks of patients, on a terminal and when there is more than one.
fn progress_bar(blocks: usize) -> ProgressBar {
    if blocks < 2 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(blocks as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("patient blocks {bar:40} {pos}/{len} ({elapsed}, about {eta} left)");
    bar.set_style(style.unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// The plans of a definition, stage by stage, as DataFusion optimises them; with
/// `cluster` (partitions per stage), each followed by the stages a Ballista cluster
/// would run it in.
pub async fn explain(ctx: &SessionContext, prepared: &Prepared, cluster: Option<usize>) -> Result<String> {
    let providers = prepared.open_tables(Tables::Empty, 1)?;
    let mut planner = Planner::new(&prepared.analysis, &providers);
    let mut out = String::new();
    let shown = |plan: &datafusion::logical_expr::LogicalPlan| -> Result<String> { Ok(ctx.state().optimize(plan)?.display_indent().to_string()) };
    let stages = planner.stages_to_materialise();
    for k in 0..stages {
        let plan = planner.next_stage_plan()?;
        out.push_str(&format!("== stage {k}: patient-level values that stage {} reads ==\n{}\n\n", k + 1, shown(&plan)?));
        if let Some(partitions) = cluster {
            out.push_str(&format!("{}\n", crate::cluster::explain(&plan, partitions).await?));
        }
        planner.push_stage(placeholder(&plan)?);
    }
    let plan = planner.dataset_plan()?;
    out.push_str(&format!("== stage {stages}: dataset ==\n{}\n", shown(&plan)?));
    if let Some(partitions) = cluster {
        out.push_str(&format!("\n{}", crate::cluster::explain(&plan, partitions).await?));
    }
    if !prepared.analysis.event_tables.is_empty() {
        let empty = population_table(&[])?;
        for t in &prepared.analysis.event_tables {
            let plan = planner.event_table_plan(t, &empty)?;
            out.push_str(&format!("\n== event table {} ==\n{}\n", t.name, shown(&plan)?));
            if let Some(partitions) = cluster {
                out.push_str(&format!("\n{}", crate::cluster::explain(&plan, partitions).await?));
            }
        }
    }
    Ok(out)
}

/// Write results to their destination; nothing is visible until all are written.
pub fn write(results: &Results, destination: &Destination) -> Result<String> {
    let tables = std::iter::once(&results.dataset).chain(&results.event_tables);
    match destination {
        Destination::Console => {
            let mut out = String::new();
            for t in tables {
                if !results.event_tables.is_empty() {
                    out.push_str(&format!("{}:\n", t.name));
                }
                out.push_str(&console_table(&t.columns, &t.batches)?);
                out.push('\n');
            }
            Ok(out)
        }
        Destination::File(path, format) => {
            if !results.event_tables.is_empty() {
                bail!(
                    "--output {}: this dataset has event tables ({}); write them all to a directory, e.g. --output output/:{}",
                    path.display(),
                    results.event_tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
                    format.extension()
                );
            }
            let mut w = TableWriter::create(path, *format, results.dataset.columns.clone())?;
            for b in &results.dataset.batches {
                w.write(b)?;
            }
            commit(vec![w.finish()?])?;
            Ok(String::new())
        }
        Destination::Directory(dir, format, extension) => {
            let mut pending = Vec::new();
            for t in tables {
                let path = dir.join(format!("{}.{extension}", t.name));
                let mut w = TableWriter::create(&path, *format, t.columns.clone())?;
                for b in &t.batches {
                    w.write(b)?;
                }
                pending.push(w.finish()?);
            }
            commit(pending)?;
            Ok(String::new())
        }
    }
}
