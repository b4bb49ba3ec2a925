//! Value types of the query model and their Arrow representation.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::DataType;
use chrono::{Datelike, NaiveDate};

use crate::error::{Error, Result};

/// The coding systems ehrQL knows. Codes are strings physically but distinct types
/// logically: a SNOMED-CT column never compares equal to a CTV3 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeSystem {
    SnomedCt,
    Ctv3,
    Icd10,
    Opcs4,
    Dmd,
    Bnf,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    Bool,
    Int,
    Float,
    Str,
    Date,
    Code(CodeSystem),
    /// A string holding many codes of one system (e.g. `||E119 ,J849 ||I801`).
    MultiCodeString(CodeSystem),
    /// A set of values, produced by `CombineAsSet` or a set-valued `Value`.
    Set(Box<ValueType>),
}

impl ValueType {
    pub fn arrow_type(&self) -> DataType {
        match self {
            ValueType::Bool => DataType::Boolean,
            ValueType::Int => DataType::Int64,
            ValueType::Float => DataType::Float64,
            ValueType::Str | ValueType::Code(_) | ValueType::MultiCodeString(_) => DataType::Utf8,
            ValueType::Date => DataType::Date32,
            ValueType::Set(inner) => DataType::new_list(inner.arrow_type(), true),
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, ValueType::Int | ValueType::Float)
    }

    /// Types with an order, usable in comparisons, sorting, min and max.
    pub fn is_comparable(&self) -> bool {
        matches!(
            self,
            ValueType::Int | ValueType::Float | ValueType::Str | ValueType::Date | ValueType::Code(_)
        )
    }

    /// Types whose values are stored as text.
    pub fn is_textual(&self) -> bool {
        matches!(self, ValueType::Str | ValueType::Code(_) | ValueType::MultiCodeString(_))
    }
}

impl FromStr for ValueType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "bool" => ValueType::Bool,
            "int" => ValueType::Int,
            "float" => ValueType::Float,
            "str" => ValueType::Str,
            "date" => ValueType::Date,
            "SNOMEDCTCode" => ValueType::Code(CodeSystem::SnomedCt),
            "CTV3Code" => ValueType::Code(CodeSystem::Ctv3),
            "ICD10Code" => ValueType::Code(CodeSystem::Icd10),
            "OPCS4Code" => ValueType::Code(CodeSystem::Opcs4),
            "DMDCode" => ValueType::Code(CodeSystem::Dmd),
            "BNFCode" => ValueType::Code(CodeSystem::Bnf),
            "ICD10MultiCodeString" => ValueType::MultiCodeString(CodeSystem::Icd10),
            "OPCS4MultiCodeString" => ValueType::MultiCodeString(CodeSystem::Opcs4),
            other => {
                return Err(Error::new(format!(
                    "unknown type '{other}' (expected bool, int, float, str, date, a code type such as SNOMEDCTCode, or a multi-code string type)"
                )));
            }
        })
    }
}

impl fmt::Display for CodeSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodeSystem::SnomedCt => "SNOMEDCTCode",
            CodeSystem::Ctv3 => "CTV3Code",
            CodeSystem::Icd10 => "ICD10Code",
            CodeSystem::Opcs4 => "OPCS4Code",
            CodeSystem::Dmd => "DMDCode",
            CodeSystem::Bnf => "BNFCode",
        })
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Bool => f.write_str("bool"),
            ValueType::Int => f.write_str("int"),
            ValueType::Float => f.write_str("float"),
            ValueType::Str => f.write_str("str"),
            ValueType::Date => f.write_str("date"),
            ValueType::Code(c) => write!(f, "{c}"),
            ValueType::MultiCodeString(CodeSystem::Opcs4) => f.write_str("OPCS4MultiCodeString"),
            ValueType::MultiCodeString(_) => f.write_str("ICD10MultiCodeString"),
            ValueType::Set(inner) => write!(f, "set of {inner}"),
        }
    }
}

/// A single constant value. Dates are days since 1970-01-01, as in Arrow's Date32.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Date(i32),
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

pub fn date_to_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// Parse a strict ISO date (`YYYY-MM-DD`), the only form ehrQL accepts.
pub fn parse_iso_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(date_to_days)
}

pub fn format_date(days: i32) -> String {
    match days_to_date(days) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => format!("<invalid date {days}>"),
    }
}
