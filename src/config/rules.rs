//! The rules a pipeline must follow beyond its shape: Salesforce API names as the org spells
//! them, no field mapped twice, SOQL that parses, templates that compile, lookups and
//! dependencies that exist and do not loop, and secrets kept out of files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::diagnostic::{Diagnostic, SourceFile};
use super::model::{
    DeletePolicy, Deletes, FullListing, HaloConnection, HardDeleteCheck, ImportMode, Pipeline,
    Project, SalesforceConnection, SalesforceFlow, MAX_LISTING_LOOKBACK_SECONDS,
};
use super::suggest::closest;
use super::yaml::{Loc, Node};
use crate::salesforce::catalog::{self, ObjectInfo};
use crate::soql::{self, SoqlError};
use crate::transform::template;

/// A pipeline file as loaded: its text, located tree and typed model.
#[derive(Debug, Clone)]
pub struct LoadedPipeline {
    pub source: SourceFile,
    pub tree: Node,
    pub pipeline: Pipeline,
}

/// One step of a path into the YAML tree.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The node at `path`, if present.
pub fn node_at<'n>(tree: &'n Node, path: &[Step]) -> Option<&'n Node> {
    path.iter().try_fold(tree, |node, step| match step {
        Step::Key(key) => node.get(key),
        Step::Index(i) => node.at(*i),
    })
}

/// Where the value at `path` is, falling back to the nearest existing parent.
fn loc_at(tree: &Node, path: &[Step]) -> Loc {
    (0..=path.len())
        .rev()
        .find_map(|n| node_at(tree, &path[..n]).map(|node| node.loc))
        .unwrap_or(tree.loc)
}

/// Line and column of byte `offset` inside the string value `node`, accounting for the quote
/// that opens a quoted scalar. Block scalars are located at their first content line.
fn inner_position(file: &SourceFile, node: &Node, offset: usize) -> (usize, usize) {
    let value = node.as_str().unwrap_or("");
    let offset = offset.min(value.len());
    let quoted = matches!(
        file.text.as_bytes().get(node.loc.offset),
        Some(b'\'' | b'"')
    );
    let before = &value[..offset];
    let newlines = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let chars = before[line_start..].chars().count();
    if newlines == 0 {
        (node.loc.line, node.loc.column + chars + usize::from(quoted))
    } else {
        (node.loc.line + newlines, node.loc.column + chars)
    }
}

/// A diagnostic pointing `width` bytes into the string value `node` at `offset`.
fn inner_error(
    file: &SourceFile,
    node: &Node,
    offset: usize,
    width: usize,
    code: &'static str,
    message: String,
) -> Diagnostic {
    let (line, column) = inner_position(file, node, offset);
    file.error_at(code, line, column, width, message)
}

fn soql_diagnostic(file: &SourceFile, node: &Node, query: &str, error: &SoqlError) -> Diagnostic {
    let rest = &query[error.offset.min(query.len())..];
    let width = rest
        .split(|c: char| c.is_whitespace() || c == ',' || c == ')')
        .next()
        .map_or(1, |t| t.chars().count().max(1));
    inner_error(
        file,
        node,
        error.offset,
        width,
        "soql",
        format!(
            "SOQL does not parse: {} ({})",
            error.text,
            error.code.as_str()
        ),
    )
    .maybe_hint(error.hint.clone())
}

/// Checks everything that can be known about one pipeline file on its own.
pub fn check_pipeline(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    out: &mut Vec<Diagnostic>,
) {
    let name_ok = pipeline
        .pipeline
        .starts_with(|c: char| c.is_ascii_lowercase())
        && pipeline
            .pipeline
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        out.push(
            file.error("pipeline-name", loc_at(tree, &[Step::Key("pipeline")]), format!("`{}` is not a valid pipeline name", pipeline.pipeline))
                .hint("use lower-case letters, digits and _, starting with a letter: it names staging tables"),
        );
    }
    let object = check_object(file, tree, pipeline, out);
    check_soql(file, tree, pipeline, object, out);
    check_incremental(file, tree, pipeline, object, out);
    check_fields(file, tree, pipeline, object, out);
    check_match_keys(file, tree, pipeline, out);
    check_sync_back(file, tree, pipeline, object, out);
    check_listing(file, tree, pipeline, out);
    check_selection(file, tree, pipeline, object, out);
    check_deletes(file, tree, pipeline, object, out);
}

