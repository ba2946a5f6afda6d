//! A query's names checked and resolved against the describe, with Salesforce's own error
//! wording and positions: fields and relationship paths, literals of the right type, the
//! filters some objects require, and the plan a query runs by (its filter, order and paths).

use std::collections::HashSet;

use serde_json::Value;

use super::execute_query;
use super::filter::{in_key, Filter};
use crate::salesforce::catalog::{FieldInfo, ObjectInfo};
use crate::sandbox::salesforce::org::{Org, Record};
use crate::soql::{
    CompareOp, Condition, ErrorCode, FieldRef, Operand, Query, SelectItem, SoqlError,
    Value as Literal,
};

/// A field path resolved against the describe: the reference fields to follow, then the field.
#[derive(Debug, Clone)]
pub(super) struct ResolvedPath {
    /// (reference field, relationship name) pairs to walk.
    pub(super) hops: Vec<(String, String)>,
    pub(super) field: FieldInfo,
}

pub(super) const FIELD_HINT: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";
pub(super) const RELATIONSHIP_HINT: &str = "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.";

pub(super) fn field_error(field: &FieldRef, text: String) -> SoqlError {
    SoqlError::new(ErrorCode::InvalidField, text, field.span.start)
}

/// Salesforce lists `ContentDocumentLink` only for given documents or records: the query must
/// narrow it, in a condition that every result meets, to `ContentDocumentId` or
/// `LinkedEntityId` by `=` or `IN` (a list or a semi-join).
pub(super) fn check_required_filter(org: &Org, query: &Query) -> Result<(), SoqlError> {
    pub(super) fn narrowed_by_id(condition: &Condition) -> bool {
        let keyed = |operand: &Operand| {
            let name = operand.field().dotted();
            ["ContentDocumentId", "LinkedEntityId"]
                .iter()
                .any(|key| key.eq_ignore_ascii_case(&name))
        };
        match condition {
            Condition::And(parts) => parts.iter().any(narrowed_by_id),
            Condition::Compare {
                left,
                op: CompareOp::Eq,
                ..
            } => keyed(left),
            Condition::In {
                left,
                negated: false,
                ..
            }
            | Condition::InSubQuery {
                left,
                negated: false,
                ..
            } => keyed(left),
            _ => false,
        }
    }
    if org.object_name(&query.from.object) != Some("ContentDocumentLink") {
        return Ok(());
    }
    if query.where_clause.as_ref().is_some_and(narrowed_by_id) {
        return Ok(());
    }
    Err(SoqlError::unpositioned(
        ErrorCode::MalformedQuery,
        "Implementation restriction: ContentDocumentLink requires a filter by a single Id on ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the IN operator.",
    ))
}

pub(super) fn find_field<'a>(object: &'a ObjectInfo, name: &str) -> Option<&'a FieldInfo> {
    object
        .fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
}

pub(super) fn find_relationship<'a>(object: &'a ObjectInfo, name: &str) -> Option<&'a FieldInfo> {
    object.fields.iter().find(|f| {
        f.relationship_name
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(name))
    })
}

/// Resolves `path` on `object`, dropping a leading object name or alias.
pub(super) fn resolve(
    org: &Org,
    object: &ObjectInfo,
    alias: Option<&str>,
    field: &FieldRef,
) -> Result<ResolvedPath, SoqlError> {
    let mut segments: &[String] = &field.path;
    if segments.len() > 1
        && (segments[0].eq_ignore_ascii_case(&object.name)
            || alias.is_some_and(|a| a.eq_ignore_ascii_case(&segments[0])))
    {
        segments = &segments[1..];
    }
    let mut current = object;
    let mut hops = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if i + 1 == segments.len() {
            let info = find_field(current, segment).ok_or_else(|| {
                field_error(
                    field,
                    format!(
                        "No such column '{segment}' on entity '{}'. {FIELD_HINT}",
                        current.name
                    ),
                )
            })?;
            return Ok(ResolvedPath {
                hops,
                field: info.clone(),
            });
        }
        let reference = find_relationship(current, segment).ok_or_else(|| {
            field_error(
                field,
                format!(
                    "Didn't understand relationship '{segment}' in field path. {RELATIONSHIP_HINT}"
                ),
            )
        })?;
        let target = reference
            .reference_to
            .first()
            .and_then(|t| org.describe(t))
            .ok_or_else(|| {
                field_error(field, format!("Didn't understand relationship '{segment}' in field path. {RELATIONSHIP_HINT}"))
            })?;
        hops.push((
            reference.name.clone(),
            reference.relationship_name.clone().unwrap_or_default(),
        ));
        current = target;
    }
    Err(field_error(field, "empty field path".into()))
}

impl ResolvedPath {
    /// True when both paths name the same field through the same references.
    pub(super) fn same_as(&self, other: &ResolvedPath) -> bool {
        self.field.name == other.field.name && self.hops == other.hops
    }

    /// The value at this path on `record`, following references through the org.
    pub(super) fn value<'a>(&self, org: &'a Org, record: &'a Record) -> Option<&'a Value> {
        let mut current = record;
        for (reference, _) in &self.hops {
            let id = current.get(reference)?.as_str()?;
            current = org.get(id)?;
        }
        current.get(&self.field.name)
    }
}

/// One ORDER BY key resolved: the path, descending, and NULLS LAST if given.
pub(super) type OrderBy = (ResolvedPath, bool, Option<bool>);

