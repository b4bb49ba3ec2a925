//! Patient blocks. Every value of a dataset is computed per patient, so a dataset can
//! be computed a block of patients at a time. When the parquet inputs are ordered by
//! patient (their row groups' patient_id ranges increase), a block reads only its
//! own row groups, and memory follows the block, not the population.

use std::fs::File;
use std::path::Path;

use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

use super::{Format, discover};
use crate::error::Result;
use crate::err;
use crate::model::schema::Schema;

/// Input rows per block unless told otherwise: about 2 GiB of peak memory for the
/// benchmark workloads (a million patients of a realistic population).
pub const DEFAULT_BLOCK_ROWS: u64 = 200_000_000;

/// Patients with `first <= patient_id < end` (unbounded where `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatientRange {
    pub first: Option<i64>,
    pub end: Option<i64>,
}

/// One row group: its first and last patient and its rows.
struct Span {
    first: i64,
    last: i64,
    rows: u64,
}

/// Blocks of about `rows_per_block` input rows over the tables `used` in `dir`, or one
/// unbounded block when the inputs are small, not all parquet, or not ordered by
/// patient.
pub fn patient_blocks(dir: &Path, schema: &Schema, used: &[String], rows_per_block: u64) -> Result<Vec<PatientRange>> {
    let whole = vec![PatientRange::default()];
    let found = discover(dir, schema)?;
    let mut tables = Vec::new();
    for name in used {
        let Some(files) = found.get(name) else { continue };
        if files.format != Format::Parquet {
            return Ok(whole);
        }
        let mut spans = Vec::new();
        for path in &files.files {
            match ordered_spans(path)? {
                Some(s) => spans.extend(s),
                None => return Ok(whole),
            }
        }
        tables.push(spans);
    }
    let total: u64 = tables.iter().flatten().map(|s| s.rows).sum();
    let Some(largest) = tables.iter().max_by_key(|t| t.iter().map(|s| s.rows).sum::<u64>()) else { return Ok(whole) };
    if total <= rows_per_block || largest.len() < 2 {
        return Ok(whole);
    }
    // Cut at row-group starts of the largest table, in proportion to its share.
    let largest_rows: u64 = largest.iter().map(|s| s.rows).sum();
    let target = (rows_per_block as f64 * largest_rows as f64 / total as f64).max(1.0) as u64;
    let mut starts: Vec<&Span> = largest.iter().collect();
    starts.sort_by_key(|s| s.first);
    let mut cuts = Vec::new();
    let mut rows = 0;
    for pair in starts.windows(2) {
        rows += pair[0].rows;
        if rows >= target && cuts.last().is_none_or(|&c| pair[1].first > c) {
            cuts.push(pair[1].first);
            rows = 0;
        }
    }
    let mut blocks = Vec::with_capacity(cuts.len() + 1);
    let mut first = None;
    for cut in cuts {
        blocks.push(PatientRange { first, end: Some(cut) });
        first = Some(cut);
    }
    blocks.push(PatientRange { first, end: None });
    Ok(blocks)
}

/// The first and last patient of a row group, from its exact statistics of the
/// `patient_id` column at `column`.
pub fn patients_in(rg: &RowGroupMetaData, column: usize) -> Option<(i64, i64)> {
    match rg.column(column).statistics()? {
        Statistics::Int64(s) if s.min_is_exact() && s.max_is_exact() => Some((*s.min_opt()?, *s.max_opt()?)),
        Statistics::Int32(s) if s.min_is_exact() && s.max_is_exact() => Some((i64::from(*s.min_opt()?), i64::from(*s.max_opt()?))),
        _ => None,
    }
}

/// The row groups of a parquet file, if their statistics show patient_id ranges in
/// increasing order.
fn ordered_spans(path: &Path) -> Result<Option<Vec<Span>>> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let reader = SerializedFileReader::new(file).map_err(|e| err!("{shown}: not a readable parquet file: {e}"))?;
    let metadata = reader.metadata();
    let Some(column) = metadata.file_metadata().schema_descr().columns().iter().position(|c| c.name() == "patient_id") else {
        return Ok(None);
    };
    let mut spans: Vec<Span> = Vec::new();
    for rg in metadata.row_groups() {
        let Some((first, last)) = patients_in(rg, column) else { return Ok(None) };
        if spans.last().is_some_and(|p| first < p.last) {
            return Ok(None);
        }
        spans.push(Span { first, last, rows: rg.num_rows() as u64 });
    }
    Ok(Some(spans))
}
