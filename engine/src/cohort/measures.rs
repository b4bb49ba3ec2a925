//! `cohortextractor generate_measures`: each study definition's `measures` computed
//! from the cohort files `generate_cohort` wrote for each index date
//! (`OUTPUT_DIR/input<suffix>..._<DATE>.<FORMAT>`), written as cohort-extractor's
//! pandas code writes them: `measure_<id>_<DATE>.csv` per date, then
//! `measure_<id>.csv` with every date.
//!
//! pandas' semantics, reproduced: a measure sums its numerator and denominator per
//! group (`group_by=["population"]`: one group; no `group_by`: one row per patient);
//! groups are sorted, and when a group column is categorical every combination of
//! its categories (and the other columns' values) is a row, summing to 0 when
//! empty; a missing category drops the patient from the groups. Text read from CSV
//! is categorical with its categories sorted, and numbers from CSV are floats;
//! feather keeps its types (flags, ints, floats, categories in their stored order);
//! Stata files give plain values (flags as 0/1 bytes, text not categorical).
//! `value` is numerator / denominator; with `small_number_suppression`, counts of 1
//! to 5 are blanked (and the next smallest too when the blanked ones total 5 or
//! less), which makes their column a float column.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow::array::*;
use arrow::datatypes::{DataType, Int8Type, Int16Type, Int32Type, Int64Type};

use crate::error::{ErrorKind, Result, ResultExt};
use crate::output::format::format_float;
use crate::{bail, err};

const SMALL_NUMBER_THRESHOLD: f64 = 5.0;
const POPULATION: &str = "population";

#[derive(serde::Deserialize, Debug, Clone)]
pub struct Measure {
    pub id: String,
    pub numerator: String,
    pub denominator: String,
    pub group_by: Vec<String>,
    pub small_number_suppression: bool,
}

/// A group key value, ordered as pandas sorts it.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Key {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Key::Int(i) => i.to_string(),
            Key::Float(f) => format_float(*f),
            Key::Text(s) => s.clone(),
        }
    }
}

/// One loaded column: its values per patient and, for a categorical column, its
/// categories in order.
struct Column {
    keys: Vec<Option<Key>>,
    categories: Option<Vec<Key>>,
    /// Whether sums of it are floats.
    float: bool,
    /// Whether it holds flags (pandas bools): written as True/False when not summed.
    flag: bool,
    numbers: Vec<f64>,
    /// As a group column: its values in pandas' order (the categories, or the sorted
    /// values seen) and each row's position among them.
    levels: Vec<Key>,
    codes: Vec<Option<u32>>,
}

impl Column {
    fn new(keys: Vec<Option<Key>>, categories: Option<Vec<Key>>, float: bool, numbers: Vec<f64>) -> Column {
        Column { keys, categories, float, flag: false, numbers, levels: vec![], codes: vec![] }
    }

    /// Number the values, for grouping.
    fn code(&mut self) {
        self.levels = match &self.categories {
            Some(c) => c.clone(),
            None => {
                let mut seen: Vec<Key> = Vec::new();
                let mut known = std::collections::HashSet::new();
                for k in self.keys.iter().flatten() {
                    if known.insert(k.text()) {
                        seen.push(k.clone());
                    }
                }
                seen.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                seen
            }
        };
        let position: HashMap<String, u32> = self.levels.iter().enumerate().map(|(i, k)| (k.text(), i as u32)).collect();
        self.codes = self.keys.iter().map(|k| k.as_ref().and_then(|k| position.get(&k.text()).copied())).collect();
    }
}

/// The needed columns of one cohort file.
struct Cohort {
    rows: usize,
    columns: HashMap<String, Column>,
}

fn needed(measures: &[Measure]) -> (Vec<String>, Vec<String>) {
    let mut numeric = Vec::new();
    let mut groups = Vec::new();
    for m in measures {
        for c in [&m.numerator, &m.denominator] {
            if c != POPULATION && !numeric.contains(c) {
                numeric.push(c.clone());
            }
        }
        for g in &m.group_by {
            if g != POPULATION && !groups.contains(g) {
                groups.push(g.clone());
            }
        }
    }
    (numeric, groups)
}

