//! The compiler: query model to DataFusion logical plans. `analyze` decides which
//! passes over which tables produce each value; `plan` turns that into plans stage by
//! stage; `functions` holds the scalar functions whose semantics are ehrQL's own
//! (and `fill_null`, coalesce with a value kept a function);
//! `codesets` tests many codelists against one column with one lookup per row;
//! `pick` is the aggregate that picks one row per patient by a sort key;
//! `runs` gives measures a value per interval from rows grouped by patient;
//! `portable` turns these functions into bytes and back for plans sent to a cluster;
//! `small_sides` is a physical optimizer rule for joins to an earlier stage,
//! `codes_first` one that puts a filter's codelist tests before its other conditions,
//! and `shared_exprs` one that computes a filter's or projection's repeated
//! subexpressions once.

pub mod analyze;
pub mod codes_first;
mod codesets;
pub mod fill_null;
pub mod functions;
pub mod gather_sort;
pub mod intervals;
pub mod lookup_join;
mod pick;
pub mod plan;
pub mod portable;
mod runs;
pub mod shared_exprs;
pub mod small_sides;

pub use analyze::{Analysis, analyze};
pub use plan::{Planner, Providers};
