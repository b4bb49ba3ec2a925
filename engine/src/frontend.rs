//! The Python front end, run in embedded CPython: a definition file (`.py`) is
//! executed by the `ehrfusion.loader` module, which returns the query model as JSON.
//! The binary carries the front end's sources and uses them, so it works from any
//! directory; inside a Python process the installed package is used instead.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::Result;
use crate::model::{QueryModel, json, schema};
use crate::{bail, err};

mod sources {
    include!(concat!(env!("OUT_DIR"), "/python_sources.rs"));
}

/// Where the Python front end comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontEnd {
    /// The copy compiled into this binary (extracted to a cache directory).
    Embedded,
    /// Whatever `import ehrfusion` finds (inside a Python process).
    Installed,
}

/// The dummy-data settings a definition made with `configure_dummy_data`.
pub type DummyConfig = serde_json::Value;

/// Run a Python definition and return its query model.
pub fn load(path: &Path, user_args: &[String], front_end: FrontEnd) -> Result<(QueryModel, DummyConfig)> {
    match load_document(path, user_args, Kind::Dataset, front_end)? {
        (json::Document::Dataset(model), dummy) => Ok((model, dummy)),
        (json::Document::Measures(_), _) => bail!("{}: expected a dataset", path.display()),
    }
}

/// Which variable of a definition file to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dataset,
    Measures,
    /// `measures` if the file defines them, else `dataset` (as ehrQL's
    /// create-dummy-tables does).
    Either,
}

/// Run a Python definition and return its dataset or measures document.
pub fn load_document(path: &Path, user_args: &[String], kind: Kind, front_end: FrontEnd) -> Result<(json::Document, DummyConfig)> {
    let kind = match kind {
        Kind::Dataset => "dataset",
        Kind::Measures => "measures",
        Kind::Either => "either",
    };
    let (model_json, dummy_json): (String, String) = call(front_end, path, "ehrfusion.loader", "document_json", |py| {
        Ok((path.to_string_lossy().to_string(), user_args.to_vec(), schemas(py)?, kind).into_pyobject(py).map_err(|e| err!("{e}"))?.into_any())
    })?;
    let doc = json::parse_document(&model_json).map_err(|e| err!("{}: the definition lowered to an invalid query model: {e}", path.display()))?;
    let dummy: DummyConfig = serde_json::from_str(&dummy_json).unwrap_or_default();
    Ok((doc, dummy))
}

/// Load an assurance test file: its test data is written as one CSV file per table
/// into `tables_dir`, and its dataset's query model returned.
pub fn assurance_prepare(path: &Path, user_args: &[String], tables_dir: &Path, front_end: FrontEnd) -> Result<QueryModel> {
    let model_json: String = call(front_end, path, "ehrfusion.assurance", "prepare", |py| {
        let dir = tables_dir.to_string_lossy().to_string();
        Ok((path.to_string_lossy().to_string(), user_args.to_vec(), dir, schemas(py)?).into_pyobject(py).map_err(|e| err!("{e}"))?.into_any())
    })?;
    parse_model(path, &model_json)
}

/// Compare the dataset the engine wrote for an assurance test with its
/// expectations: whether all passed, and ehrQL's report.
pub fn assurance_report(path: &Path, results_csv: &Path, front_end: FrontEnd) -> Result<(bool, String)> {
    call(front_end, path, "ehrfusion.assurance", "report", |py| {
        Ok((results_csv.to_string_lossy().to_string(),).into_pyobject(py).map_err(|e| err!("{e}"))?.into_any())
    })
}

fn parse_model(path: &Path, model_json: &str) -> Result<QueryModel> {
    json::parse(model_json).map_err(|e| err!("{}: the definition lowered to an invalid query model: {e}", path.display()))
}

