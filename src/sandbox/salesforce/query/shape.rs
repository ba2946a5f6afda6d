//! Records and rows shaped the way the REST API returns them: `attributes`, nested parents,
//! child subqueries (paged like a query when longer than a page, for REST) and aggregate rows.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::names::{resolve, Planner, ResolvedPath};
use super::{execute_query, sort_key_compare, Execution};
use crate::salesforce::catalog::ObjectInfo;
use crate::sandbox::salesforce::org::{Org, Record};
use crate::sandbox::salesforce::state::{random_token, ALPHANUMERIC};
use crate::soql::{AggregateFunction, ErrorCode, Query, SelectItem, SoqlError};

/// The child object, its field pointing at the parent, and the relationship name as the
/// describe spells it, for a subquery's FROM.
pub(super) fn child_relationship<'o>(
    org: &'o Org,
    parent: &ObjectInfo,
    sub: &Query,
) -> Result<(&'o ObjectInfo, String, String), SoqlError> {
    let invalid = || {
        SoqlError::new(
            ErrorCode::InvalidType,
            format!(
                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                sub.from.object
            ),
            sub.from.span.start,
        )
    };
    let (relationship, child_name) = parent
        .child_relationships
        .iter()
        .find(|(rel, _)| rel.eq_ignore_ascii_case(&sub.from.object))
        .ok_or_else(invalid)?;
    let child = org.describe(child_name).ok_or_else(invalid)?;
    let field = child
        .fields
        .iter()
        .find(|f| f.field_type == "reference" && f.reference_to.iter().any(|t| t == &parent.name))
        .ok_or_else(invalid)?;
    Ok((child, field.name.clone(), relationship.clone()))
}

