//! Salesforce field paths (`Owner.Email`) and JSONPaths checked against what is known of the
//! object: offline, the catalog of standard objects; for `etl validate --online` and before any
//! data moves, the org's own describe.

use std::sync::Arc;

use super::{inner_error, loc_at, node_at, Step};
use crate::config::diagnostic::{Diagnostic, SourceFile};
use crate::config::model::Pipeline;
use crate::config::suggest::closest;
use crate::config::yaml::Node;
use crate::salesforce::catalog::{self, ObjectInfo};

/// The object from the offline catalog, or a diagnostic when it is misspelt.
pub(super) fn check_object<'c>(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    out: &mut Vec<Diagnostic>,
) -> Option<&'c ObjectInfo> {
    let name = &pipeline.salesforce.object;
    if let Some(object) = catalog::standard_object(name) {
        return Some(object);
    }
    if name.ends_with("__c") {
        return None; // a custom object: only the org's describe knows it (`validate --online`).
    }
    let loc = loc_at(tree, &[Step::Key("salesforce"), Step::Key("object")]);
    let names = catalog::standard_object_names();
    let mut diagnostic = file.error(
        "salesforce-object",
        loc,
        format!("`{name}` is not a standard Salesforce object"),
    );
    if let Some(suggestion) = closest(name, names.iter().copied()) {
        diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
    }
    out.push(diagnostic.hint(format!(
        "object API names are case-sensitive; custom objects end in __c (`{name}__c`)"
    )));
    None
}

/// Result of resolving a field path against the catalog or the org's describe.
pub(super) struct PathProblem {
    /// Which segment is wrong.
    pub segment: usize,
    pub message: String,
    pub label: Option<String>,
    pub hint: Option<String>,
}

/// Where objects are described: the offline catalog (standard objects only; custom fields and
/// objects unknown) or, for `etl validate --online`, the org's own describe (everything).
pub trait Describes {
    /// The object called exactly `name`, if the source knows it.
    fn object(&mut self, name: &str) -> Option<Arc<ObjectInfo>>;
    /// True when the source also knows custom fields, relationships and objects.
    fn complete(&self) -> bool;
}

/// The offline catalog as a `Describes`.
pub(super) struct Offline;

impl Describes for Offline {
    fn object(&mut self, name: &str) -> Option<Arc<ObjectInfo>> {
        catalog::standard_object(name).map(|o| Arc::new(o.clone()))
    }

    fn complete(&self) -> bool {
        false
    }
}

