//! A researcher's own dummy measures results (`--dummy-data-file`): one file with
//! every measure's rows, or a directory with one file per measure (named after it),
//! in any output format. Columns are checked against the definition: every column
//! present (others are ignored), values of the right type, categories known.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow::array::*;
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::DataType;

use super::PreparedMeasures;
use crate::error::Result;
use crate::model::ValueType;
use crate::model::types::parse_iso_date;
use crate::output::ColumnInfo;
use crate::output::format::column_text;
use crate::output::narrow::output_schema;
use crate::source::Format;
use crate::{bail, err};

/// The results in the file(s), as combined results.
pub fn read(path: &Path, pm: &PreparedMeasures) -> Result<RecordBatch> {
    let combined = pm.combined_columns();
    let schema = output_schema(&combined, Format::Csv);
    if !path.exists() {
        bail!("{}: Missing file or directory", path.display());
    }
    if !path.is_dir() {
        let columns = read_columns(path, &combined)?;
        return Ok(RecordBatch::try_new(schema, columns)?);
    }
    let mut parts = Vec::new();
    for (i, m) in pm.model.measures.iter().enumerate() {
        let file = measure_file(path, &m.name)?;
        let own = pm.measure_columns(i);
        let columns = read_columns(&file, &own)?;
        let rows = columns.first().map_or(0, |c| c.len());
        let mut out: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(std::iter::repeat_n(m.name.as_str(), rows)))];
        for c in &combined[1..] {
            out.push(match own.iter().position(|o| o.name == c.name) {
                Some(k) => columns[k].clone(),
                None => new_null_array(&c.ty.arrow_type(), rows),
            });
        }
        parts.push(RecordBatch::try_new(schema.clone(), out)?);
    }
    Ok(concat_batches(&schema, &parts)?)
}

fn measure_file(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    for ext in ["csv", "csv.gz", "arrow", "feather", "parquet"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{}: no file for measure '{name}' (expected {name}.csv, .csv.gz, .arrow, .feather or .parquet)", dir.display())
}

/// Read `columns` (by name) from one file, in their canonical types.
fn read_columns(path: &Path, columns: &[ColumnInfo]) -> Result<Vec<ArrayRef>> {
    let shown = path.display().to_string();
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let Some((_, format)) = Format::of(&name) else {
        bail!("{shown}: a dummy measures file must be .csv, .csv.gz, .arrow, .feather or .parquet");
    };
    let arrays = match format {
        Format::Csv | Format::CsvGz => read_csv(path, format, columns)?,
        Format::Arrow | Format::Parquet => read_typed(path, format, columns)?,
    };
    for (info, array) in columns.iter().zip(&arrays) {
        if !info.nullable && array.null_count() > 0 {
            bail!("{shown}: column '{}' must not be empty", info.name);
        }
        let Some(categories) = &info.categories else { continue };
        for (row, value) in column_text(array.as_ref())?.into_iter().enumerate() {
            if let Some(v) = value.filter(|v| !categories.contains(v)) {
                bail!("{shown}: row {}, column '{}': '{v}' is not one of its values ({})", row + 1, info.name, categories.join(", "));
            }
        }
    }
    Ok(arrays)
}

fn missing(shown: &str, names: &[&str], columns: &[ColumnInfo]) -> Result<()> {
    let absent: Vec<&str> = columns.iter().map(|c| c.name.as_str()).filter(|n| !names.contains(n)).collect();
    if !absent.is_empty() {
        bail!("{shown}: Missing columns: {}", absent.join(", "));
    }
    Ok(())
}

fn read_csv(path: &Path, format: Format, columns: &[ColumnInfo]) -> Result<Vec<ArrayRef>> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let input: Box<dyn Read> = if format == Format::CsvGz { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut reader = csv::ReaderBuilder::new().from_reader(input);
    let header = reader.headers().map_err(|e| err!("{shown}: {e}"))?.clone();
    let names: Vec<&str> = header.iter().collect();
    missing(&shown, &names, columns)?;
    let at: Vec<usize> = columns.iter().map(|c| names.iter().position(|n| *n == c.name).expect("checked")).collect();
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); columns.len()];
    for record in reader.records() {
        let record = record.map_err(|e| err!("{shown}: {e}"))?;
        for (k, i) in at.iter().enumerate() {
            let v = record.get(*i).unwrap_or("");
            cells[k].push((!v.is_empty()).then(|| v.to_string()));
        }
    }
    columns
        .iter()
        .zip(cells)
        .map(|(info, values)| {
            typed(&info.ty, &values).map_err(|(row, v)| err!("{shown}: line {}, column '{}': '{v}' is not a valid {}", row + 2, info.name, info.ty))
        })
        .collect()
}

/// Text cells as an array of `ty`; on failure, the row and value that do not parse.
fn typed(ty: &ValueType, values: &[Option<String>]) -> std::result::Result<ArrayRef, (usize, String)> {
    let bad = |row: usize, v: &str| (row, v.to_string());
    macro_rules! parse {
        ($array:ty, $f:expr) => {{
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                out.push(match v {
                    None => None,
                    Some(v) => Some($f(v.as_str()).ok_or_else(|| bad(row, v))?),
                });
            }
            Arc::new(out.into_iter().collect::<$array>()) as ArrayRef
        }};
    }
    Ok(match ty {
        ValueType::Int => parse!(Int64Array, |v: &str| v.parse::<i64>().ok()),
        ValueType::Float => parse!(Float64Array, |v: &str| v.parse::<f64>().ok()),
        ValueType::Date => parse!(Date32Array, parse_iso_date),
        ValueType::Bool => parse!(BooleanArray, |v: &str| match v {
            "T" => Some(true),
            "F" => Some(false),
            _ => None,
        }),
        _ => Arc::new(values.iter().map(|v| v.as_deref()).collect::<StringArray>()),
    })
}

fn read_typed(path: &Path, format: Format, columns: &[ColumnInfo]) -> Result<Vec<ArrayRef>> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let batches: Vec<RecordBatch> = if format == Format::Parquet {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err!("{shown}: {e}"))?.build().map_err(|e| err!("{shown}: {e}"))?;
        reader.collect::<std::result::Result<_, _>>().map_err(|e| err!("{shown}: {e}"))?
    } else {
        let reader = arrow::ipc::reader::FileReader::try_new(file, None).map_err(|e| err!("{shown}: {e}"))?;
        reader.collect::<std::result::Result<_, _>>().map_err(|e| err!("{shown}: {e}"))?
    };
    let Some(first) = batches.first() else { bail!("{shown}: the file holds no record batches") };
    let schema = first.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    missing(&shown, &names, columns)?;
    let all = concat_batches(&schema, &batches)?;
    columns
        .iter()
        .map(|info| {
            let c = all.column_by_name(&info.name).expect("checked");
            let want = info.ty.arrow_type();
            let ok = match (c.data_type(), &want) {
                (DataType::Dictionary(_, v), DataType::Utf8) => v.as_ref() == &DataType::Utf8,
                (have, DataType::Int64) => have.is_integer(),
                (have, want) => have == want,
            };
            if !ok {
                bail!("{shown}: column '{}' is {}, expected {}", info.name, c.data_type(), info.ty);
            }
            Ok(cast(c, &want)?)
        })
        .collect()
}
