//! Our functions as bytes, so that a plan using them can be rebuilt in another
//! process (a cluster's scheduler and executors). DataFusion's protobuf form names a
//! function and carries bytes its codec gives; these are those bytes.
//!
//! Layout: a little-endian u32 length, that many bytes of JSON saying which function
//! and its settings, then (only for intervals with parameters) an Arrow IPC stream
//! of one batch holding each parameter's values.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::{Result as DFResult, exec_datafusion_err, exec_err};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use serde::{Deserialize, Serialize};

use super::intervals::{IntervalUse, Intervals, Limit, Param, interval_function_of, interval_function_use};
use super::{codesets, functions, pick, runs};

#[derive(Serialize, Deserialize)]
enum Portable {
    /// Rebuilt from its name alone.
    Named,
    /// A codelist mask: each code and its mask.
    CodeMask(Vec<(String, u64)>),
    /// An interval function: the intervals' bounds, its parameters' names, its use.
    Interval { bounds: Vec<(i32, i32)>, params: Vec<String>, how: IntervalUse },
    /// `ehr_runs`: the intervals as for `Interval`, its limits (see
    /// [`Limit::portable`]) and the name of the aggregate it wraps.
    Runs { bounds: Vec<(i32, i32)>, params: Vec<String>, limits: Vec<(String, bool, bool)>, inner: String },
}

/// The intervals' parameters' names, and their values as one batch (None without
/// parameters).
fn parameters(intervals: &Intervals) -> DFResult<(Vec<String>, Option<RecordBatch>)> {
    let names = intervals.1.iter().map(|p| p.name.clone()).collect();
    if intervals.1.is_empty() {
        return Ok((names, None));
    }
    let fields: Vec<Field> = intervals.1.iter().map(|p| Field::new(&p.name, p.values.data_type().clone(), true)).collect();
    let columns = intervals.1.iter().map(|p| p.values.clone()).collect();
    Ok((names, Some(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)))
}

/// The intervals [`parameters`] and the bounds described, for function `name`.
fn intervals_of(name: &str, bounds: Vec<(i32, i32)>, params: Vec<String>, values: Option<RecordBatch>) -> DFResult<Intervals> {
    let params = match values {
        Some(batch) => params.into_iter().zip(batch.columns()).map(|(name, values)| Param { name, values: values.clone() }).collect(),
        None if params.is_empty() => vec![],
        None => return exec_err!("{name}: the values of its parameters are missing"),
    };
    Ok(Intervals(Arc::new(bounds), Arc::new(params)))
}

/// The bytes of one of our scalar functions; None for DataFusion's own.
pub fn encode_udf(f: &ScalarUDF) -> DFResult<Option<Vec<u8>>> {
    if functions::is_named(f) {
        return frame(&Portable::Named, None).map(Some);
    }
    if let Some(codes) = codesets::code_mask_codes(f) {
        return frame(&Portable::CodeMask(codes), None).map(Some);
    }
    let Some((intervals, how)) = interval_function_use(f) else { return Ok(None) };
    let (params, values) = parameters(intervals)?;
    frame(&Portable::Interval { bounds: intervals.0.to_vec(), params, how }, values.as_ref()).map(Some)
}

/// The scalar function `name` from the bytes [`encode_udf`] gave.
pub fn decode_udf(name: &str, bytes: &[u8]) -> DFResult<Arc<ScalarUDF>> {
    let (portable, values) = unframe(bytes)?;
    Ok(match portable {
        Portable::Named => functions::named(name).ok_or_else(|| exec_datafusion_err!("no function of ours is named {name}"))?,
        Portable::CodeMask(codes) => Arc::new(codesets::code_mask_of(name, &codes)),
        Portable::Interval { bounds, params, how } => Arc::new(interval_function_of(intervals_of(name, bounds, params, values)?, how)?),
        Portable::Runs { .. } => return exec_err!("{name}: an aggregate, not a scalar function"),
    })
}

