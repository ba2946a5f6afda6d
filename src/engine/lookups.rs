//! Lookups for the transform: another pipeline's links read from the id map (their ids loaded
//! once per pipeline, a field of the linked records once per pipeline and field, never the whole
//! records), and searches of the target (answered once per entity, field and value).
//!
//! The links are kept packed (see [`PackedPairs`]): at 1M records a pipeline's links held as a
//! hash map of strings took about 140 bytes each, packed they take the ids' own bytes plus 12.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::connector::Target;
use super::error::EngineError;
use crate::staging::{StagingError, Store};
use crate::transform::Lookups;

/// Pairs of texts (a source id and a target id, or a source id and a field's value as JSON)
/// kept in one string, found by binary search: the ids' own bytes plus 12 bytes a pair, where
/// a hash map of boxed strings takes several allocations and empty buckets per pair.
#[derive(Default)]
struct PackedPairs {
    /// Each pair's key, then its value, pair after pair in the order they were read.
    text: String,
    /// Where each pair's key ends and where its value ends (its key starts where the pair
    /// before ends).
    ends: Vec<(u32, u32)>,
    /// Pair indices by key, then value.
    by_key: Vec<u32>,
    /// Pair indices by value, then key: made once a reversed lookup asks (the sync back's).
    by_value: Option<Vec<u32>>,
}

impl PackedPairs {
    fn push(&mut self, key: &str, value: &str) -> Result<(), String> {
        let index = u32::try_from(self.ends.len());
        self.text.push_str(key);
        let key_end = u32::try_from(self.text.len());
        self.text.push_str(value);
        let value_end = u32::try_from(self.text.len());
        match (index, key_end, value_end) {
            (Ok(index), Ok(key_end), Ok(value_end)) => {
                self.ends.push((key_end, value_end));
                self.by_key.push(index);
                Ok(())
            }
            _ => Err("more than 4 GB of linked ids".to_string()),
        }
    }

    /// Sorts the index by key once every pair is in, and gives back what the reading left.
    fn finish(mut self) -> PackedPairs {
        let mut by_key = std::mem::take(&mut self.by_key);
        by_key.sort_unstable_by(|a, b| {
            let (a, b) = (self.pair(*a), self.pair(*b));
            a.cmp(&b)
        });
        self.by_key = by_key;
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.by_key.shrink_to_fit();
        self
    }

    fn pair(&self, index: u32) -> (&str, &str) {
        let index = index as usize;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1].1 as usize,
        };
        let (key_end, value_end) = self.ends[index];
        (
            &self.text[start..key_end as usize],
            &self.text[key_end as usize..value_end as usize],
        )
    }

    /// The value of `key` (keys are unique: the id map's key is the source id).
    fn value_of(&self, key: &str) -> Option<&str> {
        let at = self
            .by_key
            .partition_point(|index| self.pair(*index).0 < key);
        let index = *self.by_key.get(at)?;
        let (found, value) = self.pair(index);
        (found == key).then_some(value)
    }

    /// The smallest key whose value is `value` (several sources linked to one target should
    /// not happen; when they do, the answer never depends on the order they were read in).
    fn key_of(&mut self, value: &str) -> Option<&str> {
        if self.by_value.is_none() {
            let mut by_value: Vec<u32> = (0..self.ends.len() as u32).collect();
            by_value.sort_unstable_by(|a, b| {
                let ((a_key, a_value), (b_key, b_value)) = (self.pair(*a), self.pair(*b));
                (a_value, a_key).cmp(&(b_value, b_key))
            });
            self.by_value = Some(by_value);
        }
        let by_value = self.by_value.as_ref()?;
        let at = by_value.partition_point(|index| self.pair(*index).1 < value);
        let (key, found) = self.pair(*by_value.get(at)?);
        (found == value).then_some(key)
    }
}

/// One pipeline's links by source id (and, once a reversed lookup asks, by target id), and
/// the fields of the linked target records that lookups asked for.
#[derive(Default)]
struct LoadedLinks {
    targets: PackedPairs,
    fields: HashMap<String, PackedPairs>,
}

