//! Writing a cohort as cohort-extractor writes it: CSV text as it is, feather with
//! the types its pandas code gives each column, Stata files from those types.

use std::path::Path;
use std::sync::Arc;

use arrow::array::*;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int8Type, Int16Type, Int32Type, Schema as ArrowSchema};
use arrow::ipc::writer::FileWriter;

use super::{stata, StudyColumn};
use crate::error::Result;
use crate::err;
use crate::model::types::date_to_days;
use crate::output::{self, TableWriter};
use crate::run;
use crate::source::Format;

/// The file formats of `--output-format`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CohortFormat {
    Csv,
    CsvGz,
    Feather,
    Dta,
    DtaGz,
}

impl CohortFormat {
    pub fn parse(name: &str) -> Option<CohortFormat> {
        Some(match name {
            "csv" => CohortFormat::Csv,
            "csv.gz" => CohortFormat::CsvGz,
            "feather" => CohortFormat::Feather,
            "dta" => CohortFormat::Dta,
            "dta.gz" => CohortFormat::DtaGz,
            _ => return None,
        })
    }
}

/// A batch typed as cohort-extractor's pandas frame, as feather or Stata.
fn write_typed(path: &Path, format: CohortFormat, typed: &RecordBatch) -> Result<()> {
    if matches!(format, CohortFormat::Dta | CohortFormat::DtaGz) {
        return stata::write(path, typed, format == CohortFormat::DtaGz, &stata::time_stamp());
    }
    let unnamed = output::UnnamedFile::create(path)?;
    write_feather(unnamed.handle()?, typed).map_err(|e| err!("{}: {e}", path.display()))?;
    unnamed.publish(path)
}

/// Write dummy data given as CSV text (pandas' text, as cohort-extractor writes
/// expectations data): as it is for csv and csv.gz, typed as for real data in feather
/// and Stata files.
pub fn write_text_cohort(path: &Path, format: CohortFormat, text: &str, columns: &[StudyColumn]) -> Result<()> {
    if !matches!(format, CohortFormat::Csv | CohortFormat::CsvGz) {
        return write_typed(path, format, &typed_from_text(text, columns)?);
    }
    let unnamed = output::UnnamedFile::create(path)?;
    let mut file = unnamed.handle()?;
    let cannot = |e: std::io::Error| err!("{}: cannot write: {e}", path.display());
    if format == CohortFormat::Csv {
        // Unbuffered: one write of the whole text, whose error is reported.
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(cannot)?;
    } else {
        let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::new(6));
        std::io::Write::write_all(&mut gz, text.as_bytes()).map_err(cannot)?;
        gz.finish().map_err(cannot)?.into_inner().map_err(|e| cannot(e.into_error()))?;
    }
    unnamed.publish(path)
}

/// One batch as an Arrow IPC file, every byte written out (or the error reported).
fn write_feather(file: std::fs::File, batch: &RecordBatch) -> Result<()> {
    let mut w = FileWriter::try_new(std::io::BufWriter::new(file), &batch.schema())?;
    w.write(&output::narrow::zero_null_slots(batch)?)?;
    w.into_inner()?.into_inner().map_err(|e| err!("cannot write: {}", e.into_error()))?;
    Ok(())
}

/// CSV text (any column order, patient_id among the columns) typed as the feather of
/// real data is.
fn typed_from_text(text: &str, columns: &[StudyColumn]) -> Result<RecordBatch> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().map_err(|e| err!("dummy data: {e}"))?.iter().map(str::to_string).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for record in reader.records() {
        let record = record.map_err(|e| err!("dummy data: {e}"))?;
        for (i, v) in record.iter().enumerate() {
            cells[i].push(v.to_string());
        }
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, values) in header.iter().zip(cells) {
        let column = columns.iter().find(|c| &c.name == name);
        let ints = |values: &[String]| -> Result<Int64Array> {
            values.iter().map(|v| if v.is_empty() { Ok(None) } else { v.parse::<i64>().map(Some).map_err(|_| err!("dummy data: column {name}: '{v}' is not an integer")) }).collect()
        };
        let texts: ArrayRef = Arc::new(StringArray::from_iter_values(values.iter()));
        let array: ArrayRef = match column.map(|c| (c.ty.as_str(), c.categorical_int)) {
            None => Arc::new(ints(&values)?),
            // pandas' expectations frame holds a missing category as NaN, so the
            // categories of a column with one are floats.
            Some((_, true)) => {
                let categories = categorical_ints(&(Arc::new(ints(&values)?) as ArrayRef))?;
                if categories.null_count() > 0 { float_categories(&categories)? } else { categories }
            }
            Some(("bool", _)) => Arc::new(values.iter().map(|v| Some(!v.is_empty() && v != "0")).collect::<BooleanArray>()),
            Some(("int", _)) => Arc::new(ints(&values)?),
            Some(("float", _)) => Arc::new(
                values
                    .iter()
                    .map(|v| if v.is_empty() { Ok(None) } else { v.parse::<f64>().map(Some).map_err(|_| err!("dummy data: column {name}: '{v}' is not a number")) })
                    .collect::<Result<Float64Array>>()?,
            ),
            Some(("date", _)) => Arc::new(timestamps(&texts, name)?),
            _ => categorical_strings(&texts)?,
        };
        fields.push(Field::new(name, array.data_type().clone(), name != "patient_id"));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays)?)
}

