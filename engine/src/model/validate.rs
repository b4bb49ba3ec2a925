//! Type and dimension checking. Every node gets a [`NodeInfo`]; a node that breaks a
//! rule of ehrQL's query model gets an error naming the node and the rule.

use super::nodes::*;
use super::schema::TableSchema;
use super::types::{Literal, ValueType};
use crate::error::Result;
use crate::{bail, err};

/// Whether a series has one value per patient or one value per row of an event frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Patient,
    /// Many rows per patient, drawn from the named root table.
    Event(String),
}

#[derive(Clone, Debug)]
pub enum NodeInfo {
    Frame {
        /// The table the rows come from (inline tables are named `inline#<node>`).
        root: String,
        schema: TableSchema,
        patient_level: bool,
    },
    Series { ty: ValueType, dim: Dim },
}

impl NodeInfo {
    pub fn series_type(&self) -> Option<&ValueType> {
        match self {
            NodeInfo::Series { ty, .. } => Some(ty),
            NodeInfo::Frame { .. } => None,
        }
    }
    pub fn dim(&self) -> Option<&Dim> {
        match self {
            NodeInfo::Series { dim, .. } => Some(dim),
            NodeInfo::Frame { .. } => None,
        }
    }
}

/// Check the whole model; returns the info of every node, indexed like the nodes.
pub fn validate(model: &QueryModel) -> Result<Vec<NodeInfo>> {
    let mut infos: Vec<NodeInfo> = Vec::with_capacity(model.nodes.len());
    for (id, node) in model.nodes.iter().enumerate() {
        let info = node_info(model, &infos, id, node).map_err(|e| err!("node {id} ({}): {e}", op_name(node)))?;
        infos.push(info);
    }
    check_dataset(model, &infos)?;
    Ok(infos)
}

pub fn op_name(node: &Node) -> &'static str {
    match node {
        Node::SelectTable { .. } => "SelectTable",
        Node::SelectPatientTable { .. } => "SelectPatientTable",
        Node::InlinePatientTable { .. } => "InlinePatientTable",
        Node::SelectColumn { .. } => "SelectColumn",
        Node::Filter { .. } => "Filter",
        Node::Sort { .. } => "Sort",
        Node::PickOneRowPerPatient { .. } => "PickOneRowPerPatient",
        Node::Aggregate { aggregation, .. } => aggregation.name(),
        Node::Function { function, .. } => function.name(),
        Node::Case { .. } => "Case",
        Node::Value { .. } | Node::ValueSet { .. } => "Value",
        Node::Parameter { .. } => "Parameter",
    }
}

fn series<'a>(infos: &'a [NodeInfo], id: NodeId, role: &str) -> Result<(&'a ValueType, &'a Dim)> {
    match &infos[id] {
        NodeInfo::Series { ty, dim } => Ok((ty, dim)),
        NodeInfo::Frame { .. } => bail!("{role} (node {id}) must be a series, not a frame"),
    }
}

fn frame<'a>(infos: &'a [NodeInfo], id: NodeId) -> Result<(&'a str, &'a TableSchema, bool)> {
    match &infos[id] {
        NodeInfo::Frame { root, schema, patient_level } => Ok((root, schema, *patient_level)),
        NodeInfo::Series { .. } => bail!("source (node {id}) must be a frame, not a series"),
    }
}

/// The dimension of a combination: patient-level unless any input is event-level, and
/// event-level inputs must all come from the same table.
fn combine(dims: &[&Dim]) -> Result<Dim> {
    let mut out = Dim::Patient;
    for d in dims {
        if let Dim::Event(t) = d {
            match &out {
                Dim::Patient => out = Dim::Event(t.clone()),
                Dim::Event(o) if o == t => {}
                Dim::Event(o) => bail!("cannot combine event-level series from different tables ('{o}' and '{t}')"),
            }
        }
    }
    Ok(out)
}

