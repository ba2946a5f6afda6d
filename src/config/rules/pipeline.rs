//! The rules of one pipeline file on its own: a valid name, SOQL that parses, a usable
//! cursor, field mappings with a source and a target, nothing mapped twice, templates that
//! compile, match keys that are mapped, sync-back, listing and delete settings that can act, and
//! selection Ids of the object.

use std::collections::{HashMap, HashSet};

use super::paths::{check_json_path, check_object, path_diagnostic, resolve_path, Offline};
use super::{inner_error, loc_at, node_at, parse_duration, LoadedPipeline, Step};
use crate::config::diagnostic::{Diagnostic, SourceFile};
use crate::config::model::{
    DeletePolicy, Deletes, FullListing, HardDeleteCheck, ImportMode, Lookup, Pipeline,
    MAX_LISTING_LOOKBACK_SECONDS,
};
use crate::config::suggest::closest;
use crate::config::yaml::Node;
use crate::salesforce::catalog::ObjectInfo;
use crate::soql::{self, SoqlError};
use crate::transform::template;

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
        let at = [
            Step::Key("deletes"),
            Step::Key("salesforce_inactive"),
            Step::Key("field"),
        ];
        check_field(file, tree, object, &inactive.field, &at, out);
    }
}

/// A Salesforce field a setting at `at` names, checked as the field mappings are (exact case,
/// the `__c` of custom fields, which only the org knows offline): the same message and hint.
fn check_field(
    file: &SourceFile,
    tree: &Node,
    object: &ObjectInfo,
    field: &str,
    at: &[Step],
    out: &mut Vec<Diagnostic>,
) {
    if let (Err(problem), Some(node)) = (
        resolve_path(&mut Offline, object, &[field]),
        node_at(tree, at),
    ) {
        out.push(path_diagnostic(file, node, 0, &[field], problem));
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
            let at = stages_at("salesforce");
            check_field(file, tree, object, &stages.salesforce, &at, out);
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
    // `halo.list`: what the sync back lists, each field a value or a list of values.
    let single = |v: &serde_json::Value| !(v.is_object() || v.is_array() || v.is_null());
    for (field, value) in &pipeline.halo.list {
        let fine = match value {
            serde_json::Value::Array(values) => !values.is_empty() && values.iter().all(single),
            one => single(one),
        };
        if !fine {
            let loc = loc_at(
                tree,
                &[Step::Key("halo"), Step::Key("list"), Step::Key(field)],
            );
            out.push(
                file.error("halo-list", loc, format!("`halo.list.{field}` is not a value or a list of values"))
                    .hint("e.g. `list: { tickettype_id: [4, 7] }`: the records whose field is one of them"),
            );
        }
    }
    if !pipeline.halo.list.is_empty() && !pipeline.syncs_back() {
        let loc = loc_at(tree, &[Step::Key("halo"), Step::Key("list")]);
        out.push(
            file.error("halo-list", loc, "`halo.list` chooses what the sync back lists, and this pipeline does not sync back")
                .hint("switch on `sync.sync_back`, or remove `list`")
                .warning(),
        );
    }
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
    if let crate::config::model::Incremental::Detailed(cursor) = incremental {
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
        let unreversible = match &mapping.lookup {
            Some(Lookup::Search(_)) => Some("a search lookup"),
            Some(Lookup::Pipeline(target)) if target.contains('.') => {
                Some("a lookup of a linked record's field")
            }
            _ => None,
        };
        if let (true, Some(what)) = (mapping.sync_back, unreversible) {
            out.push(
                file.error(
                    "sync-back",
                    loc_at(tree, &path("sync_back")),
                    format!("{what} cannot be synced back: the Halo value cannot be turned back into the Salesforce one"),
                )
                .hint("remove `sync_back: true` from this mapping; sync back the Salesforce field through an id-map lookup (`lookup: accounts`) or a plain mapping instead"),
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
pub(super) fn check_lost_creates(
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
