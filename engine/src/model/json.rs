//! The JSON form of the query model (see `docs/query-model.md`).
//!
//! A document lists its nodes in an array; a node refers to its inputs by their
//! index in that array, and only to nodes listed before it, so a document is always
//! a DAG and a shared sub-expression is written once.

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

use super::measures::{Measure, MeasuresModel};
use super::nodes::*;
use super::schema::{RawTable, Schema};
use super::types::{Literal, ValueType, parse_iso_date};
use crate::error::{Error, Result};
use crate::{bail, err};

pub const FORMAT: &str = "ehrfusion-query-model";
pub const VERSION: u64 = 1;

/// A document describes a dataset, or measures over the same kind of nodes.
pub enum Document {
    Dataset(QueryModel),
    Measures(MeasuresModel),
}

/// Read a dataset document.
pub fn parse(text: &str) -> Result<QueryModel> {
    match parse_document(text)? {
        Document::Dataset(model) => Ok(model),
        Document::Measures(_) => bail!("this document defines measures, not a dataset: run it with generate-measures"),
    }
}

/// Read a dataset or a measures document.
pub fn parse_document(text: &str) -> Result<Document> {
    let doc: Json = serde_json::from_str(text).map_err(|e| err!("invalid JSON: {e}"))?;
    let obj = doc.as_object().ok_or_else(|| err!("the query model must be a JSON object"))?;
    for key in obj.keys() {
        if !["format", "version", "backend", "tables", "nodes", "dataset", "measures"].contains(&key.as_str()) {
            bail!("unknown top-level key '{key}'");
        }
    }
    match obj.get("format").and_then(Json::as_str) {
        Some(FORMAT) => {}
        Some(other) => bail!("'format' is '{other}', expected '{FORMAT}'"),
        None => bail!("missing 'format': \"{FORMAT}\""),
    }
    match obj.get("version").and_then(Json::as_u64) {
        Some(VERSION) => {}
        Some(v) => bail!("query model version {v} is not supported (this ehrfusion reads version {VERSION})"),
        None => bail!("missing 'version'"),
    }
    let backend = obj.get("backend").and_then(Json::as_str).unwrap_or("core").to_string();
    let mut schema = Schema::backend(&backend)?;
    if let Some(tables) = obj.get("tables") {
        let tables: IndexMap<String, RawTable> =
            serde_json::from_value(tables.clone()).map_err(|e| err!("'tables': {e}"))?;
        for (name, raw) in tables {
            if schema.tables.contains_key(&name) {
                bail!("'tables': table '{name}' is already defined by the '{backend}' backend");
            }
            let t = raw.into_schema(&name)?;
            schema.tables.insert(name, t);
        }
    }
    let raw_nodes = obj.get("nodes").and_then(Json::as_array).ok_or_else(|| err!("missing 'nodes' array"))?;
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    for (i, raw) in raw_nodes.iter().enumerate() {
        let node = parse_node(i, raw).map_err(|e| err!("node {i}: {e}"))?;
        nodes.push(node);
    }
    Ok(match (obj.get("dataset"), obj.get("measures")) {
        (Some(dataset), None) => {
            let dataset = parse_dataset(dataset, nodes.len()).map_err(|e| err!("dataset: {e}"))?;
            Document::Dataset(QueryModel { backend, schema, nodes, dataset })
        }
        (None, Some(measures)) => {
            let (measures, disclosure_control) = parse_measures(measures, nodes.len()).map_err(|e| err!("measures: {e}"))?;
            Document::Measures(MeasuresModel { backend, schema, nodes, measures, disclosure_control })
        }
        (Some(_), Some(_)) => bail!("a document has 'dataset' or 'measures', not both"),
        (None, None) => bail!("missing 'dataset' (or 'measures')"),
    })
}

