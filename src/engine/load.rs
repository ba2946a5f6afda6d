//! The import's load: the planned writes sent in batches (each batch sent while the one before
//! is staged), each batch's results and links committed in one transaction, what it wrote
//! applied to the snapshot and its files handed to the copy lane; and the results and links of
//! the records that needed no write.

use std::collections::HashSet;

use super::attachments::{Copier, CopyLane};
use super::connector::{Target, WriteRequest, WriteResult};
use super::error::EngineError;
use super::linked_targets::LinkedTargets;
use super::plan::{Action, Planned};
use super::progress::{ProgressReporter, Stage as ProgressStage};
use super::rows::result_row;
use super::snapshot::Snapshot;
use super::summary::{count_settled, PipelineSummary};
use crate::config::model::Pipeline;
use crate::staging::{Link, PipelineTables, Stage, Store};

/// What loading planned records needs, for one pipeline's import.
pub(super) struct Loader<'a> {
    pub store: &'a Store,
    pub tables: &'a PipelineTables,
    pub run_id: &'a str,
    pub pipeline: &'a Pipeline,
    pub entity: &'a str,
    pub target: &'a dyn Target,
    pub batch_size: usize,
    /// Target records linked so far; a record created here is one more, so a later match
    /// cannot link a second source record to it.
    pub linked_targets: &'a LinkedTargets<'a>,
    pub progress: &'a ProgressReporter,
}

impl Loader<'_> {
    /// Stages the settled records' results, hands the files of those already in the target to
    /// the copy lane, then writes `writes` in batches, each committed with its results and
    /// links and its files handed to the lane, which copies them while the next batches are
    /// written and staged (the caller waits for the lane at the end of the load).
    pub fn load(
        &self,
        settled: &[Planned],
        writes: &[Planned],
        mut copies: Option<(&mut Copier, &mut CopyLane)>,
        mut snapshot: Option<&mut Snapshot>,
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        let (store, tables, run_id) = (self.store, self.tables, self.run_id);
        load_settled(store, tables, run_id, self.pipeline, settled, summary)?;
        if let Some((copier, lane)) = copies.as_mut() {
            // Records already in the target keep getting the files added since.
            let loaded: Vec<(String, String)> = settled
                .iter()
                .filter(|p| matches!(p.action, Action::Unchanged | Action::Link))
                .filter_map(|p| Some((p.source_id.clone(), p.target_id.clone()?)))
                .collect();
            for chunk in loaded.chunks(self.batch_size) {
                copier.send(lane, chunk, summary)?;
            }
        }
        // Each batch is sent while the one before is staged: at most two batches are written
        // and not yet committed (a run killed then finds their creates by the match keys).
        let (target, entity) = (self.target, self.entity);
        // The writer logs under the run's and pipeline's span, as this thread does.
        let span = tracing::Span::current();
        let write = &|batch: &[Planned]| {
            let _in_span = span.enter();
            let requests: Vec<WriteRequest> = batch.iter().map(Planned::write_request).collect();
            target.write(entity, &requests)
        };
        std::thread::scope(|scope| -> Result<(), EngineError> {
            let mut batches = writes.chunks(self.batch_size);
            let mut sending = batches
                .next()
                .map(|batch| (batch, scope.spawn(move || write(batch))));
            while let Some((batch, written)) = sending.take() {
                let results = written
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                sending = batches
                    .next()
                    .map(|batch| (batch, scope.spawn(move || write(batch))));
                self.loaded(
                    batch,
                    results,
                    copies.as_mut(),
                    snapshot.as_deref_mut(),
                    summary,
                )?;
            }
            Ok(())
        })
    }

    /// Stages a written batch: its results and links in one transaction, what it wrote applied
    /// to the snapshot, its files handed to the copy lane.
    fn loaded(
        &self,
        batch: &[Planned],
        results: Vec<WriteResult>,
        copies: Option<&mut (&mut Copier, &mut CopyLane)>,
        snapshot: Option<&mut Snapshot>,
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        let (store, tables, run_id) = (self.store, self.tables, self.run_id);
        let loaded = stage_batch(
            store,
            tables,
            run_id,
            self.pipeline,
            batch,
            results,
            summary,
        )?;
        self.linked_targets
            .extend(loaded.iter().map(|(_, target_id)| target_id.clone()));
        self.progress.report(
            &self.pipeline.pipeline,
            "import",
            ProgressStage::Load,
            summary.created + summary.updated + summary.failed,
            None,
        );
        if let Some(snapshot) = snapshot {
            // The sync back sees the target as the import left it.
            for planned in batch.iter().filter(|p| p.action == Action::Update) {
                let saved = loaded.iter().any(|(s, _)| *s == planned.source_id);
                if let (true, Some(target_id), Some(write)) =
                    (saved, &planned.target_id, &planned.write)
                {
                    snapshot.patch(self.store, target_id, write)?;
                }
            }
        }
        if let Some((copier, lane)) = copies {
            let created: HashSet<&str> = batch
                .iter()
                .filter(|p| p.action == Action::Create)
                .map(|p| p.source_id.as_str())
                .collect();
            copier.created_here(
                loaded
                    .iter()
                    .filter(|(source_id, _)| created.contains(source_id.as_str()))
                    .map(|(_, target_id)| target_id.clone()),
            );
            copier.send(lane, &loaded, summary)?;
        }
        Ok(())
    }
    /// Removes the records planned for removal, a batch at a time, each committed with its
    /// links (removed, or re-saved marked, so read whole): 86,000 links removed by one
    /// statement ran out of memory under the default limit.
    pub fn remove(
        &self,
        removals: &[Planned],
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        for batch in removals.chunks(self.batch_size) {
            let removal_links = self
                .store
                .links_of(&self.pipeline.pipeline, batch.iter().map(|p| &p.source_id))?;
            super::deletes::load(
                self.store,
                self.tables,
                self.run_id,
                self.pipeline,
                self.entity,
                self.target,
                batch,
                &removal_links,
                summary,
            )?;
        }
        Ok(())
    }
}

