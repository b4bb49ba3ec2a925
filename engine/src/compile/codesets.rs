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
    ColumnarValue, Expr, ExpressionPlacement, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, binary_expr, col, lit,
};

/// The names of codelist mask functions (and of the columns computed from them).
pub const MASK_PREFIX: &str = "__codes_";

/// Codelists per mask column (the bits of a u64).
const BITS: usize = 64;

/// Rewrites `column IN (codes)` in `exprs` to bit tests over mask columns. Returns
/// the rewritten expressions and the mask columns to compute (as `expr AS name`) from the rows they read.
pub fn rewrite(exprs: Vec<Expr>) -> DFResult<(Vec<Expr>, Vec<Expr>)> {
    // Distinct codelists per column, in first-seen order.
    let mut lists: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for e in &exprs {
        e.apply(|e| {
            if let Some((column, codes)) = codelist_test(e) {
                let seen = lists.entry(column).or_default();
                if !seen.contains(&codes) {
                    seen.push(codes);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    // Even one test is a mask: over a dictionary-encoded column (see
    // `source::dictionary`) it looks up each distinct code once, where DataFusion's
    // `IN` looks up the dictionary's every value for every batch.
    if lists.is_empty() {
        return Ok((exprs, vec![]));
    }
    // (column, codelist) -> (mask column, bit)
    let mut bits: HashMap<(String, Vec<String>), (String, u64)> = HashMap::new();
    let mut masks = Vec::new();
    for (column, codelists) in &lists {
        for (chunk_no, chunk) in codelists.chunks(BITS).enumerate() {
            let name = format!("{MASK_PREFIX}{column}_{chunk_no}");
            let mut map = CodeMap::default();
            for (bit, codes) in chunk.iter().enumerate() {
                for code in codes {
                    map.add(code, 1 << bit);
                }
                bits.insert((column.clone(), codes.clone()), (name.clone(), 1 << bit));
            }
            let udf = code_mask(name.clone(), map);
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
    let tests: Option<Vec<(String, u64)>> = alternatives.iter().map(bit_test).collect();
    match tests {
        Some(tests) if tests.len() > 1 && tests.iter().all(|(m, _)| *m == tests[0].0) => {
            let bits = tests.iter().fold(0u64, |acc, (_, b)| acc | b);
            vec![test_bits(&tests[0].0, bits)]
        }
        _ => alternatives,
    }
}

/// For alternatives that are each a conjunction (given as its conjuncts), one test
/// that every alternative implies, when each has a bit test of the same mask among
/// its conjuncts: the test of the union of those bits. ANDed before the
/// alternatives, it lets a scan decide most rows from the code column alone.
pub fn implied_bit_test(alternatives: &[Vec<Expr>]) -> Option<Expr> {
    let mut mask: Option<String> = None;
    let mut bits = 0u64;
    for conjuncts in alternatives {
        let (m, b) = conjuncts.iter().filter_map(bit_test).find(|(m, _)| mask.as_ref().is_none_or(|want| want == m))?;
        bits |= b;
        mask = Some(m);
    }
    Some(test_bits(&mask?, bits))
}

/// Whether `e` is a test of bits of a codelist mask.
pub fn is_bit_test(e: &Expr) -> bool {
    bit_test(e).is_some()
}

/// `(mask & bits) != 0`.
fn test_bits(mask: &str, bits: u64) -> Expr {
    binary_expr(binary_expr(col(mask), Operator::BitwiseAnd, lit(bits)), Operator::NotEq, lit(0u64))
}

/// A test of bits of a codelist mask, `(mask & bits) != 0`, as (mask, bits).
fn bit_test(e: &Expr) -> Option<(String, u64)> {
    let Expr::BinaryExpr(ne) = e else { return None };
    let (Expr::BinaryExpr(and), Expr::Literal(ScalarValue::UInt64(Some(0)), _)) = (ne.left.as_ref(), ne.right.as_ref()) else { return None };
    match (ne.op, and.op, and.left.as_ref(), and.right.as_ref()) {
        (Operator::NotEq, Operator::BitwiseAnd, Expr::Column(c), Expr::Literal(ScalarValue::UInt64(Some(b)), _)) if c.name.starts_with(MASK_PREFIX) => {
            Some((c.name.clone(), *b))
        }
        _ => None,
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

/// Code -> mask of the codelists holding it. Looked up once per row of a large
/// table, so short codes (all SNOMED CT, dm+d, CTV3 and ICD-10 codes of up to 15
/// bytes) are looked up as one 128-bit integer holding their bytes and length:
/// hashing and comparing it costs a few instructions, where a string key costs a
/// string hash and a memcmp.
///
/// Most rows hold none of the codes, so a short code is first looked up in a
/// bitset of 2^16 bits (8 KiB, in the L1 cache) indexed by a hash of its key, in
/// which the map's codes set their bit: a clear bit answers "none" with one load.
#[derive(Debug)]
struct CodeMap {
    short: HashMap<u128, u64, ahash::RandomState>,
    long: HashMap<Box<str>, u64, ahash::RandomState>,
    seen: Box<[u64; SEEN_WORDS]>,
}

const SEEN_BITS: u32 = 16;
const SEEN_WORDS: usize = (1 << SEEN_BITS) / 64;

impl Default for CodeMap {
    fn default() -> Self {
        CodeMap { short: HashMap::default(), long: HashMap::default(), seen: Box::new([0; SEEN_WORDS]) }
    }
}

impl CodeMap {
    fn add(&mut self, code: &str, bit: u64) {
        match short_key(code) {
            Some(key) => {
                let at = seen_index(key);
                self.seen[at / 64] |= 1 << (at % 64);
                *self.short.entry(key).or_default() |= bit
            }
            None => *self.long.entry(code.into()).or_default() |= bit,
        }
    }

    #[inline]
    fn get(&self, code: &str) -> u64 {
        match short_key(code) {
            Some(key) => self.get_short(key),
            None => self.long.get(code).copied().unwrap_or(0),
        }
    }

    #[inline]
    fn get_short(&self, key: u128) -> u64 {
        let at = seen_index(key);
        if self.seen[at / 64] & (1 << (at % 64)) == 0 {
            return 0;
        }
        self.short.get(&key).copied().unwrap_or(0)
    }

    /// The masks of a string array's codes. Where 16 bytes can be read from a
    /// code's start within the array's value buffer, its key is one unaligned load,
    /// masked to its length (copying a code into a key byte by byte stalls the load
    /// that reads the key back).
    fn masks_of<O: OffsetSizeTrait>(&self, codes: &GenericStringArray<O>) -> Vec<u64> {
        let data = codes.value_data();
        let offsets = codes.value_offsets();
        let mut out = Vec::with_capacity(codes.len());
        for pair in offsets.windows(2) {
            let (start, end) = (pair[0].as_usize(), pair[1].as_usize());
            let len = end - start;
            let mask = match data.get(start..start + 16) {
                Some(raw) if len <= 15 => {
                    let raw = u128::from_le_bytes(raw.try_into().expect("16 bytes"));
                    self.get_short((raw & ((1u128 << (len * 8)) - 1)) | ((len as u128) << 120))
                }
                // A string array's values are UTF-8 by construction.
                _ => self.get(std::str::from_utf8(&data[start..end]).unwrap_or_default()),
            };
            out.push(mask);
        }
        out
    }
}

fn code_mask(name: String, map: CodeMap) -> ScalarUDF {
    ScalarUDF::new_from_impl(CodeMask { name, signature: Signature::any(1, Volatility::Immutable), map: Arc::new(map), recent: Default::default() })
}

/// The codes of a codelist mask function and the mask of each, sorted by code
/// (None for other functions): with [`code_mask_of`], how a mask travels to another
/// process.
pub fn code_mask_codes(f: &ScalarUDF) -> Option<Vec<(String, u64)>> {
    let map = &f.inner().downcast_ref::<CodeMask>()?.map;
    let short = map.short.iter().map(|(key, bits)| {
        let bytes = key.to_le_bytes();
        (String::from_utf8_lossy(&bytes[..bytes[15] as usize]).into_owned(), *bits)
    });
    let mut codes: Vec<(String, u64)> = short.chain(map.long.iter().map(|(code, bits)| (code.to_string(), *bits))).collect();
    codes.sort();
    Some(codes)
}

/// The mask function `name` over the given codes and their masks.
pub fn code_mask_of(name: &str, codes: &[(String, u64)]) -> ScalarUDF {
    let mut map = CodeMap::default();
    for (code, bits) in codes {
        map.add(code, *bits);
    }
    code_mask(name.to_string(), map)
}

/// The bit of a short key in `CodeMap::seen`: a multiplicative hash of its halves.
#[inline]
fn seen_index(key: u128) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SEEN_BITS)) as usize
}

/// A code of up to 15 bytes as one integer: its bytes, then its length in the last
/// byte (so "1" and "1\0" differ).
#[inline]
fn short_key(code: &str) -> Option<u128> {
    let bytes = code.as_bytes();
    if bytes.len() > 15 {
        return None;
    }
    let mut key = [0u8; 16];
    key[..bytes.len()].copy_from_slice(bytes);
    key[15] = bytes.len() as u8;
    Some(u128::from_le_bytes(key))
}

/// Maps each code to the mask of the codelists that hold it (null for a null code).
#[derive(Debug)]
struct CodeMask {
    name: String,
    signature: Signature,
    map: Arc<CodeMap>,
    /// The masks of the dictionaries seen last, with those dictionaries. A parquet
    /// reader gives every batch of a column chunk the same dictionary (a row
    /// group's distinct codes, tens of thousands): it is looked up once, not once
    /// per batch. Holding each dictionary keeps its buffers alive, so a buffer
    /// address seen again is the same dictionary.
    recent: std::sync::Mutex<std::collections::VecDeque<(ArrayData, ArrayRef)>>,
}

/// Dictionaries whose masks are kept: a few per scanning thread.
const RECENT_DICTIONARIES: usize = 8;

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
    /// Computed next to the scan, as a column, and never copied into the filters
    /// above it: DataFusion otherwise inlines the mask into a filter's predicate
    /// and computes it again above the filter, which then carries the code column
    /// up (at 1 M patients `diagnoses` filtered 99 M dictionary-encoded codes,
    /// merging their dictionaries, to compute 146 K masks a second time).
    fn placement(&self, _args: &[ExpressionPlacement]) -> ExpressionPlacement {
        ExpressionPlacement::MoveTowardsLeafNodes
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let codes = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let masks = match codes.data_type() {
            DataType::Dictionary(_, _) => self.dictionary_masks(codes.as_any_dictionary())?,
            other => match self.string_masks(&codes) {
                Some(masks) => masks,
                None => return exec_err!("{}: expected codes as strings, got {other}", self.name),
            },
        };
        Ok(ColumnarValue::Array(Arc::new(masks)))
    }
}

impl CodeMask {
    /// Codes read as a dictionary (as parquet stores them) are looked up once per
    /// distinct code, and each row takes its code's mask by key: a few thousand
    /// lookups for millions of rows.
    fn dictionary_masks(&self, codes: &dyn AnyDictionaryArray) -> DFResult<UInt64Array> {
        let values = codes.values();
        let data = values.to_data();
        let known = self.recent.lock().expect("not poisoned").iter().find(|(d, _)| d.ptr_eq(&data)).map(|(_, m)| m.clone());
        let value_masks = match known {
            Some(masks) => masks,
            None => {
                let masks: ArrayRef = match self.string_masks(values) {
                    Some(masks) => Arc::new(masks),
                    None => return exec_err!("{}: expected codes as strings, got a dictionary of {}", self.name, values.data_type()),
                };
                let mut recent = self.recent.lock().expect("not poisoned");
                if recent.len() == RECENT_DICTIONARIES {
                    recent.pop_front();
                }
                recent.push_back((data, masks.clone()));
                masks
            }
        };
        let masks = arrow::compute::take(&value_masks, codes.keys(), None)?;
        Ok(masks.as_primitive::<arrow::datatypes::UInt64Type>().clone())
    }

    /// The masks of an array of strings (`None` for any other array).
    fn string_masks(&self, codes: &dyn Array) -> Option<UInt64Array> {
        Some(match codes.data_type() {
            DataType::Utf8 => UInt64Array::new(self.map.masks_of(codes.as_string::<i32>()).into(), codes.nulls().cloned()),
            DataType::LargeUtf8 => UInt64Array::new(self.map.masks_of(codes.as_string::<i64>()).into(), codes.nulls().cloned()),
            DataType::Utf8View => self.masks(codes.as_string_view()),
            _ => return None,
        })
    }

    /// One lookup per row; null codes keep their nulls (the value under them is unused).
    fn masks<'a>(&self, codes: impl StringArrayType<'a>) -> UInt64Array {
        let mut out = Vec::with_capacity(codes.len());
        for i in 0..codes.len() {
            out.push(self.map.get(codes.value(i)));
        }
        UInt64Array::new(out.into(), codes.nulls().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_map_finds_short_and_long_codes_and_only_them() {
        let mut map = CodeMap::default();
        map.add("693447796", 1);
        map.add("1", 2);
        map.add("999999999999999", 4); // 15 bytes: the longest short key
        map.add("1234567890123456", 8); // 16 bytes: looked up as a string
        map.add("693447796", 16);
        assert_eq!(map.get("693447796"), 17);
        assert_eq!(map.get("1"), 2);
        assert_eq!(map.get("999999999999999"), 4);
        assert_eq!(map.get("1234567890123456"), 8);
        // Prefixes, extensions and padding are other codes.
        for other in ["", "69344779", "6934477960", "1\0", "12345678901234567", "123456789012345"] {
            assert_eq!(map.get(other), 0, "{other:?}");
        }
    }

    #[test]
    fn masks_of_an_array_agree_with_lookups_one_by_one() {
        let mut map = CodeMap::default();
        for (i, code) in ["693447796", "1", "999999999999999", "1234567890123456", "X40J4"].iter().enumerate() {
            map.add(code, 1 << i);
        }
        // Codes near the end of the value buffer cannot be read 16 bytes at a time.
        let codes = ["6934477960", "693447796", "", "X40J4", "1234567890123456", "12345678901234567", "999999999999999", "x", "1"];
        let array = StringArray::from(codes.to_vec());
        let expected: Vec<u64> = codes.iter().map(|c| map.get(c)).collect();
        assert_eq!(map.masks_of(&array), expected);
        assert_eq!(expected, vec![0, 1, 0, 16, 8, 0, 4, 0, 2]);
        let sliced = array.slice(1, 3);
        assert_eq!(map.masks_of(&sliced), vec![1, 0, 16]);
    }

    #[test]
    fn dictionary_codes_get_the_masks_of_their_values_and_keep_their_nulls() {
        let mut map = CodeMap::default();
        map.add("X40J4", 1);
        map.add("693447796", 2);
        map.add("693447796", 4);
        let udf = code_mask("__codes_code_0".into(), map);
        let mask = udf.inner().downcast_ref::<CodeMask>().unwrap();
        // Keys in any order, a null key, an unused value and a null value.
        let values = StringArray::from(vec![Some("693447796"), None, Some("X40J4"), Some("unused")]);
        let keys = Int32Array::from(vec![Some(2), Some(0), None, Some(1), Some(2), Some(0)]);
        let codes = DictionaryArray::new(keys, Arc::new(values));
        let got = mask.dictionary_masks(&codes).unwrap();
        let expected = UInt64Array::from(vec![Some(1), Some(6), None, None, Some(1), Some(6)]);
        assert_eq!(got, expected);
        // Seen again (from the kept masks), and another dictionary of the same shape.
        assert_eq!(mask.dictionary_masks(&codes).unwrap(), expected);
        let other = StringArray::from(vec![Some("X40J4"), None, Some("693447796"), Some("unused")]);
        let swapped = DictionaryArray::new(codes.keys().clone(), Arc::new(other));
        assert_eq!(mask.dictionary_masks(&swapped).unwrap(), UInt64Array::from(vec![Some(6), Some(1), None, None, Some(6), Some(1)]));
        // The same as the codes read as plain strings.
        let plain = arrow::compute::cast(&codes, &DataType::Utf8).unwrap();
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(plain)],
            arg_fields: vec![Arc::new(arrow::datatypes::Field::new("code", DataType::Utf8, true))],
            number_rows: 6,
            return_field: Arc::new(arrow::datatypes::Field::new("m", DataType::UInt64, true)),
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(from_plain) = udf.invoke_with_args(args).unwrap() else { panic!("an array") };
        assert_eq!(from_plain.as_primitive::<arrow::datatypes::UInt64Type>(), &expected);
    }
}