/// Reads pairs from staging into a packed set, or says why it could not.
fn packed(
    what: String,
    read: impl FnOnce(&mut dyn FnMut(&str, &str)) -> Result<(), StagingError>,
) -> Result<PackedPairs, StagingError> {
    let mut pairs = PackedPairs::default();
    let mut full = None;
    let outcome = read(&mut |key, value| {
        if full.is_none() {
            if let Err(error) = pairs.push(key, value) {
                full = Some(error);
            }
        }
    });
    match (outcome, full) {
        (Err(error), _) => Err(StagingError::Read {
            what,
            detail: error.to_string(),
        }),
        (Ok(()), Some(detail)) => Err(StagingError::Read { what, detail }),
        (Ok(()), None) => Ok(pairs.finish()),
    }
}

/// Why a lookup could not be answered.
enum Failure {
    Staging(StagingError),
    Search(String),
}

pub struct EngineLookups<'a> {
    store: &'a Store,
    target: &'a dyn Target,
    links: RefCell<HashMap<String, LoadedLinks>>,
    searches: RefCell<HashMap<(String, String, String), Option<Value>>>,
    /// The first lookup that could not be answered (a search of the target that failed, or
    /// links staging could not read): the lookups then answer nothing, and the caller stops
    /// the pipeline before anything transformed with them is written (see [`Self::failure`]).
    failure: RefCell<Option<Failure>>,
}

