//! One pipeline's run: extract pages from the source into `<p>_extracted` and, transformed,
//! into `<p>_transformed`; plan every record against the id map into `<p>_changes`; then load
//! the writes in batches, each batch's results and links committed in one transaction, so a
//! run killed at any moment resumes without duplicates.

use std::collections::HashSet;

use super::attachments::Copier;
use super::connector::{ExtractRequest, Record, Source, Target};
use super::deletes::Schedule;
use super::error::EngineError;
use super::extract::{Extracted, FirstPass};
use super::import_plan::{synced_paths, ImportPlanner};
use super::incremental::IncrementalPlan;
use super::linked_targets::LinkedTargets;
use super::load::Loader;
use super::lookups::EngineLookups;
use super::plan::{Action, PlanContext, Planned};
use super::progress::{ProgressReporter, Stage as ProgressStage};
use super::review::Review;
use super::rows::{change_row, conflict_row};
use super::selection::Selection;
use super::snapshot::Snapshot;
use super::summary::{count_settled, PipelineSummary};
use super::sync_back::{self, BackSystems};
use crate::config::layout::pipeline_tables;
use crate::config::model::{DeletePolicy, ImportMode, Pipeline};
use crate::staging::{Cell, ExtractKind, PipelineTables, Stage, Store};
use crate::transform::{Direction, Transformer};

/// Plan only (`etl plan`), or plan and load (`etl run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Load,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    pub mode: Mode,
    /// Records per load batch (and per checkpoint).
    pub batch_size: usize,
    /// The project's import mode, for pipelines that set none.
    pub default_import: ImportMode,
    /// `--select`: only these source ids, or records matching this SQL condition.
    pub select: Vec<String>,
    pub select_where: Option<String>,
    /// `--exclude`: never these source ids.
    pub exclude: Vec<String>,
    /// `etl apply`: the plan run that was reviewed. The load goes ahead only when planning
    /// again gives exactly that plan (the source has not moved on), unless `force`.
    pub reviewed: Option<String>,
    pub force: bool,
    /// The project's `defaults.attachments`, for pipelines that set no `attachments`.
    pub default_attachments: bool,
    /// The project's `defaults.in_flight`: attachment copies at once.
    pub in_flight: usize,
    /// `--full`: read every record, also for pipelines that read only changes.
    pub full_extract: bool,
    /// Where each stage's progress is reported.
    pub progress: ProgressReporter,
}

/// The connectors of a run: the import's source and target and, for pipelines that sync
/// back, a reader of the target and a writer of the source.
pub struct Systems<'a> {
    pub source: &'a dyn Source,
    pub target: &'a dyn Target,
    pub target_reader: Option<&'a dyn Source>,
    pub source_writer: Option<&'a dyn Target>,
}

