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
    Python::initialize();
    let (model_json, dummy_json) = Python::attach(|py| -> Result<(String, String)> {
        if front_end == FrontEnd::Embedded {
            let dir = extract_sources()?;
            let sys_path = py.import("sys").and_then(|s| s.getattr("path")).map_err(|e| err!("{e}"))?;
            let sys_path = sys_path.cast::<PyList>().map_err(|e| err!("{e}"))?;
            sys_path.insert(0, dir.to_string_lossy().to_string()).map_err(|e| err!("{e}"))?;
        }
        let loader = py.import("ehrfusion.loader").map_err(|e| err!("cannot load the Python front end: {e}"))?;
        let schemas = PyDict::new(py);
        for name in schema::BACKENDS {
            schemas.set_item(name, schema::backend_json(name)).map_err(|e| err!("{e}"))?;
        }
        let result = loader.call_method1("document_json", (path.to_string_lossy().to_string(), user_args.to_vec(), schemas));
        match result {
            Ok(pair) => pair.extract::<(String, String)>().map_err(|e| err!("{e}")),
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
    })?;
    let model = json::parse(&model_json).map_err(|e| err!("{}: the definition lowered to an invalid query model: {e}", path.display()))?;
    let dummy: DummyConfig = serde_json::from_str(&dummy_json).unwrap_or_default();
    Ok((model, dummy))
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
