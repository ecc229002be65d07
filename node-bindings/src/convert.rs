//! JavaScript values to JSON values (`serde_json::Value`), by the rules of
//! `JSON.stringify`, so that a document means the same here as it does to
//! any JavaScript code that serialises it:
//!
//! * an object property that is `undefined`, a function or a symbol is
//!   left out; in an array it becomes `null`;
//! * `NaN` and `±Infinity` become `null`;
//! * an object with a `toJSON` method (a `Date`) is replaced by what that
//!   method returns;
//! * only own enumerable string keys are read;
//! * a `BigInt`, or nesting deeper than [`MAX_DEPTH`] (which is also how a
//!   cycle ends), is an error.
//!
//! The other direction, JSON to JavaScript, is napi's own serde conversion.

use std::ptr;

use canhazdb_core::query::json_type_name;
use napi::bindgen_prelude::{Array, FromNapiValue, Function, JsObjectValue, Object, Unknown};
use napi::{sys, Env, JsValue, ValueType};
use serde_json::{Map, Number, Value};

use crate::error::Failure;

/// How deep documents may nest (the server's JSON parser allows 128).
pub const MAX_DEPTH: usize = 128;

/// The largest integer a double holds exactly (2^53).
const MAX_SAFE: f64 = 9_007_199_254_740_992.0;

/// Converts `value`; `Ok(None)` when JSON has nothing for it (`undefined`,
/// a function, a symbol). `what` names the argument in error messages.
pub fn to_json(env: &Env, value: Unknown, what: &str) -> Result<Option<Value>, Failure> {
    convert(env, value, MAX_DEPTH).map_err(|problem| Failure::invalid(format!("{what} {problem}")))
}

/// Converts an optional argument that must be a plain object (a document or
/// a query) when present.
pub fn to_object(env: &Env, value: Option<Unknown>, what: &str) -> Result<Option<Value>, Failure> {
    let Some(value) = value else { return Ok(None) };
    match to_json(env, value, what)? {
        None | Some(Value::Null) => Ok(None),
        Some(object @ Value::Object(_)) => Ok(Some(object)),
        Some(other) => Err(Failure::invalid(format!(
            "{what} must be an object, not {}",
            json_type_name(&other)
        ))),
    }
}

fn convert(env: &Env, value: Unknown, depth: usize) -> Result<Option<Value>, String> {
    let napi_error = |error: napi::Error| error.reason;
    let json = match value.get_type().map_err(napi_error)? {
        ValueType::Undefined | ValueType::Function | ValueType::Symbol => return Ok(None),
        ValueType::Null => Value::Null,
        ValueType::Boolean => Value::Bool(unsafe { value.cast::<bool>() }.map_err(napi_error)?),
        ValueType::Number => number(unsafe { value.cast::<f64>() }.map_err(napi_error)?),
        ValueType::String => Value::String(unsafe { value.cast::<String>() }.map_err(napi_error)?),
        ValueType::BigInt => return Err("contains a BigInt, which JSON cannot represent".into()),
        ValueType::Object => {
            if depth == 0 {
                return Err(format!(
                    "is nested more than {MAX_DEPTH} levels deep (or is cyclic)"
                ));
            }
            let object = unsafe { value.cast::<Object>() }.map_err(napi_error)?;
            if let Some(replacement) = to_json_method(&object).map_err(napi_error)? {
                return convert(env, replacement, depth - 1);
            }
            if object.is_array().map_err(napi_error)? {
                let array = unsafe { value.cast::<Array>() }.map_err(napi_error)?;
                let mut items = Vec::with_capacity(array.len() as usize);
                for index in 0..array.len() {
                    let item: Unknown = array.get_element(index).map_err(napi_error)?;
                    items.push(convert(env, item, depth - 1)?.unwrap_or(Value::Null));
                }
                Value::Array(items)
            } else {
                let mut map = Map::new();
                for key in own_keys(env, &object).map_err(napi_error)? {
                    let item: Unknown = object.get_named_property_unchecked(&key).map_err(napi_error)?;
                    if let Some(item) = convert(env, item, depth - 1)? {
                        map.insert(key, item);
                    }
                }
                Value::Object(map)
            }
        }
        // Externals and anything newer than this code.
        _ => return Err("contains a value JSON cannot represent".into()),
    };
    Ok(Some(json))
}

fn number(n: f64) -> Value {
    if !n.is_finite() {
        return Value::Null;
    }
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        // Integers stay integers (`1`, not `1.0`); -0 becomes 0 as in JSON.
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null)
}

/// `object.toJSON("")` if `object` has such a method.
fn to_json_method<'env>(object: &Object<'env>) -> napi::Result<Option<Unknown<'env>>> {
    let method: Unknown = object.get_named_property_unchecked("toJSON")?;
    if method.get_type()? != ValueType::Function {
        return Ok(None);
    }
    let method: Function<&str, Unknown> = unsafe { method.cast()? };
    Ok(Some(method.apply(object, "")?))
}

/// The own enumerable string keys, in property order (`Object.keys`).
fn own_keys(env: &Env, object: &Object) -> napi::Result<Vec<String>> {
    let mut names = ptr::null_mut();
    napi::check_status!(unsafe {
        sys::napi_get_all_property_names(
            env.raw(),
            object.raw(),
            sys::KeyCollectionMode::own_only,
            sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
            sys::KeyConversion::numbers_to_strings,
            &mut names,
        )
    })?;
    let names = unsafe { Array::from_napi_value(env.raw(), names)? };
    (0..names.len())
        .map(|index| names.get_element::<String>(index))
        .collect()
}
