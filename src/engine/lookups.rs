//! Lookups for the transform: another pipeline's links read from the id map (their ids loaded
//! once per pipeline, a field of the linked records once per pipeline and field, never the whole
//! records), and searches of the target (answered once per entity, field and value).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::connector::Target;
use crate::staging::Store;
use crate::transform::Lookups;

/// One pipeline's links, by source id and, once a reversed lookup asks (the sync back's), by
/// target id (reversed lookups run once per record, so both directions must be a hash lookup,
/// not a scan), and the fields of the linked target records that lookups asked for.
#[derive(Default)]
struct LoadedLinks {
    target_by_source: HashMap<Box<str>, Box<str>>,
    source_by_target: Option<HashMap<Box<str>, Box<str>>>,
    fields: HashMap<String, HashMap<String, Value>>,
}

impl LoadedLinks {
    fn source_by_target(&mut self) -> &HashMap<Box<str>, Box<str>> {
        let target_by_source = &self.target_by_source;
        self.source_by_target.get_or_insert_with(|| {
            let mut source_by_target: HashMap<Box<str>, Box<str>> =
                HashMap::with_capacity(target_by_source.len());
            for (source_id, target_id) in target_by_source {
                // Several sources linked to one target (should not happen) answer the smallest
                // source id, so the answer never depends on hash order.
                source_by_target
                    .entry(target_id.clone())
                    .and_modify(|kept| {
                        if *source_id < *kept {
                            kept.clone_from(source_id)
                        }
                    })
                    .or_insert_with(|| source_id.clone());
            }
            source_by_target
        })
    }
}

pub struct EngineLookups<'a> {
    store: &'a Store,
    target: &'a dyn Target,
    links: RefCell<HashMap<String, LoadedLinks>>,
    searches: RefCell<HashMap<(String, String, String), Option<Value>>>,
    /// The first search error, reported once instead of on every record.
    pub search_error: RefCell<Option<String>>,
}

impl<'a> EngineLookups<'a> {
    pub fn new(store: &'a Store, target: &'a dyn Target) -> EngineLookups<'a> {
        EngineLookups {
            store,
            target,
            links: RefCell::new(HashMap::new()),
            searches: RefCell::new(HashMap::new()),
            search_error: RefCell::new(None),
        }
    }

    fn with_links<T>(
        &self,
        pipeline: &str,
        field: Option<&str>,
        read: impl FnOnce(&mut LoadedLinks) -> T,
    ) -> T {
        let mut links = self.links.borrow_mut();
        if !links.contains_key(pipeline) {
            links.insert(
                pipeline.to_string(),
                LoadedLinks {
                    target_by_source: self.store.link_targets(pipeline).unwrap_or_default(),
                    ..LoadedLinks::default()
                },
            );
        }
        let loaded = links.get_mut(pipeline).expect("inserted above");
        if let Some(field) = field {
            if !loaded.fields.contains_key(field) {
                let values = self.store.linked_field(pipeline, field).unwrap_or_default();
                loaded.fields.insert(field.to_string(), values);
            }
        }
        read(loaded)
    }
}

/// A target id as JSON: a number when it is one (Halo's ids are integers).
pub fn id_value(id: &str) -> Value {
    id.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(id.to_string()))
}

/// An id as text, whether the system sends it as a number or a string.
pub fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| n.as_f64().map(|f| (f as i64).to_string()))
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

impl Lookups for EngineLookups<'_> {
    fn linked(&self, pipeline: &str, field: Option<&str>, source_id: &str) -> Option<Value> {
        self.with_links(pipeline, field, |links| match field {
            None => links.target_by_source.get(source_id).map(|id| id_value(id)),
            Some(field) => links.fields.get(field)?.get(source_id).cloned(),
        })
    }

    fn search(&self, entity: &str, by: &str, value: &Value) -> Option<Value> {
        let key = (
            entity.to_string(),
            by.to_string(),
            id_text(value).to_lowercase(),
        );
        if let Some(found) = self.searches.borrow().get(&key) {
            return found.clone();
        }
        let found = match self.target.search(entity, by, value) {
            Ok(found) => found,
            Err(error) => {
                self.search_error
                    .borrow_mut()
                    .get_or_insert_with(|| error.to_string());
                None
            }
        };
        self.searches.borrow_mut().insert(key, found.clone());
        found
    }

    fn source_of(&self, pipeline: &str, target_id: &Value) -> Option<Value> {
        let wanted = id_text(target_id);
        self.with_links(pipeline, None, |links| {
            links
                .source_by_target()
                .get(wanted.as_str())
                .map(|source| Value::String(source.to_string()))
        })
    }
}
