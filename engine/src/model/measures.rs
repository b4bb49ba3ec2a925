//! Measures: numerator and denominator sums per interval and group, as ehrQL defines
//! them. Measures that share a denominator and intervals are computed together, from
//! one dataset whose population is the patients the denominator counts (true, or
//! greater than zero) and whose variables are the denominator, the numerators (as
//! integers) and the group columns.

use indexmap::IndexMap;

use super::nodes::*;
use super::schema::Schema;
use super::types::{Literal, ValueType};
use super::validate::{Dim, NodeInfo, validate};
use crate::error::Result;
use crate::{bail, err};

/// The parameters a measure gives a value for each interval.
pub const PARAMETERS: [&str; 2] = ["interval_start_date", "interval_end_date"];

/// Parameters the engine makes when it runs one dataset at several evaluations that
/// differ only in constants (see `compile::intervals`); never written by users.
pub const EVALUATION_PREFIX: &str = "__evaluation_";

/// Columns of the output, so not names for groups.
pub const RESERVED_NAMES: [&str; 6] = ["measure", "numerator", "denominator", "ratio", "interval_start", "interval_end"];

#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    pub name: String,
    pub numerator: NodeId,
    pub denominator: NodeId,
    pub group_by: IndexMap<String, NodeId>,
    /// (start, end) as days since 1970-01-01, both inclusive.
    pub intervals: Vec<(i32, i32)>,
}

/// A measures document: nodes as in a dataset, and the measures over them.
#[derive(Clone, Debug)]
pub struct MeasuresModel {
    pub backend: String,
    pub schema: Schema,
    pub nodes: Vec<Node>,
    pub measures: Vec<Measure>,
    pub disclosure_control: bool,
}

/// Measures sharing a denominator and intervals, and the dataset they are summed from.
#[derive(Clone, Debug)]
pub struct MeasureGroup {
    /// Variables: `d` (the denominator as an integer), `n0`, `n1`, ... (distinct
    /// numerators as integers) and `g_<name>` for each group column.
    pub model: QueryModel,
    pub intervals: Vec<(i32, i32)>,
    /// Sets of group names (in the order of all groups), in first-use order.
    pub grouping_sets: Vec<Vec<String>>,
    /// This group's measures, in definition order.
    pub measures: Vec<GroupMeasure>,
}

#[derive(Clone, Debug)]
pub struct GroupMeasure {
    /// Index into [`MeasuresModel::measures`].
    pub measure: usize,
    /// The numerator's variable in the group's dataset.
    pub numerator: String,
    /// Index into [`MeasureGroup::grouping_sets`].
    pub grouping_set: usize,
}

pub fn group_variable(name: &str) -> String {
    format!("g_{name}")
}

impl MeasuresModel {
    /// Every group column of every measure, in first-use order.
    pub fn group_columns(&self) -> IndexMap<String, NodeId> {
        let mut out = IndexMap::new();
        for m in &self.measures {
            for (name, id) in &m.group_by {
                out.entry(name.clone()).or_insert(*id);
            }
        }
        out
    }

    fn model_with(&self, nodes: Vec<Node>, dataset: Dataset) -> QueryModel {
        QueryModel { backend: self.backend.clone(), schema: self.schema.clone(), nodes, dataset }
    }

