//! The column constraints ehrQL checks when it reads a table from a file: a value of
//! a categorical column must be one of its categories, and a not-null column holds no
//! nulls. A column the file lacks (allowed for dummy tables) reads as null throughout
//! and is not checked, as in ehrQL. Other constraints (ranges, patterns, first of
//! month) describe the data but are not checked on reading, as in ehrQL.

use std::collections::HashSet;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};

use crate::bail;
use crate::error::Result;
use crate::model::schema::TableSchema;

/// The categories of a column, as the values its Arrow array holds.
enum Categories {
    Text(HashSet<String>),
    Int(HashSet<i64>),
}

impl Categories {
    fn of(values: &[serde_json::Value]) -> Option<Categories> {
        if let Some(text) = values.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<HashSet<_>>>() {
            return Some(Categories::Text(text));
        }
        values.iter().map(serde_json::Value::as_i64).collect::<Option<HashSet<_>>>().map(Categories::Int)
    }

    /// The first row (index) whose value is not a category, with the value as text.
    fn first_outside(&self, array: &ArrayRef) -> Option<(usize, String)> {
        match (self, array.data_type()) {
            (Categories::Text(set), DataType::Utf8) => {
                let a = array.as_string::<i32>();
                (0..a.len()).find(|&i| a.is_valid(i) && !set.contains(a.value(i))).map(|i| (i, a.value(i).to_string()))
            }
            (Categories::Int(set), DataType::Int64) => {
                let a = array.as_primitive::<Int64Type>();
                (0..a.len()).find(|&i| a.is_valid(i) && !set.contains(&a.value(i))).map(|i| (i, a.value(i).to_string()))
            }
            _ => None,
        }
    }

    fn listed(values: &[serde_json::Value]) -> String {
        values.iter().map(|v| v.as_str().map(|s| format!("'{s}'")).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(", ")
    }
}

/// Where the checked rows are in their file, for messages.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// Each row's line in a CSV file.
    Lines(&'a [u64]),
    /// Rows counted from 1, after `before` rows already checked.
    Rows { before: usize },
}

/// Check the table's batches (in the table's canonical schema: `patient_id`, then its
/// columns) read from `path`. `present` says which of the table's columns the file has.
pub fn check(path: &Path, table: &TableSchema, batches: &[RecordBatch], present: &[bool], place: Place) -> Result<()> {
    for (i, column) in table.columns.iter().enumerate() {
        if !present[i] {
            continue;
        }
        let categories = column.constraints.categories.as_deref().and_then(|c| Categories::of(c).map(|set| (set, c)));
        if !column.constraints.not_null && categories.is_none() {
            continue;
        }
        let mut offset = 0usize;
        for batch in batches {
            let array = batch.column(i + 1);
            let place = |row: usize| match place {
                Place::Lines(lines) => format!("line {}", lines[offset + row]),
                Place::Rows { before } => format!("row {}", before + offset + row + 1),
            };
            if column.constraints.not_null
                && array.null_count() > 0
                && let Some(row) = (0..array.len()).find(|&r| array.is_null(r))
            {
                bail!("{}: {}, column '{}': no value, but the column may not be null", path.display(), place(row), column.name);
            }
            if let Some((set, listed)) = &categories
                && let Some((row, value)) = set.first_outside(array)
            {
                bail!(
                    "{}: {}, column '{}': '{value}' is not one of the column's categories ({})",
                    path.display(),
                    place(row),
                    column.name,
                    Categories::listed(listed)
                );
            }
            offset += batch.num_rows();
        }
    }
    Ok(())
}
