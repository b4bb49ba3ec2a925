//! A reference evaluator of the query model: one patient at a time, one row at a time,
//! following ehrQL's in-memory engine (`ehrql/query_engines/in_memory.py`). It shares
//! nothing with the compiler; it is slow and meant to be obviously right.
//!
//! Per patient, a frame is the list of its rows (indexes into a table, in order), a
//! patient frame at most one row, an event series one value per row of its frame and a
//! patient series one value. Evaluating patients separately gives ehrQL's defaults for
//! free: a patient without rows counts 0, exists false, and sums to null.

pub mod cases;
pub mod dates;
pub mod generate;
pub mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use ehrfusion::model::nodes::{Aggregation, Node, NodeId, Position, QueryModel};
use ehrfusion::model::types::Literal;
pub use values::V;

/// Table rows: patient id and the values of the table's columns, in schema order.
pub type Rows = Vec<(i64, Vec<V>)>;

pub struct Db {
    pub tables: BTreeMap<String, Rows>,
}

/// A dataset: each patient of the population with the values of its variables, by patient.
pub type Dataset = Vec<(i64, Vec<V>)>;

/// The result of a node for one patient.
#[derive(Clone, Debug)]
enum Out {
    Rows { table: String, rows: Vec<usize> },
    Row { table: String, row: Option<usize> },
    Event(Vec<(usize, V)>),
    Patient(V),
}

pub fn evaluate(model: &QueryModel, db: &Db) -> Dataset {
    let eval = Evaluator::new(model, db);
    let mut out = Vec::new();
    for patient in eval.universe() {
        let mut cache = vec![None; model.nodes.len()];
        let mut one = PatientEval { eval: &eval, patient, cache: &mut cache };
        if one.value(model.dataset.population) != V::Bool(true) {
            continue;
        }
        let values = model.dataset.variables.values().map(|id| one.value(*id)).collect();
        out.push((patient, values));
    }
    out
}

struct Evaluator<'a> {
    model: &'a QueryModel,
    db: &'a Db,
    /// Each table's rows by patient, in table order.
    by_patient: HashMap<&'a str, BTreeMap<i64, Vec<usize>>>,
    /// The columns selected from each `PickOneRowPerPatient`, which ehrQL sorts on
    /// (lexically, after the given keys) so that ties give one answer.
    picked: HashMap<NodeId, BTreeSet<String>>,
}

impl<'a> Evaluator<'a> {
    fn new(model: &'a QueryModel, db: &'a Db) -> Self {
        let mut by_patient: HashMap<&str, BTreeMap<i64, Vec<usize>>> = HashMap::new();
        for (name, rows) in &db.tables {
            let index = by_patient.entry(name.as_str()).or_default();
            for (i, (patient, _)) in rows.iter().enumerate() {
                index.entry(*patient).or_default().push(i);
            }
        }
        let mut picked: HashMap<NodeId, BTreeSet<String>> = HashMap::new();
        for node in &model.nodes {
            if let Node::SelectColumn { source, name } = node
                && matches!(model.nodes[*source], Node::PickOneRowPerPatient { .. })
            {
                picked.entry(*source).or_default().insert(name.clone());
            }
        }
        Evaluator { model, db, by_patient, picked }
    }

    /// Patients in any table the population uses (as ehrQL's database engines do).
    fn universe(&self) -> BTreeSet<i64> {
        let mut tables = BTreeSet::new();
        self.tables_used(self.model.dataset.population, &mut tables);
        tables.iter().flat_map(|t| self.by_patient.get(t.as_str()).into_iter().flat_map(|m| m.keys().copied())).collect()
    }

    fn tables_used(&self, id: NodeId, out: &mut BTreeSet<String>) {
        let node = &self.model.nodes[id];
        if let Node::SelectTable { table } | Node::SelectPatientTable { table } = node {
            out.insert(table.clone());
        }
        for input in inputs(node) {
            self.tables_used(input, out);
        }
    }

