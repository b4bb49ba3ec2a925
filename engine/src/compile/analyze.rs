//! Analysis: walk the dataset's nodes once and decide how the data will be read.
//!
//! Every patient-level value comes from a *source*: a patient-level table, or one
//! grouped pass over an event table. All aggregations and picks over the same table
//! at the same stage share one source, whatever their filters: each becomes one
//! aggregate of that pass with its own `FILTER (WHERE ...)`, so a table is scanned
//! once per stage however many variables use it. An event expression that needs a
//! patient-level value (events after each patient's first diagnosis) is evaluated
//! at a later stage, over the table joined to the values the earlier stages produced.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::functions::core::expr_fn::{greatest, least};
use datafusion::functions_aggregate::{
    array_agg::array_agg_udaf, average::avg_udaf, count::count_udaf,
    min_max::{max_udaf, min_udaf}, sum::sum_udaf,
};
use datafusion::logical_expr::expr::Case as CaseExpr;
use datafusion::logical_expr::{AggregateUDF, Expr, ExprFunctionExt, cast, col, lit};
use datafusion::arrow::datatypes::DataType;

use super::fill_null::fill_null;
use super::functions::call;
use crate::error::Result;
use crate::model::*;
use crate::{bail, err};

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    PatientTable,
    /// An inline patient table, defined by the node with this id.
    Inline(NodeId),
    /// A grouped pass over an event table.
    Events,
}

#[derive(Clone, Debug)]
pub struct Source {
    pub table: String,
    pub kind: SourceKind,
    pub stage: usize,
    /// A column that is true for every patient with a row in the table.
    pub presence: String,
    /// Output columns: plain column expressions for patient tables, aggregate
    /// expressions for event passes.
    pub columns: Vec<(String, Expr)>,
}

#[derive(Clone, Debug)]
pub struct EventTable {
    pub name: String,
    pub root: String,
    pub stage: usize,
    pub filters: Vec<Expr>,
    pub columns: Vec<(String, Expr)>,
}

/// The result of analysis: sources, and expressions over their output columns.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub sources: Vec<Source>,
    /// Presence columns of the tables the population uses (one source per table): a
    /// patient is considered only if they appear in one of those tables (as ehrQL's
    /// database engines do).
    pub universe: Vec<String>,
    /// Presence columns of every table the definition uses: the patients ehrQL's
    /// in-memory engine considers, which it runs over dummy tables.
    pub universe_all: Vec<String>,
    pub population: Expr,
    pub variables: Vec<(String, Expr)>,
    pub event_tables: Vec<EventTable>,
    /// Tables read from the data (not inline), in first-use order.
    pub tables: Vec<String>,
}

impl Analysis {
    pub fn last_stage(&self) -> usize {
        self.sources.iter().map(|s| s.stage).max().unwrap_or(0)
    }
}

/// A compiled series: an expression, the filters that decide which rows it has (for
/// event-level series), and the earliest stage at which it can be evaluated.
#[derive(Clone, Debug)]
struct Ser {
    expr: Expr,
    filters: Vec<Expr>,
    stage: usize,
}

#[derive(Clone, Debug)]
enum PatientFrame {
    Table(usize),
    Pick(Position),
}

#[derive(Clone, Debug)]
struct Frm {
    root: String,
    filters: Vec<Expr>,
    /// Sort keys, most significant first.
    sort: Vec<Expr>,
    stage: usize,
    patient: Option<PatientFrame>,
}