fn schemas(py: Python<'_>) -> Result<Bound<'_, PyDict>> {
    let schemas = PyDict::new(py);
    for name in schema::BACKENDS {
        schemas.set_item(name, schema::backend_json(name)).map_err(|e| err!("{e}"))?;
    }
    Ok(schemas)
}

/// Call `module.function(*args)` of the front end for the definition at `path`; a
/// `DefinitionError` it raises is already a one-line message naming the file.
fn call<T>(
    front_end: FrontEnd,
    path: &Path,
    module: &str,
    function: &str,
    args: impl for<'py> FnOnce(Python<'py>) -> Result<Bound<'py, PyAny>>,
) -> Result<T>
where
    T: for<'a, 'py> FromPyObject<'a, 'py>,
{
    Python::initialize();
    Python::attach(|py| -> Result<T> {
        if front_end == FrontEnd::Embedded {
            let dir = extract_sources()?.to_string_lossy().to_string();
            let sys_path = py.import("sys").and_then(|s| s.getattr("path")).map_err(|e| err!("{e}"))?;
            let sys_path = sys_path.cast::<PyList>().map_err(|e| err!("{e}"))?;
            if !sys_path.contains(&dir).map_err(|e| err!("{e}"))? {
                sys_path.insert(0, dir).map_err(|e| err!("{e}"))?;
            }
            // Study code imports what the platform's images ship (pandas, numpy, ...):
            // an active virtual environment's packages are seen, after our own.
            let venv = c"import os, site, sys\nvenv = os.environ.get('VIRTUAL_ENV')\nif venv:\n    site.addsitedir(os.path.join(venv, 'lib', f'python{sys.version_info[0]}.{sys.version_info[1]}', 'site-packages'))\n";
            py.run(venv, None, None).map_err(|e| err!("cannot add the virtual environment's packages: {e}"))?;
        }
        let loader = py.import("ehrfusion.loader").map_err(|e| err!("cannot load the Python front end: {e}"))?;
        let target = py.import(module).map_err(|e| err!("cannot load the Python front end: {e}"))?;
        let args = args(py)?;
        let args = args.cast::<pyo3::types::PyTuple>().map_err(|e| err!("{e}"))?;
        match target.call_method1(function, args) {
            Ok(value) => value.extract::<T>().map_err(|e| err!("{}: {}", path.display(), Into::<PyErr>::into(e))),
            Err(e) => {
                let is_definition_error = loader
                    .getattr("DefinitionError")
                    .map(|cls| e.get_type(py).is(&cls))
                    .unwrap_or(false);
                if is_definition_error {
                    bail!("{}", e.value(py))
                }
                bail!("{}: {e}", path.display())
            }
        }
    })
}

/// Write the embedded sources to a cache directory named after their contents
/// (so differing versions never mix) and return it.
fn extract_sources() -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sources::FILES.hash(&mut h);
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join("ehrfusion").join(format!("python-{}-{:016x}", env!("CARGO_PKG_VERSION"), h.finish()));
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(base.join("ehrfusion")).map_err(|e| err!("{}: {e}", base.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".python-")
        .tempdir_in(base.join("ehrfusion"))
        .map_err(|e| err!("{}: {e}", base.display()))?;
    for (rel, text) in sources::FILES {
        let target = staging.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).map_err(|e| err!("{e}"))?;
        std::fs::write(&target, text).map_err(|e| err!("{}: {e}", target.display()))?;
    }
    std::fs::write(staging.path().join(".complete"), "").map_err(|e| err!("{e}"))?;
    let staged = staging.keep();
    if std::fs::rename(&staged, &dir).is_err() {
        // Another process got there first; its copy is identical.
        let _ = std::fs::remove_dir_all(&staged);
    }
    Ok(dir)
}

/// A cohort-extractor study definition run for each index date of `date_range`
/// (empty: once, at the definition's own index date): its written columns (JSON:
/// name, type, date_format) and, latest date first, (index date, query model).
/// With `no_queries` (dummy data that runs none), a query the tables cannot answer
/// stands as an empty column instead of being refused.
pub fn load_study(path: &Path, date_range: &str, params: &[(String, String)], no_queries: bool, front_end: FrontEnd) -> Result<(String, Vec<(String, QueryModel)>)> {
    let (columns, runs): (String, Vec<(String, String)>) = call(front_end, path, "cohortextractor.loader", "study_documents_json", |py| {
        Ok((path.to_string_lossy().to_string(), date_range.to_string(), params.to_vec(), schemas(py)?, no_queries).into_pyobject(py).map_err(|e| err!("{e}"))?.into_any())
    })?;
    let runs = runs.into_iter().map(|(date, model)| Ok((date, parse_model(path, &model)?))).collect::<Result<Vec<_>>>()?;
    Ok((columns, runs))
}

/// The `measures` of a cohort-extractor study definition, as JSON.
pub fn load_study_measures(path: &Path, params: &[(String, String)], front_end: FrontEnd) -> Result<String> {
    call(front_end, path, "cohortextractor.loader", "measures_json", |py| {
        Ok((path.to_string_lossy().to_string(), params.to_vec(), schemas(py)?).into_pyobject(py).map_err(|e| err!("{e}"))?.into_any())
    })
}

/// cohort-extractor's expectations dummy data for a study definition: for each index
/// date (latest first), (index date, CSV text).
pub fn study_expectations(path: &Path, date_range: &str, params: &[(String, String)], population: usize, seed: u64, front_end: FrontEnd) -> Result<Vec<(String, String)>> {
    call(front_end, path, "cohortextractor.loader", "expectations_json", |py| {
        Ok((path.to_string_lossy().to_string(), date_range.to_string(), params.to_vec(), population, seed, schemas(py)?).into_pyobject(py).map_err(|e| err!("{e}"))?.into_any())
    })
}