impl<'a> EngineLookups<'a> {
    pub fn new(store: &'a Store, target: &'a dyn Target) -> EngineLookups<'a> {
        EngineLookups {
            store,
            target,
            links: RefCell::new(HashMap::new()),
            searches: RefCell::new(HashMap::new()),
            failure: RefCell::new(None),
        }
    }

    /// The first lookup that could not be answered since the last call, as the error that
    /// stops `pipeline`: the records transformed since may hold defaults where a link or a
    /// value belonged, so none of them may be written.
    pub fn failure(&self, pipeline: &str) -> Option<EngineError> {
        Some(match self.failure.take()? {
            Failure::Staging(error) => EngineError::Staging(error),
            Failure::Search(error) => EngineError::Connection(format!(
                "pipeline {pipeline}: a lookup could not search the target: {error}"
            )),
        })
    }

    /// Notes the first failure (later ones most likely share its cause) and answers an empty
    /// set, so the transform goes on to the end of its page.
    fn failed(&self, error: StagingError) -> PackedPairs {
        tracing::warn!(%error, "a lookup could not be answered");
        self.failure
            .borrow_mut()
            .get_or_insert(Failure::Staging(error));
        PackedPairs::default()
    }

    fn with_links<T>(
        &self,
        pipeline: &str,
        field: Option<&str>,
        read: impl FnOnce(&mut LoadedLinks) -> T,
    ) -> T {
        let mut links = self.links.borrow_mut();
        if !links.contains_key(pipeline) {
            let what = format!("the links of pipeline {pipeline} for lookups");
            let targets = packed(what, |each| self.store.each_link_target(pipeline, each))
                .unwrap_or_else(|error| self.failed(error));
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
                let what =
                    format!("field {field} of the records pipeline {pipeline} links, for lookups");
                let values = packed(what, |each| {
                    self.store.each_linked_field(pipeline, field, each)
                })
                .unwrap_or_else(|error| self.failed(error));
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
                self.failure
                    .borrow_mut()
                    .get_or_insert_with(|| Failure::Search(error.to_string()));
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
                .targets
                .key_of(&wanted)
                .map(|source| Value::String(source.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::WriteResult;

    fn pairs(read: &[(&str, &str)]) -> PackedPairs {
        let mut pairs = PackedPairs::default();
        for (key, value) in read {
            pairs.push(key, value).unwrap();
        }
        pairs.finish()
    }

    #[test]
    fn every_key_finds_its_own_value_and_no_other_key_finds_one() {
        let read: Vec<(String, String)> = (0..1000)
            .rev()
            .map(|n| (format!("001{n:015}"), (n * 7).to_string()))
            .collect();
        let packed = pairs(
            &read
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        for (key, value) in &read {
            assert_eq!(packed.value_of(key), Some(value.as_str()), "{key}");
        }
        // Keys before, between and after the stored ones, and prefixes of them.
        for missing in ["", "000", "001000000000000000x", "0010000000000000", "zzz"] {
            assert_eq!(packed.value_of(missing), None, "{missing}");
        }
    }

    #[test]
    fn a_key_and_a_value_that_run_together_are_still_told_apart() {
        // "ab" + "c" and "a" + "bc" are the same bytes in the packed text.
        let packed = pairs(&[("ab", "c"), ("a", "bc"), ("", "empty key")]);
        assert_eq!(packed.value_of("ab"), Some("c"));
        assert_eq!(packed.value_of("a"), Some("bc"));
        assert_eq!(packed.value_of(""), Some("empty key"));
        assert_eq!(packed.value_of("abc"), None);
    }

    #[test]
    fn reversed_lookups_answer_the_smallest_key_whatever_the_order_read() {
        let mut packed = pairs(&[("003B", "7"), ("003A", "7"), ("003C", "8")]);
        assert_eq!(packed.key_of("7"), Some("003A"));
        assert_eq!(packed.key_of("8"), Some("003C"));
        assert_eq!(packed.key_of("9"), None);
        assert_eq!(packed.key_of(""), None);
        let mut packed = pairs(&[("003A", "7"), ("003B", "7")]);
        assert_eq!(packed.key_of("7"), Some("003A"));
    }

    /// A target whose searches fail, as one that cannot be reached.
    struct Unreachable;

    impl Target for Unreachable {
        fn write(&self, _: &str, _: &[crate::engine::WriteRequest]) -> Vec<WriteResult> {
            Vec::new()
        }
        fn find(
            &self,
            _: &str,
            _: &[(String, Value)],
        ) -> Result<Option<(String, crate::engine::Record)>, EngineError> {
            Ok(None)
        }
        fn search(&self, _: &str, _: &str, _: &Value) -> Result<Option<Value>, EngineError> {
            Err(EngineError::Connection("HTTP 503: try again later".into()))
        }
        fn api_calls(&self) -> u64 {
            0
        }
    }

    #[test]
    fn links_staging_cannot_read_stop_the_pipeline_with_what_could_not_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        store
            .connection()
            .execute_batch("DROP TABLE id_map")
            .unwrap();
        let lookups = EngineLookups::new(&store, &Unreachable);
        assert!(lookups.failure("contacts").is_none(), "nothing asked yet");

        assert_eq!(lookups.linked("accounts", None, "001A"), None);
        assert_eq!(
            lookups.linked("accounts", Some("main_site_id"), "001A"),
            None
        );
        let error = lookups.failure("contacts").expect("the read failed");
        assert!(matches!(error, EngineError::Staging(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("could not read the links of pipeline accounts for lookups")
                && message.contains("id_map"),
            "{message}"
        );
        assert!(lookups.failure("contacts").is_none(), "reported once");
    }

    #[test]
    fn a_search_that_fails_stops_the_pipeline_with_the_targets_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let lookups = EngineLookups::new(&store, &Unreachable);
        assert_eq!(
            lookups.search("Agent", "email", &Value::from("a@b.c")),
            None
        );
        let error = lookups.failure("accounts").expect("the search failed");
        assert_eq!(error.exit_code(), 3);
        assert_eq!(
            error.to_string(),
            "pipeline accounts: a lookup could not search the target: HTTP 503: try again later"
        );
    }

    #[test]
    fn nothing_read_answers_nothing() {
        let mut packed = pairs(&[]);
        assert_eq!(packed.value_of("001A"), None);
        assert_eq!(packed.key_of("1"), None);
    }
}
