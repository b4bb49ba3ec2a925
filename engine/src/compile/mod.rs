//! The compiler: query model to DataFusion logical plans. `analyze` decides which
//! passes over which tables produce each value; `plan` turns that into plans stage by
//! stage; `functions` holds the scalar functions whose semantics are ehrQL's own;
//! `codesets` tests many codelists against one column with one lookup per row.

pub mod analyze;
mod codesets;
pub mod intervals;
pub mod functions;
pub mod plan;

pub use analyze::{Analysis, analyze};
pub use plan::{Planner, Providers};