/// The object form of `deletes`: a readable hard-delete schedule, and `from_halo` that can
/// act — `deactivate` needs the Salesforce field to set, and any policy needs sync back on.
fn check_deletes(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(Deletes::Detailed(settings)) = &pipeline.deletes else {
        return;
    };
    let at = |key| loc_at(tree, &[Step::Key("deletes"), Step::Key(key)]);
    if let Some(check) = &settings.hard_delete_check {
        if HardDeleteCheck::parse(check).is_none() {
            out.push(
                file.error(
                    "hard-delete-check",
                    at("hard_delete_check"),
                    format!("`{check}` is not `every_run`, `never` or an interval"),
                )
                .hint("e.g. `hard_delete_check: 24h` (units s, m, h, d)"),
            );
        }
    }
    let from_halo = settings.from_halo.unwrap_or_default();
    if from_halo == DeletePolicy::Deactivate && settings.salesforce_inactive.is_none() {
        out.push(
            file.error(
                "deletes",
                at("from_halo"),
                format!(
                    "`from_halo: deactivate` needs the {} field that marks a record inactive",
                    pipeline.salesforce.object
                ),
            )
            .hint("add e.g. `salesforce_inactive: { field: Active__c, inactive: \"No\", active: \"Yes\" }`, or use `from_halo: delete` or `ignore`"),
        );
    }
    let back = &pipeline.sync.sync_back;
    if from_halo != DeletePolicy::Ignore && !(back.create || back.update) {
        out.push(
            file.error(
                "deletes",
                at("from_halo"),
                "`from_halo` has no effect: this pipeline does not sync back",
            )
            .hint("switch on `sync.sync_back` (create or update), or remove `from_halo`")
            .warning(),
        );
    }
    if let (Some(inactive), Some(object)) = (&settings.salesforce_inactive, object) {
        // Custom fields are known to the org only (`validate --online`).
        if object.field(&inactive.field).is_none() && !inactive.field.ends_with("__c") {
            let known = object.fields.iter().map(|f| f.name.as_str());
            let mut diagnostic = file.error(
                "salesforce-field",
                loc_at(
                    tree,
                    &[
                        Step::Key("deletes"),
                        Step::Key("salesforce_inactive"),
                        Step::Key("field"),
                    ],
                ),
                format!("no field `{}` on {}", inactive.field, object.name),
            );
            if let Some(suggestion) = closest(&inactive.field, known) {
                diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
            }
            out.push(diagnostic);
        }
    }
}

/// The sync-back settings: stage names that include their default and name a field of the
/// object, and `sync_back.match` fields that sync back writes.
fn check_sync_back(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let stages_at = |key| [Step::Key("sync"), Step::Key("stages"), Step::Key(key)];
    if let Some(stages) = &pipeline.sync.stages {
        if stages.names.is_empty() {
            out.push(
                file.error("stages", loc_at(tree, &stages_at("names")), "no stage names")
                    .hint("list the Salesforce stages, e.g. `names: [Prospecting, Qualification, Closed Won, Closed Lost]`"),
            );
        } else if !stages
            .names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&stages.default))
        {
            let mut diagnostic = file.error(
                "stages",
                loc_at(tree, &stages_at("default")),
                format!("default stage `{}` is not one of `names`", stages.default),
            );
            if let Some(suggestion) =
                closest(&stages.default, stages.names.iter().map(String::as_str))
            {
                diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
            }
            out.push(diagnostic.hint("the default must be one of the stage names"));
        }
        if let Some(object) = object {
            if object.field(&stages.salesforce).is_none() {
                let known = object.fields.iter().map(|f| f.name.as_str());
                let mut diagnostic = file.error(
                    "salesforce-field",
                    loc_at(tree, &stages_at("salesforce")),
                    format!("no field `{}` on {}", stages.salesforce, object.name),
                );
                if let Some(suggestion) = closest(&stages.salesforce, known) {
                    diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
                }
                out.push(diagnostic);
            }
        }
    }
    let written: Vec<&str> = pipeline
        .fields
        .iter()
        .filter(|m| m.sync_back && m.template.is_none())
        .filter_map(|m| m.salesforce.as_deref())
        .chain(pipeline.sync.stages.iter().map(|s| s.salesforce.as_str()))
        .collect();
    for (i, field) in pipeline.sync.sync_back.match_on.iter().enumerate() {
        if written.contains(&field.as_str()) {
            continue;
        }
        let loc = loc_at(
            tree,
            &[
                Step::Key("sync"),
                Step::Key("sync_back"),
                Step::Key("match"),
                Step::Index(i),
            ],
        );
        let mut diagnostic = file.error(
            "match-key",
            loc,
            format!("sync-back match field `{field}` is not written by sync back"),
        );
        if let Some(suggestion) = closest(field, written.iter().copied()) {
            diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
        }
        out.push(diagnostic.hint(
            "records are matched on the values sync back sends: map this field with `sync_back: true`",
        ));
    }
}

