//! Writers: csv, csv.gz, Arrow IPC (`.arrow`/`.feather`), parquet, or a readable
//! table on the console. Files are written to a temporary file beside the target and
//! renamed only when every output of the run is complete, so a failure never leaves
//! a partial output behind.

pub mod format;
pub mod narrow;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tempfile::NamedTempFile;

use crate::error::Result;
use crate::source::Format;
use crate::{bail, err};
pub use narrow::ColumnInfo;

/// Where results go, from the `--output` argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Destination {
    Console,
    File(PathBuf, Format),
    /// `DIR:FORMAT`: one file per table in a directory, named `<table>.<FORMAT>`.
    Directory(PathBuf, Format, String),
}

impl Destination {
    pub fn parse(arg: Option<&str>) -> Result<Destination> {
        let Some(arg) = arg else { return Ok(Destination::Console) };
        if let Some((dir, fmt)) = arg.rsplit_once(':') {
            if let Some(format) = Format::from_name(fmt) {
                return Ok(Destination::Directory(PathBuf::from(dir), format, fmt.to_string()));
            }
            if dir.ends_with('/') || dir.is_empty() {
                bail!("--output {arg}: unknown format '{fmt}' (use csv, csv.gz, arrow, feather or parquet)");
            }
        }
        let name = Path::new(arg).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        match Format::of(&name) {
            Some((_, format)) => Ok(Destination::File(PathBuf::from(arg), format)),
            None => bail!("--output {arg}: the file extension must be .csv, .csv.gz, .arrow, .feather or .parquet (or use DIR:FORMAT for a directory)"),
        }
    }
}

enum Sink {
    Csv(csv::Writer<Box<dyn Write>>),
    Arrow(FileWriter<BufWriter<File>>),
    Parquet(ArrowWriter<BufWriter<File>>),
}

/// Writes one table to a temporary file; [`TableWriter::finish`] hands back the
/// temporary file for the caller to move into place.
pub struct TableWriter {
    sink: Sink,
    temp: NamedTempFile,
    target: PathBuf,
    schema: SchemaRef,
    columns: Vec<ColumnInfo>,
}

impl TableWriter {
    pub fn create(target: &Path, format: Format, columns: Vec<ColumnInfo>) -> Result<TableWriter> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| err!("{}: cannot create directory: {e}", dir.display()))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".ehrfusion-");
        // Outputs are ordinary files (temporary files are private by default).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let temp = builder
            .tempfile_in(&dir)
            .map_err(|e| err!("{}: cannot write: {e}", dir.display()))?;
        let file = temp.reopen().map_err(|e| err!("{}: {e}", target.display()))?;
        let schema = narrow::output_schema(&columns, format);
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let sink = match format {
            Format::Csv | Format::CsvGz => {
                let w: Box<dyn Write> = if format == Format::CsvGz {
                    Box::new(GzEncoder::new(buffered, flate2::Compression::default()))
                } else {
                    Box::new(buffered)
                };
                // Lines end in CRLF, as Python's csv module (and so ehrQL) writes them.
                let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
                w.write_record(&header).map_err(|e| err!("{}: {e}", target.display()))?;
                Sink::Csv(w)
            }
            Format::Arrow => Sink::Arrow(FileWriter::try_new(buffered, &schema)?),
            Format::Parquet => {
                let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                Sink::Parquet(ArrowWriter::try_new(buffered, schema.clone(), Some(props))?)
            }
        };
        Ok(TableWriter { sink, temp, target: target.to_path_buf(), schema, columns })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let target = self.target.display().to_string();
        match &mut self.sink {
            Sink::Csv(w) => {
                let texts = batch.columns().iter().map(|c| format::column_text(c.as_ref())).collect::<Result<Vec<_>>>()?;
                for row in 0..batch.num_rows() {
                    let record = texts.iter().map(|col| col[row].as_deref().unwrap_or(""));
                    w.write_record(record).map_err(|e| err!("{target}: {e}"))?;
                }
            }
            Sink::Arrow(w) => w.write(&narrow::narrow(batch, &self.schema, &self.columns)?)?,
            Sink::Parquet(w) => w.write(&narrow::narrow(batch, &self.schema, &self.columns)?)?,
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Pending> {
        let target = self.target.display().to_string();
        match self.sink {
            Sink::Csv(w) => {
                let inner = w.into_inner().map_err(|e| err!("{target}: {e}"))?;
                drop(inner); // flushes (and finishes gzip) on drop
            }
            Sink::Arrow(mut w) => w.finish()?,
            Sink::Parquet(w) => {
                w.close()?;
            }
        }
        Ok(Pending { temp: self.temp, target: self.target })
    }
}

/// A finished output waiting to be moved into place.
pub struct Pending {
    temp: NamedTempFile,
    target: PathBuf,
}

/// Move finished outputs into place; until then, nothing is visible at the targets.
pub fn commit(pending: Vec<Pending>) -> Result<()> {
    for p in pending {
        p.temp.persist(&p.target).map_err(|e| err!("{}: cannot write: {}", p.target.display(), e.error))?;
    }
    Ok(())
}

/// Render batches as a readable table, with values written as in CSV.
pub fn console_table(columns: &[ColumnInfo], batches: &[RecordBatch]) -> Result<String> {
    let schema: SchemaRef = Arc::new(ArrowSchema::new(
        columns.iter().map(|c| Field::new(&c.name, DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let mut text_batches = Vec::new();
    for b in batches {
        let cols = b
            .columns()
            .iter()
            .map(|c| Ok(Arc::new(StringArray::from(format::column_text(c.as_ref())?)) as ArrayRef))
            .collect::<Result<Vec<_>>>()?;
        text_batches.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    if text_batches.is_empty() {
        text_batches.push(RecordBatch::new_empty(schema));
    }
    Ok(arrow::util::pretty::pretty_format_batches(&text_batches)?.to_string())
}
