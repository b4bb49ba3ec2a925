//! Many codelists tested against one code column in one pass (a wide dataset tests
//! dozens) cost one hash lookup per row instead of one per codelist: each row's code
//! is looked up once in a map from code to a bit mask of the codelists holding it,
//! and every `code IN (codelist)` becomes a test of one bit of that mask.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DFResult, ScalarValue, exec_err};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{
    ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, binary_expr, col, lit,
};

/// Codelists per mask column (the bits of a u64).
const BITS: usize = 64;

/// Rewrites `column IN (codes)` in `exprs` to bit tests over mask columns when a
/// column is tested two or more times. Returns the rewritten expressions
/// and the mask columns to compute (as `expr AS name`) from the rows they read.
pub fn rewrite(exprs: Vec<Expr>) -> DFResult<(Vec<Expr>, Vec<Expr>)> {
    // Distinct codelists per column, in first-seen order, and how many tests there are.
    let mut lists: BTreeMap<String, (Vec<Vec<String>>, usize)> = BTreeMap::new();
    for e in &exprs {
        e.apply(|e| {
            if let Some((column, codes)) = codelist_test(e) {
                let (seen, tests) = lists.entry(column).or_default();
                *tests += 1;
                if !seen.contains(&codes) {
                    seen.push(codes);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    // One test is as cheap as a lookup; two or more save lookups.
    lists.retain(|_, (_, tests)| *tests >= 2);
    if lists.is_empty() {
        return Ok((exprs, vec![]));
    }
    // (column, codelist) -> (mask column, bit)
    let mut bits: HashMap<(String, Vec<String>), (String, u64)> = HashMap::new();
    let mut masks = Vec::new();
    for (column, (codelists, _)) in &lists {
        for (chunk_no, chunk) in codelists.chunks(BITS).enumerate() {
            let name = format!("__codes_{column}_{chunk_no}");
            let mut map = CodeMap::default();
            for (bit, codes) in chunk.iter().enumerate() {
                for code in codes {
                    *map.entry(code.as_str().into()).or_default() |= 1 << bit;
                }
                bits.insert((column.clone(), codes.clone()), (name.clone(), 1 << bit));
            }
            let udf = ScalarUDF::new_from_impl(CodeMask { name: name.clone(), signature: Signature::any(1, Volatility::Immutable), map: Arc::new(map) });
            masks.push(udf.call(vec![col(column.as_str())]).alias(name));
        }
    }
    let rewritten = exprs
        .into_iter()
        .map(|e| {
            e.transform_up(|e| {
                let Some((column, codes)) = codelist_test(&e) else { return Ok(Transformed::no(e)) };
                let Some((mask, bit)) = bits.get(&(column, codes)) else { return Ok(Transformed::no(e)) };
                let negated = matches!(&e, Expr::InList(InList { negated: true, .. }));
                let tested = binary_expr(col(mask.as_str()), Operator::BitwiseAnd, lit(*bit));
                let op = if negated { Operator::Eq } else { Operator::NotEq };
                Ok(Transformed::yes(binary_expr(tested, op, lit(0u64))))
            })
            .map(|t| t.data)
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok((rewritten, masks))
}

/// Alternatives that are all bit tests of one mask, `(mask & b) != 0`, as one test
/// of the union of their bits; other alternatives are returned unchanged.
pub fn merge_bit_tests(alternatives: Vec<Expr>) -> Vec<Expr> {
    let bit_test = |e: &Expr| -> Option<(String, u64)> {
        let Expr::BinaryExpr(ne) = e else { return None };
        let (Expr::BinaryExpr(and), Expr::Literal(ScalarValue::UInt64(Some(0)), _)) = (ne.left.as_ref(), ne.right.as_ref()) else { return None };
        match (ne.op, and.op, and.left.as_ref(), and.right.as_ref()) {
            (Operator::NotEq, Operator::BitwiseAnd, Expr::Column(c), Expr::Literal(ScalarValue::UInt64(Some(b)), _)) if c.name.starts_with("__codes_") => {
                Some((c.name.clone(), *b))
            }
            _ => None,
        }
    };
    let tests: Option<Vec<(String, u64)>> = alternatives.iter().map(bit_test).collect();
    match tests {
        Some(tests) if tests.len() > 1 && tests.iter().all(|(m, _)| *m == tests[0].0) => {
            let bits = tests.iter().fold(0u64, |acc, (_, b)| acc | b);
            vec![binary_expr(binary_expr(col(tests[0].0.as_str()), Operator::BitwiseAnd, lit(bits)), Operator::NotEq, lit(0u64))]
        }
        _ => alternatives,
    }
}

/// `column IN (string literals)`, as (column, sorted codes).
fn codelist_test(e: &Expr) -> Option<(String, Vec<String>)> {
    let Expr::InList(InList { expr, list, .. }) = e else { return None };
    let Expr::Column(c) = expr.as_ref() else { return None };
    let mut codes = list
        .iter()
        .map(|v| match v {
            Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => Some(s.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    codes.sort();
    codes.dedup();
    Some((c.name.clone(), codes))
}

/// Code -> mask of the codelists holding it. Looked up once per row, so hashed with
/// a fast hash rather than the default SipHash.
type CodeMap = HashMap<Box<str>, u64, ahash::RandomState>;

/// Maps each code to the mask of the codelists that hold it (null for a null code).
#[derive(Debug)]
struct CodeMask {
    name: String,
    signature: Signature,
    map: Arc<CodeMap>,
}

// Mask columns are named uniquely within a plan.
impl PartialEq for CodeMask {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.map, &other.map)
    }
}
impl Eq for CodeMask {}
impl std::hash::Hash for CodeMask {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for CodeMask {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let codes = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let masks = match codes.data_type() {
            DataType::Utf8 => self.masks(codes.as_string::<i32>()),
            DataType::LargeUtf8 => self.masks(codes.as_string::<i64>()),
            DataType::Utf8View => self.masks(codes.as_string_view()),
            DataType::Dictionary(_, _) => self.masks(arrow::compute::cast(&codes, &DataType::Utf8)?.as_string::<i32>()),
            other => return exec_err!("{}: expected codes as strings, got {other}", self.name),
        };
        Ok(ColumnarValue::Array(Arc::new(masks)))
    }
}

impl CodeMask {
    /// One lookup per row; null codes keep their nulls (the value under them is unused).
    fn masks<'a>(&self, codes: impl StringArrayType<'a>) -> UInt64Array {
        let mut out = Vec::with_capacity(codes.len());
        for i in 0..codes.len() {
            out.push(self.map.get(codes.value(i)).copied().unwrap_or(0));
        }
        UInt64Array::new(out.into(), codes.nulls().cloned())
    }
}
