//! The JSON Schemas of the project and pipeline files, generated from the Rust types so they
//! can never drift from what the loader accepts. `schemas/*.json` are checked-in copies.

use schemars::schema_for;
use serde_json::Value;

use super::model::{Pipeline, Project};

pub fn pipeline_schema() -> Value {
    serde_json::to_value(schema_for!(Pipeline)).expect("a schema is plain JSON")
}

pub fn project_schema() -> Value {
    serde_json::to_value(schema_for!(Project)).expect("a schema is plain JSON")
}

/// The schema as written to `schemas/<name>.schema.json`: pretty JSON with a final newline.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}
