//! `etl apply`: holding a load to the plan that was reviewed. The run plans again; a record
//! the reviewed plan did not write, link or remove is skipped, and the load goes ahead only
//! when every record the reviewed plan acted on would be acted on the same way now (unless
//! `--force`). Both directions hold to their own plan: the import to `<p>_changes`, the sync
//! back to `<p>_back_changes`.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::error::EngineError;
use super::plan::{Action, Planned};
use super::run::RunOptions;
use crate::staging::{PipelineTables, Stage, Store, ACTING};

/// What one direction of a reviewed plan acted on: (record, action) pairs, each kept as a
/// 128-bit digest (for a plan of 490,000 creates, 17 MB against 82 MB as pairs of strings).
pub struct Review {
    run_id: String,
    changes_table: String,
    acted: HashSet<u128>,
}

fn digest(source_id: &str, action: &str) -> u128 {
    let hash = Sha256::new()
        .chain_update(source_id.as_bytes())
        .chain_update([0x1f])
        .chain_update(action.as_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(first)
}

impl Review {
    /// The plan `etl apply` was given (`RunOptions::reviewed`), of the direction whose tables
    /// are `tables`; `None` for any other command.
    pub fn of_run(
        store: &Store,
        tables: &PipelineTables,
        options: &RunOptions,
    ) -> Result<Option<Review>, EngineError> {
        match &options.reviewed {
            Some(reviewed) => Ok(Some(Review::read(
                store,
                &tables.table(Stage::Changes),
                reviewed,
            )?)),
            None => Ok(None),
        }
    }

    /// The reviewed plan `run_id` of the direction that stages its plan in `changes_table`.
    fn read(store: &Store, changes_table: &str, run_id: &str) -> Result<Review, EngineError> {
        let mut acted = HashSet::new();
        store.each_acting(changes_table, run_id, |source_id, action| {
            acted.insert(digest(source_id, action));
        })?;
        Ok(Review {
            run_id: run_id.to_string(),
            changes_table: changes_table.to_string(),
            acted,
        })
    }

    /// Turns a plan that acts on a record into a skip when the reviewed plan did not act on it
    /// that way. Returns whether it did.
    pub fn hold(&self, planned: &mut Planned) -> bool {
        let action = planned.action.as_str();
        if !ACTING.contains(&action) || self.acted.contains(&digest(&planned.source_id, action)) {
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
                "pipeline {pipeline}: {moved} records would be written differently by the {direction} than in the reviewed plan {reviewed} (the source moved on since); run `etl plan` again, or `etl apply {reviewed} --force` to load what is there now"
            )));
        }
        Ok(())
    }
}
