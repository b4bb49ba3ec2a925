//! Shared scans: the extraction jobs of one pipeline request (`ehrfusion run --data`)
//! often read the same tables. Each parquet column a job reads is decoded once, kept
//! in memory, and handed to the later jobs that read it, so that only the first job
//! pays for decoding it. What is kept is bounded by a budget: a table that would not
//! fit is streamed from its files as when nothing is shared.
//!
//! Columns are decoded row group by row group with a fixed batch size, so columns
//! decoded by different jobs line up batch for batch and join into tables again.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{Field, Int64Type, Schema as ArrowSchema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use super::{split, table_arrow_schema};
use crate::error::Result;
use crate::model::schema::TableSchema;
use crate::model::{Node, QueryModel};
use crate::{bail, err};

/// Rows per decoded batch (a row group's last batch may be shorter): the plans' own
/// batch size. Larger batches made measures over many intervals 1.5x slower, as each
/// batch is repeated once per interval (measured at 1M patients, 36-60 intervals).
const BATCH_ROWS: usize = crate::run::BATCH_ROWS;

/// One column of one file, as it was when decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ColumnKey {
    file: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    column: String,
}

/// A decoded column: its batches, in file order.
struct Decoded {
    chunks: Arc<Vec<ArrayRef>>,
    bytes: usize,
    last_used: u64,
}

#[derive(Default)]
struct Held {
    columns: HashMap<ColumnKey, Decoded>,
    bytes: usize,
    clock: u64,
}

/// How one table was read, for the job's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableUse {
    /// Columns found already decoded.
    pub reused: usize,
    /// Columns decoded now.
    pub decoded: usize,
}

/// Decoded columns shared by the jobs of one request.
pub struct SharedScans {
    budget: usize,
    held: Mutex<Held>,
}

static CURRENT: Mutex<Option<Arc<SharedScans>>> = Mutex::new(None);

/// Shares scans until dropped (the end of a request).
pub struct Sharing(Arc<SharedScans>);

impl Drop for Sharing {
    fn drop(&mut self) {
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.0)) {
            *current = None;
        }
    }
}

/// Share the scans of the real tables that jobs read from now on, keeping at most
/// `budget` bytes of decoded columns.
pub fn enable(budget: usize) -> Sharing {
    let scans = Arc::new(SharedScans { budget, held: Mutex::new(Held::default()) });
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(scans.clone());
    Sharing(scans)
}

pub(super) fn current() -> Option<Arc<SharedScans>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The columns each table's rows are read for: every column any node selects
/// (from the table or from a frame over it). A superset is harmless; a column left
/// out would make planning fail, never give a wrong answer.
pub fn columns_used(model: &QueryModel) -> HashMap<String, BTreeSet<String>> {
    let mut used: HashMap<String, BTreeSet<String>> = HashMap::new();
    for node in &model.nodes {
        let Node::SelectColumn { source, name } = node else { continue };
        let mut at = *source;
        let table = loop {
            match &model.nodes[at] {
                Node::SelectTable { table } | Node::SelectPatientTable { table } => break Some(table),
                Node::Filter { source, .. } | Node::Sort { source, .. } | Node::PickOneRowPerPatient { source, .. } => at = *source,
                _ => break None,
            }
        };
        if let Some(table) = table {
            used.entry(table.clone()).or_default().insert(name.clone());
        }
    }
    used
}

