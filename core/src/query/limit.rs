//! LIMIT: how many documents a GET returns at most.

use serde_json::Value;

use super::error::{json_type_name, QueryError};

/// Parse LIMIT: a positive integer. A number with a zero fraction (`5.0`) is
/// accepted as that integer; `0`, negatives, fractions and anything that is
/// not a number are errors. A limit beyond `usize::MAX` (possible on 32-bit
/// targets such as wasm32) saturates, which means "no effective limit".
///
/// ```
/// # use canhazdb_core::query::parse_limit;
/// # use serde_json::json;
/// assert_eq!(parse_limit(&json!(10)), Ok(10));
/// assert!(parse_limit(&json!(0)).is_err());
/// ```
pub fn parse_limit(limit: &Value) -> Result<usize, QueryError> {
    let invalid = || QueryError::new(format!("LIMIT must be a positive integer, got {limit}"));
    let Value::Number(number) = limit else {
        return Err(QueryError::new(format!(
            "LIMIT must be a positive integer, got {}",
            json_type_name(limit)
        )));
    };
    if let Some(integer) = number.as_u64() {
        return match integer {
            0 => Err(invalid()),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        };
    }
    if number.is_i64() {
        return Err(invalid()); // negative
    }
    match number.as_f64() {
        // `as` saturates for floats beyond usize::MAX.
        Some(float) if float >= 1.0 && float.fract() == 0.0 => Ok(float as usize),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positive_integers_are_limits() {
        assert_eq!(parse_limit(&json!(1)), Ok(1));
        assert_eq!(parse_limit(&json!(250)), Ok(250));
        assert_eq!(parse_limit(&json!(3.0)), Ok(3));
        assert_eq!(
            parse_limit(&json!(u64::MAX)),
            Ok(usize::try_from(u64::MAX).unwrap_or(usize::MAX))
        );
        assert_eq!(parse_limit(&json!(1e300)), Ok(usize::MAX));
    }

    #[test]
    fn everything_else_is_rejected_with_the_value() {
        let message = |value: Value| parse_limit(&value).unwrap_err().to_string();
        assert_eq!(message(json!(0)), "LIMIT must be a positive integer, got 0");
        assert_eq!(message(json!(-3)), "LIMIT must be a positive integer, got -3");
        assert_eq!(message(json!(2.5)), "LIMIT must be a positive integer, got 2.5");
        assert_eq!(message(json!(0.5)), "LIMIT must be a positive integer, got 0.5");
        assert_eq!(message(json!(-1.0)), "LIMIT must be a positive integer, got -1.0");
        assert_eq!(message(json!(0.0)), "LIMIT must be a positive integer, got 0.0");
        assert_eq!(
            message(json!("5")),
            "LIMIT must be a positive integer, got a string"
        );
        assert_eq!(message(json!(null)), "LIMIT must be a positive integer, got null");
        assert_eq!(
            message(json!([5])),
            "LIMIT must be a positive integer, got an array"
        );
    }
}
