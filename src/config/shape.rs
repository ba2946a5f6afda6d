//! Checks the shape of a YAML tree against the JSON Schema generated from the Rust types:
//! unknown keys (with "did you mean"), missing keys, wrong value types and values outside a
//! fixed set. Unlike deserialising, it reports every problem in a file, not just the first.

use serde_json::Value;

use super::diagnostic::{Diagnostic, SourceFile};
use super::suggest::closest;
use super::yaml::{Node, NodeValue};

/// Checks `node` against `schema` (a root schema with `$defs`), returning every problem found.
pub fn check(node: &Node, schema: &Value, file: &SourceFile) -> Vec<Diagnostic> {
    let mut checker = Checker {
        root: schema,
        file,
        out: Vec::new(),
    };
    if matches!(node.value, NodeValue::Null) {
        checker.out.push(
            file.error("empty-file", node.loc, "the file is empty")
                .hint(
                    describe(schema)
                        .unwrap_or("see the schema in schemas/")
                        .to_string(),
                ),
        );
    } else {
        checker.check(node, schema, None);
    }
    checker.out
}

struct Checker<'a> {
    root: &'a Value,
    file: &'a SourceFile,
    out: Vec<Diagnostic>,
}

/// The first sentence of a schema's description, for hints.
fn describe(schema: &Value) -> Option<&str> {
    schema.get("description").and_then(Value::as_str)
}

/// A description as a one-line hint (doc comments wrap lines).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kind_matches(node: &Node, ty: &str) -> bool {
    matches!(
        (&node.value, ty),
        (NodeValue::Null, "null")
            | (NodeValue::Bool(_), "boolean")
            | (NodeValue::Int(_), "integer" | "number")
            | (NodeValue::Float(_), "number")
            | (NodeValue::Str(_), "string")
            | (NodeValue::Seq(_), "array")
            | (NodeValue::Map(_), "object")
    )
}

fn type_words(ty: &str) -> &'static str {
    match ty {
        "null" => "nothing",
        "boolean" => "true or false",
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        _ => "a value",
    }
}

fn types_of(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The string constants of an enum-like schema (`enum: [...]` or `oneOf` of `const`s).
fn string_choices(schema: &Value) -> Option<Vec<&str>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return values.iter().map(Value::as_str).collect();
    }
    let alternatives = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    let mut choices = Vec::new();
    for alternative in alternatives {
        if let Some(c) = alternative.get("const").and_then(Value::as_str) {
            choices.push(c);
        } else if let Some(Value::Array(values)) = alternative.get("enum") {
            for v in values {
                choices.push(v.as_str()?);
            }
        } else {
            return None;
        }
    }
    Some(choices)
}

