//! What a query looks for, so dummy data can contain it: the values each column is
//! compared with (codes from codelists, categories, numbers), code prefixes searched
//! in multi-code strings, and the dates the query compares against.

use std::collections::HashMap;

use crate::model::*;

#[derive(Debug, Default)]
pub struct Hints {
    /// Values compared with each (table, column).
    pub values: HashMap<(String, String), Vec<Literal>>,
    /// Prefixes searched for in each multi-code string (table, column).
    pub prefixes: HashMap<(String, String), Vec<String>>,
    /// Every date constant in the query (days since 1970-01-01), sorted.
    pub dates: Vec<i32>,
}

impl Hints {
    pub fn collect(model: &QueryModel, infos: &[NodeInfo]) -> Hints {
        let mut h = Hints::default();
        let column_of = |id: NodeId| -> Option<(String, String)> {
            if let Node::SelectColumn { source, name } = &model.nodes[id] {
                if let NodeInfo::Frame { root, .. } = &infos[*source] {
                    return Some((root.clone(), name.clone()));
                }
            }
            None
        };
        for node in &model.nodes {
            match node {
                Node::Value { value: Literal::Date(d), .. } => h.dates.push(*d),
                Node::ValueSet { values, .. } => {
                    h.dates.extend(values.iter().filter_map(|v| if let Literal::Date(d) = v { Some(*d) } else { None }))
                }
                Node::Function { function, args } if args.len() == 2 => {
                    let (lhs, rhs) = (args[0], args[1]);
                    match (function, &model.nodes[rhs]) {
                        (Function::In, Node::ValueSet { values, .. }) => {
                            if let Some(key) = column_of(lhs) {
                                h.values.entry(key).or_default().extend(values.iter().cloned());
                            }
                        }
                        (Function::EQ | Function::NE | Function::GE | Function::LE, Node::Value { value, .. }) if *value != Literal::Null => {
                            if let Some(key) = column_of(lhs) {
                                h.values.entry(key).or_default().push(value.clone());
                            }
                        }
                        (Function::StringContains, Node::Value { value: Literal::Str(s), .. }) => {
                            if let Some(key) = column_of(lhs) {
                                h.prefixes.entry(key).or_default().push(s.clone());
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        h.dates.sort_unstable();
        h.dates.dedup();
        for v in h.values.values_mut() {
            v.dedup();
        }
        h
    }
}
