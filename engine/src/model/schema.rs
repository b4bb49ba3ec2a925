//! Table schemas: which tables exist, whether they hold one row or many rows per
//! patient, and each column's type and constraints. The backend schemas live in
//! `schemas/*.json` at the repository root and are compiled into the binary.

use indexmap::IndexMap;
use serde::Deserialize;

use super::types::ValueType;
use crate::error::Result;
use crate::{bail, err};

const CORE_JSON: &str = include_str!("../../../schemas/core.json");
const TPP_JSON: &str = include_str!("../../../schemas/tpp.json");
const EMIS_JSON: &str = include_str!("../../../schemas/emis.json");

/// The backends whose schemas ship with ehrfusion.
pub const BACKENDS: [&str; 3] = ["core", "tpp", "emis"];

/// The schema file of a backend, as compiled in.
pub fn backend_json(name: &str) -> Option<&'static str> {
    match name {
        "core" => Some(CORE_JSON),
        "tpp" => Some(TPP_JSON),
        "emis" => Some(EMIS_JSON),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// At most one row per patient.
    Patient,
    /// Any number of rows per patient.
    Event,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    #[serde(default)]
    pub not_null: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub first_of_month: bool,
    #[serde(default)]
    pub categories: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub range: Option<Range>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: i64,
    pub max: i64,
    #[serde(default = "one")]
    pub step: i64,
}

fn one() -> i64 {
    1
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: ValueType,
    pub description: String,
    pub constraints: Constraints,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub level: Level,
    pub description: String,
    pub columns: Vec<ColumnSchema>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn is_patient_level(&self) -> bool {
        self.level == Level::Patient
    }
}

/// A set of table schemas (a backend, possibly extended with user-defined tables).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub tables: IndexMap<String, TableSchema>,
}

impl Schema {
    pub fn backend(name: &str) -> Result<Schema> {
        let text = backend_json(name).ok_or_else(|| err!("unknown backend '{name}' (known backends: {})", BACKENDS.join(", ")))?;
        let file: RawSchemaFile = serde_json::from_str(text)
            .map_err(|e| err!("schemas/{name}.json: {e}"))?;
        let mut schema = Schema::default();
        for (table, raw) in file.tables {
            let t = raw.into_schema(&table).map_err(|e| err!("schemas/{name}.json: {e}"))?;
            schema.tables.insert(table, t);
        }
        Ok(schema)
    }

    pub fn table(&self, name: &str) -> Result<&TableSchema> {
        self.tables.get(name).ok_or_else(|| {
            err!(
                "unknown table '{name}' (known tables: {})",
                self.tables.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[derive(Deserialize)]
struct RawSchemaFile {
    #[allow(dead_code)]
    format_version: u32,
    tables: IndexMap<String, RawTable>,
}

/// The JSON form of one table, shared by the schema files and by user-defined tables
/// in a query model.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub level: Level,
    #[serde(default)]
    pub description: String,
    pub columns: Vec<RawColumn>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub constraints: Constraints,
}

impl RawTable {
    pub fn into_schema(self, name: &str) -> Result<TableSchema> {
        let mut columns: Vec<ColumnSchema> = Vec::with_capacity(self.columns.len());
        for c in self.columns {
            if c.name == "patient_id" {
                bail!("table '{name}': 'patient_id' is implicit and must not be listed as a column");
            }
            if columns.iter().any(|e| e.name == c.name) {
                bail!("table '{name}': column '{}' is listed twice", c.name);
            }
            let ty = c.ty.parse().map_err(|e| err!("table '{name}', column '{}': {e}", c.name))?;
            columns.push(ColumnSchema { name: c.name, ty, description: c.description, constraints: c.constraints });
        }
        Ok(TableSchema { name: name.to_string(), level: self.level, description: self.description, columns })
    }
}
