//! Regression benchmarks for the benchmark workloads (`benches/workloads`): how long a
//! definition takes to compile into plans, and to run over an in-memory population of
//! 10,000 and 100,000 patients made by the population profile of the dummy data
//! generator. The side-by-side comparison with other systems is `benches/compare`.
//!
//!     cargo bench -p ehrfusion --bench extract

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ehrfusion::cli::{PythonFrontEnd, load_definition};
use ehrfusion::compile::{Planner, Providers};
use ehrfusion::dummy::{self, Profile};
use ehrfusion::run::{self, Prepared};
use ehrfusion::source::{self, Tables};

const WORKLOADS: [&str; 4] = ["diagnoses", "wide", "staged", "monthly"];

fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/workloads").join(format!("{name}.py"))
}

fn prepare(name: &str) -> Prepared {
    let (model, _) = load_definition(&workload(name), &[], PythonFrontEnd::Embedded).expect("definition loads");
    Prepared::new(model).expect("definition compiles")
}

/// The population's tables for `patients` patients, as providers for `prepared`.
fn population(patients: i64, prepared: &Prepared, threads: usize) -> Providers {
    let generator = dummy::generator(&prepare("population"), 0, Profile::Population).expect("generator");
    let mut tables: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let mut start = 1;
    while start <= patients {
        let end = (start + 65_536).min(patients + 1);
        for (name, rows) in generator.chunk(start..end).expect("rows") {
            tables.entry(name).or_default().push(rows);
        }
        start = end;
    }
    let mut providers = prepared.open_tables(Tables::Empty, threads).expect("tables");
    for name in &prepared.analysis.tables {
        let schema = prepared.model.schema.table(name).expect("table");
        let rows = tables.remove(name).unwrap_or_default();
        providers.insert(name.clone(), source::from_batches(name, schema, rows, threads).expect("provider"));
    }
    providers
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    for name in WORKLOADS {
        let prepared = prepare(name);
        let providers = prepared.open_tables(Tables::Empty, 1).expect("tables");
        // From the query model to the dataset's logical plan (the Python front end's
        // time is not the compiler's).
        group.bench_function(name, |b| {
            b.iter(|| {
                let again = Prepared::new(prepared.model.clone()).expect("compiles");
                Planner::new(&again.analysis, &providers).dataset_plan().expect("plan");
            })
        });
    }
    group.finish();
}

fn execute(c: &mut Criterion) {
    let threads = run::default_threads();
    let runtime = run::runtime(threads).expect("runtime");
    let mut group = c.benchmark_group("execute");
    group.sample_size(10);
    for patients in [10_000, 100_000] {
        for name in WORKLOADS {
            let prepared = prepare(name);
            let providers = population(patients, &prepared, threads);
            group.bench_with_input(BenchmarkId::new(name, patients), &providers, |b, providers| {
                b.iter(|| {
                    let ctx = run::session(threads);
                    runtime.block_on(run::execute(&ctx, &prepared, providers)).expect("runs")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, compile, execute);
criterion_main!(benches);