pub fn analyze(model: &QueryModel, infos: &[NodeInfo]) -> Result<Analysis> {
    let picked = picked_columns(model);
    let mut a = Analyzer { model, infos, picked, sources: Vec::new(), series: HashMap::new(), frames: HashMap::new(), next: 0 };
    let ds = &model.dataset;
    let population = a.series(ds.population)?.expr;
    let mut variables = Vec::new();
    for (name, id) in &ds.variables {
        variables.push((name.clone(), a.series(*id)?.expr));
    }
    let mut event_tables = Vec::new();
    for (name, cols) in &ds.event_tables {
        let mut t = EventTable { name: name.clone(), root: String::new(), stage: 0, filters: Vec::new(), columns: Vec::new() };
        for (cname, id) in cols {
            if let Some(Dim::Event(root)) = infos[*id].dim() {
                t.root = root.clone();
            }
            let s = a.series(*id)?;
            t.stage = t.stage.max(s.stage);
            merge(&mut t.filters, &s.filters);
            t.columns.push((cname.clone(), s.expr));
        }
        event_tables.push(t);
    }
    let population_tables = tables_used(model, ds.population);
    if population_tables.is_empty() {
        bail!("the population must use at least one table (it decides which patients are considered)");
    }
    // One pass per table says which patients it has (any pass over all its rows will
    // do); the other passes may then skip rows that none of their values use.
    let presence_of = |wanted: &dyn Fn(&str) -> bool| {
        let mut seen = BTreeSet::new();
        a.sources.iter().filter(|s| wanted(&s.table) && seen.insert(s.table.clone())).map(|s| s.presence.clone()).collect::<Vec<_>>()
    };
    let universe = presence_of(&|t| population_tables.contains(t));
    let universe_all = presence_of(&|_| true);
    let mut tables = Vec::new();
    for s in &a.sources {
        if !matches!(s.kind, SourceKind::Inline(_)) && !tables.contains(&s.table) {
            tables.push(s.table.clone());
        }
    }
    for t in &event_tables {
        if !tables.contains(&t.root) {
            tables.push(t.root.clone());
        }
    }
    Ok(Analysis { sources: a.sources, universe, universe_all, population, variables, event_tables, tables })
}

/// The tables (by root name) that a node's value depends on.
fn tables_used(model: &QueryModel, id: NodeId) -> BTreeSet<String> {
    reachable(model, [id])
        .into_iter()
        .filter_map(|n| match &model.nodes[n] {
            Node::SelectTable { table } | Node::SelectPatientTable { table } => Some(table.clone()),
            Node::InlinePatientTable { .. } => Some(format!("inline#{n}")),
            _ => None,
        })
        .collect()
}

/// The nodes that `roots` read, directly or not, and the roots.
fn reachable(model: &QueryModel, roots: impl IntoIterator<Item = NodeId>) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<NodeId> = roots.into_iter().collect();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(model.nodes[n].inputs());
        }
    }
    seen
}

/// For each pick of one row per patient, the names of the columns the dataset
/// selects from it (from it or from an identical pick), in name order: ehrQL breaks
/// ties on a pick's sort keys by these columns, in this order.
fn picked_columns(model: &QueryModel) -> HashMap<NodeId, Vec<String>> {
    let ds = &model.dataset;
    let roots = std::iter::once(ds.population)
        .chain(ds.variables.values().copied())
        .chain(ds.event_tables.values().flat_map(|t| t.values().copied()));
    let mut by_pick: HashMap<(NodeId, Position), BTreeSet<String>> = HashMap::new();
    let mut picks = Vec::new();
    for n in reachable(model, roots) {
        match &model.nodes[n] {
            Node::PickOneRowPerPatient { source, position } => picks.push((n, (*source, *position))),
            Node::SelectColumn { source, name } => {
                if let Node::PickOneRowPerPatient { source: frame, position } = &model.nodes[*source] {
                    by_pick.entry((*frame, *position)).or_default().insert(name.clone());
                }
            }
            _ => {}
        }
    }
    picks.into_iter().map(|(n, key)| (n, by_pick.get(&key).map(|names| names.iter().cloned().collect()).unwrap_or_default())).collect()
}

fn merge(into: &mut Vec<Expr>, from: &[Expr]) {
    for f in from {
        if !into.contains(f) {
            into.push(f.clone());
        }
    }
}

fn conjunction(filters: &[Expr]) -> Option<Expr> {
    filters.iter().cloned().reduce(|a, b| a.and(b))
}

pub fn literal(ty: &ValueType, value: &Literal) -> Result<Expr> {
    Ok(lit(scalar(ty, value)?))
}

/// A constant as a DataFusion scalar of its type's Arrow representation.
pub fn scalar(ty: &ValueType, value: &Literal) -> Result<ScalarValue> {
    Ok(match value {
        Literal::Null => ScalarValue::try_from(&ty.arrow_type())?,
        Literal::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Literal::Int(i) => ScalarValue::Int64(Some(*i)),
        Literal::Float(f) => ScalarValue::Float64(Some(*f)),
        Literal::Str(s) => ScalarValue::Utf8(Some(s.clone())),
        Literal::Date(d) => ScalarValue::Date32(Some(*d)),
    })
}

