//! Typed outputs (Arrow, parquet) use the smallest integer type that fits what a
//! column can hold, and dictionary-encode strings drawn from a known set of
//! categories. What a column can hold is inferred from the query model: schema
//! constraints, literal values, and functions with known ranges.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};

use crate::error::Result;
use crate::model::*;
use crate::source::Format;

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: ValueType,
    /// Bounds every value lies within, when known.
    pub int_range: Option<(i64, i64)>,
    /// Every value the column can take, when known (strings only).
    pub categories: Option<Vec<String>>,
    /// Whether the column may hold nulls (in typed outputs' schemas).
    pub nullable: bool,
}

impl ColumnInfo {
    pub fn patient_id() -> ColumnInfo {
        ColumnInfo { name: "patient_id".into(), ty: ValueType::Int, int_range: None, categories: None, nullable: false }
    }

    /// A column of a known type, nothing more known about its values.
    pub fn plain(name: &str, ty: ValueType, nullable: bool) -> ColumnInfo {
        ColumnInfo { name: name.to_string(), ty, int_range: None, categories: None, nullable }
    }

    pub fn of(model: &QueryModel, infos: &[NodeInfo], name: &str, node: NodeId) -> ColumnInfo {
        let ty = infos[node].series_type().cloned().unwrap_or(ValueType::Str);
        let int_range = if ty == ValueType::Int { int_range(model, infos, node) } else { None };
        let categories = if ty.is_textual() { categories(model, infos, node) } else { None };
        ColumnInfo { name: name.to_string(), ty, int_range, categories, nullable: true }
    }

    fn output_type(&self, format: Format) -> DataType {
        let base = self.ty.arrow_type();
        if matches!(format, Format::Csv | Format::CsvGz) {
            return base;
        }
        if let Some((lo, hi)) = self.int_range {
            return smallest_int(lo, hi);
        }
        if let Some(cats) = &self.categories {
            // Signed keys (pandas cannot read unsigned ones), sized as ehrQL sizes them.
            let key = smallest_int(-1, cats.len() as i64 - 1);
            return DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8));
        }
        base
    }
}

/// The smallest integer type holding `lo..=hi`, chosen as ehrQL chooses it: unsigned
/// unless the range goes below zero.
fn smallest_int(lo: i64, hi: i64) -> DataType {
    let largest = hi.max(lo.saturating_abs());
    let bits = (64 - largest.leading_zeros()).max(1);
    match (lo < 0, bits) {
        (true, b) if b < 8 => DataType::Int8,
        (true, b) if b < 16 => DataType::Int16,
        (true, b) if b < 32 => DataType::Int32,
        (true, _) => DataType::Int64,
        (false, b) if b <= 8 => DataType::UInt8,
        (false, b) if b <= 16 => DataType::UInt16,
        (false, b) if b <= 32 => DataType::UInt32,
        (false, _) => DataType::UInt64,
    }
}

