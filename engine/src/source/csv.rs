//! Reading CSV (and gzipped CSV) tables, checking every value against the schema.
//! Each error names the file, the line and the column.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder};
use arrow::record_batch::RecordBatch;
use flate2::read::MultiGzDecoder;

use super::builder::ColumnBuilder;
use super::{Columns, table_arrow_schema};
use crate::error::Result;
use crate::model::schema::TableSchema;
use crate::model::types::{ValueType, parse_iso_date};
use crate::{bail, err};

pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| err!("{}: {e}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    Ok(if path.to_string_lossy().ends_with(".gz") { Box::new(BufReader::new(MultiGzDecoder::new(reader))) } else { Box::new(reader) })
}

/// Append one CSV field; `None` means the text is not a valid value of the type.
fn push(b: &mut ColumnBuilder, text: &str) -> Option<()> {
    if text.is_empty() {
        b.append_null();
        return Some(());
    }
    match b {
        ColumnBuilder::Bool(b) => b.append_value(parse_bool(text)?),
        ColumnBuilder::Int(b) => b.append_value(text.parse::<i64>().ok()?),
        ColumnBuilder::Float(b) => b.append_value(text.parse::<f64>().ok().filter(|f| f.is_finite())?),
        ColumnBuilder::Str(b) => b.append_value(text),
        ColumnBuilder::Date(b) => b.append_value(parse_iso_date(text)?),
    }
    Some(())
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "T" | "t" | "True" | "true" | "TRUE" | "1" => Some(true),
        "F" | "f" | "False" | "false" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// Read a whole CSV file of one table into a batch with the table's Arrow schema.
/// Also returns the line of each row, for later error messages (duplicate patients),
/// and which of the table's columns the file has.
pub fn read_csv(path: &Path, table: &TableSchema, columns: Columns) -> Result<(RecordBatch, Vec<u64>, Vec<bool>)> {
    let shown = path.display();
    let mut input = open_maybe_gzip(path)?;
    // ehrQL reads the byte-order mark as part of the first column's name; say what it is.
    if input.fill_buf().map_err(|e| err!("{shown}: cannot read: {e}"))?.starts_with(b"\xEF\xBB\xBF") {
        bail!("{shown}: line 1: the file starts with a byte-order mark (BOM); save it as UTF-8 without one");
    }
    // Flexible, so that a row of the wrong length gets our message, not the reader's.
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(input);
    let headers = reader.headers().map_err(|e| read_error(&shown, e, None))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        bail!("{shown}: the file is empty (expected a header row naming the columns)");
    }
    for (i, h) in headers.iter().enumerate() {
        if headers.iter().take(i).any(|earlier| earlier == h) {
            bail!("{shown}: line 1: column '{h}' appears twice in the header");
        }
    }
    let position = |name: &str| headers.iter().position(|h| h == name);
    let pid_at = position("patient_id").ok_or_else(|| err!("{shown}: missing column 'patient_id'"))?;
    let mut at = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        match (position(&c.name), columns) {
            (Some(i), _) => at.push(Some(i)),
            (None, Columns::MissingAreNull) => at.push(None),
            (None, Columns::AllRequired | Columns::Declared) => bail!("{shown}: missing column '{}' of table '{}'", c.name, table.name),
        }
    }
    for (i, h) in headers.iter().enumerate() {
        if i != pid_at && columns != Columns::Declared && !table.columns.iter().any(|c| c.name == h) {
            bail!(
                "{shown}: unknown column '{h}' (table '{}' has columns: patient_id, {})",
                table.name,
                table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut pids = Int64Builder::new();
    let mut lines = Vec::new();
    let mut builders: Vec<ColumnBuilder> = table.columns.iter().map(|c| ColumnBuilder::new(&c.ty)).collect();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(read_error(&shown, e, Some(&headers))),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != headers.len() {
            // A quote left open swallows the rest of the file into one field.
            let hint = if record.iter().any(|f| f.contains('\n')) { " (a quoted field runs over several lines: is a quote not closed?)" } else { "" };
            bail!("{shown}: line {line}: expected {} fields, found {}{hint}", headers.len(), record.len());
        }
        let pid = match &record[pid_at] {
            "" => bail!("{shown}: line {line}, column 'patient_id': no value (every row needs a patient id)"),
            text => text.parse::<i64>().map_err(|_| err!("{shown}: line {line}, column 'patient_id': '{text}' is not an integer patient id"))?,
        };
        pids.append_value(pid);
        lines.push(line);
        for ((b, i), c) in builders.iter_mut().zip(&at).zip(&table.columns) {
            let Some(i) = i else {
                b.append_null();
                continue;
            };
            let text = &record[*i];
            if push(b, text).is_none() {
                bail!("{shown}: line {line}, column '{}': '{text}' is not a valid {}", c.name, describe(&c.ty));
            }
        }
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(pids.finish())];
    columns.extend(builders.iter_mut().map(ColumnBuilder::finish));
    let present = at.iter().map(Option::is_some).collect();
    Ok((RecordBatch::try_new(table_arrow_schema(table), columns)?, lines, present))
}

/// The CSV reader's error as one line naming the line (and column, where known).
fn read_error(shown: &impl std::fmt::Display, e: csv::Error, headers: Option<&csv::StringRecord>) -> crate::error::Error {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, err } => {
            let line = pos.as_ref().map_or(1, |p| p.line());
            let column = headers.and_then(|h| h.get(err.field())).map(|name| format!(", column '{name}'")).unwrap_or_default();
            err!("{shown}: line {line}{column}: not valid UTF-8 text (save the file as UTF-8)")
        }
        csv::ErrorKind::Io(io) => err!("{shown}: cannot read: {io}"),
        _ => err!("{shown}: {e}"),
    }
}

fn describe(ty: &ValueType) -> String {
    match ty {
        ValueType::Bool => "bool (T or F)".into(),
        ValueType::Date => "date (YYYY-MM-DD)".into(),
        other => other.to_string(),
    }
}