fn aggregate(udaf: Arc<AggregateUDF>, args: Vec<Expr>, distinct: bool, filters: &[Expr]) -> Result<Expr> {
    let mut b = udaf.call(args).order_by(vec![]);
    if distinct {
        b = b.distinct();
    }
    if let Some(f) = conjunction(filters) {
        b = b.filter(f);
    }
    Ok(b.build()?)
}

fn case(when_then: Vec<(Expr, Expr)>, otherwise: Option<Expr>) -> Expr {
    if let Some(lookup) = lookup_case(&when_then, &otherwise) {
        return lookup;
    }
    Expr::Case(CaseExpr {
        expr: None,
        when_then_expr: when_then.into_iter().map(|(w, t)| (Box::new(w), Box::new(t))).collect(),
        else_expr: otherwise.map(Box::new),
    })
}

/// `CASE WHEN x = a THEN p WHEN x = b THEN q ... END` of literals as `CASE x WHEN a
/// THEN p ...`, which DataFusion evaluates by one lookup per row rather than one
/// comparison per branch (a value mapped to codes, as cohort-extractor's `sex()`). The
/// same: a null `x` matches no branch either way.
fn lookup_case(when_then: &[(Expr, Expr)], otherwise: &Option<Expr>) -> Option<Expr> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let is_literal = |e: &Expr| matches!(e, Expr::Literal(..));
    if when_then.len() < 2 || !otherwise.as_ref().is_none_or(is_literal) {
        return None;
    }
    let mut subject: Option<&Expr> = None;
    let mut pairs = Vec::with_capacity(when_then.len());
    for (when, then) in when_then {
        let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = when else { return None };
        if !is_literal(right) || !is_literal(then) || subject.is_some_and(|s| s != left.as_ref()) {
            return None;
        }
        subject = Some(left.as_ref());
        pairs.push((right.clone(), Box::new(then.clone())));
    }
    Some(Expr::Case(CaseExpr { expr: subject.map(|s| Box::new(s.clone())), when_then_expr: pairs, else_expr: otherwise.clone().map(Box::new) }))
}

struct Analyzer<'a> {
    model: &'a QueryModel,
    infos: &'a [NodeInfo],
    /// See [`picked_columns`].
    picked: HashMap<NodeId, Vec<String>>,
    sources: Vec<Source>,
    series: HashMap<NodeId, Ser>,
    frames: HashMap<NodeId, Frm>,
    next: usize,
}