/// Runs one pipeline both ways: the import (when on), then the sync back (when on and the
/// run has the connectors for it). One summary per direction that ran.
pub fn run_both_ways(
    pipeline: &Pipeline,
    systems: &Systems,
    store: &Store,
    options: &RunOptions,
) -> Result<Vec<PipelineSummary>, EngineError> {
    let span =
        tracing::info_span!("pipeline", pipeline = %pipeline.pipeline, run_id = %options.run_id);
    let _in_pipeline = span.enter();
    let started = std::time::Instant::now();
    let import = pipeline.sync.import.unwrap_or(options.default_import);
    let describe_calls = systems.source.api_calls();
    let drift = super::drift::check(
        pipeline,
        systems.source,
        store,
        &options.run_id,
        options.mode == Mode::Load,
    )?;
    let describe_calls = systems.source.api_calls() - describe_calls;
    let back = match (systems.target_reader, systems.source_writer) {
        (Some(reader), Some(writer)) if pipeline.syncs_back() => Some(BackSystems {
            reader,
            writer,
            source: systems.source,
            target: systems.target,
        }),
        _ => None,
    };
    for change in &drift {
        tracing::warn!(%change, "schema drift");
    }
    let snapshot_started = std::time::Instant::now();
    let mut snapshot = match &back {
        Some(back) => Some(sync_back::take_snapshot(
            pipeline,
            back.reader,
            store,
            systems.source.id_field(),
            options,
        )?),
        None => None,
    };
    if snapshot.is_some() {
        tracing::info!(
            stage = "snapshot",
            elapsed_ms = snapshot_started.elapsed().as_millis() as u64,
            "target records listed for the sync back"
        );
    }
    if let Some(snapshot) = &snapshot {
        sync_back::relink(
            pipeline,
            snapshot,
            systems.source.id_field(),
            store,
            &options.run_id,
        )?;
    }
    let mut summaries = Vec::new();
    if import != ImportMode::Off {
        summaries.push(import_pipeline(
            pipeline,
            systems.source,
            systems.target,
            store,
            options,
            snapshot.as_mut(),
        )?);
    }
    if let (Some(back), Some(snapshot)) = (&back, &snapshot) {
        let span = tracing::info_span!("sync_back");
        let _in_sync_back = span.enter();
        let sync_back_started = std::time::Instant::now();
        let summary = sync_back::sync_back(pipeline, snapshot, back, store, options)?;
        // Only now: a run that stops before this lists the same changes again.
        sync_back::listing_done(pipeline, snapshot, store, options)?;
        tracing::info!(
            stage = "sync back",
            extracted = summary.extracted,
            created = summary.created,
            updated = summary.updated,
            unchanged = summary.unchanged,
            skipped = summary.skipped,
            failed = summary.failed,
            conflicts = summary.conflicts.len(),
            snapshot_point_reads = snapshot.records.point_reads(),
            elapsed_ms = sync_back_started.elapsed().as_millis() as u64,
            "sync back done"
        );
        summaries.push(summary);
    }
    if let Some(first) = summaries.first_mut() {
        first.schema_drift = drift;
        first.source_api_calls += describe_calls;
    }
    for conflict in summaries.iter().flat_map(|s| &s.conflicts) {
        tracing::info!(
            source_id = %conflict.source_id,
            target_id = %conflict.target_id,
            field = %conflict.field,
            resolution = conflict.resolution,
            "conflict"
        );
    }
    tracing::info!(
        directions = summaries.len(),
        source_api_calls = summaries.iter().map(|s| s.source_api_calls).sum::<u64>(),
        target_api_calls = summaries.iter().map(|s| s.target_api_calls).sum::<u64>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "pipeline done"
    );
    Ok(summaries)
}

/// Runs one pipeline's import (Salesforce → Halo direction).
pub fn run_pipeline(
    pipeline: &Pipeline,
    source: &dyn Source,
    target: &dyn Target,
    store: &Store,
    options: &RunOptions,
) -> Result<PipelineSummary, EngineError> {
    import_pipeline(pipeline, source, target, store, options, None)
}

