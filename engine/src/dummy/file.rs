//! A researcher's own dummy dataset (`--dummy-data-file`), used instead of running
//! the query after checking its columns, types and categories against the definition.

use std::path::Path;

use crate::error::Result;
use crate::model::schema::{ColumnSchema, Constraints, Level, TableSchema};
use crate::output::ColumnInfo;
use crate::output::format::column_text;
use crate::run::TableResult;
use crate::source::{Columns, Format, csv, typed};
use crate::bail;

pub fn read(path: &Path, columns: &[ColumnInfo]) -> Result<TableResult> {
    let shown = path.display();
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let Some((_, format)) = Format::of(&name) else {
        bail!("{shown}: a dummy data file must be .csv, .csv.gz, .arrow, .feather or .parquet");
    };
    if !path.exists() {
        bail!("{shown}: no such file");
    }
    let schema = TableSchema {
        name: "dataset".into(),
        level: Level::Patient,
        description: String::new(),
        columns: columns
            .iter()
            .skip(1)
            .map(|c| ColumnSchema { name: c.name.clone(), ty: c.ty.clone(), description: String::new(), constraints: Constraints::default() })
            .collect(),
    };
    let batches = match format {
        Format::Csv | Format::CsvGz => vec![csv::read_csv(path, &schema, Columns::Declared)?.0],
        Format::Parquet => typed::read_parquet(path, &schema, Columns::Declared)?,
        Format::Arrow => typed::read_arrow(path, &schema, Columns::Declared)?.0,
    };
    for (i, info) in columns.iter().enumerate().skip(1) {
        let Some(categories) = &info.categories else { continue };
        for b in &batches {
            let col = b.column(i);
            for (row, value) in column_text(col.as_ref())?.into_iter().enumerate() {
                if let Some(v) = value {
                    if !categories.contains(&v) {
                        bail!(
                            "{shown}: column '{}': '{v}' (row {}) is not one of the values the definition can produce ({})",
                            info.name,
                            row + 1,
                            categories.join(", ")
                        );
                    }
                }
            }
        }
    }
    Ok(TableResult { name: "dataset".into(), columns: columns.to_vec(), batches })
}
