//! `ehrfusion._ehrfusion`: the engine inside Python. Results come back as pyarrow
//! tables through the Arrow C data interface (no copies), and the engine runs with
//! the GIL released.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::pyarrow::{IntoPyArrow, PyArrowType, Table};
use datafusion::catalog::TableProvider;
use ehrfusion::cli::{self, PythonFrontEnd};
use ehrfusion::run::{self, Prepared, Results};
use ehrfusion::source::{self, Tables};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(_ehrfusion, EngineError, PyException, "An error reported by the ehrfusion engine.");

fn engine_error(e: ehrfusion::Error) -> PyErr {
    EngineError::new_err(e.to_string())
}

/// The JSON schema of a backend ("core" or "tpp").
#[pyfunction]
fn schema_json(name: &str) -> PyResult<&'static str> {
    ehrfusion::model::schema::backend_json(name).ok_or_else(|| EngineError::new_err(format!("unknown backend '{name}'")))
}

/// Check a JSON query model; raises EngineError with the engine's message if invalid.
#[pyfunction]
fn validate_query_model(model_json: &str) -> PyResult<()> {
    let model = ehrfusion::model::json::parse(model_json).map_err(engine_error)?;
    Prepared::new(model).map_err(engine_error)?;
    Ok(())
}

/// Run the command line (`ehrfusion ...` / `ehrql ...`); returns the exit code.
#[pyfunction]
fn main(py: Python<'_>, args: Vec<String>) -> i32 {
    i32::from(py.detach(|| cli::exit_status(args, PythonFrontEnd::Installed)))
}

fn run_model(
    model_json: &str,
    data: Option<PathBuf>,
    dummy_tables: Option<PathBuf>,
    tables: HashMap<String, Table>,
    threads: usize,
) -> ehrfusion::Result<Results> {
    let prepared = Prepared::new(ehrfusion::model::json::parse(model_json)?)?;
    let mut providers = match (&data, &dummy_tables) {
        (Some(d), _) => prepared.open_tables(Tables::Data(d), threads)?,
        (None, Some(d)) => prepared.open_tables(Tables::DummyTables(d), threads)?,
        (None, None) => prepared.open_tables(Tables::Empty, threads)?,
    };
    for (name, table) in tables {
        let schema = prepared.model.schema.table(&name)?;
        let (batches, _) = table.into_inner();
        let provider: Arc<dyn TableProvider> = source::from_batches(&format!("table '{name}'"), schema, batches, threads)?;
        providers.insert(name, provider);
    }
    // Large patient-ordered parquet data runs in blocks of patients: the results are
    // held in memory, but the work of computing them is bounded by the block.
    let blocks = match &data {
        Some(d) => source::blocks::patient_blocks(d, &prepared.model.schema, &prepared.analysis.tables, source::blocks::DEFAULT_BLOCK_ROWS)?,
        None => vec![Default::default()],
    };
    let ctx = run::session(threads);
    run::runtime(threads)?.block_on(run::execute_blocks(&ctx, &prepared, &providers, &blocks))
}

fn to_pyarrow(py: Python<'_>, t: &run::TableResult) -> PyResult<Py<PyAny>> {
    let schema = ehrfusion::output::narrow::output_schema(&t.columns, ehrfusion::source::Format::Arrow);
    let batches = t
        .batches
        .iter()
        .map(|b| ehrfusion::output::narrow::narrow(b, &schema, &t.columns))
        .collect::<ehrfusion::Result<Vec<_>>>()
        .map_err(engine_error)?;
    let table = Table::try_new(batches, schema).map_err(|e| EngineError::new_err(e.to_string()))?;
    Ok(table.into_pyarrow(py)?.unbind())
}

/// Run a JSON query model over a data directory, dummy tables, or in-memory tables
/// (pyarrow tables keyed by table name; tables not given are empty). Returns
/// (dataset, {event table name: table}) as pyarrow tables.
#[pyfunction]
#[pyo3(signature = (model_json, data=None, dummy_tables=None, tables=None, threads=None))]
fn run_dataset(
    py: Python<'_>,
    model_json: &str,
    data: Option<PathBuf>,
    dummy_tables: Option<PathBuf>,
    tables: Option<HashMap<String, PyArrowType<Table>>>,
    threads: Option<usize>,
) -> PyResult<(Py<PyAny>, Py<PyDict>)> {
    let tables: HashMap<String, Table> = tables.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    let threads = threads.unwrap_or_else(run::default_threads);
    let model_json = model_json.to_string();
    let results = py.detach(move || run_model(&model_json, data, dummy_tables, tables, threads)).map_err(engine_error)?;
    let dataset = to_pyarrow(py, &results.dataset)?;
    let events = PyDict::new(py);
    for t in &results.event_tables {
        events.set_item(&t.name, to_pyarrow(py, t)?)?;
    }
    Ok((dataset, events.unbind()))
}

#[pymodule]
fn _ehrfusion(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("EngineError", m.py().get_type::<EngineError>())?;
    m.add_function(wrap_pyfunction!(schema_json, m)?)?;
    m.add_function(wrap_pyfunction!(validate_query_model, m)?)?;
    m.add_function(wrap_pyfunction!(run_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    Ok(())
}
