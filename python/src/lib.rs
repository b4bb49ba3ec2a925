//! `ehrfusion._ehrfusion`: the engine inside Python. Results come back as pyarrow
//! tables through the Arrow C data interface (no copies), and the engine runs with
//! the GIL released.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::pyarrow::{IntoPyArrow, PyArrowType, Table};
use datafusion::catalog::TableProvider;
use ehrfusion::cli::{self, PythonFrontEnd};
use ehrfusion::measures::{self, PreparedMeasures};
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
    let mut prepared = Prepared::new(ehrfusion::model::json::parse(model_json)?)?;
    prepared.patients_from_all_tables = data.is_none() && dummy_tables.is_some();
    let providers = providers(|t| prepared.open_tables(t, threads), &prepared.model.schema, &data, &dummy_tables, tables, threads)?;
    // Large patient-ordered parquet data runs in blocks of patients: the results are
    // held in memory, but the work of computing them is bounded by the block.
    let blocks = match &data {
        Some(d) => source::blocks::patient_blocks(d, &prepared.model.schema, &prepared.analysis.tables, source::blocks::DEFAULT_BLOCK_ROWS)?,
        None => vec![Default::default()],
    };
    let ctx = run::session(threads);
    run::runtime(threads)?.block_on(run::execute_blocks(&ctx, &prepared, &providers, &blocks))
}

/// The tables a run reads: from a data directory, dummy tables or nothing, then
/// replaced by any given in memory.
fn providers(
    open: impl Fn(Tables) -> ehrfusion::Result<ehrfusion::compile::Providers>,
    schema: &ehrfusion::model::Schema,
    data: &Option<PathBuf>,
    dummy_tables: &Option<PathBuf>,
    tables: HashMap<String, Table>,
    threads: usize,
) -> ehrfusion::Result<ehrfusion::compile::Providers> {
    let mut providers = match (data, dummy_tables) {
        (Some(d), _) => open(Tables::Data(d))?,
        (None, Some(d)) => open(Tables::DummyTables(d))?,
        (None, None) => open(Tables::Empty)?,
    };
    for (name, table) in tables {
        let table_schema = schema.table(&name)?;
        let (batches, _) = table.into_inner();
        let provider: Arc<dyn TableProvider> = source::from_batches(&format!("table '{name}'"), table_schema, batches, threads)?;
        providers.insert(name, provider);
    }
    Ok(providers)
}

fn run_measures_model(
    model_json: &str,
    data: Option<PathBuf>,
    dummy_tables: Option<PathBuf>,
    tables: HashMap<String, Table>,
    threads: usize,
) -> ehrfusion::Result<run::TableResult> {
    let ehrfusion::model::json::Document::Measures(model) = ehrfusion::model::json::parse_document(model_json)? else {
        return Err(ehrfusion::Error::new("this document defines a dataset, not measures: use ehrfusion.run"));
    };
    let mut pm = PreparedMeasures::new(model)?;
    if data.is_none() && dummy_tables.is_some() {
        pm.consider_patients_from_all_tables();
    }
    let schema = pm.groups[0].prepared.model.schema.clone();
    let providers = providers(|t| pm.open_tables(t, threads), &schema, &data, &dummy_tables, tables, threads)?;
    let blocks = match &data {
        Some(d) => pm.blocks(d, source::blocks::DEFAULT_BLOCK_ROWS)?,
        None => vec![Default::default()],
    };
    let ctx = run::session(threads);
    let batch = run::runtime(threads)?.block_on(measures::execute(&ctx, &pm, &providers, &blocks))?;
    Ok(run::TableResult { name: "measures".into(), columns: pm.combined_columns(), batches: vec![batch] })
}

/// Run a JSON measures document over a data directory, dummy tables, or in-memory
/// tables; returns the combined results as a pyarrow table.
#[pyfunction]
#[pyo3(signature = (model_json, data=None, dummy_tables=None, tables=None, threads=None))]
fn run_measures(
    py: Python<'_>,
    model_json: &str,
    data: Option<PathBuf>,
    dummy_tables: Option<PathBuf>,
    tables: Option<HashMap<String, PyArrowType<Table>>>,
    threads: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let tables: HashMap<String, Table> = tables.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    let threads = threads.unwrap_or_else(run::default_threads);
    let model_json = model_json.to_string();
    let results = py.detach(move || run_measures_model(&model_json, data, dummy_tables, tables, threads)).map_err(engine_error)?;
    to_pyarrow(py, &results)
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
    m.add_function(wrap_pyfunction!(run_measures, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    Ok(())
}
