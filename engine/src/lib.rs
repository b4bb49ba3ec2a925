//! ehrfusion: a cohort extraction engine for health-record research.
//!
//! One extraction flows through the modules in order: [`model`] (the query model a
//! definition lowers to, and its validation), [`compile`] (query model to DataFusion
//! plans), [`source`] (reading and checking input tables), [`output`] (writers), all
//! driven by [`run`]. [`cohort`] runs cohort-extractor study definitions through
//! the same path; [`pipeline`] runs a study's `project.yaml` actions as job requests;
//! [`cluster`] runs the same plans on a DataFusion Ballista cluster.

pub mod cli;
pub mod cluster;
#[cfg(feature = "python")]
pub mod cohort;
pub mod compile;
pub mod dummy;
pub mod error;
#[cfg(feature = "python")]
pub mod frontend;
pub mod measures;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod run;
pub mod source;

pub use error::{Error, Result};