impl Analyzer<'_> {
    fn source(&mut self, table: &str, kind: SourceKind, stage: usize) -> usize {
        if let Some(i) = self.sources.iter().position(|s| s.table == table && s.kind == kind && s.stage == stage) {
            return i;
        }
        let presence = format!("__in{}", self.sources.len());
        self.sources.push(Source { table: table.to_string(), kind, stage, presence, columns: Vec::new() });
        self.sources.len() - 1
    }

    /// Add an output column to a source (reusing an identical one) and return its name.
    fn column(&mut self, src: usize, expr: Expr) -> String {
        if let Some((name, _)) = self.sources[src].columns.iter().find(|(_, e)| *e == expr) {
            return name.clone();
        }
        let name = format!("__v{}", self.next);
        self.next += 1;
        self.sources[src].columns.push((name.clone(), expr));
        name
    }

    fn event_column(&mut self, root: &str, stage: usize, expr: Expr) -> String {
        let src = self.source(root, SourceKind::Events, stage);
        self.column(src, expr)
    }

    fn frame(&mut self, id: NodeId) -> Result<Frm> {
        if let Some(f) = self.frames.get(&id) {
            return Ok(f.clone());
        }
        let f = self.frame_uncached(id).map_err(|e| err!("node {id}: {e}"))?;
        self.frames.insert(id, f.clone());
        Ok(f)
    }

    fn frame_uncached(&mut self, id: NodeId) -> Result<Frm> {
        let NodeInfo::Frame { root, .. } = &self.infos[id] else { bail!("expected a frame") };
        let base = |patient| Frm { root: root.clone(), filters: vec![], sort: vec![], stage: 0, patient };
        Ok(match &self.model.nodes[id] {
            Node::SelectTable { .. } => base(None),
            Node::SelectPatientTable { table } => {
                let src = self.source(table, SourceKind::PatientTable, 0);
                base(Some(PatientFrame::Table(src)))
            }
            Node::InlinePatientTable { .. } => {
                let src = self.source(root, SourceKind::Inline(id), 0);
                base(Some(PatientFrame::Table(src)))
            }
            Node::Filter { source, condition } => {
                let mut f = self.frame(*source)?;
                let c = self.series(*condition)?;
                merge(&mut f.filters, &c.filters);
                merge(&mut f.filters, &[c.expr]);
                f.stage = f.stage.max(c.stage);
                f
            }
            Node::Sort { source, sort_by } => {
                let mut f = self.frame(*source)?;
                let mut keys = Vec::new();
                for k in sort_by {
                    let s = self.series(*k)?;
                    merge(&mut f.filters, &s.filters);
                    f.stage = f.stage.max(s.stage);
                    keys.push(s.expr);
                }
                keys.extend(f.sort);
                f.sort = keys;
                f
            }
            Node::PickOneRowPerPatient { source, position } => {
                let mut f = self.frame(*source)?;
                f.patient = Some(PatientFrame::Pick(*position));
                f
            }
            _ => bail!("expected a frame"),
        })
    }

    fn series(&mut self, id: NodeId) -> Result<Ser> {
        if let Some(s) = self.series.get(&id) {
            return Ok(s.clone());
        }
        let s = self.series_uncached(id).map_err(|e| if e.to_string().starts_with("node ") { e } else { err!("node {id}: {e}") })?;
        self.series.insert(id, s.clone());
        Ok(s)
    }

    fn ty(&self, id: NodeId) -> ValueType {
        self.infos[id].series_type().cloned().expect("validated series")
    }

    fn series_uncached(&mut self, id: NodeId) -> Result<Ser> {
        let patient = |expr, stage| Ser { expr, filters: vec![], stage };
        Ok(match &self.model.nodes[id] {
            Node::SelectColumn { source, name } => {
                let f = self.frame(*source)?;
                match f.patient {
                    None => Ser { expr: col(name.as_str()), filters: f.filters, stage: f.stage },
                    Some(PatientFrame::Table(src)) => {
                        let c = self.column(src, col(name.as_str()));
                        patient(col(c), 1)
                    }
                    Some(PatientFrame::Pick(position)) => {
                        // Ties on the sort keys are broken by the columns selected from
                        // the pick, in name order, as ehrQL does: every column picked
                        // from one frame has the same keys, so they come from one row
                        // (or from rows equal in all of them). Keys appear once.
                        let mut keys = f.sort.clone();
                        let picked = self.picked.get(source).cloned().unwrap_or_default();
                        merge(&mut keys, &picked.iter().map(|name| col(name.as_str())).collect::<Vec<_>>());
                        // One binary key in the keys' order (ascending, nulls first):
                        // the first row has the smallest key, the last the largest.
                        let key = super::functions::sort_key(keys);
                        let pick = super::pick::pick_udaf(position == Position::First);
                        let agg = aggregate(pick, vec![col(name.as_str()), key], false, &f.filters)?;
                        let c = self.event_column(&f.root, f.stage, agg);
                        patient(col(c), f.stage + 1)
                    }
                }
            }
            Node::Aggregate { aggregation, source, maximum_gap_days } => self.aggregation(*aggregation, *source, *maximum_gap_days)?,
            Node::Function { function, args } => self.function(*function, args)?,
            Node::Case { cases, default } => {
                let mut out = Ser { expr: lit(true), filters: vec![], stage: 0 };
                let ty = self.ty(id);
                let mut when_then = Vec::new();
                for (c, v) in cases {
                    let c = self.absorb(&mut out, *c)?;
                    let v = match v {
                        Some(v) => self.absorb(&mut out, *v)?,
                        None => literal(&ty, &Literal::Null)?,
                    };
                    when_then.push((c, v));
                }
                let otherwise = match default {
                    Some(d) => Some(self.absorb(&mut out, *d)?),
                    None => None,
                };
                out.expr = case(when_then, otherwise);
                out
            }
            Node::Value { ty, value } => patient(literal(ty, value)?, 0),
            // Measures' rows carry their interval's bounds, and a study's rows the
            // values of its index date (see `intervals`).
            Node::Parameter { name, .. } => match name.as_str() {
                "interval_start_date" => patient(col(super::intervals::START), 0),
                "interval_end_date" => patient(col(super::intervals::END), 0),
                other => patient(Expr::Column(datafusion::common::Column::new_unqualified(super::intervals::param_column(other))), 0),
            },
            Node::ValueSet { .. } => bail!("a set of values can only be used as the right-hand side of In"),
            _ => bail!("expected a series"),
        })
    }

    /// Compile an argument and fold its rows and stage into `out`.
    fn absorb(&mut self, out: &mut Ser, id: NodeId) -> Result<Expr> {
        let s = self.series(id)?;
        merge(&mut out.filters, &s.filters);
        out.stage = out.stage.max(s.stage);
        Ok(s.expr)
    }

    fn aggregation(&mut self, aggregation: Aggregation, source: NodeId, gap: Option<i64>) -> Result<Ser> {
        use Aggregation::*;
        let zero = || lit(0i64);
        if matches!(aggregation, Exists | Count) {
            let f = self.frame(source)?;
            if let Some(PatientFrame::Table(src)) = f.patient {
                let present = col(self.sources[src].presence.as_str()).is_not_null();
                let expr = if aggregation == Exists { present } else { case(vec![(present, lit(1i64))], Some(zero())) };
                return Ok(Ser { expr, filters: vec![], stage: 1 });
            }
            let c = self.event_column(&f.root, f.stage, aggregate(count_udaf(), vec![lit(1i64)], false, &f.filters)?);
            let n = fill_null(col(c), zero());
            let expr = match (aggregation, &f.patient) {
                (Exists, _) => n.gt(zero()),
                (_, Some(PatientFrame::Pick(_))) => case(vec![(n.gt(zero()), lit(1i64))], Some(zero())),
                _ => n,
            };
            return Ok(Ser { expr, filters: vec![], stage: f.stage + 1 });
        }
        let Some(Dim::Event(root)) = self.infos[source].dim().cloned() else { bail!("expected an event-level series") };
        let s = self.series(source)?;
        let not_null = |s: &Ser| {
            let mut f = s.filters.clone();
            f.push(s.expr.clone().is_not_null());
            f
        };
        let (agg, wrap): (Expr, fn(Expr, Option<i64>) -> Expr) = match aggregation {
            CountDistinct => (aggregate(count_udaf(), vec![s.expr.clone()], true, &s.filters)?, |c, _| fill_null(c, lit(0i64))),
            CountEpisodes => (aggregate(array_agg_udaf(), vec![s.expr.clone()], false, &not_null(&s))?, |c, g| {
                call("ehr_count_episodes", vec![c, lit(g.unwrap_or(0))])
            }),
            Min => (aggregate(min_udaf(), vec![s.expr.clone()], false, &s.filters)?, |c, _| c),
            Max => (aggregate(max_udaf(), vec![s.expr.clone()], false, &s.filters)?, |c, _| c),
            Sum => (aggregate(sum_udaf(), vec![s.expr.clone()], false, &s.filters)?, |c, _| c),
            Mean => (aggregate(avg_udaf(), vec![s.expr.clone()], false, &s.filters)?, |c, _| c),
            CombineAsSet => (aggregate(array_agg_udaf(), vec![s.expr.clone()], false, &not_null(&s))?, |c, _| c),
            Exists | Count => unreachable!(),
        };
        let c = self.event_column(&root, s.stage, agg);
        Ok(Ser { expr: wrap(col(c), gap), filters: vec![], stage: s.stage + 1 })
    }

    fn function(&mut self, function: Function, args: &[NodeId]) -> Result<Ser> {
        use Function::*;
        let mut out = Ser { expr: lit(true), filters: vec![], stage: 0 };
        if function == In {
            if let Node::ValueSet { ty, values } = &self.model.nodes[args[1]] {
                let lhs = self.absorb(&mut out, args[0])?;
                out.expr = if values.is_empty() {
                    lit(false)
                } else {
                    let list = values.iter().map(|v| literal(ty, v)).collect::<Result<Vec<_>>>()?;
                    lhs.in_list(list, false)
                };
                return Ok(out);
            }
        }
        let tys: Vec<ValueType> = args.iter().map(|a| self.ty(*a)).collect();
        let mut e = Vec::with_capacity(args.len());
        for a in args {
            e.push(self.absorb(&mut out, *a)?);
        }
        let float = |x: &Expr| cast(x.clone(), DataType::Float64);
        let mut e = e.into_iter();
        let mut next = || e.next().expect("arity checked");
        out.expr = match function {
            EQ => next().eq(next()),
            NE => next().not_eq(next()),
            LT => next().lt(next()),
            LE => next().lt_eq(next()),
            GT => next().gt(next()),
            GE => next().gt_eq(next()),
            And => next().and(next()),
            Or => next().or(next()),
            Not => Expr::Not(Box::new(next())),
            IsNull => next().is_null(),
            Negate => Expr::Negative(Box::new(next())),
            Absolute => {
                let x = next();
                case(vec![(x.clone().lt(literal(&tys[0], &zero_of(&tys[0]))?), Expr::Negative(Box::new(x.clone())))], Some(x))
            }
            Add => next() + next(),
            Subtract => next() - next(),
            Multiply => next() * next(),
            TrueDivide => {
                let (a, b) = (next(), next());
                call("ehr_true_divide", vec![float(&a), float(&b)])
            }
            FloorDivide => {
                let (a, b) = (next(), next());
                if tys[0] == ValueType::Int {
                    call("ehr_floor_divide_int", vec![a, b])
                } else {
                    call("ehr_floor_divide_float", vec![a, b])
                }
            }
            Power => {
                let (a, b) = (next(), next());
                call("ehr_power", vec![float(&a), float(&b)])
            }
            CastToInt => cast(next(), DataType::Int64),
            CastToFloat => float(&next()),
            DateAddDays => call("ehr_date_add_days", vec![next(), next()]),
            DateAddMonths => call("ehr_date_add_months", vec![next(), next()]),
            DateAddYears => call("ehr_date_add_years", vec![next(), next()]),
            DateDifferenceInDays => call("ehr_date_diff_days", vec![next(), next()]),
            DateDifferenceInMonths => call("ehr_date_diff_months", vec![next(), next()]),
            DateDifferenceInYears => call("ehr_date_diff_years", vec![next(), next()]),
            YearFromDate => call("ehr_year", vec![next()]),
            MonthFromDate => call("ehr_month", vec![next()]),
            DayFromDate => call("ehr_day", vec![next()]),
            ToFirstOfYear => call("ehr_first_of_year", vec![next()]),
            ToFirstOfMonth => call("ehr_first_of_month", vec![next()]),
            StringContains => call("ehr_str_contains", vec![next(), next()]),
            In => call("ehr_in_set", vec![next(), next()]),
            MinimumOf => least((0..args.len()).map(|_| next()).collect()),
            MaximumOf => greatest((0..args.len()).map(|_| next()).collect()),
            FormatDate => call("ehr_format_date", vec![next(), next()]),
            CastToStr => cast(next(), DataType::Utf8),
            LowerCase => call("ehr_lower_case", vec![next()]),
            TrimSpaces => call("ehr_trim_spaces", vec![next()]),
            ReplaceIgnoringCase => call("ehr_replace_ignoring_case", vec![next(), next(), next()]),
        };
        Ok(out)
    }
}

