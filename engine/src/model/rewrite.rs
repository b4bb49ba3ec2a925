//! Rewrites of a model evaluated at many parameter values (measures' intervals, a
//! cohort study's index dates) into cheaper models with the same values.
//!
//! "Has the patient an event on or before the date" is the commonest question a
//! study asks at each date. Asked as written, every event is repeated for every
//! date it precedes before the rows are counted. Asked as "is the patient's
//! earliest event on or before the date", the earliest event is found once per
//! patient, and each date costs one comparison.

use std::collections::HashMap;

use super::nodes::{Aggregation, Function, Node, NodeId, QueryModel};
use super::types::{Literal, ValueType};

/// `Exists(Filter(rows, column OP P))` becomes `Case(Min(column of rows) OP P → true,
/// else false)` (`Max` for `>=`/`>`), where `P` is computed from constants and
/// parameters alone and no other filter of `rows` reads a parameter. Rows whose
/// column is null never pass the comparison and are ignored by `Min`, and a patient
/// with no such rows (or a null `P`) gets false either way.
pub fn exists_as_extreme(model: QueryModel) -> QueryModel {
    let mut rewriter = Rewriter { old: &model.nodes, new: Vec::with_capacity(model.nodes.len()), map: Vec::with_capacity(model.nodes.len()), constants: HashMap::new() };
    for node in &model.nodes {
        let new_id = match rewriter.as_extreme(node) {
            Some(id) => id,
            None => rewriter.push(remap(node, &rewriter.map)),
        };
        rewriter.map.push(new_id);
    }
    let Rewriter { new, map, .. } = rewriter;
    let mut dataset = model.dataset;
    dataset.population = map[dataset.population];
    for id in dataset.variables.values_mut() {
        *id = map[*id];
    }
    for table in dataset.event_tables.values_mut() {
        for id in table.values_mut() {
            *id = map[*id];
        }
    }
    QueryModel { nodes: new, dataset, ..model }
}

struct Rewriter<'a> {
    old: &'a [Node],
    new: Vec<Node>,
    /// The new id of each old node seen so far.
    map: Vec<NodeId>,
    constants: HashMap<bool, NodeId>,
}

impl Rewriter<'_> {
    fn push(&mut self, node: Node) -> NodeId {
        self.new.push(node);
        self.new.len() - 1
    }

    fn boolean(&mut self, b: bool) -> NodeId {
        if let Some(&id) = self.constants.get(&b) {
            return id;
        }
        let id = self.push(Node::Value { ty: ValueType::Bool, value: Literal::Bool(b) });
        self.constants.insert(b, id);
        id
    }

    /// The new id of the rewritten node, if `node` is an `Exists` to rewrite.
    fn as_extreme(&mut self, node: &Node) -> Option<NodeId> {
        let Node::Aggregate { aggregation: Aggregation::Exists, source, .. } = node else { return None };
        // The chain of filters over the rows, outermost first.
        let mut chain = Vec::new();
        let mut rows = *source;
        while let Node::Filter { source, condition } = &self.old[rows] {
            chain.push((rows, *condition));
            rows = *source;
        }
        // Exactly one filter reads a parameter, and its condition is the comparison
        // of a column of the rows.
        let row_frames: Vec<NodeId> = chain.iter().map(|&(f, _)| f).chain([rows]).collect();
        let reading: Vec<usize> = (0..chain.len()).filter(|&k| reads_parameter(self.old, chain[k].1, &row_frames)).collect();
        let [k] = reading[..] else { return None };
        let (aggregation, column, op, bound) = self.comparison(chain[k].1, &row_frames)?;
        // The rows the comparison filters, with the filters above it applied again.
        let Node::Filter { source: below, .. } = &self.old[chain[k].0] else { unreachable!("the chain holds filters") };
        let mut frame = self.map[*below];
        for &(_, condition) in chain[..k].iter().rev() {
            frame = self.push(Node::Filter { source: frame, condition: self.map[condition] });
        }
        let series = self.push(Node::SelectColumn { source: frame, name: column });
        let extreme = self.push(Node::Aggregate { aggregation, source: series, maximum_gap_days: None });
        let test = self.push(Node::Function { function: op, args: vec![extreme, self.map[bound]] });
        let (yes, no) = (self.boolean(true), self.boolean(false));
        Some(self.push(Node::Case { cases: vec![(test, Some(yes))], default: Some(no) }))
    }

    /// A condition `column OP bound` (either way round) with `bound` of constants and
    /// parameters: the aggregation to take of the column, the column, the operator
    /// with the aggregate on its left, and the bound's old id.
    fn comparison(&self, condition: NodeId, row_frames: &[NodeId]) -> Option<(Aggregation, String, Function, NodeId)> {
        let Node::Function { function, args } = &self.old[condition] else { return None };
        let [lhs, rhs] = args[..] else { return None };
        let column = |id: NodeId| match &self.old[id] {
            Node::SelectColumn { name, source } if row_frames.contains(source) => Some(name.clone()),
            _ => None,
        };
        let (name, op, bound) = match (column(lhs), column(rhs)) {
            (Some(name), None) => (name, *function, rhs),
            (None, Some(name)) => (name, flipped(*function)?, lhs),
            _ => return None,
        };
        if !constant(self.old, bound) {
            return None;
        }
        let aggregation = match op {
            Function::LE | Function::LT => Aggregation::Min,
            Function::GE | Function::GT => Aggregation::Max,
            _ => return None,
        };
        Some((aggregation, name, op, bound))
    }
}