/// `{"measures": [{name, numerator, denominator, group_by, intervals}], "disclosure_control": bool}`
fn parse_measures(raw: &Json, n: usize) -> Result<(Vec<Measure>, bool)> {
    let obj = raw.as_object().ok_or_else(|| err!("must be an object"))?;
    for k in obj.keys() {
        if !["measures", "disclosure_control"].contains(&k.as_str()) {
            bail!("unexpected key '{k}'");
        }
    }
    let disclosure_control = match obj.get("disclosure_control") {
        None => true,
        Some(v) => v.as_bool().ok_or_else(|| err!("'disclosure_control' must be true or false"))?,
    };
    let list = obj.get("measures").and_then(Json::as_array).ok_or_else(|| err!("missing 'measures' array"))?;
    let mut measures = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let m = m.as_object().ok_or_else(|| err!("measure {i} must be an object"))?;
        let f = Fields { obj: m, index: n };
        let name = f.str("name").map_err(|e| err!("measure {i}: {e}"))?.to_string();
        let at = |e: Error| err!("measure '{name}': {e}");
        for k in m.keys() {
            if !["name", "numerator", "denominator", "group_by", "intervals"].contains(&k.as_str()) {
                return Err(at(err!("unexpected key '{k}'")));
            }
        }
        let mut group_by = IndexMap::new();
        if let Some(groups) = m.get("group_by") {
            let groups = groups.as_object().ok_or_else(|| at(err!("'group_by' must map names to node indexes")))?;
            for (g, v) in groups {
                group_by.insert(g.clone(), node_ref(v, n).map_err(|e| at(err!("group '{g}': {e}")))?);
            }
        }
        let raw_intervals = f.get("intervals").map_err(at)?.as_array().ok_or_else(|| at(err!("'intervals' must be an array")))?;
        let mut intervals = Vec::with_capacity(raw_intervals.len());
        for iv in raw_intervals {
            let date = |v: &Json| v.as_str().and_then(parse_iso_date);
            let pair = iv.as_array().filter(|p| p.len() == 2);
            let (start, end) = match pair.map(|p| (date(&p[0]), date(&p[1]))) {
                Some((Some(s), Some(e))) => (s, e),
                _ => return Err(at(err!("each interval must be a pair of YYYY-MM-DD dates, not {iv}"))),
            };
            intervals.push((start, end));
        }
        measures.push(Measure {
            numerator: f.node("numerator").map_err(at)?,
            denominator: f.node("denominator").map_err(at)?,
            name,
            group_by,
            intervals,
        });
    }
    Ok((measures, disclosure_control))
}

struct Fields<'a> {
    obj: &'a Map<String, Json>,
    index: usize,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Result<&'a Json> {
        self.obj.get(key).ok_or_else(|| err!("missing '{key}'"))
    }
    fn str(&self, key: &str) -> Result<&'a str> {
        self.get(key)?.as_str().ok_or_else(|| err!("'{key}' must be a string"))
    }
    fn node(&self, key: &str) -> Result<NodeId> {
        node_ref(self.get(key)?, self.index).map_err(|e| err!("'{key}': {e}"))
    }
    fn nodes(&self, key: &str) -> Result<Vec<NodeId>> {
        let arr = self.get(key)?.as_array().ok_or_else(|| err!("'{key}' must be an array of node indexes"))?;
        arr.iter().map(|v| node_ref(v, self.index).map_err(|e| err!("'{key}': {e}"))).collect()
    }
    fn only(&self, allowed: &[&str]) -> Result<()> {
        for k in self.obj.keys() {
            if k != "op" && !allowed.contains(&k.as_str()) {
                bail!("unexpected key '{k}'");
            }
        }
        Ok(())
    }
}

fn node_ref(v: &Json, index: usize) -> Result<NodeId> {
    let r = v.as_u64().ok_or_else(|| err!("expected a node index, found {v}"))? as usize;
    if r >= index {
        bail!("refers to node {r}, but a node may only refer to nodes listed before it");
    }
    Ok(r)
}