impl SharedScans {
    pub fn held_bytes(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    /// The table's `columns` (with patient_id) from its parquet `files`, already
    /// checked against its schema, as an in-memory table; `None` when they would
    /// not fit in the budget (the caller streams them instead).
    pub(super) fn table(&self, files: &[PathBuf], table: &TableSchema, columns: &BTreeSet<String>, threads: usize) -> Result<Option<(Arc<dyn TableProvider>, TableUse)>> {
        let fields: Vec<Field> =
            table_arrow_schema(table).fields().iter().filter(|f| f.name() == "patient_id" || columns.contains(f.name())).map(|f| f.as_ref().clone()).collect();
        let mut wanted = Vec::new();
        for path in files {
            let meta = std::fs::metadata(path).map_err(|e| err!("{}: {e}", path.display()))?;
            for f in &fields {
                wanted.push(ColumnKey { file: path.clone(), len: meta.len(), modified: meta.modified().ok(), column: f.name().clone() });
            }
        }
        let mut usage = TableUse::default();
        // Decode what is missing, after making room for it.
        let missing: Vec<&ColumnKey> = {
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            wanted.iter().filter(|k| !held.columns.contains_key(k)).collect()
        };
        usage.reused = wanted.len() - missing.len();
        usage.decoded = missing.len();
        if !missing.is_empty() {
            // Each file's footer is read once, for all its columns.
            let mut footers: HashMap<&Path, ArrowReaderMetadata> = HashMap::new();
            for key in &missing {
                if !footers.contains_key(key.file.as_path()) {
                    footers.insert(&key.file, footer(&key.file)?);
                }
            }
            let mut estimate = 0usize;
            for key in &missing {
                estimate += estimate_bytes(&key.file, &footers[key.file.as_path()], &key.column)?;
            }
            if !self.make_room(estimate, &wanted) {
                return Ok(None);
            }
            for key in missing {
                let field = fields.iter().find(|f| *f.name() == key.column).expect("wanted column");
                let chunks = decode(&key.file, &footers[key.file.as_path()], field, threads)?;
                let bytes = chunks.iter().map(|c| c.get_array_memory_size()).sum();
                let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                held.bytes += bytes;
                held.columns.insert(key.clone(), Decoded { chunks: Arc::new(chunks), bytes, last_used: 0 });
            }
        }
        // Join the columns of each file into batches again.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.clock += 1;
        let now = held.clock;
        let schema = Arc::new(ArrowSchema::new(fields.clone()));
        let mut batches = Vec::new();
        for per_file in wanted.chunks(fields.len()) {
            let mut cols: Vec<Arc<Vec<ArrayRef>>> = Vec::with_capacity(per_file.len());
            for key in per_file {
                let d = held.columns.get_mut(key).expect("decoded above");
                d.last_used = now;
                cols.push(d.chunks.clone());
            }
            let n = cols[0].len();
            if cols.iter().any(|c| c.len() != n) {
                bail!("{}: columns decoded at different times do not line up (the file changed while running?)", per_file[0].file.display());
            }
            for i in 0..n {
                batches.push(RecordBatch::try_new(schema.clone(), cols.iter().map(|c| c[i].clone()).collect())?);
            }
        }
        drop(held);
        Ok(Some((Arc::new(PatientBatches::new(schema, batches, threads)), usage)))
    }

    /// Free the least recently used columns (not `keep`) until `bytes` more fit.
    fn make_room(&self, bytes: usize, keep: &[ColumnKey]) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let kept: usize = keep.iter().filter_map(|k| held.columns.get(k)).map(|d| d.bytes).sum();
        if kept + bytes > self.budget {
            return false;
        }
        while held.bytes + bytes > self.budget {
            let Some(oldest) = held.columns.iter().filter(|(k, _)| !keep.contains(k)).min_by_key(|(_, d)| d.last_used).map(|(k, _)| k.clone()) else {
                return false;
            };
            let freed = held.columns.remove(&oldest).expect("present").bytes;
            held.bytes -= freed;
        }
        true
    }
}

/// Decoded batches held in memory, each with the range of patients it holds. A job
/// that runs a block of patients at a time filters each scan by `patient_id`
/// bounds; the scan then reads only the batches that can hold those patients,
/// where a plain in-memory table would read every row for every block (measures
/// over 60 intervals at 1M patients run in ~40 blocks). The filter itself is kept.
#[derive(Debug)]
struct PatientBatches {
    schema: SchemaRef,
    /// (lowest, highest patient_id, batch).
    batches: Vec<(i64, i64, RecordBatch)>,
    partitions: usize,
}