/// `a OP b` as `b OP' a`.
fn flipped(f: Function) -> Option<Function> {
    Some(match f {
        Function::LE => Function::GE,
        Function::LT => Function::GT,
        Function::GE => Function::LE,
        Function::GT => Function::LT,
        _ => return None,
    })
}

/// Whether a node is computed from constants and parameters alone (and reads a
/// parameter, or there is nothing to gain).
fn constant(nodes: &[Node], id: NodeId) -> bool {
    fn pure(nodes: &[Node], id: NodeId) -> bool {
        match &nodes[id] {
            Node::Value { .. } | Node::Parameter { .. } => true,
            Node::Function { args, .. } => args.iter().all(|&a| pure(nodes, a)),
            _ => false,
        }
    }
    pure(nodes, id) && reads_parameter(nodes, id, &[])
}

/// Whether a series reads a parameter, other than through the rows of `row_frames`
/// (a condition on a row reads the row's columns, not the frame's filters).
fn reads_parameter(nodes: &[Node], id: NodeId, row_frames: &[NodeId]) -> bool {
    // Remembered per node: shared inputs (a frame and a column of it) are visited once.
    fn visit(nodes: &[Node], id: NodeId, row_frames: &[NodeId], seen: &mut HashMap<NodeId, bool>) -> bool {
        if let Some(&known) = seen.get(&id) {
            return known;
        }
        let reads = match &nodes[id] {
            Node::Parameter { .. } => true,
            Node::SelectColumn { source, .. } if row_frames.contains(source) => false,
            node => node.inputs().into_iter().any(|i| visit(nodes, i, row_frames, seen)),
        };
        seen.insert(id, reads);
        reads
    }
    visit(nodes, id, row_frames, &mut HashMap::new())
}

