//! Building one Arrow column of a table's canonical type, value by value (used when
//! reading CSV and when generating dummy data).

use std::sync::Arc;

use arrow::array::*;

use crate::model::ValueType;

pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
    Date(Date32Builder),
}

impl ColumnBuilder {
    pub fn new(ty: &ValueType) -> ColumnBuilder {
        match ty {
            ValueType::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            ValueType::Int => ColumnBuilder::Int(Int64Builder::new()),
            ValueType::Float => ColumnBuilder::Float(Float64Builder::new()),
            ValueType::Date => ColumnBuilder::Date(Date32Builder::new()),
            _ => ColumnBuilder::Str(StringBuilder::new()),
        }
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Str(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Str(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
        }
    }
}
