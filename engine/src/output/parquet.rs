//! Parquet files with their columns encoded on several threads. A dataset's columns
//! are independent, and one thread encoding them all was the last, single-core
//! step of a wide run (72 columns of 914 K patients in `monthly`). The bytes are
//! those of parquet's `ArrowWriter` with the same properties: the same row groups,
//! pages, statistics and schema metadata.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::errors::Result;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// Threads that encode a file's columns: the run's `--threads`.
static THREADS: AtomicUsize = AtomicUsize::new(1);

pub fn set_threads(threads: usize) {
    THREADS.store(threads.max(1), Ordering::Relaxed);
}

pub struct ParquetSink<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    group_rows: usize,
    /// The row group being written: one writer per column, and its rows so far.
    group: Option<(Vec<ArrowColumnWriter>, usize)>,
    groups_written: usize,
}

impl<W: Write + Send> ParquetSink<W> {
    pub fn try_new(out: W, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX);
        // ArrowWriter sets up the file (its header, the Arrow schema in the footer's
        // metadata) exactly as a file written by it alone would have.
        let (file, factory) = ArrowWriter::try_new(out, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(ParquetSink { file, factory, schema, group_rows, group: None, groups_written: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut at = 0;
        while at < batch.num_rows() {
            if self.group.is_none() {
                self.group = Some((self.factory.create_column_writers(self.groups_written)?, 0));
            }
            let (writers, rows) = self.group.as_mut().expect("a row group in progress");
            // A row group ends after exactly `group_rows` rows, as ArrowWriter ends it.
            let take = (batch.num_rows() - at).min(self.group_rows - *rows);
            let part = batch.slice(at, take);
            let mut leaves = Vec::with_capacity(writers.len());
            for (field, column) in self.schema.fields().iter().zip(part.columns()) {
                leaves.extend(compute_leaves(field, column)?);
            }
            encode(writers, &leaves)?;
            *rows += take;
            at += take;
            if *rows >= self.group_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let Some((writers, _)) = self.group.take() else { return Ok(()) };
        let mut group = self.file.next_row_group()?;
        for writer in writers {
            writer.close()?.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.groups_written += 1;
        Ok(())
    }

    /// Write the last row group and the footer; the writer underneath is returned.
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        self.file.into_inner()
    }
}

/// Each leaf into its column's writer, the columns split across the threads.
fn encode(writers: &mut [ArrowColumnWriter], leaves: &[parquet::arrow::arrow_writer::ArrowLeafColumn]) -> Result<()> {
    let threads = THREADS.load(Ordering::Relaxed).min(writers.len()).max(1);
    if threads == 1 {
        return writers.iter_mut().zip(leaves).try_for_each(|(w, leaf)| w.write(leaf));
    }
    let per_thread = writers.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let running: Vec<_> = writers
            .chunks_mut(per_thread)
            .zip(leaves.chunks(per_thread))
            .map(|(ws, ls)| scope.spawn(move || ws.iter_mut().zip(ls).try_for_each(|(w, leaf)| w.write(leaf))))
            .collect();
        running.into_iter().try_for_each(|t| t.join().expect("a parquet encoding thread panicked"))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::basic::Compression;

    use super::*;

    fn batch(start: i64, rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Int64, false),
            Field::new("count", DataType::Int64, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("code", DataType::Utf8, true),
        ]));
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(start..start + rows as i64));
        let counts: ArrayRef = Arc::new((0..rows).map(|i| (i % 7 != 0).then_some((i % 13) as i64)).collect::<Int64Array>());
        let flags: ArrayRef = Arc::new((0..rows).map(|i| (i % 5 != 0).then_some(i % 3 == 0)).collect::<BooleanArray>());
        let codes: ArrayRef = Arc::new((0..rows).map(|i| (i % 4 != 0).then(|| format!("C{}", i % 17))).collect::<StringArray>());
        RecordBatch::try_new(schema, vec![ids, counts, flags, codes]).unwrap()
    }

    #[test]
    fn the_bytes_are_those_arrow_writer_writes() {
        // Small row groups, so that batches straddle them.
        let props = || WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(1000)).build();
        let batches = [batch(0, 700), batch(700, 1500), batch(2200, 300), batch(2500, 1)];
        let schema = batches[0].schema();
        let mut expected = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props())).unwrap();
        for b in &batches {
            expected.write(b).unwrap();
        }
        let expected = expected.into_inner().unwrap();
        for threads in [1, 2, 3, 8] {
            set_threads(threads);
            let mut ours = ParquetSink::try_new(Vec::new(), schema.clone(), props()).unwrap();
            for b in &batches {
                ours.write(b).unwrap();
            }
            assert!(ours.into_inner().unwrap() == expected, "{threads} threads wrote other bytes");
        }
        set_threads(1);
    }
}