/// The import; with a snapshot of the target, fields changed on both sides are settled by the
/// pipeline's conflict policy and what is written is applied to the snapshot.
fn import_pipeline(
    pipeline: &Pipeline,
    source: &dyn Source,
    target: &dyn Target,
    store: &Store,
    options: &RunOptions,
    mut snapshot: Option<&mut Snapshot>,
) -> Result<PipelineSummary, EngineError> {
    let mut summary = PipelineSummary {
        pipeline: pipeline.pipeline.clone(),
        direction: "import",
        ..PipelineSummary::default()
    };
    let import = pipeline.sync.import.unwrap_or(options.default_import);
    if import == ImportMode::Off {
        return Ok(summary);
    }
    let span = tracing::info_span!("import");
    let _in_import = span.enter();
    let stage_started = std::time::Instant::now();
    let (source_calls, target_calls) = (source.api_calls(), target.api_calls());
    let tables = pipeline_tables(pipeline);
    store.ensure_pipeline_tables(&tables)?;
    let transformer = Transformer::new(pipeline, Direction::Import)
        .map_err(|e| EngineError::Config(format!("pipeline {}: {e}", pipeline.pipeline)))?;
    let lookups = EngineLookups::new(store, target);
    let run_id = options.run_id.as_str();
    let entity = format!("{:?}", pipeline.halo.entity);
    let mut copier = if pipeline.attachments.unwrap_or(options.default_attachments) {
        Some(Copier::new(
            source,
            target,
            store,
            run_id,
            &pipeline.pipeline,
            &entity,
            options.in_flight,
        )?)
    } else {
        None
    };

    // Deleted records are read too when the pipeline acts on deletes.
    let delete_policy = pipeline.deletes_from_salesforce();
    let deleted_flag = match delete_policy {
        DeletePolicy::Ignore => None,
        _ => source.deleted_field().map(str::to_string),
    };

    // Pass 1 (`extract.rs`): extract, stage, transform, stage. A pipeline with a cursor reads
    // the changes since its watermark, then the records its last load left to retry.
    let incremental = super::incremental::plan(
        pipeline,
        store,
        &tables.table(Stage::Results),
        options.full_extract,
    )?;
    let request = extract_request(
        pipeline,
        &transformer,
        deleted_flag.is_some(),
        incremental.as_ref(),
    );
    store.record_extract(
        run_id,
        &pipeline.pipeline,
        incremental
            .as_ref()
            .map_or(ExtractKind::Full, |plan| plan.kind),
        incremental
            .as_ref()
            .and_then(|plan| plan.since_text())
            .as_deref(),
    )?;
    let first_pass = FirstPass {
        pipeline,
        source,
        store,
        tables: &tables,
        run_id,
        transformer: &transformer,
        lookups: &lookups,
        deleted_flag: deleted_flag.as_deref(),
        incremental: incremental.as_ref(),
        request: &request,
        progress: &options.progress,
    };
    let Extracted {
        problems,
        mut deleted,
        reached,
        new_files,
    } = first_pass.run(copier.as_mut(), &mut summary)?;
    tracing::info!(
        stage = "extract",
        extracted = summary.extracted,
        with_problems = problems.len(),
        elapsed_ms = stage_started.elapsed().as_millis() as u64,
        "extracted and transformed"
    );
    let stage_started = std::time::Instant::now();
    // The plan and the load look nothing up: the links read for the lookups are let go before
    // they start (at 1M records the opportunities' load then ran 20–30 MB lower).
    let lookup_failure = lookups.failure(&pipeline.pipeline);
    drop(lookups);
    if let Some(error) = lookup_failure {
        return Err(error);
    }

    // Which records the user selected (the guide's "deselect objects").
    let selected = Selection::of(pipeline, options).import_ids(store, pipeline, &tables, run_id)?;

    // Pass 2: plan. No link is held for the whole pipeline: staging joins the run's records
    // with their links, and the plan reads them a chunk at a time (see `run_links.rs`).
    if let Some(flag) = &deleted_flag {
        deleted.extend(find_deleted(
            pipeline,
            source,
            store,
            &tables,
            options,
            flag,
            incremental.as_ref(),
        )?);
    }
    let linked_targets = LinkedTargets::new(store, &pipeline.pipeline);
    let context = PlanContext {
        entity: &entity,
        import,
        match_keys: &pipeline.halo.match_on,
        target,
        linked_targets: &linked_targets,
    };
    let review = Review::of_run(store, &tables, options)?;
    let load = Loader {
        store,
        tables: &tables,
        run_id,
        pipeline,
        entity: &entity,
        target,
        batch_size: options.batch_size.max(1),
        linked_targets: &linked_targets,
        progress: &options.progress,
    };
    let transformed_table = tables.table(Stage::Transformed);
    let staged = store.run_rowids(&transformed_table, run_id)?;
    if let Some(range) = staged {
        store.stage_run_links(&transformed_table, run_id, &pipeline.pipeline, range)?;
    }
    let planner = ImportPlanner {
        store,
        transformed_table: &transformed_table,
        run_id,
        pipeline,
        context: &context,
        entity: &entity,
        deleted: &deleted,
        problems: &problems,
        selected: selected.as_ref(),
        review: review.as_ref(),
        delete_policy,
        synced_paths: synced_paths(pipeline),
    };
    let plan_chunk = options.batch_size.max(1) * BATCHES_PER_PLAN_CHUNK;
    let chunks = || {
        let (first, last) = staged.unwrap_or((0, -1));
        (first..=last)
            .step_by(plan_chunk)
            .map(move |from| (from, (from + plan_chunk as i64).min(last + 1)))
    };
    // `etl apply` makes and stages the whole plan first and compares it with the one reviewed
    // before anything is written; the load then plans each chunk again (from the same staged
    // records and links) and loads it as it goes, as `etl run` does. Holding every write of the
    // plan until the comparison took 310 MB for 25,000 creates (BENCHMARKS.md).
    let checked_first = match (&review, options.mode) {
        (Some(review), Mode::Load) => {
            for (from, to) in chunks() {
                let plans =
                    planner.plan_rows(from, to, snapshot.as_deref_mut(), &mut Vec::new())?;
                let rows: Vec<_> = plans.iter().map(|p| change_row(run_id, p)).collect();
                store.append(&tables, Stage::Changes, &rows)?;
            }
            let rows: Vec<_> = planner
                .plan_removals()?
                .iter()
                .map(|p| change_row(run_id, p))
                .collect();
            store.append(&tables, Stage::Changes, &rows)?;
            review.check(store, run_id, &pipeline.pipeline, "import", options.force)?;
            true
        }
        _ => false,
    };
    let mut sorted = PlanSorter {
        run_id,
        mode: options.mode,
        stage_changes: !checked_first,
        change_rows: Vec::new(),
        writes: Vec::new(),
        settled: Vec::new(),
        removals: Vec::new(),
    };
    // The plan and the load run in one thread scope: the copy lane in it copies a load batch's
    // files while the next batches are planned, written and staged, and is waited for before
    // the load is done (and an incremental read's watermark moves).
    std::thread::scope(|scope| {
        let mut lane = match (&copier, options.mode) {
            (Some(copier), Mode::Load) => Some(copier.start(scope)),
            _ => None,
        };
        let mut planned_count: u64 = 0;
        for (from, to) in chunks() {
            let chunk_plans =
                planner.plan_rows(from, to, snapshot.as_deref_mut(), &mut summary.conflicts)?;
            planned_count += chunk_plans.len() as u64;
            for planned in chunk_plans {
                sorted.take(planned, &mut summary);
                if sorted.change_rows.len() >= 1000 {
                    sorted.stage_changes(store, &tables)?;
                }
            }
            options.progress.report(
                &pipeline.pipeline,
                "import",
                ProgressStage::Plan,
                planned_count,
                Some(summary.extracted),
            );
            if options.mode == Mode::Load {
                // Each chunk is loaded as soon as it is planned, so memory holds one chunk's
                // writes; its changes are staged before its results.
                sorted.stage_changes(store, &tables)?;
                load.load(
                    &sorted.settled,
                    &sorted.writes,
                    copier.as_mut().zip(lane.as_mut()),
                    snapshot.as_deref_mut(),
                    &mut summary,
                )?;
                sorted.settled.clear();
                sorted.writes.clear();
            }
        }
        store.drop_scratch("run_links")?;
        for planned in planner.plan_removals()? {
            sorted.take_removal(planned, &mut summary);
        }
        sorted.stage_changes(store, &tables)?;
        let conflict_rows: Vec<_> = summary
            .conflicts
            .iter()
            .map(|c| conflict_row(run_id, c))
            .collect();
        store.append(&tables, Stage::Conflicts, &conflict_rows)?;

        tracing::info!(
            stage = "plan",
            create = summary.planned_creates,
            update = summary.planned_updates,
            remove = summary.planned_removals,
            conflicts = summary.conflicts.len(),
            elapsed_ms = stage_started.elapsed().as_millis() as u64,
            "planned"
        );
        let stage_started = std::time::Instant::now();
        if options.mode == Mode::Load {
            load.load(
                &sorted.settled,
                &sorted.writes,
                copier.as_mut().zip(lane.as_mut()),
                snapshot,
                &mut summary,
            )?;
            if let (Some(copier), Some(lane)) = (copier.as_mut(), lane.as_mut()) {
                copier.finish(lane, &mut summary)?;
            }
            load.remove(&sorted.removals, &mut summary)?;
            tracing::info!(
                stage = "load",
                created = summary.created,
                updated = summary.updated,
                deleted = summary.deleted + summary.deactivated,
                failed = summary.failed,
                attachments_copied = summary.attachments_copied,
                elapsed_ms = stage_started.elapsed().as_millis() as u64,
                "loaded"
            );
            // Only now has every change read been loaded (or recorded as left to retry).
            if let Some(plan) = &incremental {
                plan.save(store, &pipeline.pipeline, reached, &new_files, run_id)?;
            }
        } else {
            for planned in &sorted.settled {
                count_settled(planned, &mut summary);
            }
        }
        summary.source_api_calls = source.api_calls() - source_calls;
        summary.target_api_calls = target.api_calls() - target_calls;
        Ok(summary)
    })
}

