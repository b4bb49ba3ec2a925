//! A filter or projection that repeats a costly subexpression computes it once, in
//! a projection below it.
//!
//! DataFusion's own elimination of common subexpressions leaves those that occur
//! only where they may not be evaluated (right of AND/OR, a CASE branch): there,
//! evaluating them on every row could raise an error the query would not. The
//! expressions shared here cannot fail (ehrQL's functions, CASE, comparisons,
//! tests for null), and cohort-extractor's expressions repeat whole columns in such
//! places: the population `(sex = 'M' OR sex = 'F') AND age >= 0 AND age < 110` of
//! the antipsychotics study evaluated `sex`'s CASE and its fill of missing values
//! four times per row, 0.8 s of CPU over its 2.5 M (patient, date) rows at 100 k
//! patients.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::Result as DFResult;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, Literal, NotExpr};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr, conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// How deep shared expressions that themselves repeat a subexpression are split.
const MAX_DEPTH: usize = 4;

#[derive(Debug, Default)]
pub struct ShareRepeated;

impl PhysicalOptimizerRule for ShareRepeated {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let rewritten = if let Some(filter) = node.downcast_ref::<FilterExec>() {
                share_in_filter(filter)?
            } else if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
                share_in_projection(projection, 0)?
            } else {
                None
            };
            Ok(match rewritten {
                Some(plan) => Transformed::yes(plan),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ehrfusion_share_repeated"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether any node of `expr` (itself included) satisfies `test`.
pub(super) fn any_node(expr: &Arc<dyn PhysicalExpr>, test: impl Fn(&Arc<dyn PhysicalExpr>) -> bool) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found = test(e);
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// Whether evaluating an expression on any row is safe: it cannot fail.
fn infallible(expr: &Arc<dyn PhysicalExpr>) -> bool {
    !any_node(expr, |e| {
        let safe = if let Some(b) = e.downcast_ref::<BinaryExpr>() {
            use Operator::*;
            matches!(b.op(), Eq | NotEq | Lt | LtEq | Gt | GtEq | And | Or | IsDistinctFrom | IsNotDistinctFrom | BitwiseAnd | BitwiseOr)
        } else if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
            f.name().starts_with("ehr_")
        } else {
            e.is::<Column>() || e.is::<Literal>() || e.is::<CaseExpr>() || e.is::<IsNullExpr>() || e.is::<IsNotNullExpr>() || e.is::<NotExpr>() || e.is::<InListExpr>()
        };
        !safe
    })
}

/// Whether an expression is worth a column: it evaluates a CASE or a function.
fn costly(expr: &Arc<dyn PhysicalExpr>) -> bool {
    any_node(expr, |e| e.is::<CaseExpr>() || e.is::<ScalarFunctionExpr>())
}

/// The outermost subexpressions of `exprs` that occur more than once, are costly
/// and cannot fail, in the order first met.
fn repeated(exprs: &[Arc<dyn PhysicalExpr>]) -> Vec<Arc<dyn PhysicalExpr>> {
    let mut counts: HashMap<Arc<dyn PhysicalExpr>, usize> = HashMap::new();
    for expr in exprs {
        let _ = expr.apply(|e| {
            if !e.is::<Column>() && !e.is::<Literal>() {
                *counts.entry(Arc::clone(e)).or_default() += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    let mut found: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
    for expr in exprs {
        let _ = expr.apply(|e| {
            if counts.get(e).is_some_and(|&n| n > 1) && costly(e) && infallible(e) {
                if !found.contains(e) {
                    found.push(Arc::clone(e));
                }
                return Ok(TreeNodeRecursion::Jump);
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    found
}

/// `input` with `shared` appended as columns (its own columns keep their places),
/// and the column each shared expression became.
fn with_columns(input: Arc<dyn ExecutionPlan>, shared: &[Arc<dyn PhysicalExpr>], depth: usize) -> DFResult<(Arc<dyn ExecutionPlan>, HashMap<Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>>)> {
    let schema = input.schema();
    let mut exprs: Vec<ProjectionExpr> = schema.fields().iter().enumerate().map(|(i, f)| ProjectionExpr::new(Arc::new(Column::new(f.name(), i)), f.name().clone())).collect();
    let mut columns = HashMap::new();
    for (k, expr) in shared.iter().enumerate() {
        let mut name = format!("__shared_{depth}_{k}");
        while schema.index_of(&name).is_ok() {
            name.push('_');
        }
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&name, exprs.len()));
        exprs.push(ProjectionExpr::new(Arc::clone(expr), name));
        columns.insert(Arc::clone(expr), column);
    }
    let projection = ProjectionExec::try_new(exprs, input)?;
    // The shared expressions may repeat subexpressions of their own.
    let projection = share_in_projection(&projection, depth + 1)?.unwrap_or_else(|| Arc::new(projection));
    Ok((projection, columns))
}

/// `expr` reading the shared columns in place of the expressions they hold.
fn replaced(expr: &Arc<dyn PhysicalExpr>, columns: &HashMap<Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>>) -> DFResult<Arc<dyn PhysicalExpr>> {
    Arc::clone(expr)
        .transform_down(|e| match columns.get(&e) {
            Some(column) => Ok(Transformed::new(Arc::clone(column), true, TreeNodeRecursion::Jump)),
            None => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}

fn share_in_projection(projection: &ProjectionExec, depth: usize) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
    let exprs: Vec<Arc<dyn PhysicalExpr>> = projection.expr().iter().map(|p| Arc::clone(&p.expr)).collect();
    let shared = repeated(&exprs);
    if shared.is_empty() || depth >= MAX_DEPTH {
        return Ok(None);
    }
    let (input, columns) = with_columns(Arc::clone(projection.input()), &shared, depth)?;
    let rewritten = projection.expr().iter().map(|p| Ok(ProjectionExpr::new(replaced(&p.expr, &columns)?, p.alias.clone()))).collect::<DFResult<Vec<_>>>()?;
    Ok(Some(Arc::new(ProjectionExec::try_new(rewritten, input)?)))
}

/// A filter's leading conditions that share nothing stay below, on every row; the
/// shared expressions are computed on the rows they keep.
fn share_in_filter(filter: &FilterExec) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
    let shared = repeated(&[Arc::clone(filter.predicate())]);
    if shared.is_empty() {
        return Ok(None);
    }
    let conditions: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(filter.predicate()).into_iter().cloned().collect();
    let first = conditions.iter().position(|c| any_node(c, |e| shared.contains(e))).unwrap_or(0);
    let mut input = Arc::clone(filter.input());
    let width = input.schema().fields().len();
    if first > 0 {
        let before = FilterExecBuilder::new(conjunction(conditions[..first].iter().cloned()), input).with_default_selectivity(filter.default_selectivity()).build()?;
        input = Arc::new(before);
    }
    let (input, columns) = with_columns(input, &shared, 0)?;
    let after = conjunction(conditions[first..].iter().map(|c| replaced(c, &columns)).collect::<DFResult<Vec<_>>>()?);
    let kept: Vec<usize> = match filter.projection() {
        Some(p) => p.to_vec(),
        None => (0..width).collect(),
    };
    let rebuilt = FilterExecBuilder::new(after, input)
        .with_default_selectivity(filter.default_selectivity())
        .with_batch_size(filter.batch_size())
        .with_fetch(filter.fetch())
        .apply_projection(Some(kept))?
        .build()?;
    Ok(Some(Arc::new(rebuilt)))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::{Expr, col, lit, when};
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn people() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![Field::new("sex", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![Some("male"), Some("female"), None, Some("unknown")])), Arc::new(Int64Array::from(vec![Some(4), Some(0), Some(2), None]))],
        )
        .unwrap();
        let ctx = crate::run::session(2);
        ctx.register_table("people", Arc::new(MemTable::try_new(schema, vec![vec![rows]]).unwrap())).unwrap();
        ctx
    }

    /// cohort-extractor's `sex`: the CASE of its codes, missing as ''.
    fn sex() -> Expr {
        let coded = when(col("sex").eq(lit("male")), lit("M")).when(col("sex").eq(lit("female")), lit("F")).end().unwrap();
        when(coded.clone().is_not_null(), coded).otherwise(lit("")).unwrap()
    }

    fn shown(plan: &Arc<dyn ExecutionPlan>) -> String {
        datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string()
    }

    #[tokio::test]
    async fn a_column_a_filter_repeats_is_computed_once_below_it() {
        let ctx = people().await;
        let population = col("n").gt(lit(0i64)).and(sex().eq(lit("M")).or(sex().eq(lit("F"))));
        let frame = ctx.table("people").await.unwrap().filter(population).unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let text = shown(&plan);
        let filter = text.lines().find(|l| l.contains("FilterExec") && l.contains("__shared")).unwrap_or_else(|| panic!("{text}"));
        assert!(filter.contains("__shared_0_0@2 = M OR __shared_0_0@2 = F"), "{text}");
        // The fill's CASE reads the codes' CASE twice: it is a column one level down.
        assert!(text.contains("__shared_1_0"), "{text}");
        // The leading condition, which shares nothing, is tested first, below.
        assert!(text.lines().any(|l| l.contains("FilterExec: n@1 > 0")), "{text}");
        let kept = frame.collect().await.unwrap();
        let kept = arrow::compute::concat_batches(&kept[0].schema(), &kept).unwrap();
        assert_eq!(kept.num_columns(), 2);
        assert_eq!(kept.column(0).as_any().downcast_ref::<StringArray>().unwrap(), &StringArray::from(vec!["male"]));
    }

    #[tokio::test]
    async fn what_could_fail_is_not_computed_on_rows_that_did_not_need_it() {
        let ctx = people().await;
        // 10 / n fails where n is 0, and the CASE evaluates it only where n > 0.
        let ratio = when(col("n").gt(lit(0i64)), lit(10i64) / col("n")).otherwise(lit(0i64)).unwrap();
        let guarded = when(col("n").gt(lit(0i64)), lit(10i64) / col("n")).end().unwrap();
        let frame = ctx.table("people").await.unwrap().select(vec![ratio.alias("a"), (guarded.clone() + guarded).alias("b")]).unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        assert!(!shown(&plan).contains("__shared"), "{}", shown(&plan));
        assert_eq!(frame.collect().await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    }

    #[tokio::test]
    async fn a_projection_shares_what_its_columns_repeat() {
        let ctx = people().await;
        // `sex` only in CASE branches: DataFusion's own elimination leaves it there.
        let some = |least: i64| when(col("n").gt_eq(lit(least)), sex()).otherwise(lit("-")).unwrap();
        let frame = ctx.table("people").await.unwrap().select(vec![some(0).alias("s"), some(3).alias("t")]).unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        assert!(shown(&plan).contains("__shared_0_0"), "{}", shown(&plan));
        let rows = frame.collect().await.unwrap();
        let rows = arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        assert_eq!(rows.column(0).as_any().downcast_ref::<StringArray>().unwrap(), &StringArray::from(vec!["M", "F", "", "-"]));
        assert_eq!(rows.column(1).as_any().downcast_ref::<StringArray>().unwrap(), &StringArray::from(vec!["M", "-", "-", "-"]));
    }
}