fn load(path: &Path, numeric: &[String], groups: &[String]) -> Result<Cohort> {
    let name = path.to_string_lossy();
    let shown = path.display();
    let wanted = |c: &str| numeric.iter().chain(groups).any(|w| w == c);
    let mut cohort = if name.ends_with(".feather") {
        load_feather(path, &wanted)?
    } else if name.ends_with(".dta") || name.ends_with(".dta.gz") {
        load_dta(path, &wanted)?
    } else {
        load_csv(path, numeric)?
    };
    for c in numeric.iter().chain(groups) {
        if !cohort.columns.contains_key(c) {
            bail!("{shown}: no column named '{c}' (a measure uses it)");
        }
    }
    cohort.columns.retain(|k, _| numeric.contains(k) || groups.contains(k));
    for g in groups {
        cohort.columns.get_mut(g).expect("checked above").code();
    }
    // cohort-extractor sets a column "population" of 1s on every cohort it measures
    // (a group of its own beside others in `group_by`).
    let mut population = Column::new(vec![Some(Key::Int(1)); cohort.rows], None, false, vec![1.0; cohort.rows]);
    population.code();
    cohort.columns.insert(POPULATION.to_string(), population);
    Ok(cohort)
}

fn load_csv(path: &Path, numeric: &[String]) -> Result<Cohort> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let reader: Box<dyn std::io::Read> = if path.to_string_lossy().ends_with(".gz") { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut csv = csv::Reader::from_reader(reader);
    let header: Vec<String> = csv.headers().map_err(|e| err!("{shown}: {e}"))?.iter().map(str::to_string).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for (line, record) in csv.records().enumerate() {
        let record = record.map_err(|e| err!("{shown}: {e}"))?;
        if record.len() != header.len() {
            bail!("{shown}, line {}: {} values for {} columns", line + 2, record.len(), header.len());
        }
        for (i, v) in record.iter().enumerate() {
            cells[i].push(v.to_string());
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let mut columns = HashMap::new();
    for (name, values) in header.into_iter().zip(cells) {
        let column = if numeric.contains(&name) {
            let numbers = values
                .iter()
                .enumerate()
                .map(|(i, v)| v.parse::<f64>().map_err(|_| err!("{shown}, line {}: column {name}: '{v}' is not a number", i + 2)))
                .collect::<Result<Vec<f64>>>()?;
            Column::new(vec![], None, true, numbers)
        } else {
            // pandas reads text as a category whose categories are sorted; the empty
            // value is a category of its own (keep_default_na=False).
            let mut categories: Vec<String> = values.clone();
            categories.sort();
            categories.dedup();
            Column::new(values.into_iter().map(|v| Some(Key::Text(v))).collect(), Some(categories.into_iter().map(Key::Text).collect()), true, vec![])
        };
        columns.insert(name, column);
    }
    Ok(Cohort { rows, columns })
}

fn load_feather(path: &Path, wanted: &dyn Fn(&str) -> bool) -> Result<Cohort> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| err!("{shown}: {e}"))?;
    let reader = arrow::ipc::reader::FileReader::try_new(file, None).map_err(|e| err!("{shown}: not a readable feather file: {e}"))?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| err!("{shown}: {e}"))?;
    let batch = arrow::compute::concat_batches(&schema, &batches)?;
    let mut columns = HashMap::new();
    for (field, array) in schema.fields().iter().zip(batch.columns()).filter(|(f, _)| wanted(f.name())) {
        columns.insert(field.name().clone(), feather_column(array).map_err(|e| err!("{shown}: column {}: {e}", field.name()))?);
    }
    Ok(Cohort { rows: batch.num_rows(), columns })
}

fn load_dta(path: &Path, wanted: &dyn Fn(&str) -> bool) -> Result<Cohort> {
    let batch = super::stata::read(path)?;
    let mut columns = HashMap::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()).filter(|(f, _)| wanted(f.name())) {
        columns.insert(field.name().clone(), feather_column(array).map_err(|e| err!("{}: column {}: {e}", path.display(), field.name()))?);
    }
    Ok(Cohort { rows: batch.num_rows(), columns })
}