/// The sync back's listing settings: a readable full-listing schedule and a lookback that is
/// a duration of at most an hour.
fn check_listing(file: &SourceFile, tree: &Node, pipeline: &Pipeline, out: &mut Vec<Diagnostic>) {
    let at = |key| loc_at(tree, &[Step::Key("sync"), Step::Key(key)]);
    if let Some(text) = &pipeline.sync.full_listing {
        if FullListing::parse(text).is_none() {
            out.push(
                file.error(
                    "full-listing",
                    at("full_listing"),
                    format!("`{text}` is not `every_run` or an interval"),
                )
                .hint("e.g. `full_listing: 24h` (units s, m, h, d)"),
            );
        }
    }
    if let Some(text) = &pipeline.sync.listing_lookback {
        match parse_duration(text) {
            None => out.push(
                file.error(
                    "duration",
                    at("listing_lookback"),
                    format!("`{text}` is not a duration"),
                )
                .hint("write a number and a unit: 30s, 1m or 10m"),
            ),
            Some(seconds) if seconds > MAX_LISTING_LOOKBACK_SECONDS => out.push(
                file.error(
                    "duration",
                    at("listing_lookback"),
                    format!("`{text}` is longer than an hour"),
                )
                .hint(
                    "a lookback that long lists most records anyway: use `full_listing: every_run`",
                ),
            ),
            Some(_) => {}
        }
    }
}

