//! The rows a run stages, as (column, cell) pairs: extracted and transformed records with
//! their typed columns, planned changes with their changed fields, results and conflicts. Both
//! directions and the removals stage through these, so every table reads the same way.

use serde_json::Value;

use super::conflicts::Conflict;
use super::connector::Record;
use super::plan::{get_path, Planned};
use crate::civil;
use crate::config::model::Pipeline;
use crate::staging::{json_to_cell, Cell, PipelineTables, Stage};

pub(super) fn now_cell() -> Cell {
    Cell::Timestamp(duckdb::types::TimeUnit::Millisecond, civil::now_millis())
}

pub(super) fn text(value: &str) -> Cell {
    Cell::Text(value.to_string())
}

pub(super) fn json_cell(value: &Value) -> Cell {
    Cell::Text(value.to_string())
}

/// A record as JSON text, serialised in place (no copy into a `Value` first).
pub(super) fn record_cell(record: &Record) -> Cell {
    Cell::Text(serde_json::to_string(record).unwrap_or_default())
}

/// The typed columns of a stage and the record path each is read from.
pub(super) fn typed_paths(
    pipeline: &Pipeline,
    tables: &PipelineTables,
    stage: Stage,
) -> Vec<(String, String, crate::staging::ColumnType)> {
    let columns = match stage {
        Stage::Extracted => &tables.extracted,
        _ => &tables.transformed,
    };
    let mut out = Vec::new();
    for mapping in &pipeline.fields {
        let path = match stage {
            Stage::Extracted => mapping
                .salesforce
                .as_deref()
                .filter(|f| !f.starts_with('$')),
            _ => mapping.halo.as_deref(),
        };
        let Some(path) = path else { continue };
        let name = crate::staging::column_name(path);
        if let Some(column) = columns.iter().find(|c| c.name == name) {
            if !out.iter().any(|(n, _, _)| *n == name) {
                out.push((name, path.to_string(), column.column_type));
            }
        }
    }
    out
}

pub(super) fn typed_cells(
    record: &Record,
    paths: &[(String, String, crate::staging::ColumnType)],
) -> Vec<(String, Cell)> {
    paths
        .iter()
        .filter_map(|(name, path, column_type)| {
            get_path(record, path).map(|value| (name.clone(), json_to_cell(value, *column_type)))
        })
        .collect()
}

/// One entry of a change row's `changed_fields`, serialised from the plan's values in place.
#[derive(serde::Serialize)]
struct FieldChange<'a> {
    field: &'a str,
    before: &'a Option<Value>,
    after: &'a Option<Value>,
}

pub(super) fn change_row(run_id: &str, planned: &Planned) -> Vec<(String, Cell)> {
    let changes: Vec<FieldChange> = planned
        .changes
        .iter()
        .map(|(field, before, after)| FieldChange {
            field,
            before,
            after,
        })
        .collect();
    let mut row = vec![
        ("run_id".to_string(), text(run_id)),
        ("source_id".to_string(), text(&planned.source_id)),
        ("action".to_string(), text(planned.action.as_str())),
        (
            "changed_fields".to_string(),
            Cell::Text(serde_json::to_string(&changes).unwrap_or_default()),
        ),
        ("after".to_string(), record_cell(&planned.after)),
        ("staged_at".to_string(), now_cell()),
    ];
    if let Some(id) = &planned.target_id {
        row.push(("target_id".to_string(), text(id)));
    }
    if let Some(reason) = &planned.reason {
        row.push(("reason".to_string(), text(reason)));
    }
    if let Some(before) = &planned.before {
        row.push(("before".to_string(), record_cell(before)));
    }
    row
}

pub(super) fn conflict_row(run_id: &str, conflict: &Conflict) -> Vec<(String, Cell)> {
    let value = |v: &Option<Value>| json_cell(v.as_ref().unwrap_or(&Value::Null));
    vec![
        ("run_id".to_string(), text(run_id)),
        ("source_id".to_string(), text(&conflict.source_id)),
        ("target_id".to_string(), text(&conflict.target_id)),
        ("field".to_string(), text(&conflict.field)),
        ("last_synced".to_string(), value(&conflict.last_synced)),
        ("source_value".to_string(), value(&conflict.source_value)),
        ("target_value".to_string(), value(&conflict.target_value)),
        ("resolution".to_string(), text(conflict.resolution)),
        ("staged_at".to_string(), now_cell()),
    ]
}

pub(super) fn result_row(
    run_id: &str,
    planned: &Planned,
    target_id: Option<&str>,
    status: &str,
    message: Option<&str>,
) -> Vec<(String, Cell)> {
    let mut row = vec![
        ("run_id".to_string(), text(run_id)),
        ("source_id".to_string(), text(&planned.source_id)),
        ("action".to_string(), text(planned.action.as_str())),
        ("status".to_string(), text(status)),
        ("staged_at".to_string(), now_cell()),
    ];
    if let Some(id) = target_id.or(planned.target_id.as_deref()) {
        row.push(("target_id".to_string(), text(id)));
    }
    if let Some(message) = message.or(planned.reason.as_deref()) {
        row.push(("error_message".to_string(), text(message)));
    }
    row
}
