//! The extension codecs a cluster needs for our plans: Ballista's own, plus our
//! functions (see `compile::portable`) and the tables held in memory (the intervals
//! of measures, inline and dummy tables, and stage results over them), which travel
//! inside the plan as Arrow IPC. Tables read from files travel as their paths: DataFusion's own tables as it
//! writes them, parquet tables with dictionary code columns as `source::dictionary`
//! does (on executors, whose plans do not carry each file's dictionary schema,
//! their files are read as strings and cast).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{Result as DFResult, TableReference, exec_datafusion_err};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::compile::portable;
use crate::source::dictionary::{self, DictionaryCodes};

/// Marks a table held in memory among the table encodings.
const MEMORY_TABLE: &[u8] = b"ehrfusion:memory-table:1\n";

/// The function methods of both codecs (the same in each trait): our functions
/// travel as their `portable` bytes, anything else (empty bytes) is Ballista's.
macro_rules! portable_functions {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DFResult<Arc<ScalarUDF>> {
            if buf.is_empty() { self.ballista.try_decode_udf(name, buf) } else { portable::decode_udf(name, buf) }
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DFResult<()> {
            match portable::encode_udf(node)? {
                Some(bytes) => Ok(buf.extend_from_slice(&bytes)),
                None => self.ballista.try_encode_udf(node, buf),
            }
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DFResult<Arc<AggregateUDF>> {
            if buf.is_empty() { self.ballista.try_decode_udaf(name, buf) } else { portable::decode_udaf(name, buf) }
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DFResult<()> {
            match portable::encode_udaf(node)? {
                Some(bytes) => Ok(buf.extend_from_slice(&bytes)),
                None => self.ballista.try_encode_udaf(node, buf),
            }
        }
    };
}

#[derive(Debug, Default)]
pub struct LogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DFResult<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DFResult<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(&self, buf: &[u8], table_ref: &TableReference, schema: SchemaRef, ctx: &TaskContext) -> DFResult<Arc<dyn TableProvider>> {
        if let Some(partitions) = buf.strip_prefix(MEMORY_TABLE) {
            return decode_memory_table(partitions, schema);
        }
        match buf.strip_prefix(dictionary::ENCODED) {
            Some(table) => Ok(Arc::new(DictionaryCodes::decode(table, schema)?)),
            None => self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(&self, table_ref: &TableReference, node: Arc<dyn TableProvider>, buf: &mut Vec<u8>) -> DFResult<()> {
        if let Some(table) = node.as_ref().downcast_ref::<MemTable>() {
            return encode_memory_table(table, buf);
        }
        match node.as_ref().downcast_ref::<DictionaryCodes>() {
            Some(table) => Ok(buf.extend(table.encode()?)),
            None => self.ballista.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> DFResult<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> DFResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    portable_functions!();
}

#[derive(Debug, Default)]
pub struct PhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[Arc<dyn ExecutionPlan>], ctx: &TaskContext, converter: &dyn PhysicalProtoConverterExtension) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx, converter)
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>, converter: &dyn PhysicalProtoConverterExtension) -> DFResult<()> {
        self.ballista.try_encode(node, buf, converter)
    }

    portable_functions!();
}

/// A memory table as the marker, then per partition a u64 length and an Arrow IPC
/// stream of its batches.
fn encode_memory_table(table: &MemTable, buf: &mut Vec<u8>) -> DFResult<()> {
    buf.extend_from_slice(MEMORY_TABLE);
    let schema = table.schema();
    for partition in &table.batches {
        // Nothing writes to these tables once they are planned.
        let batches = partition.try_read().map_err(|_| exec_datafusion_err!("a table in memory is being written"))?;
        let mut stream = Vec::new();
        let mut writer = StreamWriter::try_new(&mut stream, &schema)?;
        for b in batches.iter() {
            writer.write(b)?;
        }
        writer.finish()?;
        drop(writer);
        buf.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        buf.extend_from_slice(&stream);
    }
    Ok(())
}

fn decode_memory_table(mut rest: &[u8], schema: SchemaRef) -> DFResult<Arc<dyn TableProvider>> {
    let truncated = || exec_datafusion_err!("a table in memory arrived truncated");
    let mut partitions = Vec::new();
    while !rest.is_empty() {
        let len = u64::from_le_bytes(rest.get(..8).ok_or_else(truncated)?.try_into().expect("8 bytes")) as usize;
        let stream = rest.get(8..8 + len).ok_or_else(truncated)?;
        let batches = StreamReader::try_new(stream, None)?.collect::<Result<Vec<RecordBatch>, _>>()?;
        partitions.push(batches);
        rest = &rest[8 + len..];
    }
    if partitions.is_empty() {
        partitions.push(vec![]);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn memory_tables_keep_their_partitions_and_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("patient_id", DataType::Int64, false), Field::new("code", DataType::Utf8, true)]));
        let batch = |ids: Vec<i64>, codes: Vec<Option<&str>>| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(codes))]).unwrap();
        let table = MemTable::try_new(schema.clone(), vec![vec![batch(vec![1, 2], vec![Some("a"), None])], vec![], vec![batch(vec![3], vec![Some("c")])]]).unwrap();
        let mut buf = Vec::new();
        encode_memory_table(&table, &mut buf).unwrap();
        let back = decode_memory_table(buf.strip_prefix(MEMORY_TABLE).unwrap(), schema.clone()).unwrap();
        let back = back.as_ref().downcast_ref::<MemTable>().unwrap();
        let rows = |t: &MemTable| t.batches.iter().map(|p| p.try_read().unwrap().clone()).collect::<Vec<_>>();
        assert_eq!(rows(back), rows(&table));
        // A cut-off encoding is an error, not a shorter table.
        assert!(decode_memory_table(&buf[MEMORY_TABLE.len()..buf.len() - 3], schema).is_err());
    }
}
