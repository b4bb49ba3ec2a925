//! Filters test their codelists before anything else. A filter evaluates its
//! conjuncts in order, each on the rows the ones before kept, and a codelist keeps
//! far fewer rows than a date range does (`monthly` at 1 M patients: 0.3% of
//! clinical events have a code of interest, 6% a date in its two years). The
//! planner writes codelist tests first, but DataFusion's filter pushdown rebuilds
//! the conjunction with the scan's prunable comparisons in front; this rule puts
//! them back after it.

use std::sync::Arc;

use datafusion::common::Result as DFResult;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr, conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use super::codesets::MASK_PREFIX;
use super::shared_exprs::any_node;

#[derive(Debug, Default)]
pub struct CodesFirst;

/// Whether an expression looks a code up in a codelist mask.
fn tests_codes(expr: &Arc<dyn PhysicalExpr>) -> bool {
    any_node(expr, |e| e.downcast_ref::<ScalarFunctionExpr>().is_some_and(|f| f.name().starts_with(MASK_PREFIX)))
}

impl PhysicalOptimizerRule for CodesFirst {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else { return Ok(Transformed::no(node)) };
            let parts = split_conjunction(filter.predicate());
            let (codes, others): (Vec<_>, Vec<_>) = parts.iter().partition(|p| tests_codes(p));
            // Already first (or nothing to move): the plan stays as it is.
            if codes.is_empty() || others.is_empty() || parts.iter().take(codes.len()).all(|p| tests_codes(p)) {
                return Ok(Transformed::no(node));
            }
            let reordered = conjunction(codes.into_iter().chain(others).map(|p: &&Arc<dyn PhysicalExpr>| Arc::clone(*p)));
            let rebuilt = FilterExecBuilder::from(filter).with_predicate(reordered).build()?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "codes_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::{Operator, binary_expr, col, lit};

    use super::*;

    #[tokio::test]
    async fn a_codelist_test_moves_in_front_of_a_date_range() {
        let schema = Arc::new(Schema::new(vec![Field::new("code", DataType::Utf8, true), Field::new("date", DataType::Date32, true)]));
        let rows = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["X1", "Y2"])), Arc::new(Date32Array::from(vec![18_000, 19_000]))]).unwrap();
        let ctx = crate::run::session(2);
        ctx.register_table("events", Arc::new(MemTable::try_new(schema, vec![vec![rows]]).unwrap())).unwrap();
        let mask = super::super::codesets::code_mask_of(&format!("{MASK_PREFIX}code_0"), &[("X1".to_string(), 1)]);
        let codes = binary_expr(binary_expr(mask.call(vec![col("code")]), Operator::BitwiseAnd, lit(1u64)), Operator::NotEq, lit(0u64));
        let dates = col("date").gt_eq(lit(ScalarValue::Date32(Some(17_000))));
        let frame = ctx.table("events").await.unwrap().filter(dates.and(codes)).unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string();
        let filter = shown.lines().find(|l| l.trim_start().starts_with("FilterExec")).expect("a filter");
        assert!(filter.trim_start().starts_with(&format!("FilterExec: {MASK_PREFIX}code_0")), "{filter}");
        // And the rows are those of the filter as written.
        let kept = frame.collect().await.unwrap();
        assert_eq!(kept.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