/// The bytes of one of our aggregates (a pick, or `ehr_runs`); None for
/// DataFusion's own.
pub fn encode_udaf(f: &AggregateUDF) -> DFResult<Option<Vec<u8>>> {
    if pick::is_pick(f) {
        return frame(&Portable::Named, None).map(Some);
    }
    let Some((intervals, limits, inner)) = runs::runs_parts(f) else { return Ok(None) };
    let (params, values) = parameters(intervals)?;
    let limits = limits.iter().map(Limit::portable).collect();
    frame(&Portable::Runs { bounds: intervals.0.to_vec(), params, limits, inner: inner.name().to_string() }, values.as_ref()).map(Some)
}

/// The aggregate `name` from the bytes [`encode_udaf`] gave.
pub fn decode_udaf(name: &str, bytes: &[u8]) -> DFResult<Arc<AggregateUDF>> {
    match unframe(bytes)? {
        (Portable::Named, _) => pick::pick_named(name).ok_or_else(|| exec_datafusion_err!("no aggregate of ours is named {name}")),
        (Portable::Runs { bounds, params, limits, inner }, values) => {
            // The wrapped aggregate is DataFusion's `count` or one of our picks.
            let inner = match inner.as_str() {
                "count" => datafusion::functions_aggregate::count::count_udaf(),
                pick => pick::pick_named(pick).ok_or_else(|| exec_datafusion_err!("{name}: no aggregate of ours is named {pick}"))?,
            };
            let limits = limits.into_iter().map(Limit::from_portable).collect::<DFResult<Vec<_>>>()?;
            Ok(runs::runs_udaf(intervals_of(name, bounds, params, values)?, limits, inner))
        }
        _ => exec_err!("{name}: not an aggregate of ours"),
    }
}

