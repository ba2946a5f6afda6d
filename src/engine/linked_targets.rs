//! The target records a pipeline already links to, for matching: a match key never links a
//! second source record to one of them. They are read from the id map the first time a match
//! is found, so a run that matches nothing (a first import into an empty target, or a rerun
//! where every record is linked) never holds them; from then on, the targets this run matches
//! or creates are added as it goes.

use std::cell::RefCell;
use std::collections::HashSet;

use super::error::EngineError;
use crate::staging::Store;

pub struct LinkedTargets<'a> {
    store: &'a Store,
    pipeline: &'a str,
    /// `None` until a match asks.
    known: RefCell<Option<HashSet<String>>>,
}

impl<'a> LinkedTargets<'a> {
    pub fn new(store: &'a Store, pipeline: &'a str) -> LinkedTargets<'a> {
        LinkedTargets {
            store,
            pipeline,
            known: RefCell::new(None),
        }
    }

    /// Takes `target_id` for the record being matched: false when another source record
    /// already has it.
    pub fn claim(&self, target_id: &str) -> Result<bool, EngineError> {
        let mut known = self.known.borrow_mut();
        if known.is_none() {
            *known = Some(
                self.store
                    .linked_target_ids_sorted(self.pipeline)?
                    .into_iter()
                    .collect(),
            );
        }
        Ok(known
            .as_mut()
            .is_some_and(|known| known.insert(target_id.to_string())))
    }

    /// Records target records this run linked (created or matched and saved). Before the first
    /// match nothing is kept: the id map, read then, holds them.
    pub fn extend(&self, target_ids: impl IntoIterator<Item = String>) {
        if let Some(known) = self.known.borrow_mut().as_mut() {
            known.extend(target_ids);
        }
    }
}