fn parse_node(index: usize, raw: &Json) -> Result<Node> {
    let obj = raw.as_object().ok_or_else(|| err!("a node must be a JSON object"))?;
    let f = Fields { obj, index };
    let op = f.str("op")?;
    if let Some(agg) = Aggregation::ALL.iter().find(|a| a.name() == op) {
        let gap = if *agg == Aggregation::CountEpisodes {
            f.only(&["source", "maximum_gap_days"])?;
            Some(f.get("maximum_gap_days")?.as_i64().ok_or_else(|| err!("'maximum_gap_days' must be an integer"))?)
        } else {
            f.only(&["source"])?;
            None
        };
        return Ok(Node::Aggregate { aggregation: *agg, source: f.node("source")?, maximum_gap_days: gap });
    }
    if let Some(function) = Function::ALL.iter().find(|x| x.name() == op) {
        let args = match function.arity() {
            Arity::Unary => {
                f.only(&["source"])?;
                vec![f.node("source")?]
            }
            Arity::Binary => {
                f.only(&["lhs", "rhs"])?;
                vec![f.node("lhs")?, f.node("rhs")?]
            }
            Arity::Variadic => {
                f.only(&["sources"])?;
                f.nodes("sources")?
            }
        };
        return Ok(Node::Function { function: *function, args });
    }
    Ok(match op {
        "SelectTable" => {
            f.only(&["table"])?;
            Node::SelectTable { table: f.str("table")?.to_string() }
        }
        "SelectPatientTable" => {
            f.only(&["table"])?;
            Node::SelectPatientTable { table: f.str("table")?.to_string() }
        }
        "InlinePatientTable" => {
            f.only(&["name", "columns", "rows", "file"])?;
            let name = obj.get("name").and_then(Json::as_str).unwrap_or("inline_table");
            let columns = serde_json::from_value(f.get("columns")?.clone()).map_err(|e| err!("'columns': {e}"))?;
            let schema = RawTable { level: super::schema::Level::Patient, description: String::new(), columns }
                .into_schema(name)?;
            if let Some(file) = obj.get("file") {
                if obj.contains_key("rows") {
                    bail!("give 'rows' or 'file', not both");
                }
                let file = file.as_str().ok_or_else(|| err!("'file' must be a string (a path)"))?;
                return Ok(Node::InlinePatientTable { schema, rows: InlineRows::File(file.into()) });
            }
            let raw_rows = f.get("rows")?.as_array().ok_or_else(|| err!("'rows' must be an array"))?;
            let mut rows = Vec::with_capacity(raw_rows.len());
            for (r, row) in raw_rows.iter().enumerate() {
                let cells = row.as_array().ok_or_else(|| err!("row {r} must be an array"))?;
                if cells.len() != schema.columns.len() + 1 {
                    bail!("row {r} has {} values; expected patient_id and {} columns", cells.len(), schema.columns.len());
                }
                let pid = cells[0].as_i64().ok_or_else(|| err!("row {r}: patient_id must be an integer"))?;
                let values = schema
                    .columns
                    .iter()
                    .zip(&cells[1..])
                    .map(|(c, v)| literal(&c.ty, v).map_err(|e| err!("row {r}, column '{}': {e}", c.name)))
                    .collect::<Result<Vec<_>>>()?;
                rows.push((pid, values));
            }
            Node::InlinePatientTable { schema, rows: InlineRows::Given(rows) }
        }
        "SelectColumn" => {
            f.only(&["source", "name"])?;
            Node::SelectColumn { source: f.node("source")?, name: f.str("name")?.to_string() }
        }
        "Filter" => {
            f.only(&["source", "condition"])?;
            Node::Filter { source: f.node("source")?, condition: f.node("condition")? }
        }
        "Sort" => {
            f.only(&["source", "sort_by"])?;
            let sort_by = f.nodes("sort_by")?;
            if sort_by.is_empty() {
                bail!("'sort_by' must list at least one series");
            }
            Node::Sort { source: f.node("source")?, sort_by }
        }
        "PickOneRowPerPatient" => {
            f.only(&["source", "position"])?;
            let position = match f.str("position")? {
                "first" => Position::First,
                "last" => Position::Last,
                other => bail!("'position' must be \"first\" or \"last\", not \"{other}\""),
            };
            Node::PickOneRowPerPatient { source: f.node("source")?, position }
        }
        "Case" => {
            f.only(&["cases", "default"])?;
            let raw = f.get("cases")?.as_array().ok_or_else(|| err!("'cases' must be an array of [condition, value] pairs"))?;
            let mut cases = Vec::with_capacity(raw.len());
            for pair in raw {
                let pair = pair.as_array().filter(|p| p.len() == 2).ok_or_else(|| err!("each case must be a [condition, value] pair"))?;
                let cond = node_ref(&pair[0], index)?;
                let value = if pair[1].is_null() { None } else { Some(node_ref(&pair[1], index)?) };
                cases.push((cond, value));
            }
            if cases.is_empty() {
                bail!("'cases' must not be empty");
            }
            let default = match obj.get("default") {
                None | Some(Json::Null) => None,
                Some(v) => Some(node_ref(v, index).map_err(|e| err!("'default': {e}"))?),
            };
            Node::Case { cases, default }
        }
        "Parameter" => {
            f.only(&["name", "type"])?;
            let name = f.str("name")?.to_string();
            if name.starts_with(crate::model::measures::EVALUATION_PREFIX) {
                return Err(err!("parameter '{name}': names starting {} are the engine's own", crate::model::measures::EVALUATION_PREFIX));
            }
            Node::Parameter { name, ty: f.str("type")?.parse()? }
        }
        "Value" => {
            f.only(&["type", "value", "set"])?;
            let ty: ValueType = f.str("type")?.parse()?;
            match (obj.get("value"), obj.get("set")) {
                (Some(v), None) => Node::Value { value: literal(&ty, v)?, ty },
                (None, Some(Json::Array(items))) => {
                    let values = items
                        .iter()
                        .map(|v| match literal(&ty, v)? {
                            Literal::Null => Err(err!("a set may not contain null")),
                            l => Ok(l),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Node::ValueSet { ty, values }
                }
                _ => bail!("a Value needs exactly one of 'value' (a single value) or 'set' (an array of values)"),
            }
        }
        other => bail!("unknown operation '{other}'"),
    })
}

/// Convert a JSON value to a literal of the given type, refusing anything that would
/// need coercion (a string for an int, a float for an int, ...).
pub fn literal(ty: &ValueType, v: &Json) -> Result<Literal> {
    if v.is_null() {
        return Ok(Literal::Null);
    }
    let wrong = || err!("{v} is not a valid {ty}");
    Ok(match ty {
        ValueType::Bool => Literal::Bool(v.as_bool().ok_or_else(wrong)?),
        ValueType::Int => Literal::Int(v.as_i64().ok_or_else(wrong)?),
        ValueType::Float => Literal::Float(v.as_f64().ok_or_else(wrong)?),
        ValueType::Date => Literal::Date(v.as_str().and_then(parse_iso_date).ok_or_else(|| err!("{v} is not a date in YYYY-MM-DD form"))?),
        ValueType::Str | ValueType::Code(_) | ValueType::MultiCodeString(_) => {
            Literal::Str(v.as_str().ok_or_else(wrong)?.to_string())
        }
        ValueType::Set(_) => return Err(Error::new("use 'set' rather than a set type for set values")),
    })
}

fn parse_dataset(raw: &Json, n: usize) -> Result<Dataset> {
    let obj = raw.as_object().ok_or_else(|| err!("must be an object"))?;
    for k in obj.keys() {
        if !["population", "variables", "event_tables"].contains(&k.as_str()) {
            bail!("unexpected key '{k}'");
        }
    }
    let population = node_ref(obj.get("population").ok_or_else(|| err!("missing 'population'"))?, n)
        .map_err(|e| err!("'population': {e}"))?;
    let mut variables = IndexMap::new();
    if let Some(vars) = obj.get("variables") {
        let vars = vars.as_object().ok_or_else(|| err!("'variables' must map names to node indexes"))?;
        for (name, v) in vars {
            variables.insert(name.clone(), node_ref(v, n).map_err(|e| err!("variable '{name}': {e}"))?);
        }
    }
    let mut event_tables = IndexMap::new();
    if let Some(tables) = obj.get("event_tables") {
        let tables = tables.as_object().ok_or_else(|| err!("'event_tables' must map names to column maps"))?;
        for (tname, cols) in tables {
            let cols = cols.as_object().ok_or_else(|| err!("event table '{tname}' must map column names to node indexes"))?;
            let mut columns = IndexMap::new();
            for (cname, v) in cols {
                columns.insert(cname.clone(), node_ref(v, n).map_err(|e| err!("event table '{tname}', column '{cname}': {e}"))?);
            }
            event_tables.insert(tname.clone(), columns);
        }
    }
    Ok(Dataset { population, variables, event_tables })
}
