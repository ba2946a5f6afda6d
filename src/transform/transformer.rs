//! The transform of one pipeline: compiled once from its field mappings, then applied to each
//! source record to give a target-shaped record and the problems of the fields that could not
//! be filled.
//!
//! For each mapping, in order: read the source value (or none); render the template, if any;
//! an empty value (null, absent, blank text) becomes the `default`, or null; otherwise map it
//! through `values`, then resolve it through `lookup`. A value missing from the map or a
//! lookup that finds nothing also falls back to the `default`; without one the field is left
//! out and reported as a [`FieldProblem`]. Import writes the Halo path (nested objects, after
//! the entity's constant `halo.defaults`); sync back reads the Halo path and writes the
//! Salesforce field of each `sync_back` mapping, with value maps and id-map lookups reversed.

use std::fmt;

use minijinja::Environment;
use serde_json::{Map, Value};

use super::path::{self, SourcePath};
use super::template::{self, LookupCache, LOOKUPS_VAR};
use super::value_map::ValueMap;
use crate::config::model::{FieldMapping, Lookup, NotFound, Pipeline};

/// Which way records flow through a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Salesforce → Halo: every mapping with a `halo` field.
    Import,
    /// Halo → Salesforce: the mappings with `sync_back: true`, reversed.
    SyncBack,
}

/// The lookups a transform needs, answered by the engine (its id maps and Halo searches).
pub trait Lookups {
    /// The target id `pipeline` linked `source_id` to (`lookup: accounts`, or
    /// `lookup('accounts', id)` in a template); with `field`, that field of the linked target
    /// record (`lookup: accounts.main_site_id`).
    fn linked(&self, pipeline: &str, field: Option<&str>, source_id: &str) -> Option<Value>;
    /// The id of the `entity` record whose `by` field equals `value`
    /// (`lookup: { entity: Agent, by: email }`).
    fn search(&self, entity: &str, by: &str, value: &Value) -> Option<Value>;
    /// Sync back: the source id `pipeline` linked to `target_id` (Halo id → Salesforce Id).
    fn source_of(&self, pipeline: &str, target_id: &Value) -> Option<Value>;
}

/// A mapping that cannot be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pipeline `{pipeline}`, fields[{index}] ({target}): {message}")]
pub struct TransformError {
    pub pipeline: String,
    /// 0-based index into the pipeline's `fields`.
    pub index: usize,
    /// The mapping's target field, or its source when it has no target.
    pub target: String,
    pub message: String,
}

/// A field that could not be filled for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    /// The target path (`customfields.CFSalesforceStage`, or the Salesforce field on sync back).
    pub target: String,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.target, self.message)
    }
}

/// A transformed record and the fields left out of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transformed {
    pub record: Map<String, Value>,
    pub problems: Vec<FieldProblem>,
}

#[derive(Debug, Clone)]
enum CompiledLookup {
    Linked {
        pipeline: String,
        field: Option<String>,
    },
    Search {
        entity: String,
        by: String,
    },
    SourceOf {
        pipeline: String,
    },
}

#[derive(Debug, Clone)]
struct Compiled {
    source: Option<SourcePath>,
    target: String,
    target_keys: Vec<String>,
    /// The template's name in the environment.
    template: Option<String>,
    template_fields: Vec<String>,
    values: Option<ValueMap>,
    default: Option<Value>,
    lookup: Option<CompiledLookup>,
    /// What a lookup that finds nothing does (see `FieldMapping::if_not_found`).
    if_not_found: Option<NotFound>,
    /// Template output that is a whole number becomes a number (`client_id`, `user_id`, `id`).
    numeric_id: bool,
}

/// A pipeline's compiled transform for one direction.
pub struct Transformer {
    direction: Direction,
    env: Environment<'static>,
    fields: Vec<Compiled>,
    constants: Vec<(Vec<String>, String, Value)>,
}

impl fmt::Debug for Transformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transformer")
            .field("direction", &self.direction)
            .field("targets", &self.target_fields())
            .finish()
    }
}

/// How many times a template is rendered at most while its `lookup()` calls are answered.
const LOOKUP_ROUNDS: usize = 8;

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) => format!("`{text}`"),
        other => format!("`{other}`"),
    }
}