    fn column_index(&self, table: &str, name: &str) -> usize {
        let schema = self.model.schema.table(table).unwrap();
        schema.columns.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("no column {table}.{name}"))
    }

    fn cell(&self, table: &str, row: usize, column: usize) -> V {
        self.db.tables.get(table).map_or(V::Null, |rows| rows[row].1[column].clone())
    }

    fn is_patient_frame(&self, id: NodeId) -> bool {
        matches!(self.model.nodes[id], Node::SelectPatientTable { .. } | Node::PickOneRowPerPatient { .. })
    }
}

/// The nodes a node reads.
fn inputs(node: &Node) -> Vec<NodeId> {
    match node {
        Node::SelectColumn { source, .. } | Node::PickOneRowPerPatient { source, .. } | Node::Aggregate { source, .. } => vec![*source],
        Node::Filter { source, condition } => vec![*source, *condition],
        Node::Sort { source, sort_by } => std::iter::once(*source).chain(sort_by.iter().copied()).collect(),
        Node::Function { args, .. } => args.clone(),
        Node::Case { cases, default } => cases.iter().flat_map(|(c, v)| std::iter::once(*c).chain(*v)).chain(*default).collect(),
        _ => vec![],
    }
}

struct PatientEval<'e, 'a> {
    eval: &'e Evaluator<'a>,
    patient: i64,
    cache: &'e mut Vec<Option<Out>>,
}

impl PatientEval<'_, '_> {
    fn value(&mut self, id: NodeId) -> V {
        match self.out(id) {
            Out::Patient(v) => v,
            other => panic!("node {id} is not a patient-level series: {other:?}"),
        }
    }

    fn out(&mut self, id: NodeId) -> Out {
        if let Some(out) = &self.cache[id] {
            return out.clone();
        }
        let out = self.compute(id);
        self.cache[id] = Some(out.clone());
        out
    }

    fn compute(&mut self, id: NodeId) -> Out {
        let eval = self.eval;
        match &eval.model.nodes[id] {
            Node::SelectTable { table } => {
                let rows = eval.by_patient.get(table.as_str()).and_then(|m| m.get(&self.patient)).cloned().unwrap_or_default();
                Out::Rows { table: table.clone(), rows }
            }
            Node::SelectPatientTable { table } => {
                let row = eval.by_patient.get(table.as_str()).and_then(|m| m.get(&self.patient)).map(|rows| rows[0]);
                Out::Row { table: table.clone(), row }
            }
            Node::SelectColumn { source, name } => self.column(*source, name),
            Node::Filter { source, condition } => self.filter(*source, *condition),
            Node::Sort { source, sort_by } => {
                let (table, rows) = self.rows(*source);
                let rows = self.sorted(rows, sort_by);
                Out::Rows { table, rows }
            }
            Node::PickOneRowPerPatient { source, position } => self.pick(id, *source, *position),
            Node::Aggregate { aggregation, source, maximum_gap_days } => {
                Out::Patient(self.aggregate(*aggregation, *source, *maximum_gap_days))
            }
            Node::Function { function, args } => {
                let outs: Vec<Out> = args.iter().map(|a| self.out(*a)).collect();
                rowwise(&outs, |values| values::apply(*function, values))
            }
            Node::Case { cases, default } => self.case(cases, *default),
            Node::Value { value, .. } => Out::Patient(literal(value)),
            Node::ValueSet { values, .. } => Out::Patient(set_of(values.iter().map(literal))),
            other => panic!("the reference evaluator does not implement {other:?}"),
        }
    }

    fn rows(&mut self, frame: NodeId) -> (String, Vec<usize>) {
        match self.out(frame) {
            Out::Rows { table, rows } => (table, rows),
            other => panic!("node {frame} is not an event frame: {other:?}"),
        }
    }

    fn column(&mut self, source: NodeId, name: &str) -> Out {
        match self.out(source) {
            Out::Rows { table, rows } => {
                let c = self.eval.column_index(&table, name);
                Out::Event(rows.iter().map(|r| (*r, self.eval.cell(&table, *r, c))).collect())
            }
            Out::Row { table, row } => {
                let c = self.eval.column_index(&table, name);
                Out::Patient(row.map_or(V::Null, |r| self.eval.cell(&table, r, c)))
            }
            other => panic!("node {source} is not a frame: {other:?}"),
        }
    }