pub fn write_cohort(path: &Path, format: CohortFormat, table: &run::TableResult, columns: &[StudyColumn]) -> Result<()> {
    if let Some(format) = match format {
        CohortFormat::Csv => Some(Format::Csv),
        CohortFormat::CsvGz => Some(Format::CsvGz),
        _ => None,
    } {
        let mut writer = TableWriter::create(path, format, table.columns.clone())?;
        for b in &table.batches {
            writer.write(b)?;
        }
        return output::commit(vec![writer.finish()?]);
    }
    let batch = concat_batches(&table.batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(ArrowSchema::empty())), &table.batches)?;
    let batch = if table.batches.is_empty() { empty_batch(&table.columns) } else { batch };
    write_typed(path, format, &feather_batch(&batch, columns)?)
}

fn empty_batch(columns: &[output::ColumnInfo]) -> RecordBatch {
    let schema = Arc::new(ArrowSchema::new(columns.iter().map(|c| Field::new(&c.name, c.ty.arrow_type(), true)).collect::<Vec<_>>()));
    RecordBatch::new_empty(schema)
}

/// The columns as cohort-extractor's pandas writes them to feather: flags as
/// booleans, dates as nanosecond timestamps (a year alone is its 1 January),
/// strings (and IMD, rural-urban) as categories in order of first appearance
/// with the empty value missing.
fn feather_batch(batch: &RecordBatch, columns: &[StudyColumn]) -> Result<RecordBatch> {
    let mut fields = vec![Field::new("patient_id", DataType::Int64, false)];
    let mut arrays: Vec<ArrayRef> = vec![batch.column(0).clone()];
    for (i, c) in columns.iter().enumerate() {
        let array = batch.column(i + 1);
        let converted: ArrayRef = match (c.ty.as_str(), c.categorical_int) {
            (_, true) => categorical_ints(array)?,
            ("bool", _) => {
                let ints = array.as_any().downcast_ref::<Int64Array>().ok_or_else(|| err!("column {}: expected 0/1", c.name))?;
                Arc::new(ints.iter().map(|v| Some(v.unwrap_or(0) != 0)).collect::<BooleanArray>())
            }
            ("date", _) => Arc::new(timestamps(array, &c.name)?),
            ("str", _) => categorical_strings(array)?,
            _ => array.clone(),
        };
        fields.push(Field::new(&c.name, converted.data_type().clone(), true));
        arrays.push(converted);
    }
    Ok(RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays)?)
}

fn timestamps(array: &ArrayRef, name: &str) -> Result<TimestampNanosecondArray> {
    let texts = array.as_any().downcast_ref::<StringArray>().ok_or_else(|| err!("column {name}: expected dates as text"))?;
    let values = texts
        .iter()
        .map(|t| match t {
            None | Some("") => Ok(None),
            Some(t) => {
                let full = match t.len() {
                    4 => format!("{t}-01-01"),
                    7 => format!("{t}-01"),
                    _ => t.to_string(),
                };
                let date = chrono::NaiveDate::parse_from_str(&full, "%Y-%m-%d").map_err(|_| err!("column {name}: '{t}' is not a date"))?;
                let days = date_to_days(date);
                Ok(Some(days as i64 * 86_400_000_000_000))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TimestampNanosecondArray::from(values))
}

/// Keys as pandas sizes them: int8 up to 127 categories, then int16, then int32.
fn dictionary<T: Clone>(values: Vec<Option<T>>) -> (Vec<Option<i32>>, Vec<T>)
where
    T: std::hash::Hash + Eq,
{
    let mut position: std::collections::HashMap<T, i32> = std::collections::HashMap::new();
    let mut categories = Vec::new();
    let keys = values
        .into_iter()
        .map(|v| {
            v.map(|v| {
                *position.entry(v.clone()).or_insert_with(|| {
                    categories.push(v);
                    categories.len() as i32 - 1
                })
            })
        })
        .collect();
    (keys, categories)
}

fn keyed(keys: Vec<Option<i32>>, values: ArrayRef, categories: usize) -> Result<ArrayRef> {
    let keys = Int32Array::from(keys);
    Ok(if categories < 128 {
        let k: Int8Array = keys.iter().map(|k| k.map(|k| k as i8)).collect();
        Arc::new(DictionaryArray::<Int8Type>::try_new(k, values)?)
    } else if categories < 32768 {
        let k: Int16Array = keys.iter().map(|k| k.map(|k| k as i16)).collect();
        Arc::new(DictionaryArray::<Int16Type>::try_new(k, values)?)
    } else {
        Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values)?)
    })
}

fn categorical_strings(array: &ArrayRef) -> Result<ArrayRef> {
    let texts = array.as_any().downcast_ref::<StringArray>().ok_or_else(|| err!("expected text"))?;
    let (keys, categories) = dictionary(texts.iter().map(|t| t.filter(|t| !t.is_empty()).map(str::to_string)).collect());
    let n = categories.len();
    keyed(keys, Arc::new(StringArray::from(categories)), n)
}

fn categorical_ints(array: &ArrayRef) -> Result<ArrayRef> {
    let ints = array.as_any().downcast_ref::<Int64Array>().ok_or_else(|| err!("expected integers"))?;
    // pandas counts 0 as empty (missing), as cohort-extractor's categoriser does.
    let (keys, categories) = dictionary(ints.iter().map(|v| v.filter(|v| *v != 0)).collect());
    let n = categories.len();
    keyed(keys, Arc::new(Int64Array::from(categories)), n)
}

/// A category of integers as a category of floats (same keys).
fn float_categories(array: &ArrayRef) -> Result<ArrayRef> {
    let DataType::Dictionary(key, _) = array.data_type() else { return Err(err!("expected categories")) };
    Ok(arrow::compute::cast(array, &DataType::Dictionary(key.clone(), Box::new(DataType::Float64)))?)
}
