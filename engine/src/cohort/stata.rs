//! Stata `.dta` files (format 118), written as cohort-extractor writes them through
//! pandas (`to_stata(version=118, write_index=False, convert_dates={date: "td"})`
//! after turning categories back into plain values), and read back as
//! `pandas.read_stata` reads them for `generate_measures`.
//!
//! The writer takes the batch typed as cohort-extractor's pandas frame (what
//! [`super::write`] writes as feather) and applies pandas' casts: flags become
//! bytes; integers become 4-byte longs when every value fits Stata's range, else
//! doubles (as does an integer column with no rows); dates become `%td` day
//! numbers from 1960-01-01 in doubles; text becomes fixed-width UTF-8 as wide as
//! its longest value; a category of integers with a missing value becomes a
//! double. Missing numbers and dates are Stata's `.`; missing text is empty.
//! Column names follow pandas' renaming for Stata (reserved words and leading
//! digits get a `_`, other characters become `_`, at most 32 characters).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Int16Type, Int32Type, Int8Type, Schema, TimeUnit};

use crate::error::Result;
use crate::output;
use crate::{bail, err};

/// Stata's `.` for doubles (and pandas' marker for a missing date).
const MISSING_DOUBLE: u64 = 0x7fe0_0000_0000_0000;
/// The largest double Stata holds.
const MAX_DOUBLE: f64 = 8.988465674311579e307;
/// Longest fixed-width string; longer text needs strL, which is not written.
const MAX_STR: usize = 2045;
const MAX_NAME: usize = 32;
const BYTE: u16 = 65530;
const INT: u16 = 65529;
const LONG: u16 = 65528;
const FLOAT: u16 = 65527;
const DOUBLE: u16 = 65526;
const NS_PER_DAY: i64 = 86_400_000_000_000;
/// 1960-01-01, Stata's day 0, in days from 1970-01-01.
const STATA_EPOCH_DAYS: i64 = -3653;

/// Words Stata reserves, which pandas prefixes with `_` in column names.
const RESERVED: &[&str] = &[
    "aggregate", "array", "boolean", "break", "byte", "case", "catch", "class", "colvector", "complex", "const", "continue", "default", "delegate", "delete",
    "do", "double", "else", "eltypedef", "end", "enum", "explicit", "export", "external", "float", "for", "friend", "function", "global", "goto", "if",
    "inline", "int", "local", "long", "NULL", "pragma", "protected", "quad", "rowvector", "short", "typedef", "typename", "virtual", "_all", "_N",
    "_skip", "_b", "_pi", "str#", "in", "_pred", "strL", "_coef", "_rc", "using", "_cons", "_se", "with", "_n",
];

/// One column as it is stored: its type code, display format and cell values.
struct Variable {
    name: String,
    format: String,
    cells: Cells,
}

enum Cells {
    Byte(Vec<i8>),
    Long(Vec<i32>),
    Double(Vec<f64>),
    /// Fixed width in bytes, then the values (missing as empty).
    Str(usize, Vec<Option<String>>),
}

impl Cells {
    fn type_code(&self) -> u16 {
        match self {
            Cells::Byte(_) => BYTE,
            Cells::Long(_) => LONG,
            Cells::Double(_) => DOUBLE,
            Cells::Str(width, _) => *width as u16,
        }
    }
    fn width(&self) -> usize {
        match self {
            Cells::Byte(_) => 1,
            Cells::Long(_) => 4,
            Cells::Double(_) => 8,
            Cells::Str(width, _) => *width,
        }
    }
    fn put(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            Cells::Byte(v) => out.push(v[row] as u8),
            Cells::Long(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            Cells::Double(v) => out.extend_from_slice(&v[row].to_le_bytes()),
            Cells::Str(width, v) => {
                let text = v[row].as_deref().unwrap_or("").as_bytes();
                out.extend_from_slice(text);
                out.resize(out.len() + width - text.len(), 0);
            }
        }
    }
}

/// Write `batch` (typed as cohort-extractor's pandas frame) to `path`, gzipped when
/// `gzip` (`.dta.gz`). `now` is the header's time stamp, as "dd Mon yyyy hh:mm".
pub fn write(path: &Path, batch: &RecordBatch, gzip: bool, now: &str) -> Result<()> {
    let variables = variables(batch).map_err(|e| err!("{}: {e}", path.display()))?;
    let unnamed = output::UnnamedFile::create(path)?;
    let file = std::io::BufWriter::new(unnamed.handle()?);
    let cannot = |e: std::io::Error| err!("{}: cannot write: {e}", path.display());
    if gzip {
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::new(6));
        write_dta(&mut gz, &variables, batch.num_rows(), now).map_err(cannot)?;
        gz.finish().map_err(cannot)?.into_inner().map_err(|e| cannot(e.into_error()))?;
    } else {
        let mut file = file;
        write_dta(&mut file, &variables, batch.num_rows(), now).map_err(cannot)?;
        file.into_inner().map_err(|e| cannot(e.into_error()))?;
    }
    unnamed.publish(path)
}