impl PatientBatches {
    fn new(schema: SchemaRef, batches: Vec<RecordBatch>, partitions: usize) -> PatientBatches {
        let batches = batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                let ids = b.column(0).as_primitive::<Int64Type>();
                let lowest = arrow::compute::min(ids).unwrap_or(i64::MIN);
                let highest = arrow::compute::max(ids).unwrap_or(i64::MAX);
                (lowest, highest, b)
            })
            .collect();
        PatientBatches { schema, batches, partitions }
    }
}

/// The `[first, end)` patient_id bounds that `filters` (all of which hold) set.
fn patient_bounds(filters: &[Expr]) -> (i64, i64) {
    let (mut first, mut end) = (i64::MIN, i64::MAX);
    for part in filters.iter().flat_map(|f| split_conjunction(f)) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = part else { continue };
        let (Expr::Column(c), Expr::Literal(ScalarValue::Int64(Some(v)), _)) = (left.as_ref(), right.as_ref()) else { continue };
        if c.name != "patient_id" {
            continue;
        }
        match op {
            Operator::GtEq => first = first.max(*v),
            Operator::Gt => first = first.max(v.saturating_add(1)),
            Operator::Lt => end = end.min(*v),
            Operator::LtEq => end = end.min(v.saturating_add(1)),
            _ => {}
        }
    }
    (first, end)
}

#[async_trait::async_trait]
impl TableProvider for PatientBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let (first, end) = patient_bounds(filters);
        let chosen: Vec<RecordBatch> = self.batches.iter().filter(|(lo, hi, _)| *hi >= first && *lo < end).map(|(_, _, b)| b.clone()).collect();
        MemTable::try_new(self.schema.clone(), split(chosen, self.partitions))?.scan(state, projection, filters, limit).await
    }
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| err!("{}: {e}", path.display()))
}

/// A parquet file's footer: its row groups and schema.
fn footer(path: &Path) -> Result<ArrowReaderMetadata> {
    ArrowReaderMetadata::load(&open(path)?, ArrowReaderOptions::default()).map_err(|e| err!("{}: not a readable parquet file: {e}", path.display()))
}

/// One row group's column, decoded and cast to its canonical type.
fn decode_row_group(path: &Path, footer: &ArrowReaderMetadata, field: &Field, row_group: usize) -> Result<Vec<ArrayRef>> {
    let shown = path.display();
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(open(path)?, footer.clone());
    let at = builder.schema().index_of(field.name()).map_err(|_| err!("{shown}: missing column '{}'", field.name()))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [at]);
    let rows = builder.with_projection(mask).with_row_groups(vec![row_group]).with_batch_size(BATCH_ROWS).build().map_err(|e| err!("{shown}: {e}"))?;
    let mut out = Vec::new();
    for batch in rows {
        let batch = batch.map_err(|e| err!("{shown}: {e}"))?;
        let col = batch.column(0);
        let col = if col.data_type() == field.data_type() { col.clone() } else { cast(col, field.data_type())? };
        if !field.is_nullable() && col.null_count() > 0 {
            bail!("{shown}: column '{}': patient_id must not be null", field.name());
        }
        out.push(col);
    }
    Ok(out)
}

/// A column of a file, its row groups decoded on `threads` threads, in order.
fn decode(path: &Path, footer: &ArrowReaderMetadata, field: &Field, threads: usize) -> Result<Vec<ArrayRef>> {
    let groups = footer.metadata().num_row_groups();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let parts: Mutex<Vec<(usize, Vec<ArrayRef>)>> = Mutex::new(Vec::with_capacity(groups));
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads.clamp(1, groups.max(1)))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if g >= groups {
                            return Ok(());
                        }
                        let part = decode_row_group(path, footer, field, g)?;
                        parts.lock().unwrap_or_else(|p| p.into_inner()).push((g, part));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| err!("{}: decoding a column panicked", path.display()))??;
        }
        Ok(())
    })?;
    let mut parts = parts.into_inner().unwrap_or_else(|p| p.into_inner());
    parts.sort_by_key(|(g, _)| *g);
    Ok(parts.into_iter().flat_map(|(_, p)| p).collect())
}

