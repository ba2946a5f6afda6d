//! The import's second pass: the records the first pass staged, read back a chunk at a time
//! with their links (joined in staging, see `staging/run_links.rs`), each planned
//! (`plan.rs`), then settled: records deleted in the source left to their removal, the user's
//! selection, fields the target changed too since the last sync (by the pipeline's conflict
//! policy) and, for `etl apply`, the reviewed plan. And the removals of the records deleted in
//! the source.

use std::collections::{HashMap, HashSet};

use super::conflicts::{self, Conflict};
use super::error::EngineError;
use super::plan::{plan_record, Action, PlanContext, Planned};
use super::review::Review;
use super::snapshot::Snapshot;
use crate::config::model::{DeletePolicy, Pipeline};
use crate::staging::{LinkedRecord, Store};

/// What planning the import's chunks needs, for one pipeline's run.
pub(super) struct ImportPlanner<'a> {
    pub store: &'a Store,
    /// `<p>_transformed`, where the first pass staged the records.
    pub transformed_table: &'a str,
    pub run_id: &'a str,
    pub pipeline: &'a Pipeline,
    pub context: &'a PlanContext<'a>,
    pub entity: &'a str,
    /// Records deleted in the source: removed, not planned.
    pub deleted: &'a HashSet<String>,
    /// Each record's transform problems, by source id.
    pub problems: &'a HashMap<String, Vec<String>>,
    /// The ids the selection keeps, when not everything is selected.
    pub selected: Option<&'a HashSet<String>>,
    /// The plan `etl apply` holds the run to.
    pub review: Option<&'a Review>,
    pub delete_policy: DeletePolicy,
    /// The target paths of the fields that flow both ways: the only ones that can conflict.
    pub synced_paths: HashSet<String>,
}

/// The target paths of a pipeline's fields that flow both ways.
pub(super) fn synced_paths(pipeline: &Pipeline) -> HashSet<String> {
    pipeline
        .fields
        .iter()
        .filter(|m| m.sync_back && m.salesforce.is_some())
        .filter_map(|m| m.halo.clone())
        .collect()
}

impl ImportPlanner<'_> {
    /// The plan of the records staged in row ids `from..to`, each held to the reviewed plan
    /// (`etl apply`); with a snapshot of the target, fields changed on both sides are settled by
    /// the pipeline's conflict policy and added to `conflicts`.
    pub fn plan_rows(
        &self,
        from: i64,
        to: i64,
        snapshot: Option<&mut Snapshot>,
        conflicts: &mut Vec<Conflict>,
    ) -> Result<Vec<Planned>, EngineError> {
        let (store, context) = (self.store, self.context);
        let chunk = store.linked_records(self.transformed_table, self.run_id, from, to)?;
        let mut plans = Vec::with_capacity(chunk.len());
        for LinkedRecord {
            source_id,
            record: after,
            record_hash: staged_hash,
            link,
        } in chunk
        {
            if self.deleted.contains(&source_id) {
                continue;
            }
            let record_problems = self.problems.get(&source_id).cloned().unwrap_or_default();
            let mut planned = plan_record(
                context,
                &source_id,
                after,
                staged_hash,
                &record_problems,
                link.as_ref(),
            )?;
            super::deletes::settle_marked(&mut planned, link.as_ref(), context.target, self.entity);
            if let Some(selected) = self.selected {
                if !selected.contains(&source_id) && planned.action != Action::Unchanged {
                    planned.action = Action::Skip;
                    planned.reason = Some("deselected".into());
                    planned.write = None;
                }
            }
            plans.push(planned);
        }
        if let Some(snapshot) = snapshot {
            let (synced_paths, policy) = (
                &self.synced_paths,
                self.pipeline.sync.conflicts.unwrap_or_default(),
            );
            // The target records the chunk's conflict checks compare with, read together.
            snapshot.records.keep_many(
                store,
                plans
                    .iter()
                    .filter_map(|p| conflicts::conflict_check_target(p, synced_paths)),
            )?;
            for planned in &mut plans {
                let found =
                    conflicts::settle_conflicts(planned, snapshot, store, synced_paths, policy)?;
                conflicts.extend(found);
            }
        }
        if let Some(review) = self.review {
            for planned in &mut plans {
                review.hold(planned);
            }
        }
        Ok(plans)
    }

    /// The removals of the records deleted in the source, in Id order, held to the reviewed
    /// plan.
    pub fn plan_removals(&self) -> Result<Vec<Planned>, EngineError> {
        let deleted_links = self
            .store
            .link_heads_of(&self.pipeline.pipeline, self.deleted)?;
        let mut ids: Vec<&String> = self.deleted.iter().collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|source_id| {
                let mut planned = super::deletes::plan(
                    self.delete_policy,
                    source_id,
                    deleted_links.get(source_id),
                );
                if let Some(review) = self.review {
                    review.hold(&mut planned);
                }
                planned
            })
            .collect())
    }
}