fn frame(portable: &Portable, values: Option<&RecordBatch>) -> DFResult<Vec<u8>> {
    let json = serde_json::to_vec(portable).map_err(|e| exec_datafusion_err!("encoding a function: {e}"))?;
    let mut out = (json.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    if let Some(batch) = values {
        let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(out)
}

fn unframe(bytes: &[u8]) -> DFResult<(Portable, Option<RecordBatch>)> {
    let truncated = || exec_datafusion_err!("a function's encoding is truncated");
    let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(truncated)?.try_into().expect("4 bytes")) as usize;
    let json = bytes.get(4..4 + len).ok_or_else(truncated)?;
    let portable = serde_json::from_slice(json).map_err(|e| exec_datafusion_err!("decoding a function: {e}"))?;
    let rest = &bytes[4 + len..];
    if rest.is_empty() {
        return Ok((portable, None));
    }
    let mut reader = StreamReader::try_new(rest, None)?;
    let batch = reader.next().ok_or_else(truncated)??;
    Ok((portable, Some(batch)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

    fn run(f: &ScalarUDF, args: Vec<ArrayRef>) -> ArrayRef {
        let fields = args.iter().map(|a| Arc::new(Field::new("x", a.data_type().clone(), true))).collect();
        let number_rows = args[0].len();
        let return_field = Arc::new(Field::new("out", f.return_type(&args.iter().map(|a| a.data_type().clone()).collect::<Vec<_>>()).unwrap(), true));
        let args = ScalarFunctionArgs {
            args: args.into_iter().map(ColumnarValue::Array).collect(),
            arg_fields: fields,
            number_rows,
            return_field,
            config_options: Arc::new(Default::default()),
        };
        f.invoke_with_args(args).unwrap().into_array(number_rows).unwrap()
    }

    fn round_trip(f: &ScalarUDF) -> Arc<ScalarUDF> {
        let bytes = encode_udf(f).unwrap().expect("one of ours");
        decode_udf(f.name(), &bytes).unwrap()
    }

    #[test]
    fn named_functions_and_picks_round_trip_by_name() {
        let f = functions::named("ehr_date_diff_years").unwrap();
        let back = round_trip(&f);
        let (end, start): (ArrayRef, ArrayRef) = (Arc::new(Date32Array::from(vec![20000, 0])), Arc::new(Date32Array::from(vec![0, 20000])));
        assert_eq!(run(&back, vec![end.clone(), start.clone()]).as_ref(), run(&f, vec![end, start]).as_ref());
        let pick = pick::pick_named("ehr_pick_last").unwrap();
        let bytes = encode_udaf(&pick).unwrap().expect("a pick");
        assert_eq!(decode_udaf("ehr_pick_last", &bytes).unwrap().name(), "ehr_pick_last");
        // DataFusion's own functions are left to DataFusion.
        assert!(encode_udf(&datafusion::functions::string::upper()).unwrap().is_none());
    }

    #[test]
    fn code_masks_keep_every_code_and_bit() {
        let codes = vec![("1234567890123456".to_string(), 2), ("X40J4".to_string(), 1), ("X40J5".to_string(), 3)];
        let f = codesets::code_mask_of("__codes_code_0", &codes);
        assert_eq!(codesets::code_mask_codes(&f).unwrap(), codes);
        let back = round_trip(&f);
        assert_eq!(back.name(), "__codes_code_0");
        let input: ArrayRef = Arc::new(StringArray::from(vec![Some("X40J5"), None, Some("1234567890123456"), Some("nope")]));
        let masks = run(&back, vec![input]);
        assert_eq!(masks.as_ref(), &arrow::array::UInt64Array::from(vec![Some(3), None, Some(2), Some(0)]) as &dyn arrow::array::Array);
    }

    #[test]
    fn interval_functions_keep_bounds_parameters_and_limits() {
        let params = vec![Param { name: "index_date".into(), values: Arc::new(Date32Array::from(vec![100, 200])) as ArrayRef }];
        let intervals = Intervals(Arc::new(vec![(0, 9), (10, 19)]), Arc::new(params));
        let f = interval_function_of(intervals.clone(), IntervalUse::Part(super::super::intervals::Part::Param(0))).unwrap();
        let back = round_trip(&f);
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![14, 15]));
        assert_eq!(run(&back, vec![keys.clone()]).as_ref(), run(&f, vec![keys]).as_ref());
        let allowed = interval_function_of(intervals, IntervalUse::Allowed(vec![("<=".into(), false, true)])).unwrap();
        let back = round_trip(&allowed);
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(5), Some(12), None]));
        assert_eq!(run(&back, vec![dates.clone()]).as_ref(), run(&allowed, vec![dates]).as_ref());
    }

    #[test]
    fn runs_keep_intervals_limits_and_the_wrapped_aggregate() {
        let params = vec![Param { name: "index_date".into(), values: Arc::new(Date32Array::from(vec![100, 200])) as ArrayRef }];
        let intervals = Intervals(Arc::new(vec![(0, 9), (10, 19)]), Arc::new(params));
        let limits = vec![
            Limit::from_portable(("<=".into(), false, false)).unwrap(),
            Limit::from_portable((">".into(), false, true)).unwrap(),
        ];
        for inner in [datafusion::functions_aggregate::count::count_udaf(), pick::pick_named("ehr_pick_first").unwrap()] {
            let f = runs::runs_udaf(intervals.clone(), limits.clone(), inner.clone());
            let bytes = encode_udaf(&f).unwrap().expect("one of ours");
            let back = decode_udaf(f.name(), &bytes).unwrap();
            assert_eq!(back.name(), f.name());
            let (iv, lim, wrapped) = runs::runs_parts(&back).expect("ehr_runs");
            assert_eq!(iv, &intervals);
            assert_eq!(lim.iter().map(Limit::portable).collect::<Vec<_>>(), limits.iter().map(Limit::portable).collect::<Vec<_>>());
            assert_eq!(wrapped.name(), inner.name());
        }
        // DataFusion's own aggregates are left to DataFusion.
        assert!(encode_udaf(&datafusion::functions_aggregate::count::count_udaf()).unwrap().is_none());
    }
}
