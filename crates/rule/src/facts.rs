use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

/// Anything a tree can ask for facts by key.
pub trait FactSource {
    fn fact(&self, key: &str) -> Option<&str>;
}

impl<K, V, S> FactSource for HashMap<K, V, S>
where
    K: Borrow<str> + Hash + Eq,
    V: AsRef<str>,
    S: BuildHasher,
{
    fn fact(&self, key: &str) -> Option<&str> {
        self.get(key).map(AsRef::as_ref)
    }
}

impl<K, V> FactSource for BTreeMap<K, V>
where
    K: Borrow<str> + Ord,
    V: AsRef<str>,
{
    fn fact(&self, key: &str) -> Option<&str> {
        self.get(key).map(AsRef::as_ref)
    }
}

/// Why a JSON document could not be read as facts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    #[error("fact {key:?} is a JSON {kind}; facts must be strings, numbers or booleans")]
    Nested { key: String, kind: &'static str },
    #[error("facts must be a JSON object, got {kind}")]
    NotAnObject { kind: &'static str },
}

/// The facts about one request (user attributes and the like), all kept as text.
///
/// Deserialises from a JSON object whose values are strings, numbers or booleans, so
/// `{"gender": "man", "age": 25}` works as well as `{"age": "25"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Facts(HashMap<String, String>);

impl Facts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder-style insert.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Reads a JSON object. Strings are kept as they are, numbers and booleans become their
    /// text, and `null` means the fact is absent. Nested objects and arrays are refused.
    pub fn from_json(object: &Map<String, Value>) -> Result<Self, FactsError> {
        let mut facts = HashMap::with_capacity(object.len());
        for (key, value) in object {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                // Exponent forms ("1e+21") still parse as numbers in limits.
                Value::Number(n) => n.to_string(),
                Value::Array(_) => {
                    return Err(FactsError::Nested {
                        key: key.clone(),
                        kind: "array",
                    });
                }
                Value::Object(_) => {
                    return Err(FactsError::Nested {
                        key: key.clone(),
                        kind: "object",
                    });
                }
            };
            facts.insert(key.clone(), text);
        }
        Ok(Self(facts))
    }

    /// Like [`Facts::from_json`], for a value that should be an object.
    pub fn from_json_value(value: &Value) -> Result<Self, FactsError> {
        match value {
            Value::Object(object) => Self::from_json(object),
            other => Err(FactsError::NotAnObject {
                kind: json_kind(other),
            }),
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl FactSource for Facts {
    fn fact(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

impl From<HashMap<String, String>> for Facts {
    fn from(map: HashMap<String, String>) -> Self {
        Self(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Facts {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Facts {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

impl TryFrom<&Value> for Facts {
    type Error = FactsError;

    fn try_from(value: &Value) -> Result<Self, Self::Error> {
        Self::from_json_value(value)
    }
}

impl<'de> Deserialize<'de> for Facts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let object = Map::<String, Value>::deserialize(d)?;
        Self::from_json(&object).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_and_booleans_become_text() {
        let value = serde_json::json!({
            "gender": "man", "age": 25, "score": 2.5, "vip": true, "big": 1e21, "small": 1.5e-7, "gone": null
        });
        let facts = Facts::from_json_value(&value).expect("flat object");
        assert_eq!(facts.get("gender"), Some("man"));
        assert_eq!(facts.get("age"), Some("25"));
        assert_eq!(facts.get("score"), Some("2.5"));
        assert_eq!(facts.get("vip"), Some("true"));
        assert_eq!(facts.get("big"), Some("1e+21"));
        assert_eq!(facts.get("small"), Some("1.5e-7"));
        assert_eq!(facts.get("gone"), None);
        assert_eq!(facts.len(), 6);
    }

    #[test]
    fn nested_values_are_refused_by_name() {
        let value = serde_json::json!({ "tags": ["a"] });
        assert_eq!(
            Facts::from_json_value(&value),
            Err(FactsError::Nested {
                key: "tags".into(),
                kind: "array"
            })
        );
        let value = serde_json::json!({ "user": { "age": 3 } });
        assert_eq!(
            Facts::from_json_value(&value),
            Err(FactsError::Nested {
                key: "user".into(),
                kind: "object"
            })
        );
        assert_eq!(
            Facts::from_json_value(&serde_json::json!([1])),
            Err(FactsError::NotAnObject { kind: "an array" })
        );
    }

    #[test]
    fn deserialises_from_json_text() {
        let facts: Facts = serde_json::from_str(r#"{"age": 30, "gender": "woman"}"#).expect("ok");
        assert_eq!(facts.get("age"), Some("30"));
        assert!(serde_json::from_str::<Facts>(r#"{"age": [30]}"#).is_err());
    }
}
