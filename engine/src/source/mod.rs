//! Input tables: a data directory holding one file (or one folder of files) per
//! table, in csv, csv.gz, parquet or Arrow IPC (`.arrow`, `.feather`). Every table a
//! definition uses is checked against its schema before any work starts.

pub mod blocks;
pub mod builder;
pub mod constraints;
pub mod csv;
pub mod dictionary;
pub mod shared;
pub mod typed;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;

use crate::compile::Providers;
use crate::error::Result;
use crate::model::schema::{Schema, TableSchema};
use crate::model::{InlineRows, Literal, Node, QueryModel};
use crate::{bail, err};

/// The file formats ehrfusion reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    CsvGz,
    Parquet,
    Arrow,
}

impl Format {
    pub const ALL: [(&'static str, Format); 5] = [
        (".csv.gz", Format::CsvGz),
        (".csv", Format::Csv),
        (".parquet", Format::Parquet),
        (".arrow", Format::Arrow),
        (".feather", Format::Arrow),
    ];

    /// The format of a file name, and the name without its extension.
    pub fn of(file_name: &str) -> Option<(&str, Format)> {
        Format::ALL.iter().find_map(|(ext, f)| file_name.strip_suffix(ext).filter(|s| !s.is_empty()).map(|s| (s, *f)))
    }

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "csv" => Some(Format::Csv),
            "csv.gz" => Some(Format::CsvGz),
            "parquet" => Some(Format::Parquet),
            "arrow" | "feather" => Some(Format::Arrow),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::CsvGz => "csv.gz",
            Format::Parquet => "parquet",
            Format::Arrow => "arrow",
        }
    }
}

/// The Arrow schema of a table: `patient_id` then its columns, in canonical types.
pub fn table_arrow_schema(table: &TableSchema) -> SchemaRef {
    let mut fields = vec![Field::new("patient_id", arrow::datatypes::DataType::Int64, false)];
    fields.extend(table.columns.iter().map(|c| Field::new(&c.name, c.ty.arrow_type(), true)));
    Arc::new(ArrowSchema::new(fields))
}

/// The files of one table in a data directory.
#[derive(Debug)]
struct TableFiles {
    format: Format,
    files: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| err!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| err!("{}: {e}", dir.display()))?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Find the table files of a data directory; refuse files that belong to no table.
