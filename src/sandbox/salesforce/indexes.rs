//! Indexes over an object's records that SOQL execution builds on demand and the org forgets on
//! every change, as real Salesforce answers from its indexes rather than reading whole tables:
//!
//! - a **sorted order** for an ORDER BY, so a keyset page (`… WHERE SystemModstamp > t … ORDER
//!   BY SystemModstamp, Id LIMIT 2000`) is a binary search and a short scan;
//! - a **value lookup** for one field, so `ParentId IN (200 ids)` reads the records it names.
//!
//! Without them every page or batch filtered (and sorted) the whole table, so reading N records
//! or listing the attachments of N parents cost N² / batch comparisons: most of the sandbox's
//! time at 1M records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One sorted order: positions in the object's table of records, and whether its first key's
/// values can be binary-searched with the filter's own comparison (see `searchable`).
#[derive(Debug)]
pub struct SortedOrder {
    pub positions: Vec<usize>,
    /// True when the first ORDER BY key is ascending and sorts as the WHERE clause compares
    /// it, so that records below a lower bound form a prefix of `positions`. Datetimes sort as text; a field holding
    /// them in more than one format would not.
    pub searchable: bool,
}

/// Positions of the records holding each value of one field, by the value's comparison key.
pub type ValueLookup = HashMap<String, Vec<usize>>;

/// The indexes built since the org last changed, by a key naming the object and the ORDER BY or
/// field. Cleared by every write to the org (the org calls [`Indexes::clear`]), so an index
/// never outlives the data it was made from.
#[derive(Debug, Default)]
pub struct Indexes {
    built: Mutex<Built>,
}

#[derive(Debug, Default)]
struct Built {
    orders: HashMap<String, Arc<SortedOrder>>,
    lookups: HashMap<String, Arc<ValueLookup>>,
}

/// Indexes of one kind kept at most; a new one past this replaces them all (queries over many
/// different orders or fields between two writes are rare, and each index costs at least 8
/// bytes a record).
const MAX_PER_KIND: usize = 8;

fn get_or_build<T>(
    built: &mut HashMap<String, Arc<T>>,
    key: &str,
    build: impl FnOnce() -> T,
) -> Arc<T> {
    if let Some(index) = built.get(key) {
        return index.clone();
    }
    let index = Arc::new(build());
    if built.len() >= MAX_PER_KIND {
        built.clear();
    }
    built.insert(key.to_string(), index.clone());
    index
}

impl Indexes {
    fn built(&self) -> std::sync::MutexGuard<'_, Built> {
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sorted order under `key`, made by `build` if the org changed since it was made.
    pub fn order(&self, key: &str, build: impl FnOnce() -> SortedOrder) -> Arc<SortedOrder> {
        get_or_build(&mut self.built().orders, key, build)
    }

    /// The value lookup under `key`, made by `build` if the org changed since it was made.
    pub fn lookup(&self, key: &str, build: impl FnOnce() -> ValueLookup) -> Arc<ValueLookup> {
        get_or_build(&mut self.built().lookups, key, build)
    }

    /// Forgets every index (the org's records changed).
    pub fn clear(&mut self) {
        let built = self.built.get_mut().unwrap_or_else(|e| e.into_inner());
        built.orders.clear();
        built.lookups.clear();
    }
}

impl Clone for Indexes {
    /// A copy of an org starts with no indexes: they are rebuilt on demand.
    fn clone(&self) -> Self {
        Indexes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_built_once_until_cleared() {
        let mut indexes = Indexes::default();
        let builds = std::cell::Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            SortedOrder {
                positions: vec![1, 0],
                searchable: true,
            }
        };
        assert_eq!(indexes.order("Account x", build).positions, [1, 0]);
        indexes.order("Account x", build);
        assert_eq!(builds.get(), 1);
        indexes.lookup("Account Name", ValueLookup::new);
        indexes.clear();
        indexes.order("Account x", build);
        assert_eq!(builds.get(), 2);
    }
}