/// The object from the offline catalog, or a diagnostic when it is misspelt.
fn check_object<'c>(
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
struct PathProblem {
    /// Which segment is wrong.
    segment: usize,
    message: String,
    label: Option<String>,
    hint: Option<String>,
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
struct Offline;

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
fn resolve_path(
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

fn path_diagnostic(
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

fn check_soql(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let side = &pipeline.salesforce;
    if side.where_clause.is_some() && side.query.is_some() {
        out.push(
            file.error(
                "soql",
                loc_at(tree, &[Step::Key("salesforce"), Step::Key("query")]),
                "both `where` and `query` are given",
            )
            .hint("use `where` for a condition, or put the condition inside `query`"),
        );
    }
    let mut field_refs: Vec<(Node, soql::FieldRef)> = Vec::new();
    if let (Some(text), Some(node)) = (
        &side.where_clause,
        node_at(tree, &[Step::Key("salesforce"), Step::Key("where")]),
    ) {
        match soql::parse_condition(text) {
            Ok(condition) => {
                let mut refs = Vec::new();
                condition.collect_fields(&mut refs);
                field_refs.extend(refs.into_iter().map(|r| (node.clone(), r.clone())));
            }
            Err(error) => out.push(soql_diagnostic(file, node, text, &error)),
        }
    }
    if let (Some(text), Some(node)) = (
        &side.query,
        node_at(tree, &[Step::Key("salesforce"), Step::Key("query")]),
    ) {
        match soql::parse(text) {
            Ok(query) => {
                if query.from.object != side.object {
                    out.push(
                        inner_error(
                            file,
                            node,
                            query.from.span.start,
                            query.from.object.chars().count(),
                            "soql",
                            format!(
                                "the query reads `{}` but the pipeline's object is `{}`",
                                query.from.object, side.object
                            ),
                        )
                        .hint("make FROM name the same object as `salesforce.object`"),
                    );
                } else {
                    field_refs.extend(
                        query
                            .field_refs()
                            .into_iter()
                            .map(|r| (node.clone(), r.clone())),
                    );
                }
            }
            Err(error) => out.push(soql_diagnostic(file, node, text, &error)),
        }
    }
    let Some(object) = object else { return };
    for (node, field) in field_refs {
        let path: Vec<&str> = field.path.iter().map(String::as_str).collect();
        if let Err(problem) = resolve_path(&mut Offline, object, &path) {
            out.push(path_diagnostic(
                file,
                &node,
                field.span.start,
                &path,
                problem,
            ));
        }
    }
}

fn check_incremental(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(incremental) = &pipeline.salesforce.incremental else {
        return;
    };
    let base = [Step::Key("salesforce"), Step::Key("incremental")];
    if pipeline.salesforce.query.is_some() {
        // A read of changes builds its own query around the cursor.
        out.push(
            file.error(
                "incremental",
                loc_at(tree, &base),
                "`incremental` reads changes with its own query, so it cannot go with a whole `query`",
            )
            .hint("write the fields in `fields` and the condition in `where`, or drop `incremental`"),
        );
    }
    let field_node = node_at(tree, &base)
        .filter(|n| n.as_str().is_some())
        .or_else(|| node_at(tree, &[base[0], base[1], Step::Key("field")]));
    if let (Some(object), Some(node)) = (object, field_node) {
        let field = incremental.field();
        match resolve_path(&mut Offline, object, &[field]) {
            Err(problem) => out.push(path_diagnostic(file, node, 0, &[field], problem)),
            Ok(Some(info)) if !matches!(info.field_type.as_str(), "datetime" | "date") => out.push(
                file.error(
                    "incremental",
                    node.loc,
                    format!(
                        "`{field}` is a {} field, not a date or datetime",
                        info.field_type
                    ),
                )
                .hint("use SystemModstamp (or LastModifiedDate) as the cursor"),
            ),
            Ok(_) => {}
        }
    }
    if let super::model::Incremental::Detailed(cursor) = incremental {
        if let Some(lookback) = &cursor.lookback {
            if parse_duration(lookback).is_none() {
                let loc = loc_at(tree, &[base[0], base[1], Step::Key("lookback")]);
                out.push(
                    file.error("duration", loc, format!("`{lookback}` is not a duration"))
                        .hint("write a number and a unit: 30s, 10m, 2h or 1d"),
                );
            }
        }
    }
}

/// Seconds in a duration written as `30s`, `10m`, `2h` or `1d`.
/// `300/5m` → 300 requests per 300 seconds.
pub fn parse_rate(text: &str) -> Option<(u32, u64)> {
    let (requests, window) = text.split_once('/')?;
    let requests: u32 = requests.trim().parse().ok().filter(|n| *n > 0)?;
    let seconds = parse_duration(window.trim()).filter(|s| *s > 0)?;
    Some((requests, seconds))
}

pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// Checks a `$.a.b[0]` JSONPath: the syntax, and that its first name exists on the object.
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

fn check_json_path(
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

fn check_fields(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    let imports = pipeline.sync.import != Some(ImportMode::Off);
    let mut salesforce_seen: HashMap<String, usize> = HashMap::new();
    let mut sync_back_seen: HashMap<String, usize> = HashMap::new();
    let mut halo_seen: HashMap<String, usize> = HashMap::new();
    for (i, mapping) in pipeline.fields.iter().enumerate() {
        let path = |key| [Step::Key("fields"), Step::Index(i), Step::Key(key)];
        let entry_loc = loc_at(tree, &[Step::Key("fields"), Step::Index(i)]);
        if mapping.halo.is_none() {
            out.push(
                file.error("field-mapping", entry_loc, "this mapping has no `halo` field")
                    .hint("name the Halo field the value goes to, e.g. `halo: name` or `halo: customfields.CFStage`"),
            );
        }
        if mapping.salesforce.is_none() && mapping.template.is_none() && mapping.default.is_none() {
            out.push(
                file.error("field-mapping", entry_loc, "this mapping has no source")
                    .hint("give a `salesforce` field, a `template`, or a constant `default`"),
            );
        }
        if mapping.if_not_found.is_none() && node_at(tree, &path("if_not_found")).is_some() {
            out.push(
                file.error(
                    "if-not-found",
                    loc_at(tree, &path("if_not_found")),
                    "`if_not_found` has no value (YAML reads `null` as nothing)",
                )
                .hint(
                    "write `if_not_found: empty` to leave the field empty, or `error` / `default`",
                ),
            );
        }
        if let Some(policy) = mapping.if_not_found {
            let loc = loc_at(tree, &path("if_not_found"));
            if mapping.lookup.is_none() {
                out.push(
                    file.error(
                        "if-not-found",
                        loc,
                        "`if_not_found` has no effect without a `lookup`",
                    )
                    .hint("remove it, or add the `lookup` it is meant for")
                    .warning(),
                );
            } else if policy == crate::config::model::NotFound::Default && mapping.default.is_none()
            {
                out.push(
                    file.error("if-not-found", loc, "`if_not_found: default` needs a `default` value")
                        .hint("add `default: <value>`, or use `if_not_found: empty` to leave the field empty"),
                );
            }
        }
        if let (Some(field), Some(node)) = (&mapping.salesforce, node_at(tree, &path("salesforce")))
        {
            if field.starts_with('$') {
                check_json_path(file, node, field, object, out);
            } else if let Some(object) = object {
                let segments: Vec<&str> = field.split('.').collect();
                match resolve_path(&mut Offline, object, &segments) {
                    Err(problem) => out.push(path_diagnostic(file, node, 0, &segments, problem)),
                    Ok(Some(info)) if mapping.sync_back && !info.createable && !info.updateable => out.push(
                        file.error("sync-back", node.loc, format!("`{field}` is read-only in Salesforce and cannot be synced back"))
                            .hint("remove `sync_back: true` from this mapping"),
                    ),
                    Ok(_) => {}
                }
            }
            if mapping.sync_back && (field.starts_with('$') || field.contains('.')) {
                out.push(
                    file.error("sync-back", node.loc, format!("`{field}` is a path into a related record and cannot be synced back"))
                        .hint("sync back only fields of the object itself, e.g. AccountId rather than Account.Name"),
                );
            }
            let key = field.to_ascii_lowercase();
            if imports {
                report_duplicate(file, tree, &mut salesforce_seen, key.clone(), i, "salesforce", "Salesforce field", "to use a value twice, map it once and read it elsewhere with a template: \"{{ record.Field }}\"", out);
            } else if mapping.sync_back {
                report_duplicate(
                    file,
                    tree,
                    &mut sync_back_seen,
                    key,
                    i,
                    "salesforce",
                    "Salesforce field synced back",
                    "only one Halo field can write a Salesforce field",
                    out,
                );
            }
        }
        if mapping.sync_back && mapping.template.is_some() {
            out.push(
                file.error("sync-back", loc_at(tree, &path("sync_back")), "a templated value cannot be synced back")
                    .hint("a template cannot be reversed; map the Salesforce field directly to sync it back"),
            );
        }
        if mapping.sync_back && mapping.salesforce.is_none() {
            out.push(
                file.error(
                    "sync-back",
                    loc_at(tree, &path("sync_back")),
                    "`sync_back` needs a `salesforce` field to write to",
                )
                .hint("add `salesforce: <FieldName>` to this mapping"),
            );
        }
        if let Some(halo) = &mapping.halo {
            report_duplicate(
                file,
                tree,
                &mut halo_seen,
                halo.to_ascii_lowercase(),
                i,
                "halo",
                "Halo field",
                "each Halo field takes its value from one mapping",
                out,
            );
        }
        if let (Some(text), Some(node)) = (&mapping.template, node_at(tree, &path("template"))) {
            if let Err(error) = template::check(text) {
                let line_in_template = error.line.unwrap_or(1);
                let (line, column) = if line_in_template <= 1 {
                    (node.loc.line, node.loc.column)
                } else {
                    (node.loc.line + line_in_template - 1, node.loc.column)
                };
                let width = text
                    .lines()
                    .nth(line_in_template - 1)
                    .map_or(1, |l| l.trim_end().chars().count());
                out.push(
                    file.error_at("template", line, column, width, format!("template does not compile: {}", error.message))
                        .hint(format!("line {line_in_template} of the template; templates use minijinja (Jinja2) syntax")),
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report_duplicate(
    file: &SourceFile,
    tree: &Node,
    seen: &mut HashMap<String, usize>,
    key: String,
    index: usize,
    side: &str,
    what: &str,
    hint: &str,
    out: &mut Vec<Diagnostic>,
) {
    match seen.get(&key) {
        Some(first) => {
            let here = node_at(
                tree,
                &[Step::Key("fields"), Step::Index(index), Step::Key(side)],
            );
            let there = loc_at(
                tree,
                &[Step::Key("fields"), Step::Index(*first), Step::Key(side)],
            );
            let value = here.and_then(Node::as_str).unwrap_or(&key).to_string();
            let loc = here.map_or(tree.loc, |n| n.loc);
            out.push(
                file.error(
                    "mapped-twice",
                    loc,
                    format!("{what} `{value}` is mapped twice"),
                )
                .label(format!("first mapped on line {}", there.line))
                .hint(hint.to_string()),
            );
        }
        None => {
            seen.insert(key, index);
        }
    }
}

fn check_match_keys(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    out: &mut Vec<Diagnostic>,
) {
    let mapped: HashSet<&str> = pipeline
        .fields
        .iter()
        .filter_map(|f| f.halo.as_deref())
        .chain(pipeline.halo.defaults.keys().map(String::as_str))
        .collect();
    for (i, key) in pipeline.halo.match_on.iter().enumerate() {
        if !mapped.contains(key.as_str()) {
            let loc = loc_at(
                tree,
                &[Step::Key("halo"), Step::Key("match"), Step::Index(i)],
            );
            let mut diagnostic = file.error(
                "match-key",
                loc,
                format!("match key `{key}` is not a mapped Halo field"),
            );
            if let Some(suggestion) = closest(key, mapped.iter().copied()) {
                diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
            }
            out.push(diagnostic.hint(
                "records are matched on values the pipeline writes: map this field in `fields`",
            ));
        }
    }
}

/// A create whose answer is lost (the run stopped after the write, before staging its link) is
/// found again by the next run only by match keys, or by the Salesforce Id the Halo record
/// keeps; without either it is created a second time. Only warned: a pipeline may accept that.
fn check_lost_creates(
    loaded: &LoadedPipeline,
    default_import: ImportMode,
    out: &mut Vec<Diagnostic>,
) {
    let (file, tree, pipeline) = (&loaded.source, &loaded.tree, &loaded.pipeline);
    let import = pipeline.sync.import.unwrap_or(default_import);
    let imports_creates = matches!(import, ImportMode::Create | ImportMode::Upsert);
    // Halo records keeping the Salesforce Id are relinked from the listing the sync back takes.
    let relinks = pipeline.syncs_back() && pipeline.kept_id_path("Id").is_some();
    if imports_creates && pipeline.halo.match_on.is_empty() && !relinks {
        out.push(
            file.error(
                "lost-create",
                loc_at(tree, &[Step::Key("halo"), Step::Key("match")]),
                "a Halo record created by a run stopped before it staged the new id is created again by the next run",
            )
            .hint("add `halo.match` with the Halo fields that identify a record (e.g. `match: [name]`), or keep the Salesforce Id in a Halo field (`{ salesforce: Id, halo: customfields.CFSalesforceId }`) and switch on sync back")
            .warning(),
        );
    }
    let back = &pipeline.sync.sync_back;
    let import_matches = import != ImportMode::Off && !pipeline.halo.match_on.is_empty();
    if back.create && back.match_on.is_empty() && !import_matches {
        out.push(
            file.error(
                "lost-create",
                loc_at(tree, &[Step::Key("sync"), Step::Key("sync_back"), Step::Key("match")]),
                "a Salesforce record created by a run stopped before it wrote the new Id to Halo is created again by the next run",
            )
            .hint("add `sync_back.match` with Salesforce fields that identify a record (e.g. `match: [Subject, AccountId]`), or import the pipeline with `halo.match`")
            .warning(),
        );
    }
}

/// 15- or 18-character Salesforce Ids, with the object's key prefix when it is known.
fn check_selection(
    file: &SourceFile,
    tree: &Node,
    pipeline: &Pipeline,
    object: Option<&ObjectInfo>,
    out: &mut Vec<Diagnostic>,
) {
    for (key, ids) in [
        ("only", &pipeline.selection.only),
        ("exclude", &pipeline.selection.exclude),
    ] {
        for (i, id) in ids.iter().enumerate() {
            let loc = loc_at(
                tree,
                &[Step::Key("selection"), Step::Key(key), Step::Index(i)],
            );
            let shaped =
                matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric());
            if !shaped {
                out.push(
                    file.error(
                        "salesforce-id",
                        loc,
                        format!("`{id}` is not a Salesforce Id"),
                    )
                    .hint("Ids are 15 or 18 letters and digits, e.g. 001xx000003DGb2AAG"),
                );
            } else if let Some(object) = object.filter(|o| !id.starts_with(&o.key_prefix)) {
                out.push(
                    file.error(
                        "salesforce-id",
                        loc,
                        format!("`{id}` is not an {} Id", object.name),
                    )
                    .hint(format!(
                        "{} Ids start with {}",
                        object.name, object.key_prefix
                    )),
                );
            }
        }
    }
}

/// Rules across pipeline files (unique names, known `depends_on` and `lookup` targets, no
/// cycles) and those that need the project's defaults.
/// `other_names` are pipelines whose files have errors of their own: known, but not checkable.
pub fn check_workspace(
    pipelines: &[LoadedPipeline],
    other_names: &[String],
    default_import: ImportMode,
    out: &mut Vec<Diagnostic>,
) {
    for loaded in pipelines {
        check_lost_creates(loaded, default_import, out);
    }
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, loaded) in pipelines.iter().enumerate() {
        let name = loaded.pipeline.pipeline.as_str();
        if let Some(first) = by_name.get(name) {
            let other = &pipelines[*first].source.path;
            out.push(
                loaded
                    .source
                    .error(
                        "duplicate-pipeline",
                        loc_at(&loaded.tree, &[Step::Key("pipeline")]),
                        format!("pipeline `{name}` is defined twice"),
                    )
                    .hint(format!(
                        "also defined in {}; pipeline names must be unique",
                        other.display()
                    )),
            );
        } else {
            by_name.insert(name, i);
        }
    }
    let names: Vec<&str> = by_name
        .keys()
        .copied()
        .chain(other_names.iter().map(String::as_str))
        .collect();
    let unknown = |file: &SourceFile, loc: Loc, target: &str, what: &str| {
        let mut diagnostic = file.error(
            "unknown-pipeline",
            loc,
            format!("{what} names pipeline `{target}`, which does not exist"),
        );
        if let Some(suggestion) = closest(target, names.iter().copied()) {
            diagnostic = diagnostic.label(format!("did you mean `{suggestion}`?"));
        }
        let mut known = names.clone();
        known.sort_unstable();
        diagnostic.hint(format!("known pipelines: {}", known.join(", ")))
    };
    for loaded in pipelines {
        let (tree, file) = (&loaded.tree, &loaded.source);
        for (i, dependency) in loaded.pipeline.depends_on.iter().enumerate() {
            if !names.contains(&dependency.as_str()) {
                out.push(unknown(
                    file,
                    loc_at(tree, &[Step::Key("depends_on"), Step::Index(i)]),
                    dependency,
                    "`depends_on`",
                ));
            }
        }
        let before = ancestors(pipelines, &by_name, &loaded.pipeline.pipeline);
        for (i, mapping) in loaded.pipeline.fields.iter().enumerate() {
            let Some(target) = mapping.lookup.as_ref().and_then(|l| l.pipeline()) else {
                continue;
            };
            let loc = loc_at(
                tree,
                &[Step::Key("fields"), Step::Index(i), Step::Key("lookup")],
            );
            if !names.contains(&target) {
                out.push(unknown(file, loc, target, "`lookup`"));
            } else if by_name.contains_key(target)
                && !before.contains(target)
                && target != loaded.pipeline.pipeline
            {
                out.push(
                    file.error(
                        "lookup-order",
                        loc,
                        format!("`lookup: {target}` reads a pipeline that may run after this one"),
                    )
                    .hint(format!(
                        "add `{target}` to depends_on so its id map is filled first"
                    ))
                    .warning(),
                );
            }
        }
    }
    report_cycles(pipelines, &by_name, out);
}

/// Every pipeline `name` depends on, directly or not.
fn ancestors<'p>(
    pipelines: &'p [LoadedPipeline],
    by_name: &HashMap<&str, usize>,
    name: &str,
) -> HashSet<&'p str> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = by_name
        .get(name)
        .map(|i| {
            pipelines[*i]
                .pipeline
                .depends_on
                .iter()
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    while let Some(next) = stack.pop() {
        if let Some(i) = by_name.get(next) {
            let loaded = &pipelines[*i];
            if seen.insert(loaded.pipeline.pipeline.as_str()) {
                stack.extend(loaded.pipeline.depends_on.iter().map(String::as_str));
            }
        }
    }
    seen
}

fn report_cycles(
    pipelines: &[LoadedPipeline],
    by_name: &HashMap<&str, usize>,
    out: &mut Vec<Diagnostic>,
) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        index: usize,
        pipelines: &[LoadedPipeline],
        by_name: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        out: &mut Vec<Diagnostic>,
    ) {
        marks[index] = Mark::Active;
        stack.push(index);
        let loaded = &pipelines[index];
        for (d, dependency) in loaded.pipeline.depends_on.iter().enumerate() {
            let Some(&next) = by_name.get(dependency.as_str()) else {
                continue;
            };
            match marks[next] {
                Mark::Active => {
                    let from = stack.iter().position(|&s| s == next).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..]
                        .iter()
                        .map(|&s| pipelines[s].pipeline.pipeline.as_str())
                        .collect();
                    cycle.push(dependency);
                    let loc = loc_at(&loaded.tree, &[Step::Key("depends_on"), Step::Index(d)]);
                    out.push(
                        loaded
                            .source
                            .error("dependency-cycle", loc, format!("dependency cycle: {}", cycle.join(" → ")))
                            .hint("pipelines run in depends_on order, so a cycle can never start; remove one link"),
                    );
                }
                Mark::New => visit(next, pipelines, by_name, marks, stack, out),
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[index] = Mark::Done;
    }
    let mut marks = vec![Mark::New; pipelines.len()];
    for index in 0..pipelines.len() {
        if marks[index] == Mark::New && by_name.values().any(|&i| i == index) {
            visit(index, pipelines, by_name, &mut marks, &mut Vec::new(), out);
        }
    }
}

/// Order in which pipelines run: every pipeline after those it depends on, otherwise in the
/// order given. Pipelines in a cycle are left out (validation reports the cycle).
pub fn run_order(pipelines: &[Pipeline]) -> Vec<usize> {
    let mut done: Vec<usize> = Vec::new();
    let mut progress = true;
    while progress {
        progress = false;
        for (i, pipeline) in pipelines.iter().enumerate() {
            if done.contains(&i) {
                continue;
            }
            let ready = pipeline.depends_on.iter().all(|d| {
                pipelines
                    .iter()
                    .position(|p| &p.pipeline == d)
                    .is_none_or(|j| done.contains(&j))
            });
            if ready {
                done.push(i);
                progress = true;
            }
        }
    }
    done
}

/// Rules for the project file: the settings each sign-in flow needs, and secrets that should
/// come from the environment rather than the file.
pub fn check_project(file: &SourceFile, tree: &Node, project: &Project, out: &mut Vec<Diagnostic>) {
    let sf_path = [Step::Key("connections"), Step::Key("salesforce")];
    if let Some(salesforce) = &project.connections.salesforce {
        check_flow(file, tree, salesforce, out);
        for key in ["client_secret", "password"] {
            literal_secret(file, tree, &[sf_path[0], sf_path[1], Step::Key(key)], out);
        }
    }
    if let Some(HaloConnection { rate_limit, .. }) = &project.connections.halo {
        if let Some(rate) = rate_limit
            .as_deref()
            .map(str::trim)
            .filter(|r| *r != "off" && parse_rate(r).is_none())
        {
            let loc = loc_at(
                tree,
                &[
                    Step::Key("connections"),
                    Step::Key("halo"),
                    Step::Key("rate_limit"),
                ],
            );
            out.push(
                file.error(
                    "rate-limit",
                    loc,
                    format!("`{rate}` is not a request limit"),
                )
                .hint("write REQUESTS/WINDOW, e.g. `300/5m` (hosted Halo's limit), or `off`"),
            );
        }
        literal_secret(
            file,
            tree,
            &[
                Step::Key("connections"),
                Step::Key("halo"),
                Step::Key("client_secret"),
            ],
            out,
        );
    }
    check_trusted_certificates(file, tree, project, out);
}

/// Each connection's `trust_certificate` (already made absolute by the loader) must be a PEM
/// certificate that can be trusted, in a build that has HTTPS.
fn check_trusted_certificates(
    file: &SourceFile,
    tree: &Node,
    project: &Project,
    out: &mut Vec<Diagnostic>,
) {
    let connections = &project.connections;
    let trusted = [
        (
            "salesforce",
            connections
                .salesforce
                .as_ref()
                .and_then(|c| c.trust_certificate.as_deref()),
        ),
        (
            "halo",
            connections
                .halo
                .as_ref()
                .and_then(|c| c.trust_certificate.as_deref()),
        ),
    ];
    for (connection, path) in trusted {
        let Some(path) = path.map(str::trim).filter(|p| !p.is_empty()) else {
            continue;
        };
        if let Err(problem) = crate::http_agent::check_trusted(std::path::Path::new(path)) {
            let loc = loc_at(
                tree,
                &[
                    Step::Key("connections"),
                    Step::Key(connection),
                    Step::Key("trust_certificate"),
                ],
            );
            out.push(file.error("trust-certificate", loc, problem).hint(
                "name a PEM certificate file, relative to etl.yaml, e.g. the `certificate` \
                     that `etl sandbox --tls` prints",
            ));
        }
    }
}

fn check_flow(
    file: &SourceFile,
    tree: &Node,
    salesforce: &SalesforceConnection,
    out: &mut Vec<Diagnostic>,
) {
    let needs: &[(&str, bool)] = match salesforce.flow {
        SalesforceFlow::WebServer => &[],
        SalesforceFlow::ClientCredentials => {
            &[("client_secret", salesforce.client_secret.is_some())]
        }
        SalesforceFlow::JwtBearer => &[
            ("username", salesforce.username.is_some()),
            ("private_key_file", salesforce.private_key_file.is_some()),
        ],
        SalesforceFlow::Password => &[
            ("client_secret", salesforce.client_secret.is_some()),
            ("username", salesforce.username.is_some()),
            ("password", salesforce.password.is_some()),
        ],
    };
    let flow_loc = loc_at(
        tree,
        &[
            Step::Key("connections"),
            Step::Key("salesforce"),
            Step::Key("flow"),
        ],
    );
    for (key, present) in needs {
        if !present {
            out.push(
                file.error(
                    "missing-key",
                    flow_loc,
                    format!("this sign-in flow needs `{key}` under connections.salesforce"),
                )
                .hint(format!("add `{key}: ${{SF_{}}}`", key.to_ascii_uppercase())),
            );
        }
    }
}

fn literal_secret(file: &SourceFile, tree: &Node, path: &[Step], out: &mut Vec<Diagnostic>) {
    let Some(node) = node_at(tree, path) else {
        return;
    };
    let written = file
        .text
        .get(node.loc.offset..node.loc.offset + node.loc.len)
        .unwrap_or("");
    if !written.contains("${") {
        let system = match path.get(1) {
            Some(Step::Key("salesforce")) => "SF_",
            Some(Step::Key("halo")) => "HALO_",
            _ => "",
        };
        let key = match path.last() {
            Some(Step::Key(key)) => format!("{system}{}", key.to_ascii_uppercase()),
            _ => "SECRET".into(),
        };
        out.push(
            file.error("literal-secret", node.loc, "a secret is written into the file")
                .mask_snippet()
                .hint(format!("read it from the environment instead: ${{{key}}}, and keep the value out of version control"))
                .warning(),
        );
    }
}