fn feather_column(array: &ArrayRef) -> Result<Column> {
    let n = array.len();
    let plain = |keys: Vec<Option<Key>>, float: bool| {
        let numbers = keys.iter().map(|k| match k {
            Some(Key::Bool(b)) => *b as i64 as f64,
            Some(Key::Int(i)) => *i as f64,
            Some(Key::Float(f)) => *f,
            _ => f64::NAN,
        });
        let numbers = numbers.collect();
        Column::new(keys, None, float, numbers)
    };
    Ok(match array.data_type() {
        DataType::Boolean => {
            let a = array.as_any().downcast_ref::<BooleanArray>().unwrap();
            let mut column = plain((0..n).map(|i| a.is_valid(i).then(|| Key::Bool(a.value(i)))).collect(), false);
            column.flag = true;
            column
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let wide = arrow::compute::cast(array, &DataType::Int64)?;
            let a = wide.as_any().downcast_ref::<Int64Array>().unwrap();
            plain((0..n).map(|i| a.is_valid(i).then(|| Key::Int(a.value(i)))).collect(), false)
        }
        DataType::Float64 => {
            let a = array.as_any().downcast_ref::<Float64Array>().unwrap();
            plain((0..n).map(|i| a.is_valid(i).then(|| Key::Float(a.value(i)))).collect(), true)
        }
        DataType::Dictionary(k, _) => {
            let (keys, values) = match k.as_ref() {
                DataType::Int8 => dictionary::<Int8Type>(array),
                DataType::Int16 => dictionary::<Int16Type>(array),
                DataType::Int32 => dictionary::<Int32Type>(array),
                other => bail!("dictionary keys of type {other}"),
            };
            let categories = dictionary_values(&values)?;
            let keys = keys.into_iter().map(|k| k.map(|k| categories[k].clone())).collect();
            Column::new(keys, Some(categories), false, vec![])
        }
        DataType::Timestamp(..) | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(array, &DataType::Utf8)?;
            let a = text.as_any().downcast_ref::<StringArray>().unwrap();
            plain((0..n).map(|i| a.is_valid(i).then(|| Key::Text(a.value(i).to_string()))).collect(), false)
        }
        other => bail!("cannot use a column of type {other} in a measure"),
    })
}

fn dictionary<K: arrow::datatypes::ArrowDictionaryKeyType>(array: &ArrayRef) -> (Vec<Option<usize>>, ArrayRef) {
    let d = array.as_any().downcast_ref::<DictionaryArray<K>>().unwrap();
    let keys = d.keys().iter().map(|k| k.map(|k| arrow::datatypes::ArrowNativeType::as_usize(k))).collect();
    (keys, d.values().clone())
}

fn dictionary_values(values: &ArrayRef) -> Result<Vec<Key>> {
    Ok(match values.data_type() {
        // pandas 3 writes text categories as large strings.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(values, &DataType::Utf8)?;
            text.as_any().downcast_ref::<StringArray>().unwrap().iter().map(|v| Key::Text(v.unwrap_or("").to_string())).collect()
        }
        DataType::Int64 => values.as_any().downcast_ref::<PrimitiveArray<Int64Type>>().unwrap().iter().map(|v| Key::Int(v.unwrap_or(0))).collect(),
        DataType::Float64 => values.as_any().downcast_ref::<Float64Array>().unwrap().iter().map(|v| Key::Float(v.unwrap_or(f64::NAN))).collect(),
        other => bail!("categories of type {other}"),
    })
}