fn discover(dir: &Path, schema: &Schema) -> Result<BTreeMap<String, TableFiles>> {
    let mut found: BTreeMap<String, TableFiles> = BTreeMap::new();
    for path in list_dir(dir)? {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (table, files) = if path.is_dir() {
            let files = list_dir(&path)?;
            let mut format = None;
            for f in &files {
                let fname = f.file_name().unwrap().to_string_lossy().to_string();
                let Some((_, fmt)) = Format::of(&fname) else {
                    bail!("{}: not a table file (expected .csv, .csv.gz, .parquet, .arrow or .feather)", f.display());
                };
                if format.is_some_and(|x| x != fmt) {
                    bail!("{}: all files of a table folder must have one format", path.display());
                }
                format = Some(fmt);
            }
            let Some(format) = format else { bail!("{}: table folder is empty", path.display()) };
            (name.clone(), TableFiles { format, files })
        } else {
            let Some((table, format)) = Format::of(&name) else {
                bail!("{}: not a table file (expected <table>.csv, .csv.gz, .parquet, .arrow or .feather)", path.display());
            };
            (table.to_string(), TableFiles { format, files: vec![path.clone()] })
        };
        if !schema.tables.contains_key(&table) {
            bail!(
                "{}: unknown table '{table}' (tables of this backend: {})",
                path.display(),
                schema.tables.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if found.contains_key(&table) {
            bail!("{}: table '{table}' has more than one file or folder in {}", path.display(), dir.display());
        }
        found.insert(table, files);
    }
    Ok(found)
}

/// Where table data comes from.
pub enum Tables<'a> {
    /// Real data: every table the definition uses must be present.
    Data(&'a Path),
    /// Dummy tables written earlier: a missing table counts as empty.
    DummyTables(&'a Path),
    /// An assurance test's data, written as dummy tables: its values are not held to
    /// the columns' constraints here, as the tests report those themselves.
    TestData(&'a Path),
    /// No data at all: every table is empty (used by `explain`).
    Empty,
}

/// Open and check every table the dataset uses, returning DataFusion providers.
pub fn open(model: &QueryModel, used: &[String], tables: Tables, partitions: usize) -> Result<Providers> {
    let mut providers = Providers::new();
    // Dummy tables may lack tables and columns: ehrQL's own create-dummy-tables
    // writes only the columns a definition uses, and reads missing ones as null.
    let (dir, missing_ok) = match tables {
        Tables::Data(d) => (Some(d), false),
        Tables::DummyTables(d) | Tables::TestData(d) => (Some(d), true),
        Tables::Empty => (None, true),
    };
    let check_constraints = !matches!(tables, Tables::TestData(_));
    let columns = if missing_ok { Columns::MissingAreNull } else { Columns::AllRequired };
    let found = match dir {
        Some(d) => discover(d, &model.schema)?,
        None => BTreeMap::new(),
    };
    // Real tables read by a pipeline's jobs may have been decoded by an earlier job.
    let sharing = match tables {
        Tables::Data(_) => shared::current().map(|s| (s, shared::columns_used(model))),
        _ => None,
    };
    let mut shared_uses = Vec::new();
    for name in used {
        let table = model.schema.table(name)?;
        let provider: Arc<dyn TableProvider> = match found.get(name) {
            Some(files) if files.format == Format::Parquet && sharing.is_some() => {
                let (scans, columns_used) = sharing.as_ref().expect("sharing");
                // Checked as when streamed (schema, constraints) before any rows are shared.
                let streamed = load(table, files, columns, check_constraints, partitions)?;
                let wanted = columns_used.get(name).cloned().unwrap_or_default();
                match scans.table(&files.files, table, &wanted, partitions)? {
                    Some((provider, usage)) => {
                        shared_uses.push(format!("{name} ({} of {} columns already decoded)", usage.reused, usage.reused + usage.decoded));
                        provider
                    }
                    None => {
                        shared_uses.push(format!("{name} (streamed: over the memory budget for shared scans)"));
                        streamed
                    }
                }
            }
            Some(files) => load(table, files, columns, check_constraints, partitions)?,
            None if missing_ok => Arc::new(MemTable::try_new(table_arrow_schema(table), vec![vec![]])?),
            None => bail!(
                "{}: no file for table '{name}', which the dataset uses (expected {name}.csv, .csv.gz, .parquet, .arrow or .feather)",
                dir.unwrap().display()
            ),
        };
        if let Some(late) = typed::late_materialising(&provider)? {
            providers.insert(late_key(name), late);
        }
        providers.insert(name.clone(), provider);
    }
    for (id, node) in model.nodes.iter().enumerate() {
        match node {
            Node::InlinePatientTable { schema, rows: InlineRows::Given(rows) } => {
                providers.insert(format!("inline#{id}"), Arc::new(inline_table(schema, rows)?));
            }
            Node::InlinePatientTable { schema, rows: InlineRows::File(path) } => {
                providers.insert(format!("inline#{id}"), table_from_file(path, schema, partitions)?);
            }
            _ => {}
        }
    }
    if !shared_uses.is_empty() {
        eprintln!("Shared scans: {}", shared_uses.join(", "));
    }
    Ok(providers)
}

/// The key of a table's late-materialising provider (parquet tables only), see
/// [`typed::late_materialising`].
pub fn late_key(table: &str) -> String {
    format!("{table}#late")
}

/// Which columns a table file must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Columns {
    /// Exactly the table's columns.
    AllRequired,
    /// A missing column reads as null (dummy tables); unknown columns are still refused.
    MissingAreNull,
    /// At least the declared columns; others are ignored (`table_from_file`, which
    /// names only the columns of an earlier output that a definition uses).
    Declared,
}

/// The table of a `table_from_file` declaration, read and checked when the query runs.
fn table_from_file(path: &Path, table: &TableSchema, partitions: usize) -> Result<Arc<dyn TableProvider>> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let Some((_, format)) = Format::of(&name) else {
        bail!("{}: table_from_file reads .csv, .csv.gz, .arrow, .feather or .parquet files", path.display());
    };
    if !path.is_file() {
        bail!("{}: no such file (table_from_file)", path.display());
    }
    load(table, &TableFiles { format, files: vec![path.to_path_buf()] }, Columns::Declared, true, partitions)
}

/// A table given as Arrow batches (e.g. from Python), checked and converted like a file.
pub fn from_batches(what: &str, table: &TableSchema, batches: Vec<RecordBatch>, partitions: usize) -> Result<Arc<dyn TableProvider>> {
    let file_schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Ok(Arc::new(MemTable::try_new(table_arrow_schema(table), vec![vec![]])?)),
    };
    let batches = typed::conform(Path::new(what), &file_schema, batches, table, Columns::AllRequired)?;
    constraints::check(Path::new(what), table, &batches, &vec![true; table.columns.len()], constraints::Place::Rows { before: 0 })?;
    if table.is_patient_level() {
        check_unique_patients(Path::new(what), table, &batches, None, &mut HashSet::new())?;
    }
    Ok(Arc::new(MemTable::try_new(table_arrow_schema(table), split(batches, partitions))?))
}

fn load(table: &TableSchema, files: &TableFiles, columns: Columns, check_constraints: bool, partitions: usize) -> Result<Arc<dyn TableProvider>> {
    if files.format == Format::Parquet {
        return typed::parquet_table(&files.files, table, columns, check_constraints);
    }
    let schema = table_arrow_schema(table);
    let mut batches = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();
    for path in &files.files {
        let (file_batches, lines, present) = match files.format {
            Format::Csv | Format::CsvGz => {
                let (b, lines, present) = csv::read_csv(path, table, columns)?;
                (vec![b], Some(lines), present)
            }
            Format::Parquet => unreachable!("parquet tables are streamed"),
            Format::Arrow => {
                let (batches, present) = typed::read_arrow(path, table, columns)?;
                (batches, None, present)
            }
        };
        if check_constraints {
            let place = match &lines {
                Some(lines) => constraints::Place::Lines(lines),
                None => constraints::Place::Rows { before: 0 },
            };
            constraints::check(path, table, &file_batches, &present, place)?;
        }
        if table.is_patient_level() {
            check_unique_patients(path, table, &file_batches, lines.as_deref(), &mut seen)?;
        }
        batches.extend(file_batches);
    }
    Ok(Arc::new(MemTable::try_new(schema, split(batches, partitions))?))
}

fn check_unique_patients(path: &Path, table: &TableSchema, batches: &[RecordBatch], lines: Option<&[u64]>, seen: &mut HashSet<i64>) -> Result<()> {
    let mut row = 0usize;
    for b in batches {
        let pids = b.column(0).as_any().downcast_ref::<Int64Array>().expect("canonical patient_id");
        for pid in pids.values() {
            if !seen.insert(*pid) {
                let place = match lines {
                    Some(l) => format!("line {}", l[row]),
                    None => format!("row {}", row + 1),
                };
                bail!("{}: {place}, column 'patient_id': patient {pid} appears more than once in patient-level table '{}'", path.display(), table.name);
            }
            row += 1;
        }
    }
    Ok(())
}

/// Spread rows over partitions so that DataFusion scans them in parallel.
pub(crate) fn split(batches: Vec<RecordBatch>, partitions: usize) -> Vec<Vec<RecordBatch>> {
    let partitions = partitions.max(1);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let chunk = rows.div_ceil(partitions).max(8192);
    let mut out: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    let mut i = 0;
    for b in batches {
        let mut offset = 0;
        while offset < b.num_rows() {
            let len = chunk.min(b.num_rows() - offset);
            out[i % partitions].push(b.slice(offset, len));
            offset += len;
            i += 1;
        }
    }
    out
}

fn inline_table(schema: &TableSchema, rows: &[(i64, Vec<Literal>)]) -> Result<MemTable> {
    use arrow::array::{ArrayRef, new_empty_array};
    use datafusion::common::ScalarValue;
    let arrow_schema = table_arrow_schema(schema);
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)))];
    for (i, column) in schema.columns.iter().enumerate() {
        let values = rows.iter().map(|r| crate::compile::analyze::scalar(&column.ty, &r.1[i])).collect::<Result<Vec<_>>>()?;
        columns.push(if values.is_empty() { new_empty_array(&column.ty.arrow_type()) } else { ScalarValue::iter_to_array(values)? });
    }
    let batch = RecordBatch::try_new(arrow_schema.clone(), columns)?;
    Ok(MemTable::try_new(arrow_schema, vec![vec![batch]])?)
}