/// Drops null fields (at every object level), so that templates see them as undefined and
/// `default` applies. In place: the view is already a copy of the record.
fn drop_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, value| !value.is_null());
    for value in map.values_mut() {
        if let Value::Object(inner) = value {
            drop_nulls(inner);
        }
    }
}

impl Transformer {
    /// Compiles `pipeline`'s mappings for `direction`: paths, templates, value maps, lookups.
    pub fn new(pipeline: &Pipeline, direction: Direction) -> Result<Transformer, TransformError> {
        let mut env = template::environment();
        let mut fields = Vec::new();
        for (index, mapping) in pipeline.fields.iter().enumerate() {
            let error = |message: String| TransformError {
                pipeline: pipeline.pipeline.clone(),
                index,
                target: mapping
                    .halo
                    .clone()
                    .or_else(|| mapping.salesforce.clone())
                    .unwrap_or_default(),
                message,
            };
            let compiled = match direction {
                Direction::Import => compile_import(mapping, index, &mut env).map_err(error)?,
                Direction::SyncBack => match compile_sync_back(mapping).map_err(error)? {
                    Some(compiled) => compiled,
                    None => continue,
                },
            };
            fields.push(compiled);
        }
        let mut constants = Vec::new();
        if direction == Direction::Import {
            for (key, value) in &pipeline.halo.defaults {
                let keys = path::target_keys(key).map_err(|e| TransformError {
                    pipeline: pipeline.pipeline.clone(),
                    index: 0,
                    target: key.clone(),
                    message: format!("halo.defaults: {e}"),
                })?;
                constants.push((keys, key.clone(), value.clone()));
            }
        }
        Ok(Transformer {
            direction,
            env,
            fields,
            constants,
        })
    }

    /// The direction this transform was compiled for.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Source record → target record; see the module documentation.
    pub fn transform(&self, record: &Map<String, Value>, lookups: &dyn Lookups) -> Transformed {
        let mut out = Transformed::default();
        for (keys, target, value) in &self.constants {
            if let Err(message) = path::write(&mut out.record, keys, value.clone()) {
                out.problems.push(FieldProblem {
                    target: target.clone(),
                    message,
                });
            }
        }
        let mut view: Option<Map<String, Value>> = None;
        for field in &self.fields {
            match self.field_value(field, record, &mut view, lookups) {
                Ok(value) => {
                    if let Err(message) = path::write(&mut out.record, &field.target_keys, value) {
                        out.problems.push(FieldProblem {
                            target: field.target.clone(),
                            message,
                        });
                    }
                }
                Err(message) => out.problems.push(FieldProblem {
                    target: field.target.clone(),
                    message,
                }),
            }
        }
        out
    }

    fn field_value(
        &self,
        field: &Compiled,
        record: &Map<String, Value>,
        view: &mut Option<Map<String, Value>>,
        lookups: &dyn Lookups,
    ) -> Result<Value, String> {
        let mut value = match &field.source {
            Some(source) => source.read(record).unwrap_or(Value::Null),
            None => Value::Null,
        };
        if let Some(name) = &field.template {
            let view = view.get_or_insert_with(|| {
                let mut view = path::nested_view(record);
                drop_nulls(&mut view);
                view
            });
            value = self.render(name, field, &value, view, lookups)?;
        }
        if is_empty(&value) {
            return Ok(field.default.clone().unwrap_or(Value::Null));
        }
        if let Some(map) = &field.values {
            value = match self.direction {
                Direction::Import => match map.forward(&value) {
                    Some(mapped) => mapped.clone(),
                    None => {
                        return field.default.clone().ok_or_else(|| {
                            format!(
                                "{} is not in the value map (known: {}) and the field has no default",
                                show(&value),
                                map.keys().join(", ")
                            )
                        })
                    }
                },
                Direction::SyncBack => map.backward(&value).ok_or_else(|| {
                    format!(
                        "{} is not a value of the value map (known: {}), so it has no Salesforce value",
                        show(&value),
                        map.targets().join(", ")
                    )
                })?,
            };
            if is_empty(&value) {
                return Ok(Value::Null);
            }
        }
        if let Some(lookup) = &field.lookup {
            let found = resolve(lookup, &value, lookups);
            value = match found {
                Some(found) if !found.is_null() => found,
                _ => match (field.if_not_found, &field.default) {
                    (Some(NotFound::Empty), _) => Value::Null,
                    (Some(NotFound::Default) | None, Some(default)) => default.clone(),
                    (Some(NotFound::Error), _) => {
                        return Err(format!("{} (`if_not_found: error`)", not_found(lookup, &value)))
                    }
                    (Some(NotFound::Default) | None, None) => {
                        return Err(format!(
                            "{} and the field has no default (`if_not_found: empty` leaves it empty instead)",
                            not_found(lookup, &value)
                        ))
                    }
                },
            };
        }
        Ok(value)
    }