/// Resolves `Owner.Email`-style paths from `object`; `Ok(None)` when part of it cannot be
/// known from `source` (custom fields offline, polymorphic relationships, unknown objects).
pub(super) fn resolve_path(
    source: &mut dyn Describes,
    object: &ObjectInfo,
    path: &[&str],
) -> Result<Option<catalog::FieldInfo>, PathProblem> {
    let complete = source.complete();
    let mut current = Arc::new(object.clone());
    for (i, segment) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        if !complete && (segment.ends_with("__c") || segment.ends_with("__r")) {
            return Ok(None);
        }
        if last {
            if let Some(field) = current.field(segment) {
                return Ok(Some(field.clone()));
            }
            let names: Vec<&str> = current.fields.iter().map(|f| f.name.as_str()).collect();
            let custom = format!("{segment}__c");
            let custom_match = names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(&custom))
                .copied();
            return Err(match closest(segment, names.iter().copied()) {
                Some(right) if right.eq_ignore_ascii_case(segment) => PathProblem {
                    segment: i,
                    message: format!("Salesforce field names are case-sensitive API names: `{segment}` should be `{right}`"),
                    label: Some(format!("did you mean `{right}`?")),
                    hint: Some("write fields as the API spells them, e.g. StageName, AccountId".into()),
                },
                _ if custom_match.is_some() => {
                    let right = custom_match.unwrap_or_default();
                    PathProblem {
                        segment: i,
                        message: format!("no field `{segment}` on {}: custom fields end in __c", current.name),
                        label: Some(format!("did you mean `{right}`?")),
                        hint: Some("custom fields must include their __c suffix, e.g. TaskType__c".into()),
                    }
                }
                Some(right) => PathProblem {
                    segment: i,
                    message: format!("no field `{segment}` on {}", current.name),
                    label: Some(format!("did you mean `{right}`?")),
                    hint: Some(format!("custom fields end in __c, e.g. `{segment}__c`")),
                },
                None if complete => PathProblem {
                    segment: i,
                    message: format!("the org has no field `{segment}` on {}", current.name),
                    label: None,
                    hint: Some("check the field's API name in Setup > Object Manager > Fields".into()),
                },
                None => PathProblem {
                    segment: i,
                    message: format!("`{segment}` is not a standard field of {}", current.name),
                    label: Some(format!("did you mean `{segment}__c`?")),
                    hint: Some("custom fields must include their __c suffix, e.g. TaskType__c".into()),
                },
            });
        }
        let target = match current.relationship(segment) {
            Some(reference) if reference.reference_to.len() == 1 => {
                reference.reference_to[0].clone()
            }
            Some(_) => return Ok(None), // polymorphic: the fields depend on the record
            None => {
                let relationships: Vec<&str> = current
                    .fields
                    .iter()
                    .filter_map(|f| f.relationship_name.as_deref())
                    .collect();
                let by_field = current
                    .field(segment)
                    .and_then(|f| f.relationship_name.as_deref());
                let suggestion =
                    by_field.or_else(|| closest(segment, relationships.iter().copied()));
                return Err(PathProblem {
                    segment: i,
                    message: format!("no relationship `{segment}` on {}", current.name),
                    label: suggestion.map(|s| format!("did you mean `{s}`?")),
                    hint: Some(format!(
                        "paths follow relationship names: {}",
                        relationships.join(", ")
                    )),
                });
            }
        };
        match source.object(&target) {
            Some(next) => current = next,
            None => return Ok(None), // outside what the source knows
        }
    }
    Ok(None)
}

/// Byte offset of segment `index` in a dotted path.
fn segment_offset(path: &[&str], index: usize) -> usize {
    path[..index].iter().map(|s| s.len() + 1).sum()
}

pub(super) fn path_diagnostic(
    file: &SourceFile,
    node: &Node,
    base_offset: usize,
    path: &[&str],
    problem: PathProblem,
) -> Diagnostic {
    let offset = base_offset + segment_offset(path, problem.segment);
    let width = path[problem.segment].chars().count();
    let mut diagnostic = inner_error(
        file,
        node,
        offset,
        width,
        "salesforce-field",
        problem.message,
    );
    if let Some(label) = problem.label {
        diagnostic = diagnostic.label(label);
    }
    diagnostic.maybe_hint(problem.hint)
}