fn zero_of(ty: &ValueType) -> Literal {
    if *ty == ValueType::Float { Literal::Float(0.0) } else { Literal::Int(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_mapped_to_literals_is_a_lookup_and_anything_else_stays_searched() {
        let when = |v: &str, then: &str| (col("sex").eq(lit(v)), lit(then));
        let mapped = case(vec![when("male", "M"), when("female", "F")], Some(lit("")));
        let Expr::Case(CaseExpr { expr: Some(subject), when_then_expr, else_expr: Some(_) }) = &mapped else { panic!("{mapped}") };
        assert_eq!(subject.as_ref(), &col("sex"));
        assert_eq!(when_then_expr.iter().map(|(w, t)| (w.to_string(), t.to_string())).collect::<Vec<_>>(), vec![("Utf8(\"male\")".into(), "Utf8(\"M\")".into()), ("Utf8(\"female\")".into(), "Utf8(\"F\")".into())]);
        // Two subjects, a column as a result, a comparison other than `=`, or one branch.
        let searched = [
            case(vec![when("male", "M"), (col("other").eq(lit("x")), lit("F"))], None),
            case(vec![when("male", "M"), (col("sex").eq(lit("female")), col("sex"))], None),
            case(vec![when("male", "M"), (col("sex").lt(lit("f")), lit("F"))], None),
            case(vec![when("male", "M")], Some(lit(""))),
            case(vec![when("male", "M"), when("female", "F")], Some(col("sex"))),
        ];
        for e in searched {
            assert!(matches!(&e, Expr::Case(CaseExpr { expr: None, .. })), "{e}");
        }
    }
}