/// Results for records that need no write; links made by matching are recorded.
pub(super) fn load_settled(
    store: &Store,
    tables: &PipelineTables,
    run_id: &str,
    pipeline: &Pipeline,
    settled: &[Planned],
    summary: &mut PipelineSummary,
) -> Result<(), EngineError> {
    let mut rows = Vec::with_capacity(settled.len());
    let mut links = Vec::new();
    for planned in settled {
        count_settled(planned, summary);
        let status = match planned.action {
            Action::Unchanged => "unchanged",
            Action::Link => "linked",
            _ => "skipped",
        };
        rows.push(result_row(run_id, planned, None, status, None));
        if planned.action == Action::Link {
            if let Some(target_id) = &planned.target_id {
                links.push((
                    planned.source_id.clone(),
                    Link {
                        target_id: target_id.clone(),
                        source_hash: Some(planned.hash.clone()),
                        synced_record: Some(planned.after.clone()),
                        target_record: planned.matched.clone(),
                    },
                ));
            }
        }
    }
    store.in_transaction(|store| {
        store.append(tables, Stage::Results, &rows)?;
        store.save_links(run_id, &pipeline.pipeline, &links)
    })?;
    Ok(())
}

/// Commits a written batch's results and links together; returns the records saved (source
/// id, target id).
pub(super) fn stage_batch(
    store: &Store,
    tables: &PipelineTables,
    run_id: &str,
    pipeline: &Pipeline,
    batch: &[Planned],
    results: Vec<WriteResult>,
    summary: &mut PipelineSummary,
) -> Result<Vec<(String, String)>, EngineError> {
    let mut rows = Vec::with_capacity(batch.len());
    let (mut created_links, mut links) = (Vec::new(), Vec::new());
    let mut saved_ids = Vec::new();
    for (planned, result) in batch.iter().zip(results) {
        match result.outcome {
            Ok((target_id, saved)) => {
                let status = summary.count_written(planned.action);
                rows.push(result_row(run_id, planned, Some(&target_id), status, None));
                saved_ids.push((planned.source_id.clone(), target_id.clone()));
                let kept_with = match planned.action {
                    Action::Create => &mut created_links,
                    _ => &mut links,
                };
                kept_with.push((
                    planned.source_id.clone(),
                    Link {
                        target_id,
                        source_hash: Some(planned.hash.clone()),
                        synced_record: Some(planned.after.clone()),
                        target_record: Some(saved),
                    },
                ));
            }
            Err(message) => {
                summary.fail(&planned.source_id, &message);
                rows.push(result_row(run_id, planned, None, "failed", Some(&message)));
            }
        }
    }
    store.in_transaction_with_new_links(|store, new_links| {
        store.append(tables, Stage::Results, &rows)?;
        store.add_new_links(run_id, &pipeline.pipeline, &created_links, new_links)?;
        store.save_links(run_id, &pipeline.pipeline, &links)
    })?;
    Ok(saved_ids)
}