fn node_info(model: &QueryModel, infos: &[NodeInfo], id: NodeId, node: &Node) -> Result<NodeInfo> {
    Ok(match node {
        Node::SelectTable { table } | Node::SelectPatientTable { table } => {
            let schema = model.schema.table(table)?;
            let want_patient = matches!(node, Node::SelectPatientTable { .. });
            if schema.is_patient_level() != want_patient {
                let (level, op) = if schema.is_patient_level() {
                    ("patient-level", "SelectPatientTable")
                } else {
                    ("event-level", "SelectTable")
                };
                bail!("table '{table}' is {level}; select it with {op}");
            }
            NodeInfo::Frame { root: table.clone(), schema: schema.clone(), patient_level: want_patient }
        }
        Node::InlinePatientTable { schema, rows } => {
            let mut seen = std::collections::HashSet::new();
            // A file's patients are checked when it is read.
            let given = match rows {
                super::InlineRows::Given(rows) => rows.as_slice(),
                super::InlineRows::File(_) => &[],
            };
            for (pid, _) in given {
                if !seen.insert(*pid) {
                    bail!("patient_id {pid} appears in more than one row of a patient-level table");
                }
            }
            NodeInfo::Frame { root: format!("inline#{id}"), schema: schema.clone(), patient_level: true }
        }
        Node::SelectColumn { source, name } => {
            let (root, schema, patient_level) = frame(infos, *source)?;
            let column = schema.column(name).ok_or_else(|| {
                err!(
                    "table '{}' has no column '{name}' (columns: {})",
                    schema.name,
                    schema.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            let dim = if patient_level { Dim::Patient } else { Dim::Event(root.to_string()) };
            NodeInfo::Series { ty: column.ty.clone(), dim }
        }
        Node::Filter { source, condition } => {
            let (root, schema, patient_level) = frame(infos, *source)?;
            if patient_level {
                bail!("only event-level frames can be filtered");
            }
            let (ty, dim) = series(infos, *condition, "condition")?;
            if *ty != ValueType::Bool {
                bail!("the condition must be a bool series, not {ty}");
            }
            check_same_root(dim, root, "the condition")?;
            NodeInfo::Frame { root: root.to_string(), schema: schema.clone(), patient_level: false }
        }
        Node::Sort { source, sort_by } => {
            let (root, schema, patient_level) = frame(infos, *source)?;
            if patient_level {
                bail!("only event-level frames can be sorted");
            }
            for key in sort_by {
                let (ty, dim) = series(infos, *key, "sort key")?;
                if !(ty.is_comparable() || *ty == ValueType::Bool) {
                    bail!("cannot sort by a {ty} series (node {key})");
                }
                check_same_root(dim, root, "a sort key")?;
            }
            NodeInfo::Frame { root: root.to_string(), schema: schema.clone(), patient_level: false }
        }
        Node::PickOneRowPerPatient { source, .. } => {
            let (root, schema, patient_level) = frame(infos, *source)?;
            if patient_level {
                bail!("a row can only be picked from an event-level frame");
            }
            NodeInfo::Frame { root: root.to_string(), schema: schema.clone(), patient_level: true }
        }
        Node::Aggregate { aggregation, source, maximum_gap_days } => aggregate_info(infos, *aggregation, *source, *maximum_gap_days)?,
        Node::Function { function, args } => function_info(infos, *function, args)?,
        Node::Case { cases, default } => {
            let mut ty: Option<&ValueType> = None;
            let mut dims = Vec::new();
            let values = cases.iter().filter_map(|(_, v)| v.as_ref()).chain(default.iter());
            for v in values {
                let (vty, vdim) = series(infos, *v, "a case value")?;
                match ty {
                    None => ty = Some(vty),
                    Some(t) if t == vty => {}
                    Some(t) => bail!("all case values must have one type; found {t} and {vty}"),
                }
                dims.push(vdim);
            }
            for (cond, _) in cases {
                let (cty, cdim) = series(infos, *cond, "a case condition")?;
                if *cty != ValueType::Bool {
                    bail!("case conditions must be bool series, not {cty}");
                }
                dims.push(cdim);
            }
            let ty = ty.ok_or_else(|| err!("a case needs at least one non-null value"))?.clone();
            NodeInfo::Series { ty, dim: combine(&dims)? }
        }
        Node::Parameter { name, ty } if name.starts_with(crate::model::measures::EVALUATION_PREFIX) => NodeInfo::Series { ty: ty.clone(), dim: Dim::Patient },
        Node::Parameter { name, ty } => {
            if !crate::model::measures::PARAMETERS.contains(&name.as_str()) {
                bail!("unknown parameter '{name}' (measures define {})", crate::model::measures::PARAMETERS.join(" and "));
            }
            if *ty != ValueType::Date {
                bail!("parameter '{name}' is a date, not {ty}");
            }
            NodeInfo::Series { ty: ty.clone(), dim: Dim::Patient }
        }
        Node::Value { ty, value } => {
            if matches!(ty, ValueType::Set(_)) {
                bail!("a single value cannot have a set type");
            }
            if let Literal::Float(f) = value {
                if !f.is_finite() {
                    bail!("float values must be finite");
                }
            }
            NodeInfo::Series { ty: ty.clone(), dim: Dim::Patient }
        }
        Node::ValueSet { ty, .. } => NodeInfo::Series { ty: ValueType::Set(Box::new(ty.clone())), dim: Dim::Patient },
    })
}

fn check_same_root(dim: &Dim, root: &str, what: &str) -> Result<()> {
    match dim {
        Dim::Event(t) if t != root => bail!("{what} comes from table '{t}' but the frame is drawn from '{root}'"),
        _ => Ok(()),
    }
}

fn aggregate_info(infos: &[NodeInfo], aggregation: Aggregation, source: NodeId, gap: Option<i64>) -> Result<NodeInfo> {
    use Aggregation::*;
    if matches!(aggregation, Exists | Count) {
        frame(infos, source)?;
        let ty = if aggregation == Exists { ValueType::Bool } else { ValueType::Int };
        return Ok(NodeInfo::Series { ty, dim: Dim::Patient });
    }
    let (ty, dim) = series(infos, source, "the aggregated series")?;
    if *dim == Dim::Patient {
        bail!("only event-level series can be aggregated; this series already has one value per patient");
    }
    let out = match aggregation {
        CountDistinct => ValueType::Int,
        CountEpisodes => {
            if *ty != ValueType::Date {
                bail!("episodes can only be counted over a date series, not {ty}");
            }
            if gap.unwrap_or(0) < 0 {
                bail!("maximum_gap_days must not be negative");
            }
            ValueType::Int
        }
        Min | Max => {
            if !ty.is_comparable() {
                bail!("cannot take the minimum or maximum of a {ty} series");
            }
            ty.clone()
        }
        Sum => {
            if !ty.is_numeric() {
                bail!("only int and float series can be summed, not {ty}");
            }
            ty.clone()
        }
        Mean => {
            if !ty.is_numeric() {
                bail!("only int and float series have a mean, not {ty}");
            }
            ValueType::Float
        }
        CombineAsSet => {
            if matches!(ty, ValueType::Set(_)) {
                bail!("sets cannot be nested");
            }
            ValueType::Set(Box::new(ty.clone()))
        }
        Exists | Count => unreachable!(),
    };
    Ok(NodeInfo::Series { ty: out, dim: Dim::Patient })
}

fn function_info(infos: &[NodeInfo], function: Function, args: &[NodeId]) -> Result<NodeInfo> {
    use Function::*;
    let mut tys = Vec::with_capacity(args.len());
    let mut dims = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let role = match (args.len(), i) {
            (1, _) => "the argument",
            (2, 0) => "lhs",
            (2, _) => "rhs",
            _ => "an argument",
        };
        let (ty, dim) = series(infos, *a, role)?;
        tys.push(ty);
        dims.push(dim);
    }
    if matches!(function, MinimumOf | MaximumOf) && args.is_empty() {
        bail!("needs at least one series");
    }
    let dim = combine(&dims)?;
    let same = |what: &str| -> Result<()> {
        if tys.windows(2).any(|w| w[0] != w[1]) {
            bail!("{what} must have the same type; found {}", tys.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" and "));
        }
        Ok(())
    };
    let need = |ok: bool, what: &str| -> Result<()> {
        if !ok {
            bail!("{what}; found {}", tys.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" and "));
        }
        Ok(())
    };
    let ty = match function {
        EQ | NE => {
            same("both sides of a comparison")?;
            need(!matches!(tys[0], ValueType::Set(_)), "sets cannot be compared; use In")?;
            ValueType::Bool
        }
        LT | LE | GT | GE => {
            same("both sides of a comparison")?;
            need(tys[0].is_comparable(), "only int, float, str, date and code series have an order")?;
            ValueType::Bool
        }
        And | Or => {
            need(tys.iter().all(|t| **t == ValueType::Bool), "both sides must be bool")?;
            ValueType::Bool
        }
        Not => {
            need(*tys[0] == ValueType::Bool, "the argument must be bool")?;
            ValueType::Bool
        }
        IsNull => ValueType::Bool,
        Negate | Absolute => {
            need(tys[0].is_numeric(), "the argument must be int or float")?;
            tys[0].clone()
        }
        Add | Subtract | Multiply => {
            same("both sides of arithmetic")?;
            need(tys[0].is_numeric(), "arithmetic needs int or float series")?;
            tys[0].clone()
        }
        TrueDivide | Power => {
            same("both sides of arithmetic")?;
            need(tys[0].is_numeric(), "arithmetic needs int or float series")?;
            ValueType::Float
        }
        FloorDivide => {
            same("both sides of arithmetic")?;
            need(tys[0].is_numeric(), "arithmetic needs int or float series")?;
            ValueType::Int
        }
        CastToInt => {
            need(tys[0].is_numeric() || *tys[0] == ValueType::Bool, "only int, float and bool series convert to int")?;
            ValueType::Int
        }
        CastToFloat => {
            need(tys[0].is_numeric(), "only int and float series convert to float")?;
            ValueType::Float
        }
        DateAddDays | DateAddMonths | DateAddYears => {
            need(*tys[0] == ValueType::Date && *tys[1] == ValueType::Int, "needs a date (lhs) and an int (rhs)")?;
            ValueType::Date
        }
        DateDifferenceInDays | DateDifferenceInMonths | DateDifferenceInYears => {
            need(tys.iter().all(|t| **t == ValueType::Date), "both sides must be dates")?;
            ValueType::Int
        }
        YearFromDate | MonthFromDate | DayFromDate => {
            need(*tys[0] == ValueType::Date, "the argument must be a date")?;
            ValueType::Int
        }
        ToFirstOfYear | ToFirstOfMonth => {
            need(*tys[0] == ValueType::Date, "the argument must be a date")?;
            ValueType::Date
        }
        StringContains => {
            let lhs_ok = matches!(tys[0], ValueType::Str | ValueType::MultiCodeString(_));
            let rhs_ok = match (tys[0], tys[1]) {
                (ValueType::Str, ValueType::Str) => true,
                (ValueType::MultiCodeString(a), ValueType::Code(b)) => a == b,
                (ValueType::MultiCodeString(_), ValueType::Str) => true,
                _ => false,
            };
            need(lhs_ok && rhs_ok, "needs a str (or multi-code string) series and a str (or code of the same system)")?;
            ValueType::Bool
        }
        In => {
            match tys[1] {
                ValueType::Set(inner) if **inner == *tys[0] => {}
                _ => need(false, "needs a series (lhs) and a set of values of the same type (rhs)")?,
            }
            ValueType::Bool
        }
        FormatDate => {
            need(*tys[0] == ValueType::Date && *tys[1] == ValueType::Str, "needs a date (lhs) and a format (rhs: YYYY, YYYY-MM or YYYY-MM-DD)")?;
            ValueType::Str
        }
        CastToStr => {
            need(matches!(tys[0], ValueType::Str | ValueType::Code(_) | ValueType::Int), "only str, code and int series convert to str")?;
            ValueType::Str
        }
        LowerCase | TrimSpaces => {
            need(*tys[0] == ValueType::Str, "the argument must be str")?;
            ValueType::Str
        }
        ReplaceIgnoringCase => {
            need(tys.len() == 3 && tys.iter().all(|t| **t == ValueType::Str), "needs three str series: the text, what to replace and its replacement")?;
            ValueType::Str
        }
        MinimumOf | MaximumOf => {
            same("all arguments")?;
            need(tys[0].is_comparable(), "only int, float, str, date and code series have an order")?;
            tys[0].clone()
        }
    };
    Ok(NodeInfo::Series { ty, dim })
}