    fn render(
        &self,
        name: &str,
        field: &Compiled,
        value: &Value,
        view: &Map<String, Value>,
        lookups: &dyn Lookups,
    ) -> Result<Value, String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| format!("template: {}", template::to_error(e).message))?;
        let value = if is_empty(value) {
            minijinja::Value::UNDEFINED
        } else {
            minijinja::Value::from(minijinja::value::Serde(value))
        };
        let record = minijinja::Value::from(minijinja::value::Serde(view));
        let cache = minijinja::Value::from_object(LookupCache::default());
        let mut rounds = 0;
        let text = loop {
            let context = minijinja::context! {
                value => value.clone(),
                record => record.clone(),
                __etl_lookups => cache.clone(),
            };
            let text = template.render(context).map_err(|e| {
                let e = template::to_error(e);
                match e.line {
                    Some(line) => format!("template line {line}: {}", e.message),
                    None => format!("template: {}", e.message),
                }
            })?;
            let Some(answers) = cache.downcast_object_ref::<LookupCache>() else {
                break text;
            };
            let missing = answers.take_missing();
            rounds += 1;
            if missing.is_empty() || rounds >= LOOKUP_ROUNDS {
                break text;
            }
            for (pipeline, id) in missing {
                let (name, field_name) = match pipeline.split_once('.') {
                    Some((name, field_name)) => (name, Some(field_name)),
                    None => (pipeline.as_str(), None),
                };
                let found = lookups.linked(name, field_name, &id);
                answers.answer(&pipeline, &id, found);
            }
        };
        debug_assert_eq!(LOOKUPS_VAR, "__etl_lookups");
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(Value::Null);
        }
        if field.numeric_id {
            if let Ok(number) = trimmed.parse::<i64>() {
                return Ok(Value::from(number));
            }
        }
        Ok(Value::String(text))
    }

    /// The source fields read, deduplicated, in mapping order: each mapping's field and the
    /// `record.X` fields its template reads (as far as they can be seen in the text). Paths are
    /// returned as written: relationship paths with dots (`Owner.Email`), JSONPath with a leading
    /// `$` (`$.Attachments.totalSize`), Halo paths on sync back (`customfields.CFStage`).
    pub fn source_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for field in &self.fields {
            let names = field
                .source
                .iter()
                .map(|s| s.as_str().to_string())
                .chain(field.template_fields.iter().cloned());
            for name in names {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// Each mapping read straight from a source field, as (source path, target path): on sync
    /// back, the Halo path and the Salesforce field it is written to.
    pub fn field_pairs(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .filter(|f| f.template.is_none())
            .filter_map(|f| Some((f.source.as_ref()?.as_str().to_string(), f.target.clone())))
            .collect()
    }

    /// The target paths written: the constant defaults (import), then each mapping's target.
    pub fn target_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = self
            .constants
            .iter()
            .map(|(_, name, _)| name)
            .chain(self.fields.iter().map(|f| &f.target));
        for name in names {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

fn resolve(lookup: &CompiledLookup, value: &Value, lookups: &dyn Lookups) -> Option<Value> {
    match lookup {
        CompiledLookup::Linked { pipeline, field } => {
            let id = super::value_map::key_text(value)?;
            lookups.linked(pipeline, field.as_deref(), id.trim())
        }
        CompiledLookup::Search { entity, by } => lookups.search(entity, by, value),
        CompiledLookup::SourceOf { pipeline } => lookups.source_of(pipeline, value),
    }
}

fn not_found(lookup: &CompiledLookup, value: &Value) -> String {
    match lookup {
        CompiledLookup::Linked {
            pipeline,
            field: None,
        } => {
            format!("no `{pipeline}` record is linked to {}", show(value))
        }
        CompiledLookup::Linked {
            pipeline,
            field: Some(field),
        } => format!(
            "no `{pipeline}` record with a `{field}` is linked to {}",
            show(value)
        ),
        CompiledLookup::Search { entity, by } => {
            format!("no {entity} has {by} {}", show(value))
        }
        CompiledLookup::SourceOf { pipeline } => format!(
            "Halo id {} is not linked to a Salesforce record by `{pipeline}`",
            show(value)
        ),
    }
}

fn compile_lookup(lookup: &Lookup) -> Result<CompiledLookup, String> {
    Ok(match lookup {
        Lookup::Pipeline(text) => {
            let (pipeline, field) = match text.split_once('.') {
                Some((pipeline, field)) => (pipeline, Some(field.to_string())),
                None => (text.as_str(), None),
            };
            if pipeline.trim().is_empty() || field.as_deref().is_some_and(|f| f.trim().is_empty()) {
                return Err(format!("lookup `{text}` names no pipeline or field"));
            }
            CompiledLookup::Linked {
                pipeline: pipeline.to_string(),
                field,
            }
        }
        Lookup::Search(search) => CompiledLookup::Search {
            entity: format!("{:?}", search.entity),
            by: search.by.clone(),
        },
    })
}

fn compile_import(
    mapping: &FieldMapping,
    index: usize,
    env: &mut Environment<'static>,
) -> Result<Compiled, String> {
    let target = mapping
        .halo
        .clone()
        .ok_or_else(|| "the mapping has no `halo` field to write".to_string())?;
    let target_keys = path::target_keys(&target).map_err(|e| e.to_string())?;
    let source = mapping
        .salesforce
        .as_deref()
        .map(SourcePath::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let (template, template_fields) = match &mapping.template {
        Some(text) => {
            let name = format!("fields[{index}]");
            env.add_template_owned(name.clone(), text.clone())
                .map_err(|e| {
                    let e = template::to_error(e);
                    match e.line {
                        Some(line) => format!("template line {line}: {}", e.message),
                        None => format!("template: {}", e.message),
                    }
                })?;
            (Some(name), template::record_fields(text))
        }
        None => (None, Vec::new()),
    };
    let last = target_keys.last().map(String::as_str).unwrap_or_default();
    Ok(Compiled {
        source,
        numeric_id: last == "id" || last.ends_with("_id"),
        target,
        target_keys,
        template,
        template_fields,
        values: mapping.values.as_ref().map(ValueMap::new),
        default: mapping.default.clone(),
        lookup: mapping.lookup.as_ref().map(compile_lookup).transpose()?,
        if_not_found: mapping.if_not_found,
    })
}

/// The reversed mapping, or `None` when the mapping is not synced back.
fn compile_sync_back(mapping: &FieldMapping) -> Result<Option<Compiled>, String> {
    let (Some(salesforce), Some(halo)) = (&mapping.salesforce, &mapping.halo) else {
        return Ok(None);
    };
    if !mapping.sync_back || mapping.template.is_some() {
        return Ok(None);
    }
    if salesforce.starts_with('$') || salesforce.contains('.') || salesforce.trim().is_empty() {
        return Err(format!(
            "`{salesforce}` is a path, not a field of the record, and cannot be written back"
        ));
    }
    let lookup = match &mapping.lookup {
        None => None,
        Some(Lookup::Pipeline(text)) if !text.contains('.') => Some(CompiledLookup::SourceOf {
            pipeline: text.clone(),
        }),
        Some(Lookup::Pipeline(text)) => {
            return Err(format!(
            "lookup `{text}` reads a field of a linked record and cannot be reversed for sync back"
        ))
        }
        Some(Lookup::Search(_)) => {
            return Err("a search lookup cannot be reversed for sync back".to_string())
        }
    };
    Ok(Some(Compiled {
        source: Some(SourcePath::parse(halo).map_err(|e| e.to_string())?),
        target: salesforce.clone(),
        target_keys: vec![salesforce.clone()],
        template: None,
        template_fields: Vec::new(),
        values: mapping.values.as_ref().map(ValueMap::new),
        // A `default` is a Halo value: it has no meaning on the Salesforce side.
        default: None,
        lookup,
        // A Halo id with no Salesforce record behind it (a user whose customer was never
        // synced) holds the record back until the parent is synced, whatever the import does.
        if_not_found: Some(NotFound::Error),
        numeric_id: false,
    }))
}