pub(super) fn type_family(field: &FieldInfo) -> &'static str {
    match field.field_type.as_str() {
        "int" | "double" | "currency" | "percent" => "number",
        "boolean" => "boolean",
        "date" => "date",
        "datetime" => "datetime",
        "id" | "reference" => "id",
        _ => "string",
    }
}

pub(super) fn check_literal(
    field: &FieldRef,
    info: &FieldInfo,
    value: &Literal,
    value_offset: usize,
) -> Result<(), SoqlError> {
    let family = type_family(info);
    let bad = match (family, value) {
        (_, Literal::Null) => false,
        ("number", Literal::Number(_)) => false,
        ("number", _) => true,
        ("boolean", Literal::Bool(_)) => false,
        ("boolean", _) => true,
        ("date", Literal::Date(_) | Literal::Relative(_)) => false,
        ("datetime", Literal::DateTime(_) | Literal::Relative(_)) => false,
        ("date" | "datetime", _) => true,
        ("string" | "id", Literal::String(_)) => false,
        _ => true,
    };
    if !bad {
        return Ok(());
    }
    let name = field.path.last().map_or("", String::as_str);
    let text = match (family, value) {
        ("string" | "id", _) => format!("value of filter criterion for field '{name}' must be of type string and should be enclosed in quotes"),
        ("number", Literal::String(_)) => format!("value of filter criterion for field '{name}' must be of type {} and should not be enclosed in quotes", info.field_type.replace("currency", "double").replace("percent", "double")),
        ("date", Literal::DateTime(_)) => format!("value of filter criterion for field '{name}' must be of type date and should not be enclosed in quotes"),
        ("datetime", Literal::Date(_)) => format!("value of filter criterion for field '{name}' must be of type dateTime and should not be enclosed in quotes"),
        _ => format!("value of filter criterion for field '{name}' must be of type {} and should not be enclosed in quotes", info.field_type),
    };
    Err(SoqlError::new(ErrorCode::InvalidField, text, value_offset))
}

pub(super) struct Planner<'o> {
    pub(super) org: &'o Org,
    pub(super) object: &'o ObjectInfo,
    pub(super) alias: Option<String>,
    pub(super) include_deleted: bool,
}

impl<'o> Planner<'o> {
    pub(super) fn resolve(&self, field: &FieldRef) -> Result<ResolvedPath, SoqlError> {
        resolve(self.org, self.object, self.alias.as_deref(), field)
    }

    pub(super) fn filter(&self, condition: &Condition) -> Result<Filter, SoqlError> {
        Ok(match condition {
            Condition::And(parts) => Filter::And(
                parts
                    .iter()
                    .map(|p| self.filter(p))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Or(parts) => Filter::Or(
                parts
                    .iter()
                    .map(|p| self.filter(p))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Not(inner) => Filter::Not(Box::new(self.filter(inner)?)),
            Condition::Compare {
                left,
                op,
                value,
                value_span,
            } => {
                let path = self.resolve(left.field())?;
                let function = match left {
                    Operand::Function { name, .. } => Some(name.to_ascii_uppercase()),
                    Operand::Field(field) => {
                        if *op == CompareOp::Like && type_family(&path.field) != "string" {
                            return Err(field_error(
                                field,
                                format!(
                                    "invalid operator on {} field: LIKE",
                                    path.field.field_type
                                ),
                            ));
                        }
                        check_literal(field, &path.field, value, value_span.start)?;
                        None
                    }
                };
                Filter::Compare {
                    path,
                    function,
                    op: *op,
                    value: value.clone(),
                }
            }
            Condition::In {
                left,
                negated,
                values,
            } => {
                let path = self.resolve(left.field())?;
                for value in values {
                    check_literal(left.field(), &path.field, value, left.field().span.start)?;
                }
                let keys = values
                    .iter()
                    .map(|value| match value {
                        Literal::String(text) => Some(in_key(&path.field, text)),
                        _ => None,
                    })
                    .collect();
                Filter::In {
                    path,
                    negated: *negated,
                    values: values.clone(),
                    keys,
                }
            }
            Condition::InSubQuery {
                left,
                negated,
                query,
            } => {
                let path = self.resolve(left.field())?;
                check_required_filter(self.org, query)?;
                let inner = execute_query(self.org, query, self.include_deleted)?;
                let ids = match &inner.query.select.first() {
                    Some(SelectItem::Field { field, .. }) => {
                        let inner_object = self.org.describe(&inner.object).expect("resolved");
                        let inner_path = resolve(
                            self.org,
                            inner_object,
                            inner.query.from.alias.as_deref(),
                            field,
                        )?;
                        inner
                            .ids
                            .iter()
                            .filter_map(|id| self.org.get(id))
                            .filter_map(|r| {
                                inner_path
                                    .value(self.org, r)?
                                    .as_str()
                                    .map(str::to_ascii_lowercase)
                            })
                            .collect()
                    }
                    _ => HashSet::new(),
                };
                Filter::InSubQuery {
                    path,
                    negated: *negated,
                    ids,
                }
            }
            Condition::Includes {
                left,
                excludes,
                values,
            } => Filter::Includes {
                path: self.resolve(left.field())?,
                excludes: *excludes,
                values: values.clone(),
            },
        })
    }
}
