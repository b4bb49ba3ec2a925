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

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DFResult, Statistics, exec_datafusion_err};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
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

/// A parquet [`ListingTable`] (whose schema declares the code columns as
/// dictionaries) whose scans decode each file's code columns as dictionaries.
#[derive(Debug)]
pub struct DictionaryCodes {
    inner: ListingTable,
    /// Each file's physical Arrow schema with dictionary code columns, by its
    /// location as DataFusion lists it.
    files: HashMap<String, SchemaRef>,
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
    /// The parquet files at `urls`, whose code `columns` are strings in
    /// `file_schemas` (each file's physical schema, by location), as a table of
    /// `schema` (canonical types).
    pub fn new(urls: Vec<ListingTableUrl>, schema: &Schema, file_schemas: &HashMap<String, SchemaRef>, columns: Vec<String>, late: bool) -> DFResult<Option<Self>> {
        let files: HashMap<String, SchemaRef> =
            file_schemas.iter().filter_map(|(location, s)| Some((location.clone(), with_dictionaries(s, &columns)?))).collect();
        if files.is_empty() {
            return Ok(None);
        }
        let schema = with_dictionaries(schema, &columns).unwrap_or_else(|| Arc::new(schema.clone()));
        Ok(Some(DictionaryCodes { inner: typed::listing(urls, schema, late)?, files, columns, late }))
    }

    /// The same table, its scans' filters evaluated inside the parquet reader.
    pub fn late_materialising(&self) -> DFResult<Self> {
        let inner = typed::listing(self.inner.table_paths().clone(), self.inner.schema(), true)?;
        Ok(DictionaryCodes { inner, files: self.files.clone(), columns: self.columns.clone(), late: true })
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
        let mut file_schemas = HashMap::new();
        for url in &urls {
            let path = url.get_url().to_file_path().map_err(|()| exec_datafusion_err!("{}: not a local file", url.as_str()))?;
            let file = std::fs::File::open(&path).map_err(|e| exec_datafusion_err!("{}: {e}", path.display()))?;
            let footer = ArrowReaderMetadata::load(&file, Default::default())?;
            file_schemas.insert(url.prefix().as_ref().to_string(), footer.schema().clone());
        }
        // `schema` already has the dictionaries; the table's is the same either way.
        let plain = Schema::new(schema.fields().clone());
        DictionaryCodes::new(urls, &plain, &file_schemas, encoded.columns, encoded.late)?
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
        self.decode_dictionaries(plan)
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> DFResult<ScanResult> {
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        Ok(ScanResult::new(self.decode_dictionaries(plan)?))
    }
}
