//! The shapes claims come in: serde helpers for the providers' claim types, and JWT dates.

use chrono::DateTime;
use serde_json::Value;

/// A JWT NumericDate (seconds since the epoch, possibly fractional) as whole seconds, if it is a
/// number within the range of dates.
pub fn numeric_date(value: &Value) -> Option<i64> {
    let seconds = match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i,
            None => {
                let f = n.as_f64()?;
                if !f.is_finite() || f.abs() > 1e15 {
                    return None;
                }
                f.floor() as i64
            }
        },
        _ => return None,
    };
    DateTime::from_timestamp(seconds, 0).map(|_| seconds)
}

/// Serde helpers for the shapes claims come in.
pub mod de {
    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrNumber {
        String(String),
        Integer(i64),
        Other(serde::de::IgnoredAny),
    }

    /// An ID that the platforms send as a string of digits (`"123"`); a JSON integer is accepted
    /// too.
    pub fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        match StringOrNumber::deserialize(deserializer)? {
            StringOrNumber::String(s) => s
                .parse()
                .map_err(|_| D::Error::custom("expected an ID made of digits")),
            StringOrNumber::Integer(i) => Ok(i),
            StringOrNumber::Other(_) => Err(D::Error::custom("expected an integer ID")),
        }
    }

    pub fn optional_id<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        match Option::<StringOrNumber>::deserialize(deserializer)? {
            None => Ok(None),
            Some(StringOrNumber::String(s)) if s.is_empty() => Ok(None),
            Some(StringOrNumber::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom("expected an ID made of digits")),
            Some(StringOrNumber::Integer(i)) => Ok(Some(i)),
            Some(StringOrNumber::Other(_)) => Err(D::Error::custom("expected an integer ID")),
        }
    }

    /// A JWT NumericDate: seconds since the epoch, possibly fractional.
    pub fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        super::numeric_date(&value).ok_or_else(|| D::Error::custom("expected a NumericDate"))
    }

    pub fn optional_numeric_date<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            None => Ok(None),
            Some(value) => super::numeric_date(&value)
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected a NumericDate")),
        }
    }

    /// An optional string where `""` means absent (GitHub sends `"head_ref": ""`, and an empty
    /// environment is no environment).
    pub fn non_empty<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
    }
}
