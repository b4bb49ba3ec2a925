//! Reading typed files (parquet, Arrow IPC): the file's schema must hold every
//! column of the table with a compatible type; values are cast to canonical types.

use std::fs::File;
use std::path::Path;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use parquet::arrow::ProjectionMask;
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::{FileReader, StreamReader};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use std::collections::HashMap;

use super::dictionary::{self, DictionaryCodes};
use super::{Columns, table_arrow_schema};
use super::constraints;
use crate::error::Result;
use crate::model::schema::TableSchema;
use crate::model::types::ValueType;
use crate::{bail, err};

/// Check parquet files against a table without reading their rows (their footers
/// only, and the patient_id column of a patient-level table), and return a table
/// provider that streams them, reading only the columns and row groups a query needs.
pub fn parquet_table(paths: &[std::path::PathBuf], table: &TableSchema, columns: Columns, check_constraints: bool) -> Result<Arc<dyn TableProvider>> {
    let mut seen = std::collections::HashSet::new();
    let mut urls = Vec::with_capacity(paths.len());
    // Code columns are decoded as dictionaries (see `dictionary`): each file's
    // physical schema with those columns as dictionaries, by its location.
    let codes: Vec<String> = table.columns.iter().filter(|c| matches!(c.ty, ValueType::Code(_))).map(|c| c.name.clone()).collect();
    let mut file_schemas = HashMap::new();
    for path in paths {
        let shown = path.display();
        let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err!("{shown}: not a readable parquet file: {e}"))?;
        let indexes = check_schema(path, builder.schema(), table, columns)?;
        let file_schema = builder.schema().clone();
        let pid_at = indexes[0].expect("patient_id is always required");
        let metadata = builder.metadata().clone();
        // Null patient ids show in the footer's statistics (and, for patient-level
        // tables, in the read below).
        for rg in metadata.row_groups() {
            if rg.column(pid_at).statistics().and_then(|s| s.null_count_opt()).is_some_and(|n| n > 0) {
                bail!("{shown}: column 'patient_id': patient_id must not be null");
            }
        }
        // Constrained columns (categories, not null) are read and checked here, with
        // patient_id for a patient-level table (each patient once); the large event
        // tables have none, so their rows are not read before the query.
        let constrained: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| check_constraints && indexes[i + 1].is_some() && (c.constraints.not_null || c.constraints.categories.is_some()))
            .map(|(i, _)| i)
            .collect();
        if table.is_patient_level() || !constrained.is_empty() {
            let roots = std::iter::once(pid_at).chain(constrained.iter().filter_map(|&i| indexes[i + 1]));
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let reader = builder.with_projection(mask).build().map_err(|e| err!("{shown}: {e}"))?;
            let projected = arrow::array::RecordBatchReader::schema(&reader);
            let mut present = vec![false; table.columns.len()];
            constrained.iter().for_each(|&i| present[i] = true);
            let mut row = 0usize;
            for batch in reader {
                let batch = batch.map_err(|e| err!("{shown}: {e}"))?;
                let batches = conform_from(path, &projected, vec![batch], table, Columns::MissingAreNull, row)?;
                constraints::check(path, table, &batches, &present, constraints::Place::Rows { before: row })?;
                let ids = batches[0].column(0).as_any().downcast_ref::<Int64Array>().expect("canonical patient_id");
                for i in 0..ids.len() {
                    row += 1;
                    if table.is_patient_level() && !seen.insert(ids.value(i)) {
                        bail!("{shown}: row {row}, column 'patient_id': patient {} appears more than once in patient-level table '{}'", ids.value(i), table.name);
                    }
                }
            }
        }
        let absolute = std::fs::canonicalize(path).map_err(|e| err!("{shown}: {e}"))?;
        let url = ListingTableUrl::parse(absolute.to_string_lossy()).map_err(|e| err!("{shown}: {e}"))?;
        file_schemas.insert(url.prefix().as_ref().to_string(), dictionary::Footer::of(&metadata, file_schema, Some(pid_at)));
        urls.push(url);
    }
    // Columns a file lacks (allowed for dummy tables) are read as nulls by
    // DataFusion's schema adapter, as the table schema declares every column nullable.
    let schema = table_arrow_schema(table);
    match DictionaryCodes::new(urls.clone(), &schema, &file_schemas, codes, false)? {
        Some(table) => Ok(Arc::new(table)),
        None => Ok(Arc::new(listing(urls, schema, false)?)),
    }
}

/// Parquet files as one table of `schema`; with `late`, scans evaluate their
/// filters inside the parquet reader.
pub fn listing(urls: Vec<ListingTableUrl>, schema: SchemaRef, late: bool) -> datafusion::common::Result<ListingTable> {
    let mut options = datafusion::config::TableParquetOptions::default();
    options.global.pushdown_filters = late;
    let listing = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(options))).with_file_extension(".parquet");
    ListingTable::try_new(ListingTableConfig::new_with_multi_paths(urls).with_listing_options(listing).with_schema(schema))
}

/// The same parquet table read with late materialisation: a scan's filter is
/// evaluated inside the parquet reader, column by column, and the scan's other
/// columns are decoded only for the rows it keeps. The planner uses it for passes
/// that read columns their filter does not (a pick's tie-breaking columns); where
/// a pass reads only its filter's columns, decoding them all at once is cheaper.
pub fn late_materialising(provider: &Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
    if let Some(table) = provider.as_ref().downcast_ref::<DictionaryCodes>() {
        return Ok(Some(Arc::new(table.late_materialising()?)));
    }
    match provider.as_ref().downcast_ref::<ListingTable>() {
        Some(table) => Ok(Some(Arc::new(listing(table.table_paths().clone(), table.schema(), true)?))),
        None => Ok(None),
    }
}

