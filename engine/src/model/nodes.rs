//! The typed nodes of the query model. A dataset is a DAG of nodes stored in one
//! vector; nodes refer to their inputs by index, so a shared sub-expression exists once.

use indexmap::IndexMap;

use super::schema::TableSchema;
use super::types::{Literal, ValueType};

pub type NodeId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    First,
    Last,
}

/// Aggregations collapse many rows per patient into one value per patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Exists,
    Count,
    CountDistinct,
    CountEpisodes,
    Min,
    Max,
    Sum,
    Mean,
    CombineAsSet,
}

/// Functions map series to a series of the same dimension as their widest input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    EQ,
    NE,
    LT,
    LE,
    GT,
    GE,
    And,
    Or,
    Not,
    IsNull,
    Negate,
    Absolute,
    Add,
    Subtract,
    Multiply,
    TrueDivide,
    FloorDivide,
    Power,
    CastToInt,
    CastToFloat,
    DateAddDays,
    DateAddMonths,
    DateAddYears,
    DateDifferenceInDays,
    DateDifferenceInMonths,
    DateDifferenceInYears,
    YearFromDate,
    MonthFromDate,
    DayFromDate,
    ToFirstOfYear,
    ToFirstOfMonth,
    StringContains,
    In,
    MinimumOf,
    MaximumOf,
    FormatDate,
    CastToStr,
    // Text functions that cohort-extractor's TPP queries use (not ehrQL's).
    LowerCase,
    TrimSpaces,
    ReplaceIgnoringCase,
}

impl Function {
    pub const ALL: [Function; 40] = [
        Function::EQ,
        Function::NE,
        Function::LT,
        Function::LE,
        Function::GT,
        Function::GE,
        Function::And,
        Function::Or,
        Function::Not,
        Function::IsNull,
        Function::Negate,
        Function::Absolute,
        Function::Add,
        Function::Subtract,
        Function::Multiply,
        Function::TrueDivide,
        Function::FloorDivide,
        Function::Power,
        Function::CastToInt,
        Function::CastToFloat,
        Function::DateAddDays,
        Function::DateAddMonths,
        Function::DateAddYears,
        Function::DateDifferenceInDays,
        Function::DateDifferenceInMonths,
        Function::DateDifferenceInYears,
        Function::YearFromDate,
        Function::MonthFromDate,
        Function::DayFromDate,
        Function::ToFirstOfYear,
        Function::ToFirstOfMonth,
        Function::StringContains,
        Function::In,
        Function::MinimumOf,
        Function::MaximumOf,
        Function::FormatDate,
        Function::CastToStr,
        Function::LowerCase,
        Function::TrimSpaces,
        Function::ReplaceIgnoringCase,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::EQ => "EQ",
            Function::NE => "NE",
            Function::LT => "LT",
            Function::LE => "LE",
            Function::GT => "GT",
            Function::GE => "GE",
            Function::And => "And",
            Function::Or => "Or",
            Function::Not => "Not",
            Function::IsNull => "IsNull",
            Function::Negate => "Negate",
            Function::Absolute => "Absolute",
            Function::Add => "Add",
            Function::Subtract => "Subtract",
            Function::Multiply => "Multiply",
            Function::TrueDivide => "TrueDivide",
            Function::FloorDivide => "FloorDivide",
            Function::Power => "Power",
            Function::CastToInt => "CastToInt",
            Function::CastToFloat => "CastToFloat",
            Function::DateAddDays => "DateAddDays",
            Function::DateAddMonths => "DateAddMonths",
            Function::DateAddYears => "DateAddYears",
            Function::DateDifferenceInDays => "DateDifferenceInDays",
            Function::DateDifferenceInMonths => "DateDifferenceInMonths",
            Function::DateDifferenceInYears => "DateDifferenceInYears",
            Function::YearFromDate => "YearFromDate",
            Function::MonthFromDate => "MonthFromDate",
            Function::DayFromDate => "DayFromDate",
            Function::ToFirstOfYear => "ToFirstOfYear",
            Function::ToFirstOfMonth => "ToFirstOfMonth",
            Function::StringContains => "StringContains",
            Function::In => "In",
            Function::MinimumOf => "MinimumOf",
            Function::MaximumOf => "MaximumOf",
            Function::FormatDate => "FormatDate",
            Function::CastToStr => "CastToStr",
            Function::LowerCase => "LowerCase",
            Function::TrimSpaces => "TrimSpaces",
            Function::ReplaceIgnoringCase => "ReplaceIgnoringCase",
        }
    }

    /// How arguments are written in JSON: `source` (unary), `lhs`/`rhs` (binary) or
    /// `sources` (variadic).
    pub fn arity(self) -> Arity {
        use Function::*;
        match self {
            Not | IsNull | Negate | Absolute | CastToInt | CastToFloat | YearFromDate | MonthFromDate
            | DayFromDate | ToFirstOfYear | ToFirstOfMonth | CastToStr | LowerCase | TrimSpaces => Arity::Unary,
            MinimumOf | MaximumOf | ReplaceIgnoringCase => Arity::Variadic,
            _ => Arity::Binary,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Unary,
    Binary,
    Variadic,
}

impl Aggregation {
    pub const ALL: [Aggregation; 9] = [
        Aggregation::Exists,
        Aggregation::Count,
        Aggregation::CountDistinct,
        Aggregation::CountEpisodes,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Sum,
        Aggregation::Mean,
        Aggregation::CombineAsSet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Exists => "Exists",
            Aggregation::Count => "Count",
            Aggregation::CountDistinct => "CountDistinct",
            Aggregation::CountEpisodes => "CountEpisodes",
            Aggregation::Min => "Min",
            Aggregation::Max => "Max",
            Aggregation::Sum => "Sum",
            Aggregation::Mean => "Mean",
            Aggregation::CombineAsSet => "CombineAsSet",
        }
    }
}

