//! YAML read into a tree that keeps the line and column of every key and value, so that every
//! later check (shape, environment variables, field rules) can point at the exact spot.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::fmt;

/// Where a key or value sits in its file: 1-based line and column, byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub len: usize,
}

impl Loc {
    /// The start of a file, for problems with the file as a whole.
    pub fn start() -> Loc {
        Loc {
            line: 1,
            column: 1,
            ..Loc::default()
        }
    }

    fn from_saphyr(location: &Location) -> Loc {
        let span = location.span();
        Loc {
            line: location.line() as usize,
            column: location.column() as usize,
            offset: span.byte_offset().unwrap_or(span.offset()) as usize,
            len: span.byte_len().unwrap_or(span.len()) as usize,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub loc: Loc,
}

impl Node {
    /// What kind of value this is, in the words error messages use.
    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "nothing (null)",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, node)| node)
    }

    /// The key and value under `key` of a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The element at `index` of a list.
    pub fn at(&self, index: usize) -> Option<&Node> {
        match &self.value {
            NodeValue::Seq(items) => items.get(index),
            _ => None,
        }
    }

    /// Converts to JSON for typed deserialisation once the shape is known to be right.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub loc: Loc,
}

/// Parses YAML text into a located tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            value: NodeValue::Null,
            loc: Loc::start(),
        });
    }
    // YAML 1.2 booleans only, so `import: off` stays the word `off`; duplicate keys reach the
    // shape check, which names both.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::PassThrough,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(raw) => Ok(raw.into()),
        Err(error) => {
            let loc = error
                .location()
                .map(|l| Loc::from_saphyr(&l))
                .unwrap_or(Loc::start());
            let message = error.without_snippet().to_string();
            // The crate prefixes "line L column C: "; the diagnostic shows the position itself.
            let message = message
                .split_once(": ")
                .filter(|(head, _)| head.contains("line ") && head.contains("column "))
                .map(|(_, rest)| rest.to_string())
                .unwrap_or(message);
            let message = message.trim_start_matches("error: ").to_string();
            Err(SyntaxError { message, loc })
        }
    }
}

/// The intermediate form serde-saphyr fills in; converted to `Node` right away.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

impl From<Spanned<Raw>> for Node {
    fn from(raw: Spanned<Raw>) -> Node {
        let loc = Loc::from_saphyr(&raw.referenced);
        let value = match raw.value {
            Raw::Null => NodeValue::Null,
            Raw::Bool(b) => NodeValue::Bool(b),
            Raw::Int(i) => NodeValue::Int(i),
            Raw::Float(f) => NodeValue::Float(f),
            Raw::Str(s) => NodeValue::Str(s),
            Raw::Seq(items) => NodeValue::Seq(items.into_iter().map(Node::from).collect()),
            Raw::Map(entries) => NodeValue::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        let key = Key {
                            loc: Loc::from_saphyr(&k.referenced),
                            name: k.value,
                        };
                        (key, Node::from(v))
                    })
                    .collect(),
            ),
        };
        Node { value, loc }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let node = parse("a: 1\nlist:\n  - { x: 'y' }\n").unwrap();
        let (key, value) = node.entry("list").unwrap();
        assert_eq!((key.loc.line, key.loc.column), (2, 1));
        let x = value.at(0).unwrap().get("x").unwrap();
        assert_eq!(x.as_str(), Some("y"));
        assert_eq!((x.loc.line, x.loc.column), (3, 10));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: c").unwrap_err();
        assert_eq!(err.loc.line, 2);
    }
}
