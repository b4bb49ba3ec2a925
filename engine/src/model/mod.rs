//! The query model: what every front end lowers a definition to. Its operations and
//! semantics are ehrQL's; it knows nothing about Python or about DataFusion.

pub mod json;
pub mod measures;
pub mod nodes;
pub mod rewrite;
pub mod schema;
pub mod types;
pub mod validate;

pub use measures::{Measure, MeasureGroup, MeasuresModel};
pub use nodes::{Aggregation, Dataset, Function, InlineRows, Node, NodeId, Position, QueryModel};
pub use schema::{Level, Schema, TableSchema};
pub use types::{CodeSystem, Literal, ValueType};
pub use validate::{Dim, NodeInfo};