pub(super) fn aggregate(
    org: &Org,
    query: &Query,
    planner: &Planner,
    group_paths: &[ResolvedPath],
    matched: &[&Record],
) -> Result<Vec<Value>, SoqlError> {
    let mut groups: Vec<(Vec<Value>, Vec<&Record>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for record in matched {
        let key: Vec<Value> = group_paths
            .iter()
            .map(|p| p.value(org, record).cloned().unwrap_or(Value::Null))
            .collect();
        let text = serde_json::to_string(&key).unwrap_or_default();
        let slot = *index.entry(text).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(record);
    }
    if groups.is_empty() && group_paths.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    let mut rows = Vec::new();
    for (key, members) in groups {
        let mut row = Map::new();
        row.insert("attributes".into(), json!({"type": "AggregateResult"}));
        let mut expr = 0;
        for item in &query.select {
            match item {
                SelectItem::Field { field, alias } => {
                    let position = query
                        .group_by
                        .iter()
                        .position(|g| g.dotted().eq_ignore_ascii_case(&field.dotted()));
                    let name = alias
                        .clone()
                        .unwrap_or_else(|| field.path.last().cloned().unwrap_or_default());
                    row.insert(name, position.map_or(Value::Null, |p| key[p].clone()));
                }
                SelectItem::Aggregate {
                    function,
                    field,
                    alias,
                    ..
                } => {
                    let name = alias.clone().unwrap_or_else(|| {
                        let n = format!("expr{expr}");
                        expr += 1;
                        n
                    });
                    let values: Vec<&Value> = match field {
                        Some(f) => {
                            let path = planner.resolve(f)?;
                            members
                                .iter()
                                .filter_map(|r| path.value(org, r))
                                .filter(|v| !v.is_null())
                                .collect()
                        }
                        None => Vec::new(),
                    };
                    let numbers = || values.iter().filter_map(|v| v.as_f64());
                    let value = match function {
                        AggregateFunction::Count if field.is_none() => json!(members.len()),
                        AggregateFunction::Count => json!(values.len()),
                        AggregateFunction::CountDistinct => {
                            let mut seen: Vec<String> =
                                values.iter().map(|v| v.to_string()).collect();
                            seen.sort();
                            seen.dedup();
                            json!(seen.len())
                        }
                        AggregateFunction::Sum => json!(numbers().sum::<f64>()),
                        AggregateFunction::Avg => {
                            let n: Vec<f64> = numbers().collect();
                            if n.is_empty() {
                                Value::Null
                            } else {
                                json!(n.iter().sum::<f64>() / n.len() as f64)
                            }
                        }
                        AggregateFunction::Min => values
                            .iter()
                            .min_by(|a, b| sort_key_compare(Some(a), Some(b), false, None))
                            .map_or(Value::Null, |v| (*v).clone()),
                        AggregateFunction::Max => values
                            .iter()
                            .max_by(|a, b| sort_key_compare(Some(a), Some(b), false, None))
                            .map_or(Value::Null, |v| (*v).clone()),
                    };
                    row.insert(name, value);
                }
                SelectItem::SubQuery { span, .. } => {
                    return Err(SoqlError::new(
                        ErrorCode::MalformedQuery,
                        "Aggregate query does not support subqueries",
                        span.start,
                    ));
                }
            }
        }
        rows.push(Value::Object(row));
    }
    Ok(rows)
}

/// The `attributes` object of a record in a response.
pub fn attributes(object: &str, id: Option<&str>, version: &str) -> Value {
    // Built by hand: this runs once per record of every page.
    let mut map = Map::with_capacity(2);
    map.insert("type".into(), Value::String(object.to_string()));
    if let Some(id) = id {
        map.insert(
            "url".into(),
            Value::String(format!("/services/data/v{version}/sobjects/{object}/{id}")),
        );
    }
    Value::Object(map)
}

/// How child results longer than one page are cut, as REST query pages cut them: the page
/// size, and the rest of each result cut short, under the locator its `nextRecordsUrl` names,
/// for the caller to keep as a cursor.
pub struct ChildPaging {
    pub batch_size: usize,
    pub opened: Vec<(String, Execution)>,
}

/// Shapes one matching record as the REST API returns it: selected fields in SELECT order,
/// parents as nested objects, children as nested query results (`null` when there are none),
/// each child result whole.
pub fn project(
    org: &Org,
    execution: &Execution,
    record: &Record,
    version: &str,
) -> Result<Value, SoqlError> {
    project_with(org, execution, record, version, None)
}

/// `project`, with each child result longer than `paging.batch_size` cut after its first page
/// (`done: false` and a `nextRecordsUrl`), as Salesforce pages child results.
pub fn project_paging_children(
    org: &Org,
    execution: &Execution,
    record: &Record,
    version: &str,
    paging: &mut ChildPaging,
) -> Result<Value, SoqlError> {
    project_with(org, execution, record, version, Some(paging))
}

fn project_with(
    org: &Org,
    execution: &Execution,
    record: &Record,
    version: &str,
    mut paging: Option<&mut ChildPaging>,
) -> Result<Value, SoqlError> {
    let object = org.describe(&execution.object).expect("resolved");
    let alias = execution.query.from.alias.as_deref();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        attributes(
            &execution.object,
            record.get("Id").and_then(Value::as_str),
            version,
        ),
    );
    for (index, item) in execution.query.select.iter().enumerate() {
        match item {
            SelectItem::Field { field, .. } => {
                match execution.select_paths.get(index).and_then(Option::as_ref) {
                    Some(path) => insert_path(org, &mut out, record, path, version),
                    None => {
                        let path = resolve(org, object, alias, field)?;
                        insert_path(org, &mut out, record, &path, version);
                    }
                }
            }
            SelectItem::SubQuery { query: sub, .. } => {
                let (child, parent_field, relationship) = child_relationship(org, object, sub)?;
                let parent_id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
                let mut sub = (**sub).clone();
                sub.from.object = child.name.clone();
                let mut inner = execute_query(org, &sub, execution.include_deleted)?;
                inner.ids.retain(|id| {
                    org.get(id)
                        .and_then(|r| r.get(&parent_field))
                        .and_then(Value::as_str)
                        == Some(parent_id)
                });
                if inner.ids.is_empty() {
                    out.insert(relationship, Value::Null);
                } else {
                    let children = Execution {
                        object: child.name.clone(),
                        total_size: inner.ids.len(),
                        ..inner
                    };
                    let shown = paging
                        .as_ref()
                        .map_or(children.ids.len(), |p| p.batch_size.max(1))
                        .min(children.ids.len());
                    let mut records = Vec::with_capacity(shown);
                    for id in &children.ids[..shown] {
                        if let Some(child_record) = org.get(id) {
                            records.push(project_with(
                                org,
                                &children,
                                child_record,
                                version,
                                paging.as_deref_mut(),
                            )?);
                        }
                    }
                    let mut result = json!({
                        "totalSize": children.total_size,
                        "done": shown == children.ids.len(),
                    });
                    if let Some(paging) =
                        paging.as_deref_mut().filter(|_| shown < children.ids.len())
                    {
                        let locator = format!("01g5g{}", random_token(13, ALPHANUMERIC));
                        result["nextRecordsUrl"] =
                            json!(format!("/services/data/v{version}/query/{locator}-{shown}"));
                        paging.opened.push((locator, children));
                    }
                    result["records"] = Value::Array(records);
                    out.insert(relationship, result);
                }
            }
            SelectItem::Aggregate { .. } => {}
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn insert_path(
    org: &Org,
    out: &mut Map<String, Value>,
    record: &Record,
    path: &ResolvedPath,
    version: &str,
) {
    let mut target = out;
    let mut current = Some(record);
    for (reference, relationship) in &path.hops {
        let parent = current
            .and_then(|r| r.get(reference))
            .and_then(Value::as_str)
            .and_then(|id| org.get(id));
        let entry = target.entry(relationship.clone()).or_insert(Value::Null);
        match parent {
            Some(parent) => {
                if entry.is_null() {
                    let object = org
                        .object_of_id(parent.get("Id").and_then(Value::as_str).unwrap_or_default())
                        .unwrap_or_default();
                    *entry = json!({"attributes": attributes(object, parent.get("Id").and_then(Value::as_str), version)});
                }
                current = Some(parent);
                target = entry.as_object_mut().expect("just made an object");
            }
            None => return, // an empty lookup is `null`, as Salesforce returns it
        }
    }
    let value = current
        .and_then(|r| r.get(&path.field.name))
        .cloned()
        .unwrap_or(Value::Null);
    let value = if path.field.field_type == "address" {
        // A compound address reads as an object of its component fields, as in the REST API
        // (`null` when every component is empty).
        let prefix = path.field.name.strip_suffix("Address").unwrap_or_default();
        let mut parts = Map::new();
        for (key, suffix) in [
            ("city", "City"),
            ("country", "Country"),
            ("geocodeAccuracy", "GeocodeAccuracy"),
            ("latitude", "Latitude"),
            ("longitude", "Longitude"),
            ("postalCode", "PostalCode"),
            ("state", "State"),
            ("street", "Street"),
        ] {
            let part = current
                .and_then(|r| r.get(&format!("{prefix}{suffix}")))
                .cloned()
                .unwrap_or(Value::Null);
            parts.insert(key.into(), part);
        }
        if parts.values().all(Value::is_null) {
            Value::Null
        } else {
            Value::Object(parts)
        }
    } else if path.field.field_type == "base64" {
        // Blob fields read as the URL of their content, as in the REST API.
        let id = current
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let object = org.object_of_id(id).unwrap_or_default();
        Value::String(format!(
            "/services/data/v{version}/sobjects/{object}/{id}/{}",
            path.field.name
        ))
    } else {
        value
    };
    target.insert(path.field.name.clone(), value);
}