/// Where the rows of an inline patient table come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InlineRows {
    Given(Vec<(i64, Vec<Literal>)>),
    /// A csv, csv.gz, arrow/feather or parquet file with `patient_id` and at least the
    /// declared columns (others are ignored).
    File(std::path::PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An event-level (many rows per patient) table of the schema.
    SelectTable { table: String },
    /// A patient-level (one row per patient) table of the schema.
    SelectPatientTable { table: String },
    /// A patient-level table whose rows are given in the definition, or read from a
    /// file (`table_from_file`: an earlier action's output) when the query runs.
    InlinePatientTable { schema: TableSchema, rows: InlineRows },
    SelectColumn { source: NodeId, name: String },
    Filter { source: NodeId, condition: NodeId },
    /// Sort by several keys, the first the most significant.
    Sort { source: NodeId, sort_by: Vec<NodeId> },
    PickOneRowPerPatient { source: NodeId, position: Position },
    Aggregate { aggregation: Aggregation, source: NodeId, maximum_gap_days: Option<i64> },
    Function { function: Function, args: Vec<NodeId> },
    /// The first case whose condition is true gives the value (`None` is null).
    Case { cases: Vec<(NodeId, Option<NodeId>)>, default: Option<NodeId> },
    Value { ty: ValueType, value: Literal },
    /// A value fixed for each evaluation of a measure: `interval_start_date` or
    /// `interval_end_date` (ehrQL's `INTERVAL`). Only measures give it values.
    Parameter { name: String, ty: ValueType },
    ValueSet { ty: ValueType, values: Vec<Literal> },
}

impl Node {
    /// The nodes this node reads.
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Node::SelectColumn { source, .. } | Node::PickOneRowPerPatient { source, .. } | Node::Aggregate { source, .. } => vec![*source],
            Node::Filter { source, condition } => vec![*source, *condition],
            Node::Sort { source, sort_by } => std::iter::once(*source).chain(sort_by.iter().copied()).collect(),
            Node::Function { args, .. } => args.clone(),
            Node::Case { cases, default } => cases.iter().flat_map(|(c, v)| std::iter::once(*c).chain(*v)).chain(*default).collect(),
            Node::SelectTable { .. }
            | Node::SelectPatientTable { .. }
            | Node::InlinePatientTable { .. }
            | Node::Value { .. }
            | Node::ValueSet { .. }
            | Node::Parameter { .. } => vec![],
        }
    }
}

/// A patient-level variable or an event-level table of the dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub population: NodeId,
    pub variables: IndexMap<String, NodeId>,
    pub event_tables: IndexMap<String, IndexMap<String, NodeId>>,
}

/// A whole query: its nodes, the tables they can use, and the dataset.
#[derive(Clone, Debug)]
pub struct QueryModel {
    pub backend: String,
    pub schema: super::schema::Schema,
    pub nodes: Vec<Node>,
    pub dataset: Dataset,
}