/// The current time (UTC) as the header's time stamp.
pub fn time_stamp() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    // English month names whatever the locale, as pandas writes them.
    t.format("%d %b %Y %H:%M").to_string()
}

fn tag(out: &mut Vec<u8>, name: &str, body: &[u8]) {
    out.extend_from_slice(format!("<{name}>").as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(format!("</{name}>").as_bytes());
}

fn padded(text: &str, width: usize) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(width, 0);
    bytes
}

/// The file: everything before the data is built in memory (recording where each
/// part starts for the map), the rows are streamed, then the closing parts.
fn write_dta(out: &mut impl Write, variables: &[Variable], rows: usize, now: &str) -> std::io::Result<()> {
    let mut head = b"<stata_dta>".to_vec();
    let mut header = Vec::new();
    tag(&mut header, "release", b"118");
    tag(&mut header, "byteorder", b"LSF");
    tag(&mut header, "K", &(variables.len() as u16).to_le_bytes());
    tag(&mut header, "N", &(rows as u64).to_le_bytes());
    tag(&mut header, "label", &0u16.to_le_bytes());
    let mut stamp = vec![0x11u8];
    stamp.extend_from_slice(now.as_bytes());
    tag(&mut header, "timestamp", &stamp);
    tag(&mut head, "header", &header);
    let mut map = vec![0u64; 14];
    map[1] = head.len() as u64;
    tag(&mut head, "map", &[0u8; 14 * 8]);
    let mut section = |head: &mut Vec<u8>, slot: usize, name: &str, body: Vec<u8>| {
        map[slot] = head.len() as u64;
        tag(head, name, &body);
    };
    section(&mut head, 2, "variable_types", variables.iter().flat_map(|v| v.cells.type_code().to_le_bytes()).collect());
    section(&mut head, 3, "varnames", variables.iter().flat_map(|v| padded(&v.name, 129)).collect());
    section(&mut head, 4, "sortlist", vec![0u8; 2 * (variables.len() + 1)]);
    section(&mut head, 5, "formats", variables.iter().flat_map(|v| padded(&v.format, 57)).collect());
    section(&mut head, 6, "value_label_names", vec![0u8; 129 * variables.len()]);
    section(&mut head, 7, "variable_labels", vec![0u8; 321 * variables.len()]);
    section(&mut head, 8, "characteristics", Vec::new());
    map[9] = head.len() as u64;
    head.extend_from_slice(b"<data>");
    let row_width: usize = variables.iter().map(|v| v.cells.width()).sum();
    let data_end = head.len() + rows * row_width + b"</data>".len();
    let mut tail = b"</data>".to_vec();
    let mut at = |slot: usize, tail: &Vec<u8>| map[slot] = (data_end + tail.len() - b"</data>".len()) as u64;
    at(10, &tail);
    tag(&mut tail, "strls", b"");
    at(11, &tail);
    tag(&mut tail, "value_labels", b"");
    at(12, &tail);
    tail.extend_from_slice(b"</stata_dta>");
    at(13, &tail);
    let map_body: Vec<u8> = map.iter().flat_map(|m| m.to_le_bytes()).collect();
    let start = map[1] as usize + b"<map>".len();
    head[start..start + map_body.len()].copy_from_slice(&map_body);

    out.write_all(&head)?;
    let mut chunk = Vec::with_capacity(row_width * 8192);
    for row in 0..rows {
        for v in variables {
            v.cells.put(row, &mut chunk);
        }
        if chunk.len() >= row_width * 8192 {
            out.write_all(&chunk)?;
            chunk.clear();
        }
    }
    out.write_all(&chunk)?;
    out.write_all(&tail)
}

