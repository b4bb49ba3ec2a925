//! Writers: csv, csv.gz, Arrow IPC (`.arrow`/`.feather`), parquet, or a readable
//! table on the console. Files are written unnamed beside the target and named only
//! when every output of the run is complete and on disk, so a failure, or a run
//! killed part way, never leaves a partial output behind.

pub mod format;
pub mod narrow;
pub mod parquet;
pub mod unnamed;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::BatchCoalescer;
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use flate2::write::GzEncoder;
use ::parquet::basic::Compression;
use ::parquet::file::properties::WriterProperties;

use crate::error::Result;
use crate::source::Format;
use crate::{bail, err};
pub use narrow::ColumnInfo;
pub use unnamed::UnnamedFile;

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
    Csv(csv::Writer<Text>),
    Arrow(FileWriter<BufWriter<File>>),
    Parquet(parquet::ParquetSink<BufWriter<File>>),
}

/// Where CSV text goes: the file, or gzip into the file.
enum Text {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

impl Write for Text {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Text::Plain(w) => w.write(buf),
            Text::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Text::Plain(w) => w.flush(),
            Text::Gzip(w) => w.flush(),
        }
    }
}

impl Text {
    /// End the stream (gzip's trailer) and write out the buffer, reporting any error
    /// (a full disk) that dropping the writers would have ignored.
    fn finish(self) -> std::io::Result<()> {
        let buffered = match self {
            Text::Plain(w) => w,
            Text::Gzip(w) => w.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}

/// An Arrow writer's error, as the I/O error it wraps where it wraps one.
fn arrow_write_error(target: &str, e: arrow::error::ArrowError) -> crate::error::Error {
    match e {
        arrow::error::ArrowError::IoError(_, io) => err!("{target}: cannot write: {io}"),
        other => err!("{target}: cannot write: {other}"),
    }
}

/// Write out a buffer, reporting the error its drop would ignore.
fn flushed(w: BufWriter<File>) -> std::io::Result<()> {
    w.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Writes one table to an unnamed file; [`TableWriter::finish`] hands it back for
/// the caller to publish with the run's other outputs.
pub struct TableWriter {
    sink: Sink,
    file: UnnamedFile,
    target: PathBuf,
    schema: SchemaRef,
    columns: Vec<ColumnInfo>,
    /// Arrow and parquet files are written in batches of exactly [`FILE_BATCH_ROWS`]
    /// rows (but the last), so that their bytes depend on the rows alone, not on
    /// how blocks of patients or threads happened to split them.
    rebatch: Option<BatchCoalescer>,
}

pub const FILE_BATCH_ROWS: usize = 65_536;

impl TableWriter {
    pub fn create(target: &Path, format: Format, columns: Vec<ColumnInfo>) -> Result<TableWriter> {
        let unnamed = UnnamedFile::create(target)?;
        let file = unnamed.handle()?;
        let schema = narrow::output_schema(&columns, format);
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let sink = match format {
            Format::Csv | Format::CsvGz => {
                let w = if format == Format::CsvGz {
                    Text::Gzip(GzEncoder::new(buffered, flate2::Compression::default()))
                } else {
                    Text::Plain(buffered)
                };
                // Lines end in CRLF, as Python's csv module (and so ehrQL) writes them.
                let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
                w.write_record(&header).map_err(|e| err!("{}: {e}", target.display()))?;
                Sink::Csv(w)
            }
            Format::Arrow => Sink::Arrow(FileWriter::try_new(buffered, &schema).map_err(|e| arrow_write_error(&target.display().to_string(), e))?),
            Format::Parquet => {
                let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                Sink::Parquet(parquet::ParquetSink::try_new(buffered, schema.clone(), props)?)
            }
        };
        Ok(TableWriter { sink, file: unnamed, target: target.to_path_buf(), schema, columns, rebatch: None })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Sink::Csv(w) = &mut self.sink {
            let target = self.target.display();
            let texts = batch.columns().iter().map(|c| format::column_text(c.as_ref())).collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let record = texts.iter().map(|col| col[row].as_deref().unwrap_or(""));
                w.write_record(record).map_err(|e| err!("{target}: {e}"))?;
            }
            return Ok(());
        }
        let rebatch = self.rebatch.get_or_insert_with(|| BatchCoalescer::new(batch.schema(), FILE_BATCH_ROWS));
        // A batch cut as the file's are (a final sort's) needs no copy.
        if rebatch.is_empty() && batch.num_rows() == FILE_BATCH_ROWS {
            return self.write_file_batch(batch);
        }
        rebatch.push_batch(batch.clone())?;
        self.write_completed()
    }

    fn write_file_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let target = self.target.display().to_string();
        let narrowed = narrow::narrow(batch, &self.schema, &self.columns)?;
        match &mut self.sink {
            Sink::Csv(_) => unreachable!("CSV is written as it comes"),
            Sink::Arrow(w) => w.write(&narrow::zero_null_slots(&narrowed)?).map_err(|e| arrow_write_error(&target, e))?,
            Sink::Parquet(w) => w.write(&narrowed).map_err(|e| err!("{target}: cannot write: {e}"))?,
        }
        Ok(())
    }

    /// Write the rebatched batches that are complete.
    fn write_completed(&mut self) -> Result<()> {
        while let Some(batch) = self.rebatch.as_mut().and_then(|r| r.next_completed_batch()) {
            self.write_file_batch(&batch)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Pending> {
        if let Some(rebatch) = self.rebatch.as_mut() {
            rebatch.finish_buffered_batch()?;
            self.write_completed()?;
        }
        let target = self.target.display().to_string();
        let cannot = |e: std::io::Error| err!("{target}: cannot write: {e}");
        match self.sink {
            Sink::Csv(w) => w.into_inner().map_err(|e| cannot(e.into_error()))?.finish().map_err(cannot)?,
            Sink::Arrow(w) => flushed(w.into_inner().map_err(|e| arrow_write_error(&target, e))?).map_err(cannot)?,
            Sink::Parquet(w) => flushed(w.into_inner().map_err(|e| err!("{target}: cannot write: {e}"))?).map_err(cannot)?,
        }
        Ok(Pending { file: self.file, target: self.target })
    }
}

/// A finished output waiting to be published.
pub struct Pending {
    file: UnnamedFile,
    target: PathBuf,
}

/// Publish finished outputs; until then, nothing is visible at the targets.
pub fn commit(pending: Vec<Pending>) -> Result<()> {
    for p in pending {
        p.file.publish(&p.target)?;
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