/// The checks only the org can answer, for `etl validate --online` and before any data moves:
/// the object exists; every Salesforce field the pipeline maps or uses as its cursor exists
/// with that exact spelling (custom fields included), relationship paths resolve, and fields
/// synced back are createable / updateable as the pipeline's `sync_back` needs.
pub fn check_pipeline_online(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    source: &mut dyn Describes,
    out: &mut Vec<Diagnostic>,
) {
    let name = &pipeline.salesforce.object;
    let Some(object) = source.object(name) else {
        out.push(
            file.error(
                "salesforce-object",
                loc_at(tree, &[Step::Key("salesforce"), Step::Key("object")]),
                format!("the org has no object `{name}` (or this user cannot see it)"),
            )
            .hint("object API names are case-sensitive; custom objects end in __c"),
        );
        return;
    };
    if let Some(incremental) = &pipeline.salesforce.incremental {
        let base = [Step::Key("salesforce"), Step::Key("incremental")];
        let node = node_at(tree, &base)
            .filter(|n| n.as_str().is_some())
            .or_else(|| node_at(tree, &[base[0], base[1], Step::Key("field")]));
        let field = incremental.field();
        if let (Some(node), Err(problem)) = (node, resolve_path(source, &object, &[field])) {
            out.push(path_diagnostic(file, node, 0, &[field], problem));
        }
    }
    let back = &pipeline.sync.sync_back;
    for (i, mapping) in pipeline.fields.iter().enumerate() {
        let path = [Step::Key("fields"), Step::Index(i), Step::Key("salesforce")];
        let (Some(field), Some(node)) = (&mapping.salesforce, node_at(tree, &path)) else {
            continue;
        };
        if field.starts_with('$') {
            continue;
        }
        let segments: Vec<&str> = field.split('.').collect();
        match resolve_path(source, &object, &segments) {
            Err(problem) => out.push(path_diagnostic(file, node, 0, &segments, problem)),
            Ok(Some(info)) if mapping.sync_back && segments.len() == 1 => {
                if !info.createable && !info.updateable {
                    out.push(
                        file.error(
                            "sync-back",
                            node.loc,
                            format!("`{field}` is read-only in this org (describe: neither createable nor updateable) and cannot be synced back"),
                        )
                        .hint("remove `sync_back: true` from this mapping, or give the integration user edit access to the field"),
                    );
                } else if (back.update && !info.updateable) || (back.create && !info.createable) {
                    let (can, cannot) = if info.createable {
                        ("set when a record is created", "updated")
                    } else {
                        ("updated", "set when a record is created")
                    };
                    out.push(
                        file.error(
                            "sync-back",
                            node.loc,
                            format!("`{field}` can be {can} but not {cannot} in this org: Salesforce refuses it in those writes"),
                        )
                        .warning(),
                    );
                }
            }
            Ok(_) => {}
        }
    }
}

/// Checks a `$.a.b[0]` JSONPath: the syntax, and that its first name exists on the object.
pub(super) fn check_json_path(
    file: &SourceFile,
    node: &Node,
    text: &str,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let mut names: Vec<(usize, &str)> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 1;
    let mut bad = None;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                let start = i + 1;
                let end = text[start..]
                    .find(['.', '['])
                    .map_or(text.len(), |p| start + p);
                if end == start {
                    bad = Some(i);
                    break;
                }
                names.push((start, &text[start..end]));
                i = end;
            }
            b'[' => match text[i..].find(']') {
                Some(close) => {
                    let inside = &text[i + 1..i + close];
                    let quoted =
                        inside.len() >= 2 && inside.starts_with('\'') && inside.ends_with('\'');
                    if quoted {
                        names.push((i + 2, &inside[1..inside.len() - 1]));
                    } else if inside != "*" && inside.parse::<usize>().is_err() {
                        bad = Some(i);
                        break;
                    }
                    i += close + 1;
                }
                None => {
                    bad = Some(i);
                    break;
                }
            },
            _ => {
                bad = Some(i);
                break;
            }
        }
    }
    if let Some(at) = bad {
        out.push(
            inner_error(file, node, at, 1, "jsonpath", format!("`{text}` is not a JSONPath this tool reads"))
                .hint("write $.Field, $.Relationship.Field, $.Children.records[0].Field or [*] for every element"),
        );
        return;
    }
    let (Some(object), Some((offset, first))) = (object, names.first()) else {
        return;
    };
    if first.ends_with("__c") || first.ends_with("__r") {
        return;
    }
    let known: Vec<&str> = object
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .chain(
            object
                .fields
                .iter()
                .filter_map(|f| f.relationship_name.as_deref()),
        )
        .chain(object.child_relationships.iter().map(|(r, _)| r.as_str()))
        .collect();
    if !known.contains(first) {
        let mut diagnostic = inner_error(
            file,
            node,
            *offset,
            first.chars().count(),
            "salesforce-field",
            format!("no field or relationship `{first}` on {}", object.name),
        );
        if let Some(suggestion) = closest(first, known.iter().copied()) {
            diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
        }
        out.push(diagnostic);
    }
}