    /// Keep the rows whose condition is true; null is not true.
    fn filter(&mut self, source: NodeId, condition: NodeId) -> Out {
        let (table, rows) = self.rows(source);
        let condition = self.out(condition);
        let rows = rows.into_iter().filter(|r| value_at(&condition, *r) == V::Bool(true)).collect();
        Out::Rows { table, rows }
    }

    /// A stable sort by several keys, the first the most significant, nulls first.
    fn sorted(&mut self, rows: Vec<usize>, keys: &[NodeId]) -> Vec<usize> {
        let keys: Vec<Out> = keys.iter().map(|k| self.out(*k)).collect();
        sort_rows(rows, |r| keys.iter().map(|k| value_at(k, r)).collect())
    }

    /// ehrQL breaks ties on the given keys by the columns selected from the pick that
    /// are not already sort keys themselves, in order of their names; rows that still
    /// tie agree on every selected column, so it does not matter which is taken.
    fn pick(&mut self, id: NodeId, source: NodeId, position: Position) -> Out {
        let model = self.eval.model;
        let (table, rows) = self.rows(source);
        let mut keys = Vec::new();
        let mut frame = source;
        loop {
            match &model.nodes[frame] {
                Node::Sort { source, sort_by } => {
                    keys.extend(sort_by.iter().copied());
                    frame = *source;
                }
                Node::Filter { source, .. } => frame = *source,
                _ => break,
            }
        }
        let direct: BTreeSet<&str> = keys
            .iter()
            .filter_map(|k| match &model.nodes[*k] {
                Node::SelectColumn { source, name } if !self.eval.is_patient_frame(*source) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let extra: Vec<usize> = self
            .eval
            .picked
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|c| !direct.contains(c.as_str()))
            .map(|c| self.eval.column_index(&table, c))
            .collect();
        let keys: Vec<Out> = keys.iter().map(|k| self.out(*k)).collect();
        let rows =
            sort_rows(rows, |r| keys.iter().map(|k| value_at(k, r)).chain(extra.iter().map(|c| self.eval.cell(&table, r, *c))).collect());
        let row = match position {
            Position::First => rows.first(),
            Position::Last => rows.last(),
        };
        Out::Row { table, row: row.copied() }
    }

    fn aggregate(&mut self, aggregation: Aggregation, source: NodeId, maximum_gap_days: Option<i64>) -> V {
        match (aggregation, self.out(source)) {
            (Aggregation::Exists, Out::Rows { rows, .. }) => V::Bool(!rows.is_empty()),
            (Aggregation::Exists, Out::Row { row, .. }) => V::Bool(row.is_some()),
            (Aggregation::Count, Out::Rows { rows, .. }) => V::Int(rows.len() as i64),
            (Aggregation::Count, Out::Row { row, .. }) => V::Int(row.is_some() as i64),
            (aggregation, Out::Event(values)) => {
                let present: Vec<V> = values.into_iter().map(|(_, v)| v).filter(|v| !v.is_null()).collect();
                aggregate_values(aggregation, present, maximum_gap_days)
            }
            (aggregation, other) => panic!("cannot aggregate {aggregation:?} over {other:?}"),
        }
    }

    fn case(&mut self, cases: &[(NodeId, Option<NodeId>)], default: Option<NodeId>) -> Out {
        let mut outs = vec![self.optional(default)];
        for (condition, value) in cases {
            outs.push(self.out(*condition));
            outs.push(self.optional(*value));
        }
        rowwise(&outs, |v| {
            let chosen = v[1..].chunks(2).find(|pair| pair[0] == V::Bool(true)).map(|pair| &pair[1]);
            chosen.unwrap_or(&v[0]).clone()
        })
    }

    fn optional(&mut self, id: Option<NodeId>) -> Out {
        id.map_or(Out::Patient(V::Null), |id| self.out(id))
    }
}

/// Rows in the order of their keys, ties in their present order.
fn sort_rows(rows: Vec<usize>, key: impl Fn(usize) -> Vec<V>) -> Vec<usize> {
    let mut keyed: Vec<(Vec<V>, usize)> = rows.into_iter().map(|r| (key(r), r)).collect();
    keyed.sort_by(|(a, _), (b, _)| {
        a.iter().zip(b).map(|(x, y)| values::order(x, y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
    });
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// The value of a series on a row: a patient-level series has one value for all rows.
fn value_at(out: &Out, row: usize) -> V {
    match out {
        Out::Patient(v) => v.clone(),
        Out::Event(values) => values.iter().find(|(r, _)| *r == row).map_or(V::Null, |(_, v)| v.clone()),
        other => panic!("not a series: {other:?}"),
    }
}

/// Apply `f` row by row when any argument is event-level (on the rows of the first
/// one), else once.
fn rowwise(args: &[Out], f: impl Fn(&[V]) -> V) -> Out {
    let rows: Option<Vec<usize>> = args.iter().find_map(|a| match a {
        Out::Event(values) => Some(values.iter().map(|(r, _)| *r).collect()),
        _ => None,
    });
    let at = |row: Option<usize>| -> Vec<V> {
        args.iter()
            .map(|a| match (a, row) {
                (Out::Patient(v), _) => v.clone(),
                (event, Some(r)) => value_at(event, r),
                (other, None) => panic!("not a series: {other:?}"),
            })
            .collect()
    };
    match rows {
        Some(rows) => Out::Event(rows.into_iter().map(|r| (r, f(&at(Some(r))))).collect()),
        None => Out::Patient(f(&at(None))),
    }
}

/// An aggregation over a patient's non-null values.
fn aggregate_values(aggregation: Aggregation, values: Vec<V>, maximum_gap_days: Option<i64>) -> V {
    let extreme = |wanted: std::cmp::Ordering| {
        values.iter().fold(None, |best: Option<&V>, v| if best.is_none_or(|b| values::order(v, b) == wanted) { Some(v) } else { best })
    };
    match aggregation {
        Aggregation::CountDistinct => V::Int(distinct(values.clone()).len() as i64),
        Aggregation::CountEpisodes => V::Int(count_episodes(&values, maximum_gap_days.unwrap())),
        Aggregation::CombineAsSet => set_of(values.into_iter()),
        _ if values.is_empty() => V::Null,
        Aggregation::Min => extreme(std::cmp::Ordering::Less).unwrap().clone(),
        Aggregation::Max => extreme(std::cmp::Ordering::Greater).unwrap().clone(),
        Aggregation::Sum => sum(&values),
        Aggregation::Mean => match sum(&values) {
            V::Int(total) => V::Float(total as f64 / values.len() as f64),
            V::Float(total) => V::Float(total / values.len() as f64),
            other => panic!("mean of {other:?}"),
        },
        other => panic!("{other:?} aggregates a frame, not a series"),
    }
}

fn sum(values: &[V]) -> V {
    match &values[0] {
        V::Int(_) => V::Int(values.iter().map(|v| if let V::Int(i) = v { *i } else { unreachable!() }).sum()),
        V::Float(_) => V::Float(values.iter().map(|v| if let V::Float(f) = v { *f } else { unreachable!() }).sum()),
        other => panic!("sum of {other:?}"),
    }
}

/// Runs of dates, each at most `gap` days after the one before it.
fn count_episodes(values: &[V], gap: i64) -> i64 {
    let mut dates: Vec<NaiveDate> = values.iter().map(|v| if let V::Date(d) = v { *d } else { panic!("episodes of {v:?}") }).collect();
    if dates.is_empty() {
        return 0;
    }
    dates.sort();
    1 + dates.windows(2).filter(|w| (w[1] - w[0]).num_days() > gap).count() as i64
}

fn distinct(values: Vec<V>) -> Vec<V> {
    let mut out: Vec<V> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn set_of(values: impl Iterator<Item = V>) -> V {
    V::Set(distinct(values.filter(|v| !v.is_null()).collect()))
}

pub fn literal(value: &Literal) -> V {
    match value {
        Literal::Null => V::Null,
        Literal::Bool(b) => V::Bool(*b),
        Literal::Int(i) => V::Int(*i),
        Literal::Float(f) => V::Float(*f),
        Literal::Str(s) => V::Str(s.clone()),
        Literal::Date(days) => V::Date(epoch() + chrono::Duration::days(*days as i64)),
    }
}

pub fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
}
