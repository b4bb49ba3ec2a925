//! Test helpers: build query models node by node, write small tables as CSV, run
//! them through the whole engine and read results back as text.
#![allow(dead_code)]

use std::path::Path;

use ehrfusion::output::format::column_text;
use ehrfusion::run::{self, Prepared, Results};
use ehrfusion::source::Tables;
use serde_json::{Value, json};

/// Builds the JSON form of a query model.
#[derive(Default)]
pub struct Q {
    pub nodes: Vec<Value>,
    pub tables: serde_json::Map<String, Value>,
    pub backend: Option<String>,
}

impl Q {
    pub fn new() -> Q {
        Q::default()
    }

    pub fn add(&mut self, v: Value) -> usize {
        if let Some(i) = self.nodes.iter().position(|n| *n == v) {
            return i;
        }
        self.nodes.push(v);
        self.nodes.len() - 1
    }

    /// Declare a user table; `columns` are `name:type` pairs.
    pub fn table(&mut self, name: &str, level: &str, columns: &[(&str, &str)]) {
        let cols: Vec<Value> = columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
        self.tables.insert(name.into(), json!({"level": level, "columns": cols}));
    }

    pub fn select_table(&mut self, name: &str) -> usize {
        self.add(json!({"op": "SelectTable", "table": name}))
    }
    pub fn select_patient_table(&mut self, name: &str) -> usize {
        self.add(json!({"op": "SelectPatientTable", "table": name}))
    }
    pub fn col(&mut self, frame: usize, name: &str) -> usize {
        self.add(json!({"op": "SelectColumn", "source": frame, "name": name}))
    }
    pub fn value(&mut self, ty: &str, v: Value) -> usize {
        self.add(json!({"op": "Value", "type": ty, "value": v}))
    }
    pub fn int(&mut self, v: i64) -> usize {
        self.value("int", json!(v))
    }
    pub fn float(&mut self, v: f64) -> usize {
        self.value("float", json!(v))
    }
    pub fn boolean(&mut self, v: bool) -> usize {
        self.value("bool", json!(v))
    }
    pub fn str(&mut self, v: &str) -> usize {
        self.value("str", json!(v))
    }
    pub fn date(&mut self, v: &str) -> usize {
        self.value("date", json!(v))
    }
    pub fn null(&mut self, ty: &str) -> usize {
        self.value(ty, Value::Null)
    }
    pub fn set(&mut self, ty: &str, values: Value) -> usize {
        self.add(json!({"op": "Value", "type": ty, "set": values}))
    }
    pub fn f1(&mut self, op: &str, source: usize) -> usize {
        self.add(json!({"op": op, "source": source}))
    }
    pub fn f2(&mut self, op: &str, lhs: usize, rhs: usize) -> usize {
        self.add(json!({"op": op, "lhs": lhs, "rhs": rhs}))
    }
    pub fn fnn(&mut self, op: &str, sources: &[usize]) -> usize {
        self.add(json!({"op": op, "sources": sources}))
    }
    pub fn agg(&mut self, op: &str, source: usize) -> usize {
        self.add(json!({"op": op, "source": source}))
    }
    pub fn count_episodes(&mut self, source: usize, gap: i64) -> usize {
        self.add(json!({"op": "CountEpisodes", "source": source, "maximum_gap_days": gap}))
    }
    pub fn filter(&mut self, source: usize, condition: usize) -> usize {
        self.add(json!({"op": "Filter", "source": source, "condition": condition}))
    }
    /// ehrQL's `except_where`: keep rows where the condition is false or null.
    pub fn except_where(&mut self, source: usize, condition: usize) -> usize {
        let not = self.f1("Not", condition);
        let null = self.f1("IsNull", condition);
        let keep = self.f2("Or", not, null);
        self.filter(source, keep)
    }
    pub fn sort(&mut self, source: usize, keys: &[usize]) -> usize {
        self.add(json!({"op": "Sort", "source": source, "sort_by": keys}))
    }
    pub fn first(&mut self, source: usize) -> usize {
        self.add(json!({"op": "PickOneRowPerPatient", "source": source, "position": "first"}))
    }
    pub fn last(&mut self, source: usize) -> usize {
        self.add(json!({"op": "PickOneRowPerPatient", "source": source, "position": "last"}))
    }
    pub fn case(&mut self, cases: &[(usize, Option<usize>)], default: Option<usize>) -> usize {
        let cases: Vec<Value> = cases.iter().map(|(c, v)| json!([c, v])).collect();
        self.add(json!({"op": "Case", "cases": cases, "default": default}))
    }

