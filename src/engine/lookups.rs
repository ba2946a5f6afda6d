//! Lookups for the transform: another pipeline's links read from the id map (their ids loaded
//! once per pipeline, a field of the linked records once per pipeline and field, never the whole
//! records), and searches of the target (answered once per entity, field and value).
//!
//! The links are read in key order and kept packed (see `packed_pairs.rs`).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::connector::Target;
use super::packed_pairs::PackedPairs;
use crate::staging::{PairSink, Store};
use crate::transform::Lookups;

/// One pipeline's links by source id (and, once a reversed lookup asks, by target id), and
/// the fields of the linked target records that lookups asked for.
#[derive(Default)]
struct LoadedLinks {
    targets: PackedPairs,
    fields: HashMap<String, PackedPairs>,
}

/// Pairs read from staging, packed as they come.
#[derive(Default)]
struct Packing {
    pairs: PackedPairs,
    /// Why no more pairs fit, if they did not.
    full: Option<String>,
}

impl PairSink for Packing {
    fn pair(&mut self, key: &str, value: &str) {
        if self.full.is_none() {
            if let Err(error) = self.pairs.push(key, value) {
                self.full = Some(error);
            }
        }
    }

    fn restart(&mut self) {
        *self = Packing::default();
    }
}

/// Reads pairs from staging into a packed set. A failed read leaves the set empty, so every
/// lookup of it answers "not linked", as before; the failure is logged once.
fn packed(what: &str, read: impl FnOnce(&mut dyn PairSink) -> Result<(), String>) -> PackedPairs {
    let mut packing = Packing::default();
    let outcome = read(&mut packing);
    let Packing { pairs, full } = packing;
    match outcome.err().or(full).map_or_else(|| pairs.finish(), Err) {
        Ok(pairs) => pairs,
        Err(error) => {
            tracing::warn!(%error, "could not read {what} for lookups; they answer nothing");
            PackedPairs::default()
        }
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
            let targets = packed(&format!("the links of pipeline {pipeline}"), |each| {
                self.store
                    .each_link_target(pipeline, each)
                    .map_err(|e| e.to_string())
            });
            links.insert(
                pipeline.to_string(),
                LoadedLinks {
                    targets,
                    ..LoadedLinks::default()
                },
            );
        }
        let loaded = links.get_mut(pipeline).expect("inserted above");
        if let Some(field) = field {
            if !loaded.fields.contains_key(field) {
                let what = format!("field {field} of the records pipeline {pipeline} links");
                let values = packed(&what, |each| {
                    self.store
                        .each_linked_field(pipeline, field, each)
                        .map_err(|e| e.to_string())
                });
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
            None => links.targets.value_of(source_id).map(id_value),
            // Kept as JSON text: parsed when asked, which is once per record that asks.
            Some(field) => serde_json::from_str(links.fields.get(field)?.value_of(source_id)?).ok(),
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
            links.targets.key_of(&wanted).map(Value::String)
        })
    }
}
