//! A test case: a query model and the rows of its tables, as one replayable JSON file
//! (`{"model": ..., "tables": {"name": [[patient_id, value, ...], ...]}}`, values in the
//! columns' schema order), and the table files the engine reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use chrono::NaiveDate;
use ehrfusion::model::schema::{ColumnSchema, Schema, TableSchema};
use ehrfusion::model::types::ValueType;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::generate::{DATES, FIRST_OF_MONTH, FLOATS, STRS, codes};
use super::{Db, V, epoch};

pub type TableRows = BTreeMap<String, Vec<Vec<Json>>>;

/// Patient ids of generated rows: few, so that patients have several rows.
pub const PATIENTS: std::ops::RangeInclusive<i64> = 1..=6;

const ROW_GROUP_ROWS: usize = 2;

#[derive(Clone, Debug)]
pub struct Case {
    pub model: String,
    pub tables: TableRows,
}

impl Case {
    pub fn to_json(&self) -> String {
        let model: Json = serde_json::from_str(&self.model).unwrap();
        serde_json::to_string_pretty(&json!({"model": model, "tables": self.tables})).unwrap()
    }

    pub fn from_json(text: &str) -> Case {
        let doc: Json = serde_json::from_str(text).unwrap();
        let tables = serde_json::from_value(doc["tables"].clone()).unwrap();
        Case { model: doc["model"].to_string(), tables }
    }

    /// Save under `dir`, named by its content, and say where.
    pub fn save(&self, dir: &Path) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let text = self.to_json();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("case-{:016x}.json", hasher.finish()));
        std::fs::write(&path, text + "\n").unwrap();
        path
    }

    pub fn db(&self, schema: &Schema) -> Db {
        let mut tables = BTreeMap::new();
        for (name, rows) in &self.tables {
            let table = schema.table(name).unwrap();
            let rows =
                rows.iter().map(|row| (row[0].as_i64().unwrap(), cells(table, row).map(|(ty, v)| value_of(ty, v)).collect())).collect();
            tables.insert(name.clone(), rows);
        }
        Db { tables }
    }

    /// Every table as a CSV file of `dir`, rows in the case's order.
    pub fn write_csv(&self, dir: &Path, schema: &Schema) {
        for (name, rows) in &self.tables {
            let table = schema.table(name).unwrap();
            let mut text = std::iter::once("patient_id").chain(table.columns.iter().map(|c| c.name.as_str())).collect::<Vec<_>>().join(",");
            text.push('\n');
            for row in rows {
                let mut line = vec![row[0].to_string()];
                line.extend(cells(table, row).map(|(_, v)| csv_text(v)));
                text.push_str(&line.join(","));
                text.push('\n');
            }
            std::fs::write(dir.join(format!("{name}.csv")), text).unwrap();
        }
    }

    /// Every table as a parquet file of `dir`, ordered by patient, in small row groups so
    /// that the engine can read them in blocks of patients.
    pub fn write_parquet(&self, dir: &Path, schema: &Schema) {
        use parquet::arrow::ArrowWriter;
        use parquet::file::properties::WriterProperties;
        for (name, rows) in &self.tables {
            let table = schema.table(name).unwrap();
            let mut rows = rows.clone();
            rows.sort_by_key(|r| r[0].as_i64());
            let arrow_schema = ehrfusion::source::table_arrow_schema(table);
            let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r[0].as_i64().unwrap())))];
            for (i, column) in table.columns.iter().enumerate() {
                arrays.push(array(&column.ty, rows.iter().map(|r| &r[i + 1])));
            }
            let batch = RecordBatch::try_new(arrow_schema.clone(), arrays).unwrap();
            let props = WriterProperties::builder().set_max_row_group_row_count(Some(ROW_GROUP_ROWS)).build();
            let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).unwrap();
            let mut writer = ArrowWriter::try_new(file, arrow_schema, Some(props)).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
    }
}