    /// Check the rules ehrQL's `define_measure` enforces (for documents that did not
    /// come through the Python front end), with the types of the nodes.
    fn check(&self, infos: &[NodeInfo]) -> Result<()> {
        if self.measures.is_empty() {
            bail!("No measures defined");
        }
        let mut groups: IndexMap<&str, NodeId> = IndexMap::new();
        for (i, m) in self.measures.iter().enumerate() {
            let at = |e: crate::error::Error| err!("measure '{}': {e}", m.name);
            super::validate::check_variable_name(&m.name).map_err(at)?;
            if self.measures[..i].iter().any(|o| o.name == m.name) {
                bail!("Measure already defined with name: {}", m.name);
            }
            for (what, id) in [("numerator", m.numerator), ("denominator", m.denominator)] {
                match &infos[id] {
                    NodeInfo::Series { ty: ValueType::Bool | ValueType::Int, dim: Dim::Patient } => {}
                    NodeInfo::Series { dim: Dim::Event(t), .. } => {
                        return Err(at(err!("invalid {what}: expecting a series with only one value per patient, not one drawn from '{t}'")));
                    }
                    NodeInfo::Series { ty, .. } => return Err(at(err!("invalid {what}: expecting a boolean or integer series, got series of type '{ty}'"))),
                    NodeInfo::Frame { .. } => return Err(at(err!("invalid {what}: expecting a series, not a frame"))),
                }
            }
            for (g, id) in &m.group_by {
                super::validate::check_variable_name(g).map_err(at)?;
                if RESERVED_NAMES.contains(&g.as_str()) {
                    return Err(at(err!("disallowed `group_by` column name: {g}")));
                }
                match &infos[*id] {
                    NodeInfo::Series { ty: ValueType::Set(_), .. } => return Err(at(err!("group '{g}': a set cannot be a group"))),
                    NodeInfo::Series { dim: Dim::Patient, .. } => {}
                    _ => return Err(at(err!("invalid `group_by` value for '{g}': expecting a series with only one value per patient"))),
                }
                if *groups.entry(g.as_str()).or_insert(*id) != *id {
                    bail!("Inconsistent definition for `group_by` column: {g}");
                }
            }
            if let Some((s, e)) = m.intervals.iter().find(|(s, e)| s > e) {
                return Err(at(err!(
                    "Interval start date must be before end date, got: ({}, {})",
                    super::types::format_date(*s),
                    super::types::format_date(*e)
                )));
            }
        }
        Ok(())
    }

    /// The measures in groups that share a denominator and intervals, in the order
    /// each group first appears; each with the dataset its sums come from.
    pub fn groups(&self) -> Result<Vec<MeasureGroup>> {
        let infos = self.infos()?;
        self.check(&infos)?;
        let all_groups: Vec<String> = self.group_columns().keys().cloned().collect();
        let mut keys: Vec<(NodeId, Vec<(i32, i32)>)> = Vec::new();
        let mut out: Vec<MeasureGroup> = Vec::new();
        for (index, m) in self.measures.iter().enumerate() {
            let mut intervals = m.intervals.clone();
            intervals.sort();
            intervals.dedup();
            let key = (m.denominator, intervals.clone());
            let g = match keys.iter().position(|k| *k == key) {
                Some(g) => g,
                None => {
                    keys.push(key);
                    let mut nodes = self.nodes.clone();
                    let population = as_population(&mut nodes, &infos, m.denominator);
                    let as_int = as_integer(&mut nodes, &infos, m.denominator);
                    let mut variables = IndexMap::new();
                    variables.insert("d".to_string(), as_int);
                    let dataset = Dataset { population, variables, event_tables: IndexMap::new() };
                    out.push(MeasureGroup { model: self.model_with(nodes, dataset), intervals, grouping_sets: Vec::new(), measures: Vec::new() });
                    out.len() - 1
                }
            };
            let group = &mut out[g];
            let numerator = numerator_variable(group, &infos, m.numerator);
            for (name, id) in &m.group_by {
                group.model.dataset.variables.entry(group_variable(name)).or_insert(*id);
            }
            let set: Vec<String> = all_groups.iter().filter(|n| m.group_by.contains_key(*n)).cloned().collect();
            let grouping_set = match group.grouping_sets.iter().position(|s| *s == set) {
                Some(i) => i,
                None => {
                    group.grouping_sets.push(set);
                    group.grouping_sets.len() - 1
                }
            };
            group.measures.push(GroupMeasure { measure: index, numerator, grouping_set });
        }
        for g in &out {
            validate(&g.model)?;
        }
        Ok(out)
    }

    /// The types and dimensions of the nodes (checked with a trivial dataset).
    fn infos(&self) -> Result<Vec<NodeInfo>> {
        let mut nodes = self.nodes.clone();
        nodes.push(Node::Value { ty: ValueType::Bool, value: Literal::Bool(true) });
        let population = nodes.len() - 1;
        let mut infos = validate(&self.model_with(nodes, Dataset { population, variables: IndexMap::new(), event_tables: IndexMap::new() }))?;
        infos.pop();
        Ok(infos)
    }

