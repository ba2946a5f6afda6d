//! `etl apply`: holding a load to the plan that was reviewed. The run plans again; a record
//! the reviewed plan did not write, link or remove is skipped, and the load goes ahead only
//! when every record the reviewed plan acted on would be acted on the same way now (unless
//! `--force`). Both directions hold to their own plan: the import to `<p>_changes`, the sync
//! back to `<p>_back_changes`.

use std::collections::HashSet;

use super::error::EngineError;
use super::plan::{Action, Planned};
use crate::staging::{Store, ACTING};

/// What one direction of a reviewed plan acted on: (record, action) pairs.
pub struct Review {
    run_id: String,
    changes_table: String,
    acted: HashSet<(String, String)>,
}

impl Review {
    /// The reviewed plan `run_id` of the direction that stages its plan in `changes_table`.
    pub fn read(store: &Store, changes_table: &str, run_id: &str) -> Result<Review, EngineError> {
        Ok(Review {
            run_id: run_id.to_string(),
            changes_table: changes_table.to_string(),
            acted: store.acting_plan(changes_table, run_id)?,
        })
    }

    /// Turns a plan that acts on a record into a skip when the reviewed plan did not act on it
    /// that way. Returns whether it did.
    pub fn hold(&self, planned: &mut Planned) -> bool {
        let acts = ACTING.contains(&planned.action.as_str());
        let reviewed = self.acted.contains(&(
            planned.source_id.clone(),
            planned.action.as_str().to_string(),
        ));
        if !acts || reviewed {
            return false;
        }
        planned.action = Action::Skip;
        planned.reason = Some("not in the reviewed plan".into());
        planned.write = None;
        true
    }

    /// Refuses the load when the plan of run `run_id` (already staged) would not act on every
    /// record the reviewed plan acted on the same way, unless `force`.
    pub fn check(
        &self,
        store: &Store,
        run_id: &str,
        pipeline: &str,
        direction: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        let moved = store.plan_differences(&self.changes_table, &self.run_id, run_id)?;
        if moved > 0 && !force {
            let reviewed = &self.run_id;
            return Err(EngineError::Config(format!(
                "pipeline {pipeline} ({direction}): {moved} records would be written differently than in the reviewed plan {reviewed} (the source moved on since); run `etl plan` again, or `etl apply {reviewed} --force` to load what is there now"
            )));
        }
        Ok(())
    }
}
