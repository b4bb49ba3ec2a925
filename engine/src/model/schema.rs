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
const EMISV2_JSON: &str = include_str!("../../../schemas/emisv2.json");

/// The backends whose schemas ship with ehrfusion.
pub const BACKENDS: [&str; 4] = ["core", "tpp", "emis", "emisv2"];

/// The schema file of a backend, as compiled in.
pub fn backend_json(name: &str) -> Option<&'static str> {
    match name {
        "core" => Some(CORE_JSON),
        "tpp" => Some(TPP_JSON),
        "emis" => Some(EMIS_JSON),
        "emisv2" => Some(EMISV2_JSON),
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
    /// Bounds that may be open at either end and apply to floats and dates too.
    #[serde(default)]
    pub general_range: Option<GeneralRange>,
    /// A date on or after the dates of these columns of the same row.
    #[serde(default)]
    pub date_after: Option<Vec<String>>,
    /// Constraints that only shape generated dummy data (the real data need not meet them).
    #[serde(default)]
    pub dummy_data: Option<Box<Constraints>>,
}

impl Constraints {
    /// What generated dummy values meet: these constraints with `dummy_data`'s in place
    /// of any of the same kind.
    pub fn for_dummy_data(&self) -> Constraints {
        let Some(d) = &self.dummy_data else { return self.clone() };
        Constraints {
            not_null: self.not_null || d.not_null,
            unique: self.unique || d.unique,
            first_of_month: self.first_of_month || d.first_of_month,
            categories: d.categories.clone().or_else(|| self.categories.clone()),
            regex: d.regex.clone().or_else(|| self.regex.clone()),
            range: d.range.clone().or_else(|| self.range.clone()),
            general_range: d.general_range.clone().or_else(|| self.general_range.clone()),
            date_after: d.date_after.clone().or_else(|| self.date_after.clone()),
            dummy_data: None,
        }
    }
}

/// `min` and `max` are numbers, or ISO dates for a date column; an absent end is open.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralRange {
    #[serde(default)]
    pub min: Option<serde_json::Value>,
    #[serde(default)]
    pub max: Option<serde_json::Value>,
    #[serde(default = "yes")]
    pub includes_min: bool,
    #[serde(default = "yes")]
    pub includes_max: bool,
}

impl GeneralRange {
    /// The bounds as days since the epoch, for a date column.
    pub fn date_bounds(&self) -> (Option<i32>, Option<i32>) {
        let day = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_str()).and_then(super::types::parse_iso_date);
        (day(&self.min), day(&self.max))
    }
}

fn yes() -> bool {
    true
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
        for c in &columns {
            if c.constraints.dummy_data.as_ref().is_some_and(|d| d.dummy_data.is_some()) {
                bail!("table '{name}', column '{}': 'dummy_data' constraints cannot hold their own 'dummy_data'", c.name);
            }
            let own = c.constraints.date_after.iter();
            let dummy = c.constraints.dummy_data.iter().flat_map(|d| d.date_after.iter());
            for other in own.chain(dummy).flatten() {
                let ok = columns.iter().any(|o| &o.name == other && o.ty == ValueType::Date) && c.ty == ValueType::Date;
                if !ok {
                    bail!("table '{name}', column '{}': 'date_after' needs it and '{other}' to be date columns of the table", c.name);
                }
            }
        }
        Ok(TableSchema { name: name.to_string(), level: self.level, description: self.description, columns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_schema_loads() {
        for name in BACKENDS {
            let schema = Schema::backend(name).unwrap();
            assert!(schema.tables.contains_key("patients"), "{name} has no patients table");
        }
        let tpp = Schema::backend("tpp").unwrap();
        assert_eq!(tpp.table("ons_deaths_raw").unwrap().level, Level::Event);
        assert_eq!(tpp.table("ons_deaths").unwrap().level, Level::Patient);
    }

    #[test]
    fn dummy_data_constraints_take_the_place_of_their_kind() {
        let tpp = Schema::backend("tpp").unwrap();
        let regs = tpp.table("practice_registrations").unwrap();
        let id = regs.column("practice_pseudo_id").unwrap().constraints.for_dummy_data();
        assert!(id.not_null);
        assert_eq!(id.range, Some(Range { min: 0, max: 999, step: 1 }));
        let apcs = tpp.table("apcs").unwrap();
        let discharge = apcs.column("discharge_date").unwrap().constraints.for_dummy_data();
        assert_eq!(discharge.date_after.as_deref(), Some(&["admission_date".to_string()][..]));
        assert_eq!(discharge.general_range.unwrap().date_bounds().0, super::super::types::parse_iso_date("2016-04-01"));
    }

    #[test]
    fn date_after_must_name_a_date_column() {
        let raw: RawTable = serde_json::from_str(
            r#"{"level": "event", "columns": [{"name": "d", "type": "date", "constraints": {"date_after": ["n"]}}, {"name": "n", "type": "int"}]}"#,
        )
        .unwrap();
        assert!(raw.into_schema("t").unwrap_err().to_string().contains("'date_after'"));
    }
}