/// The CSV text of one measure over one cohort (lines end in "\n", as pandas writes them).
fn calculate(m: &Measure, cohort: &Cohort) -> Result<String> {
    let mut value_columns: Vec<&str> = Vec::new();
    for c in [m.numerator.as_str(), m.denominator.as_str()] {
        if !value_columns.contains(&c) {
            value_columns.push(c);
        }
    }
    // "population" is a column of 1s like the others (see `load`).
    let sums_of = |name: &str| -> (bool, Vec<f64>) {
        let c = &cohort.columns[name];
        (c.float, c.numbers.clone())
    };
    let is_flag = |name: &str| cohort.columns[name].flag;
    let grouped = !m.group_by.is_empty();
    let by_population = m.group_by == [POPULATION];
    let group_columns: Vec<&str> = if by_population { vec![] } else { m.group_by.iter().map(String::as_str).collect() };
    let mut value_columns: Vec<&str> = value_columns.into_iter().filter(|c| !group_columns.contains(c)).collect();
    // Grouped by "population", pandas sums every selected column, that one too: the
    // number of patients is written after the numerator and denominator.
    if by_population && !value_columns.contains(&POPULATION) {
        value_columns.push(POPULATION);
    }
    // (group key, sums) in output order.
    let mut rows: Vec<(Vec<Key>, Vec<f64>)> = Vec::new();
    let inputs: Vec<(bool, Vec<f64>)> = value_columns.iter().map(|c| sums_of(c)).collect();
    let mut float: Vec<bool> = inputs.iter().map(|(f, _)| *f).collect();
    // Unsummed (no group_by), flags stay pandas bools, even beside suppressed NaNs.
    let flags: Vec<bool> = value_columns.iter().map(|c| !grouped && is_flag(c)).collect();
    if !grouped {
        for i in 0..cohort.rows {
            rows.push((vec![], inputs.iter().map(|(_, v)| v[i]).collect()));
        }
    } else if by_population {
        rows.push((vec![], inputs.iter().map(|(_, v)| v.iter().sum()).collect()));
    } else {
        let groups: Vec<&Column> = group_columns.iter().map(|g| &cohort.columns[*g]).collect();
        let sizes: Vec<u64> = groups.iter().map(|g| g.levels.len() as u64).collect();
        // Each group as one number: its columns' positions in mixed radix, so that
        // numeric order is pandas' sorted order.
        let mut sums: HashMap<u64, Vec<f64>> = HashMap::new();
        'patients: for i in 0..cohort.rows {
            let mut index = 0u64;
            for (g, size) in groups.iter().zip(&sizes) {
                match g.codes[i] {
                    Some(c) => index = index * size + c as u64,
                    None => continue 'patients, // pandas drops missing group keys
                }
            }
            let entry = sums.entry(index).or_insert_with(|| vec![0.0; inputs.len()]);
            for (s, (_, v)) in entry.iter_mut().zip(&inputs) {
                *s += v[i];
            }
        }
        let decode = |mut index: u64| -> Vec<Key> {
            let mut key = vec![Key::Int(0); groups.len()];
            for (c, size) in sizes.iter().enumerate().rev() {
                key[c] = groups[c].levels[(index % size) as usize].clone();
                index /= size;
            }
            key
        };
        if groups.iter().any(|g| g.categories.is_some()) {
            // observed=False: every combination of the levels, in order.
            let combinations: u64 = sizes.iter().product();
            for index in 0..combinations {
                let values = sums.get(&index).cloned().unwrap_or_else(|| vec![0.0; inputs.len()]);
                rows.push((decode(index), values));
            }
        } else {
            let mut observed: Vec<(u64, Vec<f64>)> = sums.into_iter().collect();
            observed.sort_by_key(|(index, _)| *index);
            rows = observed.into_iter().map(|(index, values)| (decode(index), values)).collect();
        }
    }
    if m.small_number_suppression {
        for c in [&m.numerator, &m.denominator] {
            if let Some(i) = value_columns.iter().position(|v| v == c) {
                suppress(&mut rows, i, &mut float[i]);
            }
        }
    }
    let num = value_columns.iter().position(|c| *c == m.numerator);
    let den = value_columns.iter().position(|c| *c == m.denominator);
    let mut out = String::new();
    let header: Vec<&str> = group_columns.iter().copied().chain(value_columns.iter().copied()).chain(["value"]).collect();
    out.push_str(&csv_line(header.iter().map(|s| s.to_string())));
    for (key, values) in &rows {
        let (n, d) = (num.map_or(f64::NAN, |i| values[i]), den.map_or(f64::NAN, |i| values[i]));
        let value = n / d;
        let cells = key
            .iter()
            .map(Key::text)
            .chain(values.iter().zip(float.iter().zip(&flags)).map(|(v, (f, flag))| match (flag, v.is_nan()) {
                (true, false) => if *v != 0.0 { "True" } else { "False" }.to_string(),
                _ => number(*v, *f),
            }))
            .chain([number(value, true)]);
        out.push_str(&csv_line(cells));
    }
    Ok(out)
}

/// cohort-extractor's small number suppression of one column.
fn suppress(rows: &mut [(Vec<Key>, Vec<f64>)], column: usize, float: &mut bool) {
    let small = |v: f64| v > 0.0 && v <= SMALL_NUMBER_THRESHOLD;
    let large = |v: f64| v > SMALL_NUMBER_THRESHOLD;
    let small_total: f64 = rows.iter().map(|r| r.1[column]).filter(|v| small(*v)).sum();
    if !rows.iter().any(|r| small(r.1[column])) {
        return;
    }
    let next = rows.iter().map(|r| r.1[column]).filter(|v| large(*v)).fold(f64::NAN, f64::min);
    for r in rows.iter_mut() {
        if small(r.1[column]) {
            r.1[column] = f64::NAN;
        }
    }
    *float = true; // pandas makes a column holding NaN a float column
    if small_total > SMALL_NUMBER_THRESHOLD || next.is_nan() {
        return;
    }
    for r in rows.iter_mut() {
        if r.1[column] == next {
            r.1[column] = f64::NAN;
        }
    }
}