    /// The dataset dummy data is generated for, as ehrQL makes it: the population is
    /// any denominator's, the variables every numerator and group, and the intervals
    /// one span from the earliest start to the latest end.
    pub fn dummy_model(&self) -> Result<QueryModel> {
        self.check(&self.infos()?)?;
        let start = self.measures.iter().flat_map(|m| m.intervals.iter().map(|i| i.0)).min().ok_or_else(|| err!("no intervals"))?;
        let end = self.measures.iter().flat_map(|m| m.intervals.iter().map(|i| i.1)).max().ok_or_else(|| err!("no intervals"))?;
        let infos = self.infos()?;
        let mut nodes = self.nodes.clone();
        let mut populations: Vec<NodeId> = Vec::new();
        for m in &self.measures {
            let p = as_population(&mut nodes, &infos, m.denominator);
            if !populations.contains(&p) {
                populations.push(p);
            }
        }
        let mut population = populations[0];
        for p in &populations[1..] {
            nodes.push(Node::Function { function: Function::Or, args: vec![population, *p] });
            population = nodes.len() - 1;
        }
        let mut variables = IndexMap::new();
        for m in &self.measures {
            variables.entry(format!("n{}", variables.len())).or_insert(m.numerator);
        }
        for (name, id) in self.group_columns() {
            variables.insert(group_variable(&name), id);
        }
        let mut model = self.model_with(nodes, Dataset { population, variables, event_tables: IndexMap::new() });
        substitute_parameters(&mut model, (start, end));
        validate(&model)?;
        Ok(model)
    }

    /// ehrQL's guess at a dummy population big enough to give non-zero results:
    /// 10 per denominator, interval and group.
    pub fn default_population_size(&self) -> usize {
        let mut denominators: Vec<NodeId> = self.measures.iter().map(|m| m.denominator).collect();
        denominators.sort();
        denominators.dedup();
        let mut intervals: Vec<(i32, i32)> = self.measures.iter().flat_map(|m| m.intervals.iter().copied()).collect();
        intervals.sort();
        intervals.dedup();
        10 * denominators.len() * intervals.len() * self.group_columns().len().max(1)
    }
}

/// The variable holding `numerator` as an integer in a group's dataset.
fn numerator_variable(group: &mut MeasureGroup, infos: &[NodeInfo], numerator: NodeId) -> String {
    let id = as_integer(&mut group.model.nodes, infos, numerator);
    let variables = &mut group.model.dataset.variables;
    if let Some((name, _)) = variables.iter().find(|(n, v)| n.starts_with('n') && **v == id) {
        return name.clone();
    }
    let name = format!("n{}", variables.keys().filter(|n| n.starts_with('n')).count());
    variables.insert(name.clone(), id);
    name
}

/// Add `node` unless an equal node exists; its id either way.
fn intern(nodes: &mut Vec<Node>, node: Node) -> NodeId {
    match nodes.iter().position(|n| *n == node) {
        Some(i) => i,
        None => {
            nodes.push(node);
            nodes.len() - 1
        }
    }
}

/// A bool or int series as the integer it counts (true as 1).
fn as_integer(nodes: &mut Vec<Node>, infos: &[NodeInfo], id: NodeId) -> NodeId {
    match infos[id].series_type() {
        Some(ValueType::Bool) => intern(nodes, Node::Function { function: Function::CastToInt, args: vec![id] }),
        _ => id,
    }
}

/// Whether a denominator counts a patient: true, or greater than zero.
fn as_population(nodes: &mut Vec<Node>, infos: &[NodeInfo], id: NodeId) -> NodeId {
    match infos[id].series_type() {
        Some(ValueType::Int) => {
            let zero = intern(nodes, Node::Value { ty: ValueType::Int, value: Literal::Int(0) });
            intern(nodes, Node::Function { function: Function::GT, args: vec![id, zero] })
        }
        _ => id,
    }
}

/// Replace the interval parameters by fixed dates.
pub fn substitute_parameters(model: &mut QueryModel, (start, end): (i32, i32)) {
    for node in &mut model.nodes {
        if let Node::Parameter { name, .. } = node {
            let day = if name == PARAMETERS[0] { start } else { end };
            *node = Node::Value { ty: ValueType::Date, value: Literal::Date(day) };
        }
    }
}