/// What the first pass asks the source for: the fields the transform reads, the pipeline's
/// filter or query, deleted records when the pipeline acts on them, and for a read of
/// changes, its cursor field and where it starts.
fn extract_request(
    pipeline: &Pipeline,
    transformer: &Transformer,
    include_deleted: bool,
    incremental: Option<&IncrementalPlan>,
) -> ExtractRequest {
    let mut request = ExtractRequest {
        filter: pipeline.salesforce.where_clause.clone(),
        query: pipeline.salesforce.query.clone(),
        include_deleted,
        incremental: incremental.map(|plan| plan.read.clone()),
        ..ExtractRequest::new(&pipeline.salesforce.object, transformer.source_fields())
    };
    if let Some(plan) = incremental {
        request.fields.push(plan.read.cursor_field.clone());
    }
    request
}

/// Source records deleted since they were linked, beyond those the extract saw flagged: linked
/// records the source no longer returns (see `deletes::missing`) and, for a read of changes
/// whose filter leaves deleted records out, those deleted since its watermark.
fn find_deleted(
    pipeline: &Pipeline,
    source: &dyn Source,
    store: &Store,
    tables: &PipelineTables,
    options: &RunOptions,
    deleted_flag: &str,
    incremental: Option<&IncrementalPlan>,
) -> Result<HashSet<String>, EngineError> {
    let schedule = Schedule {
        store,
        run_id: &options.run_id,
        record: options.mode == Mode::Load,
    };
    let mut deleted = super::deletes::missing(
        pipeline,
        source,
        deleted_flag,
        &tables.table(Stage::Extracted),
        &schedule,
    )?;
    if let Some(since) = incremental.and_then(|plan| plan.read.since.as_ref()) {
        let gone = source.deleted_since(&pipeline.salesforce.object, &since.value)?;
        deleted.extend(store.link_heads_of(&pipeline.pipeline, &gone)?.into_keys());
    }
    Ok(deleted)
}