/// A node with its inputs renumbered.
fn remap(node: &Node, map: &[NodeId]) -> Node {
    let m = |id: &NodeId| map[*id];
    match node.clone() {
        Node::SelectColumn { source, name } => Node::SelectColumn { source: m(&source), name },
        Node::Filter { source, condition } => Node::Filter { source: m(&source), condition: m(&condition) },
        Node::Sort { source, sort_by } => Node::Sort { source: m(&source), sort_by: sort_by.iter().map(m).collect() },
        Node::PickOneRowPerPatient { source, position } => Node::PickOneRowPerPatient { source: m(&source), position },
        Node::Aggregate { aggregation, source, maximum_gap_days } => Node::Aggregate { aggregation, source: m(&source), maximum_gap_days },
        Node::Function { function, args } => Node::Function { function, args: args.iter().map(m).collect() },
        Node::Case { cases, default } => Node::Case { cases: cases.iter().map(|(c, v)| (m(c), v.as_ref().map(m))).collect(), default: default.as_ref().map(m) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::json;
    use crate::model::validate::validate;

    /// Events filtered by a code, then by `CONDITION` (nodes 4 onwards), with the
    /// exists of the result as the population.
    fn model(condition_nodes: &str, condition: usize) -> QueryModel {
        let text = format!(
            r#"{{"format":"ehrfusion-query-model","version":1,"backend":"tpp","tables":{{}},"nodes":[
            {{"op":"SelectTable","table":"clinical_events"}},{{"op":"SelectColumn","source":0,"name":"snomedct_code"}},
            {{"op":"Value","type":"SNOMEDCTCode","set":["123456"]}},{{"op":"In","lhs":1,"rhs":2}},
            {{"op":"Filter","source":0,"condition":3}},
            {condition_nodes},
            {{"op":"Filter","source":4,"condition":{condition}}},{{"op":"Exists","source":{exists}}}],
            "dataset":{{"population":{population},"variables":{{}},"event_tables":{{}}}}}}"#,
            exists = condition + 1,
            population = condition + 2,
        );
        json::parse(&text).unwrap()
    }

    fn ops(m: &QueryModel) -> Vec<String> {
        m.nodes.iter().map(|n| crate::model::validate::op_name(n).to_string()).collect()
    }

    #[test]
    fn exists_before_a_parameter_becomes_the_earliest_date_compared_with_it() {
        let before = model(
            r#"{"op":"SelectColumn","source":4,"name":"date"},{"op":"Parameter","name":"interval_end_date","type":"date"},{"op":"LE","lhs":5,"rhs":6}"#,
            7,
        );
        let after = exists_as_extreme(before.clone());
        validate(&after).unwrap();
        let population = &after.nodes[after.dataset.population];
        let Node::Case { cases, default } = population else { panic!("{population:?}") };
        assert!(matches!(after.nodes[default.unwrap()], Node::Value { value: Literal::Bool(false), .. }));
        let Node::Function { function: Function::LE, args } = &after.nodes[cases[0].0] else { panic!() };
        let Node::Aggregate { aggregation: Aggregation::Min, source, .. } = &after.nodes[args[0]] else { panic!() };
        // The minimum is over the code-filtered rows, without the date's filter.
        let Node::SelectColumn { source: frame, name } = &after.nodes[*source] else { panic!() };
        assert_eq!(name, "date");
        assert_eq!(*frame, 4);
        assert!(matches!(after.nodes[args[1]], Node::Parameter { .. }));
        assert!(!after.nodes.iter().any(|n| matches!(n, Node::Aggregate { aggregation: Aggregation::Exists, .. })), "{:?}", ops(&after));
    }

    #[test]
    fn a_bound_on_the_left_or_a_lower_bound_takes_the_latest_date() {
        // P < date, i.e. date > P: the latest date decides.
        let before = model(
            r#"{"op":"SelectColumn","source":4,"name":"date"},{"op":"Parameter","name":"interval_start_date","type":"date"},{"op":"LT","lhs":6,"rhs":5}"#,
            7,
        );
        let after = exists_as_extreme(before);
        validate(&after).unwrap();
        let Node::Case { cases, .. } = &after.nodes[after.dataset.population] else { panic!() };
        let Node::Function { function: Function::GT, args } = &after.nodes[cases[0].0] else { panic!() };
        assert!(matches!(after.nodes[args[0]], Node::Aggregate { aggregation: Aggregation::Max, .. }));
    }

    #[test]
    fn other_conditions_are_left_alone() {
        let unchanged = |nodes: &str, condition| {
            let before = model(nodes, condition);
            assert_eq!(exists_as_extreme(before.clone()).nodes, before.nodes, "{nodes}");
        };
        // No parameter: nothing to gain.
        unchanged(r#"{"op":"SelectColumn","source":4,"name":"date"},{"op":"Value","type":"date","value":"2020-01-01"},{"op":"LE","lhs":5,"rhs":6}"#, 7);
        // Both bounds of the interval: each event belongs to some intervals only.
        unchanged(
            r#"{"op":"SelectColumn","source":4,"name":"date"},{"op":"Parameter","name":"interval_start_date","type":"date"},{"op":"GE","lhs":5,"rhs":6},
            {"op":"Parameter","name":"interval_end_date","type":"date"},{"op":"LE","lhs":5,"rhs":8},{"op":"And","lhs":7,"rhs":9}"#,
            10,
        );
        // A bound that reads a patient's value as well as a parameter.
        unchanged(
            r#"{"op":"SelectColumn","source":4,"name":"date"},{"op":"SelectPatientTable","table":"patients"},{"op":"SelectColumn","source":6,"name":"date_of_birth"},
            {"op":"Parameter","name":"interval_end_date","type":"date"},{"op":"MaximumOf","sources":[7,8]},{"op":"LE","lhs":5,"rhs":9}"#,
            10,
        );
        // Not an ordering.
        unchanged(r#"{"op":"SelectColumn","source":4,"name":"date"},{"op":"Parameter","name":"interval_end_date","type":"date"},{"op":"EQ","lhs":5,"rhs":6}"#, 7);
    }
}