impl<'a> Checker<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        // A bounded loop guards against a `$ref` cycle in a hand-edited schema.
        for _ in 0..16 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let pointer = reference.trim_start_matches('#');
                    match self.root.pointer(pointer) {
                        Some(target) => schema = target,
                        None => return schema,
                    }
                }
                None => return schema,
            }
        }
        schema
    }

    /// `hint` is the description of the property holding this node, for wrong-type messages.
    fn check(&mut self, node: &Node, schema: &'a Value, hint: Option<&str>) {
        let hint = hint.or_else(|| describe(schema));
        let schema = self.resolve(schema);
        let hint = hint.or_else(|| describe(schema));
        match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                self.out.push(
                    self.file
                        .error("not-allowed", node.loc, "no value is allowed here"),
                );
                return;
            }
            _ => {}
        }
        if let Some(choices) = string_choices(schema) {
            self.check_choice(node, &choices, schema, hint);
            return;
        }
        if let Some(alternatives) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.check_alternatives(node, alternatives, hint);
            return;
        }
        let types = types_of(schema);
        if !types.is_empty() && !types.iter().any(|t| kind_matches(node, t)) {
            self.wrong_type(node, &types, hint);
            return;
        }
        match &node.value {
            NodeValue::Map(entries) => self.check_object(node, entries, schema),
            NodeValue::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for item in items {
                        self.check(item, item_schema, None);
                    }
                }
            }
            NodeValue::Int(_) | NodeValue::Float(_) => self.check_range(node, schema),
            _ => {}
        }
    }

    fn wrong_type(&mut self, node: &Node, types: &[&str], hint: Option<&str>) {
        let expected: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| type_words(t))
            .collect();
        let expected = if expected.is_empty() {
            "nothing".to_string()
        } else {
            expected.join(" or ")
        };
        let quote_hint = (types.contains(&"string")
            && matches!(
                node.value,
                NodeValue::Int(_) | NodeValue::Float(_) | NodeValue::Bool(_)
            ))
        .then(|| "put the value in quotes to make it a string".to_string());
        self.out.push(
            self.file
                .error(
                    "wrong-type",
                    node.loc,
                    format!("expected {expected}, found {}", node.kind()),
                )
                .maybe_hint(quote_hint.or_else(|| hint.map(one_line))),
        );
    }

    fn check_choice(&mut self, node: &Node, choices: &[&str], schema: &Value, hint: Option<&str>) {
        if matches!(node.value, NodeValue::Null) && types_of(schema).contains(&"null") {
            return;
        }
        let Some(value) = node.as_str() else {
            let text = match &node.value {
                NodeValue::Bool(b) => b.to_string(),
                _ => String::new(),
            };
            if !text.is_empty() && choices.contains(&text.as_str()) {
                return;
            }
            self.out.push(
                self.file
                    .error(
                        "wrong-type",
                        node.loc,
                        format!(
                            "expected one of {}, found {}",
                            choices.join(", "),
                            node.kind()
                        ),
                    )
                    .maybe_hint(hint.map(one_line)),
            );
            return;
        };
        if choices.contains(&value) {
            return;
        }
        let mut diagnostic = self.file.error(
            "unknown-value",
            node.loc,
            format!("`{value}` is not one of: {}", choices.join(", ")),
        );
        if let Some(suggestion) = closest(value, choices.iter().copied()) {
            diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
        }
        self.out.push(diagnostic.maybe_hint(hint.map(one_line)));
    }

    fn check_alternatives(&mut self, node: &Node, alternatives: &'a [Value], hint: Option<&str>) {
        let mut fitting_kind = None;
        for alternative in alternatives {
            let resolved = self.resolve(alternative);
            let mut trial = Checker {
                root: self.root,
                file: self.file,
                out: Vec::new(),
            };
            trial.check(node, alternative, hint);
            if trial.out.is_empty() {
                return;
            }
            // An enum of strings (`oneOf` of constants) has no `type` of its own.
            let types = match string_choices(resolved) {
                Some(_) => vec!["string"],
                None => types_of(resolved),
            };
            if fitting_kind.is_none()
                && (types.is_empty() || types.iter().any(|t| kind_matches(node, t)))
            {
                fitting_kind = Some(trial.out);
            }
        }
        match fitting_kind {
            Some(problems) => self.out.extend(problems),
            None => {
                let mut types: Vec<&str> = Vec::new();
                for alternative in alternatives {
                    let resolved = self.resolve(alternative);
                    let kinds = match string_choices(resolved) {
                        Some(_) => vec!["string"],
                        None => types_of(resolved),
                    };
                    for t in kinds {
                        if !types.contains(&t) {
                            types.push(t);
                        }
                    }
                }
                self.wrong_type(node, &types, hint);
            }
        }
    }

    fn check_range(&mut self, node: &Node, schema: &Value) {
        let value = match node.value {
            NodeValue::Int(i) => i as f64,
            NodeValue::Float(f) => f,
            _ => return,
        };
        let min = schema.get("minimum").and_then(Value::as_f64);
        let max = schema.get("maximum").and_then(Value::as_f64);
        let below = min.is_some_and(|m| value < m);
        let above = max.is_some_and(|m| value > m);
        if below || above {
            let range = match (min, max) {
                (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
                (Some(lo), None) => format!("at least {lo}"),
                (None, Some(hi)) => format!("at most {hi}"),
                (None, None) => unreachable!("a bound was crossed"),
            };
            self.out.push(self.file.error(
                "out-of-range",
                node.loc,
                format!("{value} is out of range: must be {range}"),
            ));
        }
    }

    fn check_object(
        &mut self,
        node: &Node,
        entries: &[(super::yaml::Key, Node)],
        schema: &'a Value,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut seen: Vec<&str> = Vec::new();
        // A required key that an unknown key is a misspelling of is reported once, as the typo.
        let mut suggested: Vec<&str> = Vec::new();
        for (key, value) in entries {
            if seen.contains(&key.name.as_str()) {
                self.out.push(
                    self.file
                        .error(
                            "duplicate-key",
                            key.loc,
                            format!("`{}` is given twice", key.name),
                        )
                        .hint("keep one; YAML would silently use the last"),
                );
                continue;
            }
            seen.push(&key.name);
            match properties.and_then(|p| p.get(&key.name)) {
                Some(property) => self.check(value, property, describe(property)),
                None => match additional {
                    Some(Value::Bool(false)) => suggested.extend(self.unknown_key(key, properties)),
                    Some(extra) if extra.is_object() => self.check(value, extra, None),
                    _ => {}
                },
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !seen.contains(&name) && !suggested.contains(&name) {
                    let description = properties
                        .and_then(|p| p.get(name))
                        .and_then(|p| describe(p).or_else(|| describe(self.resolve(p))));
                    let hint = description.map(one_line);
                    self.out.push(
                        self.file
                            .error(
                                "missing-key",
                                node.loc,
                                format!("missing required key `{name}`"),
                            )
                            .maybe_hint(hint),
                    );
                }
            }
        }
    }

    /// Reports an unknown key; returns the key it is probably a misspelling of.
    fn unknown_key(
        &mut self,
        key: &super::yaml::Key,
        properties: Option<&'a serde_json::Map<String, Value>>,
    ) -> Option<&'a str> {
        let names: Vec<&'a str> = properties
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut diagnostic = self.file.error(
            "unknown-key",
            key.loc,
            format!("unknown key `{}`", key.name),
        );
        let suggestion = closest(&key.name, names.iter().copied());
        if let Some(suggestion) = suggestion {
            diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
        }
        self.out
            .push(diagnostic.hint(format!("allowed keys here: {}", names.join(", "))));
        suggestion
    }
}
