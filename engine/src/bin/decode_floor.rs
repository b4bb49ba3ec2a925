//! The decode floor of a benchmark workload: how long arrow-rs takes to decode just
//! the parquet columns the workload reads, with no computation at all. Every engine
//! that reads these files has to pay at least this (unless it skips rows), so an
//! engine's time over the floor says how much it spends on everything else.
//!
//!     ehrfusion-decode-floor [--threads N] [--strings dictionary|view|plain] [--report FILE] FILE.parquet:COL,COL ...
//!
//! Row groups of all files are decoded in parallel on N threads (default 2), each
//! read on its own. Strings are decoded as dictionaries by default, where the file
//! has them dictionary-encoded (the cheapest form arrow-rs offers: no string bytes
//! are copied per row); `--strings view` decodes them as `Utf8View` and `plain` as
//! `Utf8` (what an engine reading them as plain strings pays). Other columns as the
//! file's Arrow schema says. Prints (and with
//! `--report`, writes to FILE) the rows and values decoded and the seconds taken.
use std::fs::File;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

struct Job {
    path: String,
    columns: Vec<String>,
}

/// One unit of work: a row group of a file, with the reader options that project it.
struct Unit {
    job: usize,
    row_group: usize,
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ehrfusion-decode-floor: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut threads = 2usize;
    let mut report = None;
    let mut strings = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut jobs = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            let n = args.next().ok_or("--threads needs a number")?;
            threads = n.parse().map_err(|_| format!("--threads: {n:?} is not a number"))?;
        } else if arg == "--strings" {
            strings = match args.next().as_deref() {
                Some("dictionary") => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                Some("view") => DataType::Utf8View,
                Some("plain") => DataType::Utf8,
                other => return Err(format!("--strings: expected dictionary, view or plain, got {other:?}")),
            };
        } else if arg == "--report" {
            report = Some(args.next().ok_or("--report needs a file")?);
        } else if arg == "-h" || arg == "--help" {
            println!("usage: ehrfusion-decode-floor [--threads N] [--strings dictionary|view|plain] [--report FILE] FILE.parquet:COL,COL ...");
            return Ok(());
        } else {
            let (path, columns) = arg.rsplit_once(':').ok_or(format!("{arg:?}: expected FILE.parquet:COL,COL"))?;
            jobs.push(Job { path: path.to_string(), columns: columns.split(',').map(str::to_string).collect() });
        }
    }
    if jobs.is_empty() {
        return Err("no files given (FILE.parquet:COL,COL ...)".into());
    }

    let started = Instant::now();
    let mut options = Vec::new();
    let mut units = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let file = File::open(&job.path).map_err(|e| format!("{}: {e}", job.path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| format!("{}: {e}", job.path))?;
        let schema = builder.schema().clone();
        let parquet_schema = builder.parquet_schema();
        let mut roots = Vec::new();
        for name in &job.columns {
            let index = schema.index_of(name).map_err(|_| format!("{}: no column {name:?}", job.path))?;
            roots.push(index);
        }
        let mask = ProjectionMask::roots(parquet_schema, roots);
        let option = ArrowReaderOptions::new().with_schema(Arc::new(strings_as(&schema, &strings)));
        for row_group in 0..builder.metadata().num_row_groups() {
            units.push(Unit { job: j, row_group });
        }
        options.push((option, mask));
    }

    let next = AtomicUsize::new(0);
    let totals: Vec<Result<(usize, usize), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let (mut rows, mut values) = (0usize, 0usize);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(unit) = units.get(i) else { return Ok((rows, values)) };
                        let job = &jobs[unit.job];
                        let (option, mask) = &options[unit.job];
                        let file = File::open(&job.path).map_err(|e| format!("{}: {e}", job.path))?;
                        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, option.clone())
                            .and_then(|b| b.with_projection(mask.clone()).with_row_groups(vec![unit.row_group]).with_batch_size(65_536).build())
                            .map_err(|e| format!("{}: {e}", job.path))?;
                        for batch in reader {
                            let batch = batch.map_err(|e| format!("{}: {e}", job.path))?;
                            rows += batch.num_rows();
                            values += batch.num_rows() * batch.num_columns();
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("decode thread panicked")).collect()
    });
    let (mut rows, mut values) = (0, 0);
    for total in totals {
        let (r, v) = total?;
        rows += r;
        values += v;
    }
    let summary = format!("{rows} rows, {values} values decoded in {:.3} s\n", started.elapsed().as_secs_f64());
    print!("{summary}");
    if let Some(report) = report {
        std::fs::write(&report, summary).map_err(|e| format!("{report}: {e}"))?;
    }
    Ok(())
}

/// The file's Arrow schema with strings read as `strings`.
fn strings_as(schema: &Schema, strings: &DataType) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => f.as_ref().clone().with_data_type(strings.clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}
