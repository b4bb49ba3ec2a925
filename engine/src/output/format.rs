//! Text form of values, as ehrQL writes CSV: booleans `T`/`F`, ISO dates, empty
//! for null, floats as Python prints them.

use arrow::array::*;
use arrow::datatypes::ArrowNativeType;
use arrow::datatypes::{DataType, Int8Type, Int16Type, Int32Type};

use crate::error::Result;
use crate::bail;
use crate::model::types::format_date;

pub fn format_float(f: f64) -> String {
    // Debug keeps a ".0" on whole numbers and switches to an exponent at the same
    // magnitudes as Python's repr; Python also signs the exponent and pads it to two
    // digits (1e-05, 1e+16).
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// The text of every value of a column (`None` for null).
pub fn column_text(array: &dyn Array) -> Result<Vec<Option<String>>> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! each {
        ($ty:ty, $f:expr) => {{
            let a = array.as_any().downcast_ref::<$ty>().unwrap();
            for i in 0..n {
                out.push(if a.is_null(i) { None } else { Some($f(a.value(i))) });
            }
        }};
    }
    match array.data_type() {
        DataType::Boolean => each!(BooleanArray, |v: bool| if v { "T".to_string() } else { "F".to_string() }),
        DataType::Int8 => each!(Int8Array, |v: i8| v.to_string()),
        DataType::Int16 => each!(Int16Array, |v: i16| v.to_string()),
        DataType::Int32 => each!(Int32Array, |v: i32| v.to_string()),
        DataType::Int64 => each!(Int64Array, |v: i64| v.to_string()),
        DataType::UInt8 => each!(UInt8Array, |v: u8| v.to_string()),
        DataType::UInt16 => each!(UInt16Array, |v: u16| v.to_string()),
        DataType::UInt32 => each!(UInt32Array, |v: u32| v.to_string()),
        DataType::UInt64 => each!(UInt64Array, |v: u64| v.to_string()),
        DataType::Float64 => each!(Float64Array, format_float),
        DataType::Date32 => each!(Date32Array, format_date),
        DataType::Utf8 => each!(StringArray, |v: &str| v.to_string()),
        DataType::Dictionary(k, _) => {
            let values = match k.as_ref() {
                DataType::Int8 => dict_strings::<Int8Type>(array),
                DataType::Int16 => dict_strings::<Int16Type>(array),
                _ => dict_strings::<Int32Type>(array),
            };
            out = values;
        }
        other => bail!("cannot write a column of type {other}"),
    }
    Ok(out)
}

fn dict_strings<K: arrow::datatypes::ArrowDictionaryKeyType>(array: &dyn Array) -> Vec<Option<String>> {
    let d = array.as_any().downcast_ref::<DictionaryArray<K>>().unwrap();
    let values = d.values().as_any().downcast_ref::<StringArray>().unwrap();
    d.keys().iter().map(|k| k.map(|k| values.value(k.as_usize()).to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::format_float;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(format_float(2.0), "2.0");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(-6.7), "-6.7");
        assert_eq!(format_float(1e300), "1e+300");
        assert_eq!(format_float(1e-5), "1e-05");
        assert_eq!(format_float(2.5e-7), "2.5e-07");
        assert_eq!(format_float(1e16), "1e+16");
        assert_eq!(format_float(1e-100), "1e-100");
        assert_eq!(format_float(0.0001), "0.0001");
        assert_eq!(format_float(1.5e-7), "1.5e-07");
        assert_eq!(format_float(1e15), "1000000000000000.0");
    }
}
