//! Parquet tables whose code columns are decoded as dictionaries.
//!
//! Parquet stores a code column as a dictionary of its distinct codes plus a small
//! key per row. Decoded as plain strings, every row's code is copied out of that
//! dictionary (a quarter of all CPU in the profile of a codelist query); decoded as
//! an Arrow dictionary, the keys are the only per-row work, and a codelist test
//! looks up each distinct code once (see `compile::codesets`). The planner casts
//! the columns back to strings once the scan's filter has dropped the rows no value
//! reads (see `compile::plan`), so nothing above the scan sees dictionaries.
//!
//! DataFusion reads a parquet file with the Arrow types its footer declares and then
//! casts them to the table's; it decodes dictionaries only when each file is given
//! its physical schema with dictionary types, which [`DictionaryCodes`] adds to the
//! files of the scans its inner [`ListingTable`] plans.
//!
//! Its scans for a block of patients (see `source::blocks`) are also split across
//! partitions by the row groups that hold the block's patients. DataFusion splits a
//! file into byte ranges of equal size whatever the filter, and a block's row groups
//! of a patient-ordered file all lie in one of those ranges: one core did the work.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DFResult, ScalarValue, Statistics, exec_datafusion_err};
use datafusion::datasource::listing::{FileRange, PartitionedFile};
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::file::metadata::ParquetMetaData;
use serde::{Deserialize, Serialize};

use super::typed;

/// The type code columns are decoded as.
pub fn code_dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Whether a column of this Arrow type in a file can be decoded as a dictionary of strings.
fn holds_strings(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => matches!(values.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        _ => false,
    }
}