pub fn output_schema(columns: &[ColumnInfo], format: Format) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        columns
            .iter()
            .map(|c| {
                let ty = c.output_type(format);
                // Categories are written as ehrQL writes them: an ordered dictionary
                // (the order is that of the categories).
                let ordered = matches!(ty, DataType::Dictionary(..));
                Field::new(&c.name, ty, c.nullable).with_dict_is_ordered(ordered)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Convert a batch of canonical columns to the output schema. A categorical column
/// becomes a dictionary holding every category in the declared order (as ehrQL
/// writes it, so that readers see the categories, used or not, in their order).
pub fn narrow(batch: &RecordBatch, schema: &SchemaRef, columns: &[ColumnInfo]) -> Result<RecordBatch> {
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .zip(columns)
        .map(|((c, f), info)| match (f.data_type(), &info.categories) {
            (DataType::Dictionary(key, _), Some(categories)) => categorical(c, key, categories, &info.name),
            (ty, _) if ty == c.data_type() => Ok(c.clone()),
            (ty, _) => Ok(cast(c, ty)?),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// The batch with every null slot's value zeroed. Arrow files store the values
/// under nulls too, and operators leave there whatever their inputs held, which
/// depends on how threads and blocks split the rows: zeroed, the file's bytes
/// depend on its values alone.
pub fn zero_null_slots(batch: &RecordBatch) -> Result<RecordBatch> {
    if batch.columns().iter().all(|c| c.null_count() == 0) {
        return Ok(batch.clone());
    }
    let cols = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            if c.null_count() == 0 {
                return c.clone();
            }
            // Rebuilt from their values, nulls get the type's zero.
            arrow::array::downcast_primitive_array!(
                c => zeroed(c),
                DataType::Boolean => Arc::new(c.as_boolean().iter().collect::<arrow::array::BooleanArray>()),
                // Texts' null slots are empty: no bytes under them.
                _ => c.clone()
            )
        })
        .collect::<Vec<ArrayRef>>();
    Ok(RecordBatch::try_new(batch.schema(), cols)?)
}

fn zeroed<T: arrow::datatypes::ArrowPrimitiveType>(array: &arrow::array::PrimitiveArray<T>) -> ArrayRef {
    let nulls = array.nulls().expect("an array with nulls");
    // One branch-free pass over the values and their validity bits.
    let values: Vec<T::Native> = array.values().iter().zip(nulls.iter()).map(|(&v, valid)| if valid { v } else { T::Native::default() }).collect();
    Arc::new(arrow::array::PrimitiveArray::<T>::new(values.into(), Some(nulls.clone())).with_data_type(array.data_type().clone()))
}

fn categorical(column: &ArrayRef, key: &DataType, categories: &[String], name: &str) -> Result<ArrayRef> {
    use arrow::array::{Array, DictionaryArray, Int32Array, StringArray};
    let position: std::collections::HashMap<&str, i32> = categories.iter().enumerate().map(|(i, c)| (c.as_str(), i as i32)).collect();
    let strings = cast(column, &DataType::Utf8)?;
    let strings = strings.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
    let keys = strings
        .iter()
        .map(|v| match v {
            None => Ok(None),
            Some(v) => position.get(v).map(|i| Some(*i)).ok_or_else(|| crate::err!("column '{name}': '{v}' is not one of its categories")),
        })
        .collect::<Result<Int32Array>>()?;
    let dictionary: ArrayRef = Arc::new(DictionaryArray::new(keys, Arc::new(StringArray::from_iter_values(categories))));
    Ok(cast(&dictionary, &DataType::Dictionary(Box::new(key.clone()), Box::new(DataType::Utf8)))?)
}

fn column_schema<'a>(infos: &'a [NodeInfo], source: NodeId, name: &str) -> Option<&'a schema::ColumnSchema> {
    match &infos[source] {
        NodeInfo::Frame { schema, .. } => schema.column(name),
        _ => None,
    }
}

/// What an integer column can hold, where ehrQL knows it (and so sizes its Arrow
/// type): a column with a range constraint, and per-patient counts (0 to 65,535).
fn int_range(model: &QueryModel, infos: &[NodeInfo], id: NodeId) -> Option<(i64, i64)> {
    match &model.nodes[id] {
        Node::SelectColumn { source, name } => {
            let r = column_schema(infos, *source, name)?.constraints.range.as_ref()?;
            Some((r.min, r.max))
        }
        Node::Aggregate { aggregation: Aggregation::Count, .. } => Some((0, u16::MAX as i64)),
        _ => None,
    }
}

fn categories(model: &QueryModel, infos: &[NodeInfo], id: NodeId) -> Option<Vec<String>> {
    let merge = |sets: Vec<Option<Vec<String>>>| -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for s in sets {
            for v in s? {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        Some(out)
    };
    match &model.nodes[id] {
        Node::SelectColumn { source, name } => {
            let cats = column_schema(infos, *source, name)?.constraints.categories.as_ref()?;
            cats.iter().map(|v| v.as_str().map(str::to_string)).collect()
        }
        Node::Value { value: Literal::Str(s), .. } => Some(vec![s.clone()]),
        Node::Aggregate { aggregation: Aggregation::Min | Aggregation::Max, source, .. } => categories(model, infos, *source),
        // As in ehrQL, minimum_of/maximum_of give plain strings, not categories.
        Node::Case { cases, default } => {
            let values = cases.iter().filter_map(|(_, v)| *v).chain(default.iter().copied());
            merge(values.map(|v| categories(model, infos, v)).collect())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{BooleanArray, Date32Array, StringArray};
    use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn values_under_nulls_are_zeroed_and_the_rest_kept() {
        let nulls = Some(NullBuffer::from(vec![true, false, true]));
        let dates: ArrayRef = Arc::new(Date32Array::new(ScalarBuffer::from(vec![5, 7, 9]), nulls.clone()));
        let flags: ArrayRef = Arc::new(BooleanArray::new(BooleanBuffer::from(vec![true, true, false]), nulls));
        let texts: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("c")]));
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("f", DataType::Boolean, true),
            Field::new("t", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(schema, vec![dates, flags, texts]).unwrap();
        let zeroed = zero_null_slots(&batch).unwrap();
        assert_eq!(zeroed, batch, "the same values and nulls");
        assert_eq!(zeroed.column(0).as_primitive::<arrow::datatypes::Date32Type>().values().to_vec(), vec![5, 0, 9]);
        assert_eq!(zeroed.column(1).as_boolean().values().iter().collect::<Vec<_>>(), vec![true, false, false]);
    }
}