/// Sorts the planned records of an import as they come: every one's change row staged (unless
/// `etl apply` staged the plan already), writes and settled records kept for the load of
/// their chunk, removals kept for the end. A plan keeps nothing but its rows and counts.
struct PlanSorter<'a> {
    run_id: &'a str,
    mode: Mode,
    stage_changes: bool,
    change_rows: Vec<Vec<(String, Cell)>>,
    writes: Vec<Planned>,
    settled: Vec<Planned>,
    removals: Vec<Planned>,
}

impl PlanSorter<'_> {
    fn take(&mut self, planned: Planned, summary: &mut PipelineSummary) {
        if self.stage_changes {
            self.change_rows.push(change_row(self.run_id, &planned));
        }
        summary.count_planned(planned.action);
        if self.mode == Mode::Plan {
            if !planned.action.writes() {
                count_settled(&planned, summary);
            }
        } else if planned.action.writes() {
            self.writes.push(planned);
        } else {
            self.settled.push(settled_only(planned));
        }
    }

    /// A record planned for removal (or left as it is, when the policy keeps it).
    fn take_removal(&mut self, planned: Planned, summary: &mut PipelineSummary) {
        if self.stage_changes {
            self.change_rows.push(change_row(self.run_id, &planned));
        }
        if matches!(planned.action, Action::Delete | Action::Deactivate) {
            summary.planned_removals += 1;
            self.removals.push(planned);
        } else {
            self.settled.push(planned);
        }
    }

    fn stage_changes(&mut self, store: &Store, tables: &PipelineTables) -> Result<(), EngineError> {
        store.append(tables, Stage::Changes, &self.change_rows)?;
        self.change_rows.clear();
        Ok(())
    }
}

/// How many load batches one chunk of the plan holds: the transformed records are read back,
/// planned and (by `etl run`) loaded this many batches at a time (1,000 records at the default
/// batch size of 200).
const BATCHES_PER_PLAN_CHUNK: usize = 5;

/// What a record that needs no write keeps once its change row is staged: its result and,
/// for a link made by matching, what the id map records. The rest is dropped so that a large
/// no-op run does not hold every record twice.
fn settled_only(mut planned: Planned) -> Planned {
    planned.before = None;
    planned.changes = Vec::new();
    planned.write = None;
    if planned.action != Action::Link {
        planned.after = Record::new();
    }
    planned
}