/// The batch's columns as pandas casts them for Stata.
fn variables(batch: &RecordBatch) -> Result<Vec<Variable>> {
    let mut names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut duplicates = 0;
    for j in 0..names.len() {
        let name = stata_name(&names[j]);
        if name != names[j] {
            let mut name = name;
            while names.contains(&name) {
                name = truncated(&format!("_{duplicates}{name}"));
                duplicates += 1;
            }
            names[j] = name;
        }
    }
    let rows = batch.num_rows();
    let mut variables = Vec::new();
    for ((field, array), name) in batch.schema().fields().iter().zip(batch.columns()).zip(names) {
        let cells = cells(array, rows).map_err(|e| err!("column {}: {e}", field.name()))?;
        let format = match (&cells, array.data_type()) {
            (_, DataType::Timestamp(..)) => "%td".to_string(),
            (Cells::Byte(_), _) => "%8.0g".into(),
            (Cells::Long(_), _) => "%12.0g".into(),
            (Cells::Double(_), _) => "%10.0g".into(),
            (Cells::Str(width, _), _) => format!("%{width}s"),
        };
        variables.push(Variable { name, format, cells });
    }
    Ok(variables)
}

/// pandas' renaming of a column for Stata 118.
fn stata_name(name: &str) -> String {
    let mut name: String = name
        .chars()
        .map(|c| {
            let code = c as u32;
            let bad = (code < 128 && !(c.is_ascii_alphanumeric() || c == '_')) || (128..192).contains(&code) || c == '×' || c == '÷';
            if bad { '_' } else { c }
        })
        .collect();
    if RESERVED.contains(&name.as_str()) {
        name = format!("_{name}");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("_{name}");
    }
    truncated(&name)
}

fn truncated(name: &str) -> String {
    name.chars().take(MAX_NAME).collect()
}

fn cells(array: &ArrayRef, rows: usize) -> Result<Cells> {
    Ok(match array.data_type() {
        DataType::Boolean => {
            let a = array.as_any().downcast_ref::<BooleanArray>().unwrap();
            if a.null_count() > 0 {
                bail!("a flag column has missing values");
            }
            Cells::Byte(a.values().iter().map(|b| b as i8).collect())
        }
        DataType::Int64 => {
            let a = array.as_any().downcast_ref::<Int64Array>().unwrap();
            integers(a.iter().collect(), rows)?
        }
        DataType::Float64 => {
            let a = array.as_any().downcast_ref::<Float64Array>().unwrap();
            doubles(a.iter().collect())?
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let a = array.as_any().downcast_ref::<TimestampNanosecondArray>().unwrap();
            let days = a.iter().map(|t| t.map(|ns| (ns.div_euclid(NS_PER_DAY) - STATA_EPOCH_DAYS) as f64));
            Cells::Double(days.map(|d| d.unwrap_or(f64::from_bits(MISSING_DOUBLE))).collect())
        }
        DataType::Utf8 => texts(array.as_any().downcast_ref::<StringArray>().unwrap().iter().map(|t| t.map(str::to_string)).collect())?,
        DataType::Dictionary(key, _) => {
            let (keys, values) = match key.as_ref() {
                DataType::Int8 => keys::<Int8Type>(array),
                DataType::Int16 => keys::<Int16Type>(array),
                DataType::Int32 => keys::<Int32Type>(array),
                other => bail!("categories keyed by {other}"),
            };
            match values.data_type() {
                DataType::Utf8 => {
                    let v = values.as_any().downcast_ref::<StringArray>().unwrap();
                    texts(keys.iter().map(|k| k.map(|k| v.value(k).to_string())).collect())?
                }
                // A category of integers with a missing value is a float column in pandas.
                DataType::Int64 => {
                    let v = values.as_any().downcast_ref::<Int64Array>().unwrap();
                    let ints: Vec<Option<i64>> = keys.iter().map(|k| k.map(|k| v.value(k))).collect();
                    if ints.iter().any(Option::is_none) { doubles(ints.iter().map(|i| i.map(|i| i as f64)).collect())? } else { integers(ints, rows)? }
                }
                DataType::Float64 => {
                    let v = values.as_any().downcast_ref::<Float64Array>().unwrap();
                    doubles(keys.iter().map(|k| k.map(|k| v.value(k))).collect())?
                }
                other => bail!("categories of type {other}"),
            }
        }
        other => bail!("values of type {other} cannot be written to Stata"),
    })
}

fn keys<K: arrow::datatypes::ArrowDictionaryKeyType>(array: &ArrayRef) -> (Vec<Option<usize>>, ArrayRef) {
    let d = array.as_any().downcast_ref::<DictionaryArray<K>>().unwrap();
    (d.keys().iter().map(|k| k.map(arrow::datatypes::ArrowNativeType::as_usize)).collect(), d.values().clone())
}