    /// The whole document, with the given population, variables and event tables.
    pub fn document(&self, population: usize, variables: &[(&str, usize)], event_tables: Value) -> String {
        let vars: serde_json::Map<String, Value> = variables.iter().map(|(n, i)| (n.to_string(), json!(i))).collect();
        json!({
            "format": "ehrfusion-query-model",
            "version": 1,
            "backend": self.backend.clone().unwrap_or_else(|| "core".into()),
            "tables": self.tables,
            "nodes": self.nodes,
            "dataset": {"population": population, "variables": vars, "event_tables": event_tables},
        })
        .to_string()
    }
}

/// Run a JSON query model over a data directory.
pub fn run_model(doc: &str, tables: Tables) -> ehrfusion::Result<Results> {
    let prepared = Prepared::new(ehrfusion::model::json::parse(doc)?)?;
    let providers = prepared.open_tables(tables, 2)?;
    let ctx = run::session(2);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run::execute(&ctx, &prepared, &providers))
}

/// The text of every cell of a result table, row by row (empty for null).
pub fn rows_of(batches: &[arrow::array::RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Option<String>>> = b.columns().iter().map(|c| column_text(c.as_ref()).unwrap()).collect();
        for r in 0..b.num_rows() {
            rows.push(cols.iter().map(|c| c[r].clone().unwrap_or_default()).collect());
        }
    }
    rows
}

/// Write `|`-separated tables (header `patient|col|...`; `;` when the header uses it)
/// as CSV files of a data directory, filling columns the text omits with nulls.
pub fn write_tables(dir: &Path, tables: &[(&str, &[&str], &str)]) {
    for (name, all_columns, text) in tables {
        let mut lines = text.trim().lines().map(|l| l.trim());
        let first = lines.next().unwrap();
        let sep = if first.contains(';') { ';' } else { '|' };
        let header: Vec<&str> = first.split(sep).map(str::trim).collect();
        assert_eq!(header[0], "patient");
        let mut csv = String::from("patient_id");
        for c in *all_columns {
            csv.push(',');
            csv.push_str(c);
        }
        csv.push('\n');
        for line in lines {
            let cells: Vec<&str> = line.split(sep).map(str::trim).collect();
            csv.push_str(cells[0]);
            for c in *all_columns {
                csv.push(',');
                if let Some(i) = header.iter().position(|h| h == c) {
                    let v = cells.get(i).copied().unwrap_or("");
                    if v.contains(',') || v.contains('"') {
                        csv.push_str(&format!("\"{}\"", v.replace('"', "\"\"")));
                    } else {
                        csv.push_str(v);
                    }
                }
            }
            csv.push('\n');
        }
        std::fs::write(dir.join(format!("{name}.csv")), csv).unwrap();
    }
}

pub fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Run the ehrfusion binary in the repository, expecting success; its stdout.
pub fn ehrfusion_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ehrfusion")).current_dir(repo()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A population-profile population of 1,500 patients in `dir/data`, as parquet files
/// ordered by patient with row groups of 2,000 rows (so it can be read in blocks).
pub fn population(dir: &Path) {
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let arrow_dir = dir.join("arrow");
    ehrfusion_ok(&[
        "create-dummy-tables", "benches/workloads/population.py", &format!("{}:arrow", arrow_dir.display()),
        "--profile", "population", "--population-size", "1500",
    ]);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for entry in std::fs::read_dir(&arrow_dir).unwrap() {
        let path = entry.unwrap().path();
        let reader = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&path).unwrap(), None).unwrap();
        let schema = reader.schema();
        let target = data.join(path.file_stem().unwrap()).with_extension("parquet");
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(2_000)).build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(target).unwrap(), std::sync::Arc::clone(&schema), Some(props)).unwrap();
        for batch in reader {
            writer.write(&batch.unwrap()).unwrap();
        }
        writer.close().unwrap();
    }
}