/// What a column will take in memory: its first row group decoded, scaled to all rows.
fn estimate_bytes(path: &Path, footer: &ArrowReaderMetadata, column: &str) -> Result<usize> {
    let meta = footer.metadata();
    let total: i64 = meta.row_groups().iter().map(|g| g.num_rows()).sum();
    let Some(first) = meta.row_groups().iter().position(|g| g.num_rows() > 0) else { return Ok(0) };
    let Ok(field) = footer.schema().field_with_name(column) else { return Ok(0) };
    let sample = decode_row_group(path, footer, &Field::new(column, field.data_type().clone(), true), first)?;
    let sample_bytes: usize = sample.iter().map(|c| c.get_array_memory_size()).sum();
    let sample_rows = meta.row_group(first).num_rows().max(1);
    Ok((sample_bytes as f64 * total as f64 / sample_rows as f64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_used_follows_frames_to_their_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/definitions/diagnoses.json");
        let model = crate::model::json::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let used = columns_used(&model);
        let names = |t: &str| used[t].iter().cloned().collect::<Vec<_>>();
        assert_eq!(names("clinical_events"), ["date", "snomedct_code"]);
        assert_eq!(names("patients"), ["date_of_birth", "sex"]);
        assert_eq!(names("ons_deaths"), ["date"]);
        assert_eq!(used.len(), 3);
    }

    fn key(column: &str) -> ColumnKey {
        ColumnKey { file: PathBuf::from("t.parquet"), len: 1, modified: None, column: column.into() }
    }

    fn holding(budget: usize, columns: &[(&str, usize, u64)]) -> SharedScans {
        let mut held = Held::default();
        for (name, bytes, last_used) in columns {
            held.columns.insert(key(name), Decoded { chunks: Arc::new(vec![]), bytes: *bytes, last_used: *last_used });
            held.bytes += bytes;
        }
        SharedScans { budget, held: Mutex::new(held) }
    }

    #[test]
    fn patient_bounds_come_from_the_blocks_filter() {
        use datafusion::prelude::{col, lit};
        let block = col("patient_id").gt_eq(lit(10i64)).and(col("patient_id").lt(lit(20i64)));
        assert_eq!(patient_bounds(&[block, col("date").gt(lit(5i64))]), (10, 20));
        assert_eq!(patient_bounds(&[col("patient_id").lt_eq(lit(7i64))]), (i64::MIN, 8));
        assert_eq!(patient_bounds(&[col("other").gt_eq(lit(10i64))]), (i64::MIN, i64::MAX));
    }

    #[test]
    fn room_is_made_by_freeing_the_least_recently_used_columns_not_wanted_now() {
        let scans = holding(100, &[("a", 40, 1), ("b", 40, 3), ("c", 20, 2)]);
        assert!(scans.make_room(30, &[key("b")]));
        let held = scans.held.lock().unwrap();
        // a (oldest) went; c stayed, as 40 + 20 + 30 fit; b is wanted.
        assert!(!held.columns.contains_key(&key("a")) && held.columns.contains_key(&key("b")) && held.columns.contains_key(&key("c")));
        assert_eq!(held.bytes, 60);
    }

    #[test]
    fn what_cannot_fit_beside_the_wanted_columns_is_not_kept() {
        let scans = holding(100, &[("a", 80, 1)]);
        assert!(!scans.make_room(30, &[key("a")]));
        assert_eq!(scans.held_bytes(), 80);
        assert!(scans.make_room(30, &[]));
        assert_eq!(scans.held_bytes(), 0);
        assert!(!holding(100, &[]).make_room(101, &[]));
    }
}