/// pandas' int64: a 4-byte long when every value is in Stata's range, else (and
/// when there are no rows, or missing values) a double.
fn integers(values: Vec<Option<i64>>, rows: usize) -> Result<Cells> {
    let all: Option<Vec<i64>> = values.iter().copied().collect();
    match all {
        Some(v) if rows > 0 && v.iter().all(|x| (-2_147_483_647..=2_147_483_620).contains(x)) => Ok(Cells::Long(v.into_iter().map(|x| x as i32).collect())),
        _ => doubles(values.into_iter().map(|x| x.map(|x| x as f64)).collect()),
    }
}

fn doubles(values: Vec<Option<f64>>) -> Result<Cells> {
    if values.iter().flatten().any(|v| v.is_infinite()) {
        bail!("infinity is outside the range Stata holds");
    }
    if let Some(v) = values.iter().flatten().find(|v| **v > MAX_DOUBLE) {
        bail!("{v} is above the largest value Stata holds ({MAX_DOUBLE})");
    }
    Ok(Cells::Double(values.into_iter().map(|v| v.filter(|v| !v.is_nan()).unwrap_or(f64::from_bits(MISSING_DOUBLE))).collect()))
}

fn texts(values: Vec<Option<String>>) -> Result<Cells> {
    let width = values.iter().flatten().map(String::len).max().unwrap_or(0).max(1);
    if width > MAX_STR {
        bail!("a value of {width} bytes is longer than Stata's fixed-width strings ({MAX_STR} bytes); strL is not written");
    }
    Ok(Cells::Str(width, values))
}