/// `schema` with the named string columns as dictionaries (`None`: none of them is there).
pub fn with_dictionaries(schema: &Schema, columns: &[String]) -> Option<SchemaRef> {
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if columns.iter().any(|c| c == f.name()) && holds_strings(f.data_type()) && f.data_type() != &code_dictionary() {
                changed = true;
                f.as_ref().clone().with_data_type(code_dictionary())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

/// What a scan needs from a file's footer: its physical schema, and where its row
/// groups start and which patients each holds (empty when its statistics do not say).
#[derive(Debug, Clone)]
pub struct Footer {
    pub schema: SchemaRef,
    row_groups: Vec<RowGroupAt>,
}

/// One row group: the offset of its first page (DataFusion reads a row group in the
/// partition whose byte range holds that offset), its size, and its patients.
#[derive(Debug, Clone, Copy)]
struct RowGroupAt {
    start: i64,
    bytes: i64,
    first: i64,
    last: i64,
}

impl Footer {
    /// The footer of a file whose `patient_id` is leaf column `pid_at` (if known).
    pub fn of(metadata: &ParquetMetaData, schema: SchemaRef, pid_at: Option<usize>) -> Footer {
        let row_groups = pid_at
            .and_then(|at| {
                metadata
                    .row_groups()
                    .iter()
                    .map(|rg| {
                        let first_column = rg.column(0);
                        let start = first_column.dictionary_page_offset().unwrap_or_else(|| first_column.data_page_offset());
                        let (first, last) = super::blocks::patients_in(rg, at)?;
                        Some(RowGroupAt { start, bytes: rg.compressed_size(), first, last })
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or_default();
        Footer { schema, row_groups }
    }
}

/// A parquet [`ListingTable`] (whose schema declares the code columns as
/// dictionaries) whose scans decode each file's code columns as dictionaries.
#[derive(Debug)]
pub struct DictionaryCodes {
    inner: ListingTable,
    /// Each file's physical Arrow schema with dictionary code columns, by its
    /// location as DataFusion lists it.
    files: HashMap<String, SchemaRef>,
    /// Each file's row groups, by its location.
    row_groups: HashMap<String, Vec<RowGroupAt>>,
    /// The dictionary columns.
    columns: Vec<String>,
    /// Whether scans evaluate their filters inside the parquet reader (see
    /// `typed::late_materialising`).
    late: bool,
}

/// What a cluster needs to open the same table again (its footers are read there).
#[derive(Serialize, Deserialize)]
struct Encoded {
    urls: Vec<String>,
    columns: Vec<String>,
    late: bool,
}

/// Marks a [`DictionaryCodes`] table among the table encodings of a cluster plan.
pub const ENCODED: &[u8] = b"ehrfusion:dictionary-codes:1\n";

impl DictionaryCodes {
    /// The parquet files at `urls`, whose code `columns` are strings in their
    /// `footers` (by location), as a table of `schema` (canonical types).
    pub fn new(urls: Vec<ListingTableUrl>, schema: &Schema, footers: &HashMap<String, Footer>, columns: Vec<String>, late: bool) -> DFResult<Option<Self>> {
        let files: HashMap<String, SchemaRef> =
            footers.iter().filter_map(|(location, f)| Some((location.clone(), with_dictionaries(&f.schema, &columns)?))).collect();
        if files.is_empty() {
            return Ok(None);
        }
        let row_groups = footers.iter().map(|(location, f)| (location.clone(), f.row_groups.clone())).collect();
        let schema = with_dictionaries(schema, &columns).unwrap_or_else(|| Arc::new(schema.clone()));
        Ok(Some(DictionaryCodes { inner: typed::listing(urls, schema, late)?, files, row_groups, columns, late }))
    }

    /// The same table, its scans' filters evaluated inside the parquet reader.
    pub fn late_materialising(&self) -> DFResult<Self> {
        let inner = typed::listing(self.inner.table_paths().clone(), self.inner.schema(), true)?;
        Ok(DictionaryCodes { inner, files: self.files.clone(), row_groups: self.row_groups.clone(), columns: self.columns.clone(), late: true })
    }

    pub fn encode(&self) -> DFResult<Vec<u8>> {
        let encoded = Encoded { urls: self.inner.table_paths().iter().map(|u| u.as_str().to_string()).collect(), columns: self.columns.clone(), late: self.late };
        let mut buf = ENCODED.to_vec();
        buf.extend(serde_json::to_vec(&encoded).map_err(|e| exec_datafusion_err!("encoding a parquet table: {e}"))?);
        Ok(buf)
    }

    /// The table `encode` wrote (without its marker), of table `schema`, its
    /// files' footers read again where it is decoded.
    pub fn decode(buf: &[u8], schema: SchemaRef) -> DFResult<Self> {
        let encoded: Encoded = serde_json::from_slice(buf).map_err(|e| exec_datafusion_err!("decoding a parquet table: {e}"))?;
        let urls = encoded.urls.iter().map(|u| ListingTableUrl::parse(u)).collect::<DFResult<Vec<_>>>()?;
        let mut footers = HashMap::new();
        for url in &urls {
            let path = url.get_url().to_file_path().map_err(|()| exec_datafusion_err!("{}: not a local file", url.as_str()))?;
            let file = std::fs::File::open(&path).map_err(|e| exec_datafusion_err!("{}: {e}", path.display()))?;
            let footer = ArrowReaderMetadata::load(&file, Default::default())?;
            let pid_at = footer.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.name() == "patient_id");
            footers.insert(url.prefix().as_ref().to_string(), Footer::of(footer.metadata(), footer.schema().clone(), pid_at));
        }
        // `schema` already has the dictionaries; the table's is the same either way.
        let plain = Schema::new(schema.fields().clone());
        DictionaryCodes::new(urls, &plain, &footers, encoded.columns, encoded.late)?
            .ok_or_else(|| exec_datafusion_err!("decoding a parquet table: no dictionary columns"))
    }

    /// `plan` with every file of its parquet scans given its dictionary schema.
    fn decode_dictionaries(&self, plan: Arc<dyn ExecutionPlan>) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(exec) = node.downcast_ref::<DataSourceExec>() else { return Ok(Transformed::no(node)) };
            let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() else { return Ok(Transformed::no(node)) };
            let mut config = config.clone();
            for group in config.file_groups.iter_mut() {
                for i in 0..group.len() {
                    let file = &mut group[i];
                    if let Some(schema) = self.files.get(file.object_meta.location.as_ref()) {
                        file.arrow_schema = Some(schema.clone());
                    }
                }
            }
            Ok(Transformed::yes(DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    /// `plan` with its parquet scans, when `filters` bound `patient_id`, split into
    /// up to `partitions` byte ranges holding only the row groups of those patients,
    /// about equal in size. Row groups outside the bounds are in no range; the scan's
    /// own pruning would skip them anyway.
    fn split_for_patients(&self, plan: Arc<dyn ExecutionPlan>, filters: &[Expr], partitions: usize) -> DFResult<Arc<dyn ExecutionPlan>> {
        let (low, high) = patient_bounds(filters);
        if partitions < 2 || (low.is_none() && high.is_none()) {
            return Ok(plan);
        }
        plan.transform_down(|node| {
            let split = match node.downcast_ref::<DataSourceExec>().and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>()) {
                Some(config) => self.block_groups(config, low, high, partitions).map(|groups| {
                    let mut config = config.clone();
                    config.file_groups = groups;
                    config
                }),
                None => None,
            };
            Ok(match split {
                Some(config) => Transformed::yes(DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    /// The file groups of [`Self::split_for_patients`] for one scan, if its files'
    /// row groups are known and more than one holds patients within the bounds.
    fn block_groups(&self, config: &FileScanConfig, low: Option<i64>, high: Option<i64>, partitions: usize) -> Option<Vec<FileGroup>> {
        // The block's row groups, file by file in file order.
        let mut pieces: Vec<(&PartitionedFile, RowGroupAt)> = Vec::new();
        let mut seen = HashSet::new();
        for file in config.file_groups.iter().flat_map(|g| g.iter()) {
            let location = file.object_meta.location.as_ref();
            let row_groups = self.row_groups.get(location).filter(|r| !r.is_empty() && file.range.is_none())?;
            if seen.insert(location) {
                let wanted = row_groups.iter().filter(|rg| low.is_none_or(|l| rg.last >= l) && high.is_none_or(|h| rg.first < h));
                pieces.extend(wanted.map(|rg| (file, *rg)));
            }
        }
        if pieces.len() < 2 {
            return None;
        }
        // Consecutive row groups into partitions of about equal bytes; a run of one
        // file's row groups in a partition becomes one byte range.
        let total: i64 = pieces.iter().map(|(_, rg)| rg.bytes).sum();
        let share = total / partitions as i64 + 1;
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new()];
        let mut filled = 0i64;
        for (file, rg) in pieces {
            if filled >= share && groups.len() < partitions {
                groups.push(Vec::new());
                filled = 0;
            }
            filled += rg.bytes;
            let group = groups.last_mut().expect("a group");
            match group.last_mut() {
                Some(run) if run.object_meta.location == file.object_meta.location => {
                    run.range.as_mut().expect("a run has a range").end = rg.start + rg.bytes;
                }
                _ => {
                    let mut run = file.clone();
                    run.range = Some(FileRange { start: rg.start, end: rg.start + rg.bytes });
                    // The file's statistics are not a part's.
                    run.statistics = None;
                    group.push(run);
                }
            }
        }
        Some(groups.into_iter().map(FileGroup::new).collect())
    }
}

/// The bounds `filters` put on `patient_id`: at least `low`, below `high` (as the
/// planner writes a block's range, `patient_id >= a AND patient_id < b`).
fn patient_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let (mut low, mut high) = (None, None);
    for e in filters.iter().flat_map(split_conjunction) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { continue };
        let (Expr::Column(c), Expr::Literal(ScalarValue::Int64(Some(v)), _)) = (left.as_ref(), right.as_ref()) else { continue };
        if c.name != "patient_id" {
            continue;
        }
        match op {
            Operator::GtEq => low = Some(low.map_or(*v, |l: i64| l.max(*v))),
            Operator::Gt => low = Some(low.map_or(*v + 1, |l: i64| l.max(*v + 1))),
            Operator::Lt => high = Some(high.map_or(*v, |h: i64| h.min(*v))),
            Operator::LtEq => high = Some(high.map_or(*v + 1, |h: i64| h.min(*v + 1))),
            _ => {}
        }
    }
    (low, high)
}

#[async_trait::async_trait]
impl TableProvider for DictionaryCodes {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> DFResult<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        self.split_for_patients(self.decode_dictionaries(plan)?, filters, state.config_options().execution.target_partitions)
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> DFResult<ScanResult> {
        let filters = args.filters().map(<[Expr]>::to_vec).unwrap_or_default();
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        let plan = self.split_for_patients(self.decode_dictionaries(plan)?, &filters, state.config_options().execution.target_partitions)?;
        Ok(ScanResult::new(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::prelude::{SessionConfig, SessionContext, col, lit};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// Patients 0..1000 in order, one row each, in ten row groups of 100 rows: the
    /// file as a table, and the offset each row group starts at.
    fn events(dir: &std::path::Path) -> (DictionaryCodes, Vec<i64>) {
        let schema = Arc::new(Schema::new(vec![Field::new("patient_id", DataType::Int64, false), Field::new("code", DataType::Utf8, true)]));
        let path = dir.join("events.parquet");
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(100)).build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), Some(props)).unwrap();
        let codes = StringArray::from_iter_values((0..1000).map(|i| format!("c{}", i % 7)));
        writer.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..1000)), Arc::new(codes)]).unwrap()).unwrap();
        writer.close().unwrap();
        let url = ListingTableUrl::parse(path.to_str().unwrap()).unwrap();
        let footer = ArrowReaderMetadata::load(&std::fs::File::open(&path).unwrap(), Default::default()).unwrap();
        let found = Footer::of(footer.metadata(), footer.schema().clone(), Some(0));
        let starts = found.row_groups.iter().map(|rg| rg.start).collect();
        let footers = HashMap::from([(url.prefix().as_ref().to_string(), found)]);
        (DictionaryCodes::new(vec![url], &schema, &footers, vec!["code".into()], false).unwrap().unwrap(), starts)
    }

    /// The row groups (by index) each partition of a planned scan reads.
    fn partitions(plan: &Arc<dyn ExecutionPlan>, starts: &[i64]) -> Vec<Vec<usize>> {
        let exec = plan.downcast_ref::<DataSourceExec>().expect("a parquet scan");
        let config = exec.data_source().downcast_ref::<FileScanConfig>().expect("files");
        let read = |f: &PartitionedFile| -> Vec<usize> {
            let range = f.range.clone().unwrap_or(FileRange { start: 0, end: i64::MAX });
            (0..starts.len()).filter(|&i| starts[i] >= range.start && starts[i] < range.end).collect()
        };
        config.file_groups.iter().map(|g| g.iter().flat_map(read).collect()).collect()
    }

    #[test]
    fn a_block_of_patients_is_split_across_partitions_by_its_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (table, starts) = events(dir.path());
        assert_eq!(starts.len(), 10);
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let block = [col("patient_id").gt_eq(lit(250i64)).and(col("patient_id").lt(lit(650i64)))];
        let plan = rt.block_on(table.scan(&ctx.state(), None, &block, None)).unwrap();
        // Row groups 2-6 hold patients 250-649: every one in exactly one partition,
        // both partitions with work, nothing else read.
        let split = partitions(&plan, &starts);
        assert_eq!(split.len(), 2, "{split:?}");
        assert!(split.iter().all(|p| !p.is_empty()), "{split:?}");
        assert_eq!(split.concat(), vec![2, 3, 4, 5, 6]);
        // A bound on one side only (the first or last block) is split the same way.
        let first = [col("patient_id").lt(lit(300i64))];
        let plan = rt.block_on(table.scan(&ctx.state(), None, &first, None)).unwrap();
        assert_eq!(partitions(&plan, &starts).concat(), vec![0, 1, 2]);
        // Without bounds on patients the scan is DataFusion's own.
        let plan = rt.block_on(table.scan(&ctx.state(), None, &[col("code").eq(lit("c1"))], None)).unwrap();
        assert_eq!(partitions(&plan, &starts), vec![(0..10).collect::<Vec<_>>()]);
        // And the rows are the block's, once each.
        ctx.register_table("events", Arc::new(table)).unwrap();
        let counted = rt.block_on(async {
            let df = ctx.sql("SELECT count(*) AS n, count(DISTINCT patient_id) AS d FROM events WHERE patient_id >= 250 AND patient_id < 650").await?;
            df.collect().await
        });
        let batches = counted.unwrap();
        let n = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        let d = batches[0].column(1).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!((n, d), (400, 400));
    }

    #[test]
    fn patient_bounds_are_read_from_conjunctions() {
        let f = [col("patient_id").gt_eq(lit(5i64)).and(col("code").eq(lit("x"))), col("patient_id").lt_eq(lit(9i64))];
        assert_eq!(patient_bounds(&f), (Some(5), Some(10)));
        assert_eq!(patient_bounds(&[col("patient_id").gt(lit(5i64))]), (Some(6), None));
        assert_eq!(patient_bounds(&[col("other_id").lt(lit(5i64))]), (None, None));
        // Two bounds on one side: the tighter holds.
        assert_eq!(patient_bounds(&[col("patient_id").lt(lit(5i64)), col("patient_id").lt(lit(3i64))]), (None, Some(3)));
    }
}