fn number(v: f64, float: bool) -> String {
    if v.is_nan() {
        String::new()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if float {
        format_float(v)
    } else {
        format!("{}", v as i64)
    }
}

fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells
        .map(|c| if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c })
        .collect();
    format!("{}\n", cells.join(","))
}

/// The index date in a cohort file's name (`..._YYYY-MM-DD.<format>`).
fn date_of(file: &str) -> Option<String> {
    let stem = super::FORMATS.iter().filter_map(|f| file.strip_suffix(&format!(".{f}"))).max_by_key(|s| s.len()).map(|s| s.to_string())?;
    let (_, date) = stem.rsplit_once('_')?;
    let ok = date.len() == 10 && date.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
    ok.then(|| date.to_string())
}

/// Compute one study definition's measures for every cohort file in `output_dir`.
pub fn generate(output_dir: &Path, suffix: &str, measures: &[Measure], skip_existing: bool) -> Result<()> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(output_dir)
        .map_err(|e| err!("{}: {e}", output_dir.display()).or_kind(ErrorKind::File))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            // As cohort-extractor matches them: input<suffix>, anything, a format.
            let rest = name.strip_prefix(&format!("input{suffix}"))?;
            let matches = super::FORMATS.iter().any(|f| rest.len() > f.len() + 1 && rest.ends_with(&format!(".{f}")));
            let date = date_of(&name)?;
            matches.then(|| (date, e.path()))
        })
        .collect();
    files.sort_by(|a, b| a.1.cmp(&b.1));
    if files.is_empty() {
        eprintln!("warning: No matching output files found. You may need to first run:\n  cohortextractor generate_cohort --index-date-range ...");
        return Ok(());
    }
    let mut dates: BTreeMap<&str, usize> = BTreeMap::new();
    for (d, _) in &files {
        *dates.entry(d).or_default() += 1;
    }
    if let Some((d, _)) = dates.iter().find(|(_, n)| **n > 1) {
        eprintln!("warning: several cohort files in {} are for {d} (cohort-extractor matches every input{suffix}*_DATE file); each is measured in turn", output_dir.display());
    }
    let (numeric, groups) = needed(measures);
    let mut outputs: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for (date, path) in &files {
        eprintln!("Calculating measures for {}", path.display());
        let mut cohort = None;
        for m in measures {
            let target = output_dir.join(format!("measure_{}_{date}.csv", m.id));
            outputs.entry(&m.id).or_default().push(target.clone());
            if skip_existing && target.exists() {
                eprintln!("Not generating pre-existing file {}", target.display());
                continue;
            }
            if cohort.is_none() {
                cohort = Some(load(path, &numeric, &groups).or_kind(ErrorKind::File)?);
            }
            let text = calculate(m, cohort.as_ref().unwrap())?;
            std::fs::write(&target, text).map_err(|e| err!("{}: {e}", target.display()))?;
        }
    }
    for m in measures {
        combine(&output_dir.join(format!("measure_{}.csv", m.id)), &outputs[m.id.as_str()])?;
    }
    Ok(())
}

/// The per-date files of a measure in one file with a `date` column (via Python's
/// csv module in cohort-extractor: lines end in CRLF).
fn combine(target: &Path, files: &[PathBuf]) -> Result<()> {
    let mut files = files.to_vec();
    files.sort();
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_path(target).map_err(|e| err!("{}: {e}", target.display()))?;
    let mut header: Option<Vec<String>> = None;
    for file in &files {
        let date = date_of(&file.file_name().unwrap_or_default().to_string_lossy()).unwrap_or_default();
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(file).map_err(|e| err!("{}: {e}", file.display()))?;
        let mut records = reader.records();
        let first: Vec<String> = match records.next() {
            Some(r) => r.map_err(|e| err!("{}: {e}", file.display()))?.iter().map(str::to_string).collect(),
            None => bail!("{}: empty file", file.display()),
        };
        match &header {
            None => {
                writer.write_record(first.iter().map(String::as_str).chain(["date"])).map_err(|e| err!("{}: {e}", target.display()))?;
                header = Some(first);
            }
            Some(h) if *h != first => bail!("Files {} and {} have different headers", files[0].display(), file.display()),
            _ => {}
        }
        for r in records {
            let r = r.map_err(|e| err!("{}: {e}", file.display()))?;
            writer.write_record(r.iter().chain([date.as_str()])).map_err(|e| err!("{}: {e}", target.display()))?;
        }
    }
    writer.flush().map_err(|e| err!("{}: {e}", target.display()))?;
    Ok(())
}