/// Variable names follow ehrQL's rules so outputs load cleanly in R, Stata and pandas.
pub fn check_variable_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        bail!("invalid variable name '{name}': names must start with a letter and contain only letters, digits and underscores");
    }
    if name == "patient_id" || name == "population" {
        bail!("'{name}' is a reserved name and cannot be used as a variable");
    }
    Ok(())
}

fn check_dataset(model: &QueryModel, infos: &[NodeInfo]) -> Result<()> {
    let ds = &model.dataset;
    match &infos[ds.population] {
        NodeInfo::Series { ty: ValueType::Bool, dim: Dim::Patient } => {}
        NodeInfo::Series { ty: ValueType::Bool, .. } => {
            bail!("population (node {}): must have one value per patient, but is an event-level series", ds.population)
        }
        NodeInfo::Series { ty, .. } => bail!("population (node {}): must be a bool series, not {ty}", ds.population),
        NodeInfo::Frame { .. } => bail!("population (node {}): must be a bool series, not a frame", ds.population),
    }
    for (name, id) in &ds.variables {
        check_variable_name(name)?;
        match &infos[*id] {
            NodeInfo::Series { dim: Dim::Event(t), .. } => bail!(
                "variable '{name}' (node {id}): has many values per patient (drawn from '{t}'); reduce it to one value per patient (e.g. with an aggregation or by picking a row) or add it to an event table"
            ),
            NodeInfo::Series { ty: ValueType::Set(_), .. } => bail!("variable '{name}' (node {id}): a set cannot be a dataset column"),
            NodeInfo::Series { .. } => {}
            NodeInfo::Frame { .. } => bail!("variable '{name}' (node {id}): must be a series, not a frame"),
        }
    }
    for (tname, cols) in &ds.event_tables {
        check_variable_name(tname)?;
        if cols.is_empty() {
            bail!("event table '{tname}': needs at least one column");
        }
        let mut root: Option<&str> = None;
        for (cname, id) in cols {
            check_variable_name(cname)?;
            match &infos[*id] {
                NodeInfo::Series { dim: Dim::Event(t), ty } => {
                    if matches!(ty, ValueType::Set(_)) {
                        bail!("event table '{tname}', column '{cname}': a set cannot be a column");
                    }
                    match root {
                        None => root = Some(t),
                        Some(r) if r == t => {}
                        Some(r) => bail!("event table '{tname}': columns come from different tables ('{r}' and '{t}')"),
                    }
                }
                _ => bail!("event table '{tname}', column '{cname}' (node {id}): must be an event-level series"),
            }
        }
    }
    Ok(())
}
