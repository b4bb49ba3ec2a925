//! Embeds the Python front end (python/ehrfusion, python/ehrql, python/cohortextractor) in the binary, so
//! the binary can load definitions wherever it runs, and points the binary at the
//! libpython it was built against.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn python_files(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().unwrap() != "__pycache__" {
                python_files(&path, base, out);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
            out.push((rel, path));
        }
    }
}

fn main() {
    // Read at run time: a build script compiled for another checkout may be reused
    // from the shared target directory.
    let python = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../python");
    println!("cargo:rerun-if-changed={}", python.join("ehrfusion").display());
    println!("cargo:rerun-if-changed={}", python.join("ehrql").display());
    println!("cargo:rerun-if-changed={}", python.join("cohortextractor").display());
    let mut files = Vec::new();
    if std::env::var_os("CARGO_FEATURE_PYTHON").is_some() {
        for package in ["ehrfusion", "ehrql", "cohortextractor"] {
            python_files(&python.join(package), &python, &mut files);
        }
        pyo3_build_config::add_libpython_rpath_link_args();
    }
    let mut code = String::from("/// The Python front end's sources: (path, text).\npub const FILES: &[(&str, &str)] = &[\n");
    for (rel, path) in &files {
        let abs = path.canonicalize().unwrap();
        writeln!(code, "    ({rel:?}, include_str!({:?})),", abs.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("python_sources.rs");
    std::fs::write(out, code).unwrap();
}