fn cells<'a>(table: &'a TableSchema, row: &'a [Json]) -> impl Iterator<Item = (&'a ValueType, &'a Json)> {
    table.columns.iter().zip(&row[1..]).map(|(c, v)| (&c.ty, v))
}

fn parse_date(v: &Json) -> NaiveDate {
    NaiveDate::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d").unwrap()
}

fn value_of(ty: &ValueType, v: &Json) -> V {
    if v.is_null() {
        return V::Null;
    }
    match ty {
        ValueType::Bool => V::Bool(v.as_bool().unwrap()),
        ValueType::Int => V::Int(v.as_i64().unwrap()),
        ValueType::Float => V::Float(v.as_f64().unwrap()),
        ValueType::Date => V::Date(parse_date(v)),
        _ => V::Str(v.as_str().unwrap().to_string()),
    }
}

fn csv_text(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Bool(b) => if *b { "T" } else { "F" }.to_string(),
        other => other.to_string(),
    }
}

fn array<'a>(ty: &ValueType, values: impl Iterator<Item = &'a Json>) -> ArrayRef {
    match ty {
        ValueType::Bool => Arc::new(values.map(|v| v.as_bool()).collect::<BooleanArray>()),
        ValueType::Int => Arc::new(values.map(|v| v.as_i64()).collect::<Int64Array>()),
        ValueType::Float => Arc::new(values.map(|v| v.as_f64()).collect::<Float64Array>()),
        ValueType::Date => {
            Arc::new(values.map(|v| (!v.is_null()).then(|| (parse_date(v) - epoch()).num_days() as i32)).collect::<Date32Array>())
        }
        _ => Arc::new(values.map(|v| v.as_str()).collect::<StringArray>()),
    }
}

/// Random rows for every table of the schema: patients of `PATIENTS` (so patients have
/// several rows, share dates and are missing from some tables), values from small pools, nulls
/// wherever the column allows them.
pub fn tables(schema: &Schema) -> BoxedStrategy<TableRows> {
    let mut strategy: BoxedStrategy<TableRows> = Just(TableRows::new()).boxed();
    for table in schema.tables.values() {
        let row = (PATIENTS, table.columns.iter().map(column_values).collect::<Vec<_>>());
        let (name, patient_level) = (table.name.clone(), table.is_patient_level());
        let rows = proptest::collection::vec(row, 0..if patient_level { 6 } else { 10 }).prop_map(move |rows| {
            let mut seen = std::collections::HashSet::new();
            // A patient-level table has one row per patient.
            rows.into_iter()
                .filter(|(p, _)| !patient_level || seen.insert(*p))
                .map(|(p, values)| std::iter::once(json!(p)).chain(values).collect())
                .collect()
        });
        strategy = (strategy, rows)
            .prop_map(move |(mut all, rows): (TableRows, Vec<Vec<Json>>)| {
                all.insert(name.clone(), rows);
                all
            })
            .boxed();
    }
    strategy
}

/// Values of a column, within its constraints.
fn column_values(column: &ColumnSchema) -> BoxedStrategy<Json> {
    let values = proptest::sample::select(pool(column));
    if column.constraints.not_null { values.boxed() } else { prop_oneof![1 => Just(Json::Null), 3 => values].boxed() }
}

/// The non-null values a column takes.
fn pool(column: &ColumnSchema) -> Vec<Json> {
    let c = &column.constraints;
    match (&column.ty, &c.categories) {
        (_, Some(categories)) => categories.clone(),
        (ValueType::Date, _) if c.first_of_month => FIRST_OF_MONTH.iter().map(|d| json!(d)).collect(),
        (ValueType::Date, _) => DATES.iter().map(|d| json!(d)).collect(),
        (ValueType::Int, _) => (0..4).map(|i| json!(i)).collect(),
        (ValueType::Float, _) => FLOATS.iter().map(|f| json!(f)).collect(),
        (ValueType::Bool, _) => vec![json!(false), json!(true)],
        (ValueType::Code(system), _) => codes(*system).iter().map(|s| json!(s)).collect(),
        _ => STRS.iter().map(|s| json!(s)).collect(),
    }
}
