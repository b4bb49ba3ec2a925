//! Python bindings for ehrfusion (the `ehrfusion._ehrfusion` extension module).
//! This first version exposes the version and query-model validation; running
//! datasets from Python comes with the Python front end.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Check a JSON query model; raises ValueError with the engine's message if invalid.
#[pyfunction]
fn validate_query_model(text: &str) -> PyResult<()> {
    let model = ehrfusion::model::json::parse(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    ehrfusion::run::Prepared::new(model).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(())
}

#[pymodule]
fn _ehrfusion(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(validate_query_model, m)?)?;
    Ok(())
}