pub fn read_parquet(path: &Path, table: &TableSchema, columns: Columns) -> Result<Vec<RecordBatch>> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err!("{shown}: not a readable parquet file: {e}"))?;
    let file_schema = builder.schema().clone();
    let reader = builder.with_batch_size(65536).build().map_err(|e| err!("{shown}: {e}"))?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| err!("{shown}: {e}"))?;
    conform(path, &file_schema, batches, table, columns)
}

/// Read an Arrow IPC file of one table; also says which of the table's columns the
/// file has (the others read as null where that is allowed).
pub fn read_arrow(path: &Path, table: &TableSchema, columns: Columns) -> Result<(Vec<RecordBatch>, Vec<bool>)> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    // Feather v2 and .arrow files use the IPC file format; accept the stream format too.
    let (schema, batches) = match FileReader::try_new(file, None) {
        Ok(reader) => (reader.schema(), reader.collect::<Result<Vec<_>, _>>()),
        Err(_) => {
            let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
            let reader = StreamReader::try_new(file, None).map_err(|e| err!("{shown}: not an Arrow IPC file: {e}"))?;
            (reader.schema(), reader.collect::<Result<Vec<_>, _>>())
        }
    };
    let batches = batches.map_err(|e| err!("{shown}: {e}"))?;
    let present = table.columns.iter().map(|c| schema.field_with_name(&c.name).is_ok()).collect();
    Ok((conform(path, &schema, batches, table, columns)?, present))
}

/// Whether values of `found` can stand for the column type without losing anything.
fn compatible(found: &DataType, ty: &ValueType) -> bool {
    use DataType::*;
    let found = match found {
        Dictionary(_, v) => v.as_ref(),
        other => other,
    };
    match ty {
        ValueType::Bool => matches!(found, Boolean),
        ValueType::Int => matches!(found, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32),
        ValueType::Float => matches!(found, Float16 | Float32 | Float64 | Int8 | Int16 | Int32 | UInt8 | UInt16),
        ValueType::Date => matches!(found, Date32 | Date64),
        ValueType::Set(_) => false,
        _ => matches!(found, Utf8 | LargeUtf8 | Utf8View),
    }
}

/// Check a file's schema against a table; returns where each table column is in it
/// (`None`: missing, which only `Columns::MissingAreNull` allows, never for patient_id).
fn check_schema(path: &Path, file_schema: &SchemaRef, table: &TableSchema, columns: Columns) -> Result<Vec<Option<usize>>> {
    let shown = path.display();
    let target = table_arrow_schema(table);
    let mut indexes = Vec::with_capacity(target.fields().len());
    for (i, field) in target.fields().iter().enumerate() {
        let name = field.name();
        let at = match file_schema.index_of(name) {
            Ok(at) => at,
            Err(_) if i > 0 && columns == Columns::MissingAreNull => {
                indexes.push(None);
                continue;
            }
            Err(_) => bail!("{shown}: missing column '{name}' of table '{}'", table.name),
        };
        let found = file_schema.field(at).data_type();
        let ok = if i == 0 { compatible(found, &ValueType::Int) } else { compatible(found, &table.columns[i - 1].ty) };
        if !ok {
            let want = if i == 0 { "int".to_string() } else { table.columns[i - 1].ty.to_string() };
            bail!("{shown}: column '{name}' has type {found}, which cannot hold {want} values");
        }
        indexes.push(Some(at));
    }
    for f in file_schema.fields() {
        if columns != Columns::Declared && target.field_with_name(f.name()).is_err() {
            bail!("{shown}: unknown column '{}' (table '{}' has no such column)", f.name(), table.name);
        }
    }
    Ok(indexes)
}

pub(super) fn conform(path: &Path, file_schema: &SchemaRef, batches: Vec<RecordBatch>, table: &TableSchema, columns: Columns) -> Result<Vec<RecordBatch>> {
    conform_from(path, file_schema, batches, table, columns, 0)
}

/// `conform` for batches that follow `before` rows of the same file (for messages).
fn conform_from(path: &Path, file_schema: &SchemaRef, batches: Vec<RecordBatch>, table: &TableSchema, columns: Columns, before: usize) -> Result<Vec<RecordBatch>> {
    let shown = path.display();
    let target = table_arrow_schema(table);
    let indexes = check_schema(path, file_schema, table, columns)?;
    let mut out = Vec::with_capacity(batches.len());
    let mut row = before;
    for b in batches {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(indexes.len());
        for (field, at) in target.fields().iter().zip(&indexes) {
            let Some(at) = at else {
                columns.push(arrow::array::new_null_array(field.data_type(), b.num_rows()));
                continue;
            };
            let col = b.column(*at);
            let col = if col.data_type() == field.data_type() { col.clone() } else { cast(col, field.data_type())? };
            columns.push(col);
        }
        if columns[0].null_count() > 0 {
            let first = (0..columns[0].len()).find(|i| columns[0].is_null(*i)).unwrap();
            bail!("{shown}: row {}, column 'patient_id': patient_id must not be null", row + first + 1);
        }
        row += b.num_rows();
        out.push(RecordBatch::try_new(target.clone(), columns)?);
    }
    Ok(out)
}