/// Read a `.dta` / `.dta.gz` file of format 117 or 118 as pandas reads it:
/// bytes, ints and longs as Int8/16/32 (a column holding a missing value as
/// Float64), floats and doubles with `.` as null, text with its trailing NULs cut,
/// `%td` columns as dates (nanosecond timestamps).
pub fn read(path: &Path) -> Result<RecordBatch> {
    let shown = path.display();
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let result = if path.to_string_lossy().ends_with(".gz") { flate2::read::GzDecoder::new(file).read_to_end(&mut bytes) } else { std::io::BufReader::new(file).read_to_end(&mut bytes) };
    result.map_err(|e| err!("{shown}: {e}"))?;
    parse(&bytes).map_err(|e| err!("{shown}: not a Stata 117/118 file I can read: {e}"))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| err!("ends early, at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn expect(&mut self, text: &str) -> Result<()> {
        let at = self.at;
        if self.take(text.len())? != text.as_bytes() {
            bail!("expected {text} at byte {at}");
        }
        Ok(())
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    /// Skip to just after the next `text`.
    fn past(&mut self, text: &str) -> Result<()> {
        let found = self.bytes[self.at..].windows(text.len()).position(|w| w == text.as_bytes()).ok_or_else(|| err!("no {text}"))?;
        self.at += found + text.len();
        Ok(())
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn parse(bytes: &[u8]) -> Result<RecordBatch> {
    let mut c = Cursor { bytes, at: 0 };
    c.expect("<stata_dta><header><release>")?;
    let release = c.take(3)?;
    let (name_width, format_width, rows_width) = match release {
        b"117" => (33, 49, 4),
        b"118" => (129, 57, 8),
        other => bail!("release {}", String::from_utf8_lossy(other)),
    };
    c.expect("</release><byteorder>")?;
    if c.take(3)? != b"LSF" {
        bail!("only little-endian (LSF) files are read");
    }
    c.expect("</byteorder><K>")?;
    let k = c.u16()? as usize;
    c.expect("</K><N>")?;
    let n = if rows_width == 4 { u32::from_le_bytes(c.take(4)?.try_into().unwrap()) as usize } else { u64::from_le_bytes(c.take(8)?.try_into().unwrap()) as usize };
    c.past("<variable_types>")?;
    let types: Vec<u16> = (0..k).map(|_| c.u16()).collect::<Result<_>>()?;
    c.past("<varnames>")?;
    let names: Vec<String> = (0..k).map(|_| c.take(name_width).map(c_string)).collect::<Result<_>>()?;
    c.past("<formats>")?;
    let formats: Vec<String> = (0..k).map(|_| c.take(format_width).map(c_string)).collect::<Result<_>>()?;
    c.past("<data>")?;
    let widths: Vec<usize> = types
        .iter()
        .map(|t| match *t {
            1..=2045 => Ok(*t as usize),
            BYTE => Ok(1),
            INT => Ok(2),
            LONG | FLOAT => Ok(4),
            DOUBLE => Ok(8),
            32768 => bail!("strL columns are not read"),
            other => bail!("variable type {other}"),
        })
        .collect::<Result<_>>()?;
    let row_width: usize = widths.iter().sum();
    let data = c.take(n.checked_mul(row_width).ok_or_else(|| err!("too many rows"))?)?;
    let mut offset = 0;
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for j in 0..k {
        let cell = |row: usize| &data[row * row_width + offset..row * row_width + offset + widths[j]];
        let le = |row: usize| -> [u8; 8] {
            let mut b = [0u8; 8];
            b[..widths[j]].copy_from_slice(cell(row));
            b
        };
        let array: ArrayRef = match types[j] {
            1..=2045 => Arc::new((0..n).map(|r| Some(c_string(cell(r)))).collect::<StringArray>()),
            DOUBLE | FLOAT => {
                let values = (0..n).map(|r| {
                    let v = if types[j] == DOUBLE { f64::from_le_bytes(le(r)) } else { f32::from_le_bytes(le(r)[..4].try_into().unwrap()) as f64 };
                    let missing = if types[j] == DOUBLE { v >= f64::from_bits(MISSING_DOUBLE) } else { v > 1.701_411_7e38 };
                    (!missing).then_some(v)
                });
                let doubles: Float64Array = values.collect();
                if formats[j].starts_with("%td") {
                    let ns: TimestampNanosecondArray = doubles.iter().map(|d| d.map(|d| (d as i64 + STATA_EPOCH_DAYS) * NS_PER_DAY)).collect();
                    Arc::new(ns)
                } else {
                    Arc::new(doubles)
                }
            }
            t => {
                // Integers above each type's largest valid value are missing.
                let (top, raw): (i64, Box<dyn Fn(usize) -> i64>) = match t {
                    BYTE => (100, Box::new(|r| cell(r)[0] as i8 as i64)),
                    INT => (32740, Box::new(|r| i16::from_le_bytes(cell(r).try_into().unwrap()) as i64)),
                    _ => (2_147_483_620, Box::new(|r| i32::from_le_bytes(cell(r).try_into().unwrap()) as i64)),
                };
                let values: Vec<i64> = (0..n).map(raw).collect();
                if values.iter().any(|v| *v > top) {
                    Arc::new(values.iter().map(|v| (*v <= top).then_some(*v as f64)).collect::<Float64Array>())
                } else {
                    match t {
                        BYTE => Arc::new(values.iter().map(|v| *v as i8).collect::<Int8Array>()),
                        INT => Arc::new(values.iter().map(|v| *v as i16).collect::<Int16Array>()),
                        _ => Arc::new(values.iter().map(|v| *v as i32).collect::<Int32Array>()),
                    }
                }
            }
        };
        offset += widths[j];
        fields.push(Field::new(&names[j], array.data_type().clone(), true));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_renamed_as_pandas_renames_them() {
        assert_eq!(stata_name("age"), "age");
        assert_eq!(stata_name("in"), "_in");
        assert_eq!(stata_name("2nd_dose"), "_2nd_dose");
        assert_eq!(stata_name("a-b c"), "a_b_c");
        assert_eq!(stata_name("covid_vaccine_second_dose_date_after_first"), "covid_vaccine_second_dose_date_a");
    }

    #[test]
    fn written_files_read_back() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Int64, false),
            Field::new("flag", DataType::Boolean, true),
            Field::new("big", DataType::Int64, true),
            Field::new("bmi", DataType::Float64, true),
            Field::new("died", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("region", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(BooleanArray::from(vec![true, false])),
                Arc::new(Int64Array::from(vec![1, 3_000_000_000])),
                Arc::new(Float64Array::from(vec![Some(21.5), None])),
                Arc::new(TimestampNanosecondArray::from(vec![Some(18_262 * NS_PER_DAY), None])),
                Arc::new(StringArray::from(vec![Some("London"), None])),
            ],
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("ehrfusion-stata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for gzip in [false, true] {
            let path = dir.join(if gzip { "x.dta.gz" } else { "x.dta" });
            write(&path, &batch, gzip, "07 Dec 2026 09:30").unwrap();
            let back = read(&path).unwrap();
            assert_eq!(back.column(0).as_any().downcast_ref::<Int32Array>().unwrap().values().to_vec(), vec![1, 2]);
            assert_eq!(back.column(1).as_any().downcast_ref::<Int8Array>().unwrap().values().to_vec(), vec![1, 0]);
            assert_eq!(back.column(2).as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec(), vec![1.0, 3e9]);
            let bmi = back.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
            assert_eq!((bmi.value(0), bmi.is_null(1)), (21.5, true));
            let died = back.column(4).as_any().downcast_ref::<TimestampNanosecondArray>().unwrap();
            assert_eq!((died.value(0), died.is_null(1)), (18_262 * NS_PER_DAY, true));
            let region = back.column(5).as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!((region.value(0), region.value(1)), ("London", ""));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
