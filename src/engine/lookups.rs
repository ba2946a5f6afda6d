//! Lookups for the transform: another pipeline's links read from the id map (the first few
//! asks of a pipeline one by one, then its ids loaded once, and a field of the linked records
//! once per field, never the whole records), and searches of the target (answered once per
//! entity, field and value).
//!
//! The links are kept sorted and front-coded (see `packed_pairs.rs`).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::connector::Target;
use super::error::EngineError;
use super::packed_pairs::{PackedPairs, PairReader};
use crate::staging::{StagingError, Store};
use crate::transform::Lookups;

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
    let mut reader = PairReader::default();
    let mut full = None;
    let outcome = read(&mut |key, value| {
        if full.is_none() {
            if let Err(error) = reader.push(key, value) {
                full = Some(error);
            }
        }
    });
    let detail = match (outcome, full) {
        (Err(error), _) => error.to_string(),
        (Ok(()), Some(detail)) => detail,
        (Ok(()), None) => {
            return reader
                .finish()
                .map_err(|detail| StagingError::Read { what, detail })
        }
    };
    Err(StagingError::Read { what, detail })
}

/// Why a lookup could not be answered.
enum Failure {
    Staging(StagingError),
    Search(String),
}

/// Asks of one pipeline's links answered one by one from staging before all its links are
/// loaded: a sync back of a few records then loads none (at 1M records loading the links of
/// accounts and contacts for the opportunities' one record was the first import's peak), and
/// a pipeline that asks for many pays at most this many reads of the id map first (each a scan
/// of it, some 7 ms at 1M records).
const ASKED_ONE_BY_ONE: u32 = 32;

pub struct EngineLookups<'a> {
    store: &'a Store,
    target: &'a dyn Target,
    links: RefCell<HashMap<String, LoadedLinks>>,
    /// Asks answered one by one so far, by pipeline, while its links are not loaded.
    asked: RefCell<HashMap<String, u32>>,
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
            asked: RefCell::new(HashMap::new()),
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

    /// The answer of `read` from staging, while `pipeline`'s links are not loaded and it has
    /// been asked fewer than [`ASKED_ONE_BY_ONE`] times; `None` when the links are to answer.
    fn one_by_one<T>(
        &self,
        pipeline: &str,
        read: impl FnOnce() -> Result<Option<T>, StagingError>,
    ) -> Option<Option<T>> {
        if self.links.borrow().contains_key(pipeline) {
            return None;
        }
        {
            let mut asked = self.asked.borrow_mut();
            let count = asked.entry(pipeline.to_string()).or_default();
            if *count >= ASKED_ONE_BY_ONE {
                return None;
            }
            *count += 1;
        }
        Some(read().unwrap_or_else(|error| {
            self.failed(StagingError::Read {
                what: format!("the links of pipeline {pipeline} for lookups"),
                detail: error.to_string(),
            });
            None
        }))
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
        let one = self.one_by_one(pipeline, || match field {
            None => self.store.link_target_of(pipeline, source_id),
            Some(field) => self.store.linked_field_of(pipeline, field, source_id),
        });
        if let Some(answer) = one {
            return match field {
                None => answer.as_deref().map(id_value),
                Some(_) => serde_json::from_str(&answer?).ok(),
            };
        }
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
        if let Some(answer) =
            self.one_by_one(pipeline, || self.store.source_linked_to(pipeline, &wanted))
        {
            return answer.map(Value::String);
        }
        self.with_links(pipeline, None, |links| {
            links.targets.key_of(&wanted).map(Value::String)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::WriteResult;

    /// A target that cannot be reached: every call fails as a 503 would.
    struct Unreachable;

    const UNREACHABLE: &str = "HTTP 503: try again later";

    impl Target for Unreachable {
        fn write(&self, _: &str, batch: &[crate::engine::WriteRequest]) -> Vec<WriteResult> {
            let refused = || WriteResult {
                outcome: Err(UNREACHABLE.to_string()),
            };
            batch.iter().map(|_| refused()).collect()
        }
        fn find(
            &self,
            _: &str,
            _: &[(String, Value)],
        ) -> Result<Option<(String, crate::engine::Record)>, EngineError> {
            Err(EngineError::Connection(UNREACHABLE.into()))
        }
        fn search(&self, _: &str, _: &str, _: &Value) -> Result<Option<Value>, EngineError> {
            Err(EngineError::Connection(UNREACHABLE.into()))
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
    fn the_first_asks_are_read_one_by_one_and_answer_as_the_loaded_links_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let run_id = store.begin_run("run", &["accounts".into()]).unwrap();
        // 100 accounts, the 7th of them linked to the same target as the 3rd, and one in ten
        // without a main site.
        let links: Vec<(String, crate::staging::Link)> = (0..100)
            .map(|n| {
                let target = if n == 7 { 3 } else { n };
                let site = (n % 10 != 0).then_some(n + 1000);
                let record = serde_json::json!({"id": target, "main_site_id": site});
                let link = crate::staging::Link {
                    target_id: target.to_string(),
                    source_hash: Some("h".into()),
                    synced_record: None,
                    target_record: record.as_object().cloned(),
                };
                (format!("001{n:015}"), link)
            })
            .collect();
        store.save_links(&run_id, "accounts", &links).unwrap();
        let lookups = EngineLookups::new(&store, &Unreachable);
        let ask = |n: u32| {
            let id = format!("001{n:015}");
            (
                lookups.linked("accounts", None, &id),
                lookups.linked("accounts", Some("main_site_id"), &id),
                lookups.source_of("accounts", &Value::from(n)),
            )
        };
        let expected = |n: u32| {
            let target = if n == 7 { 3 } else { n };
            let site = (!n.is_multiple_of(10)).then(|| Value::from(n + 1000));
            let source = (n != 7).then(|| Value::from(format!("001{n:015}")));
            (Some(Value::from(target)), site, source)
        };
        // Three asks a record: the first ten records are answered one by one.
        for n in 0..10 {
            assert_eq!(ask(n), expected(n), "{n}");
        }
        assert!(lookups.links.borrow().is_empty(), "nothing loaded yet");
        for n in 10..100 {
            assert_eq!(ask(n), expected(n), "{n}");
        }
        assert!(lookups.links.borrow().contains_key("accounts"));
        // Asked again once loaded, the first ones answer the same.
        for n in 0..10 {
            assert_eq!(ask(n), expected(n), "{n}");
        }
        assert_eq!(lookups.linked("accounts", None, "001nothere"), None);
        assert!(lookups.failure("contacts").is_none());
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
}
