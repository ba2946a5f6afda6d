//! Sync back: a pipeline's other direction, from the system the import writes (the target)
//! to the one it reads (the source), through the same id map, so a pair linked once is
//! updated, never duplicated, whichever side created it.
//!
//! The run of a two-way pipeline lists the target's records first (the [`Snapshot`]: staged in
//! `<p>_back_extracted` and read back from there, so memory holds neither the records nor
//! their ids), so the import can see fields changed on both sides since the last sync and settle them by the
//! pipeline's conflict policy; what the import writes is applied to the snapshot. Then each
//! target record is transformed backwards and compared, in source terms, with the last synced
//! values transformed the same way: only fields changed on the target side are sent, so a
//! value that came from the source never goes back unchanged, and nothing is written when
//! nothing changed. After a write, the id map's last-synced values become what the next import
//! will read from the source, so that import finds nothing to do either. Linked records the
//! target no longer lists are looked up by id, and those deleted or made inactive there lead
//! to the pipeline's `deletes.from_halo` choice (see `deletes.rs`). Between full listings,
//! entities the target lists by update time are listed only from the last listing on (see
//! `listing.rs`): a record missing from such a listing is unchanged, not gone, so removals
//! wait for a full listing. Links, and the sets of ids relinking, matching and removals ask
//! about, are read by joins in staging (see `staging/back_links.rs`), never held for the
//! whole pipeline nor looked up one record at a time.

mod load;
mod plan;
mod stages;

use load::{link_matched, write_batch, BackLoad, LoadBatch};
use plan::{BackPlanner, Draft};
use stages::{check_stages, is_blank, stage_of};

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::connector::{ExtractRequest, Record, Source, Target};
use super::error::EngineError;
use super::listing::Listing;
use super::lookups::{id_text, EngineLookups};
use super::plan::{get_path, set_path, Action};
use super::planned_writes::{PlannedWrites, WriteSpans};
use super::progress::Stage as ProgressStage;
use super::review::Review;
use super::rows::{change_row, result_row};
use super::run::RunOptions;
use super::selection::Selection;
use super::snapshot::{parse, ListingCursor, Snapshot, SnapshotRecords};
use super::summary::PipelineSummary;
use super::Mode;
use crate::config::layout::pipeline_tables;
use crate::config::model::{Lookup, Pipeline, StageNames};
use crate::staging::{
    Column, ColumnType, GatheredRows, Link, PipelineTables, Stage, Store, KEPT_SOURCE_ID,
};
use crate::transform::{changed_fields, Direction, FieldProblem, Transformed, Transformer};
/// The staging tables of the sync-back direction: `<p>_back_extracted`, `_changes`, ….
/// The listing's rows carry the source id each record keeps, when it keeps one.
pub fn back_tables(pipeline: &Pipeline) -> PipelineTables {
    PipelineTables {
        pipeline: format!("{}_back", pipeline.pipeline),
        extracted: vec![Column::new(KEPT_SOURCE_ID, ColumnType::Text)],
        transformed: Vec::new(),
    }
}

/// The scratch table holding the target ids linked when the listing started (see
/// [`Snapshot::linked_before`]); one pipeline's sync back runs at a time.
const LINKED_BEFORE_LISTING: &str = "back_linked_before";

fn config_error(pipeline: &Pipeline, message: impl std::fmt::Display) -> EngineError {
    EngineError::Config(format!("pipeline {}: {message}", pipeline.pipeline))
}

fn entity(pipeline: &Pipeline) -> String {
    format!("{:?}", pipeline.halo.entity)
}

/// Links target records that carry a source id the id map does not know (a lost or new
/// staging file, or records another tool synced), so they are updated instead of duplicated.
/// The candidates are found by one join of the listing's kept ids with the id map, and linked
/// a page at a time. Returns how many were linked.
pub fn relink(
    pipeline: &Pipeline,
    snapshot: &Snapshot,
    id_field: &str,
    store: &Store,
    run_id: &str,
) -> Result<usize, EngineError> {
    let records = &snapshot.records;
    if pipeline.kept_id_path(id_field).is_none() || records.table.is_empty() {
        return Ok(0);
    }
    let count =
        store.stage_relink_candidates(&records.table, &records.run_id, &pipeline.pipeline)?;
    let mut linked = 0;
    for from in (0..count).step_by(WHOLE_LINKS_CHUNK) {
        let mut found: Vec<(String, Link)> = Vec::new();
        let page = store.relink_candidates(
            &records.table,
            &records.run_id,
            from,
            from + WHOLE_LINKS_CHUNK,
        )?;
        for candidate in page {
            let text = records
                .kept_text(&candidate.target_id)
                .unwrap_or(&candidate.record);
            let Some(record) = parse(text) else {
                continue;
            };
            // What the target holds now stands for the last synced values, so the import
            // writes only what differs.
            let synced = projection(pipeline, &record);
            found.push((
                candidate.source_id,
                Link {
                    target_id: candidate.target_id,
                    source_hash: None,
                    synced_record: Some(synced),
                    target_record: Some(record),
                },
            ));
        }
        // Deleted and inserted together, so that a stop between the two loses no link.
        store.in_transaction(|store| store.save_links(run_id, &pipeline.pipeline, &found))?;
        linked += found.len();
    }
    store.drop_scratch("relink_candidates")?;
    Ok(linked)
}

/// Lists the target's records for sync back — all of them, or those changed since the last
/// listing and those to read again (see `listing.rs`) — and stages them in
/// `<p>_back_extracted`, recording in `extracts` which it was.
pub fn take_snapshot(
    pipeline: &Pipeline,
    reader: &dyn Source,
    store: &Store,
    source_id_field: &str,
    options: &RunOptions,
) -> Result<Snapshot, EngineError> {
    let (run_id, progress) = (options.run_id.as_str(), &options.progress);
    let calls = reader.api_calls();
    let back =
        Transformer::new(pipeline, Direction::SyncBack).map_err(|e| config_error(pipeline, e))?;
    let entity = entity(pipeline);
    // Every target field the pipeline maps: the ones synced back, and the ones the import
    // writes (to relink by a kept id and to see conflicts).
    let mut fields = back.source_fields();
    for path in pipeline.fields.iter().filter_map(|m| m.halo.as_ref()) {
        if !fields.contains(path) {
            fields.push(path.clone());
        }
    }
    if let Some(stages) = &pipeline.sync.stages {
        check_stages(pipeline, stages)?;
        fields.extend(stages.halo.iter().cloned());
    }
    let mut request = ExtractRequest::new(&entity, fields);
    // Which records are listed: `halo.list` (a value or a list of them per field), else the
    // single-valued defaults (the ticket type the pipeline's records are made as).
    request.equals = match pipeline.halo.list.is_empty() {
        false => pipeline
            .halo
            .list
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        true => pipeline
            .halo
            .defaults
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    if let Some(field) = reader.parent_field(&entity) {
        // Records listed per parent: the parents are the ones the parent pipeline linked.
        let parent = pipeline
            .fields
            .iter()
            .find_map(|m| match (&m.halo, &m.lookup) {
                (Some(halo), Some(Lookup::Pipeline(p))) if halo == field && !p.contains('.') => {
                    Some(p.clone())
                }
                _ => None,
            });
        let Some(parent) = parent else {
            return Err(config_error(
                pipeline,
                format!("{entity} records are listed per parent: map `{field}` with a `lookup` naming the pipeline of their parents (e.g. `lookup: cases`)"),
            ));
        };
        request.parents = Some(store.linked_target_ids_sorted(&parent)?);
    }
    let tables = back_tables(pipeline);
    store.ensure_pipeline_tables(&tables)?;
    let mut listing = super::listing::plan(pipeline, reader, store, &entity, options)?;
    request.changed_since = listing.since;
    let (kind, since) = listing.extract_kind();
    store.record_extract(run_id, &tables.pipeline, kind, since.as_deref())?;
    tracing::info!(
        listing = if listing.full { "full" } else { "changes" },
        reason = listing.reason,
        since = since.as_deref().unwrap_or(""),
        read_again = listing.again.len(),
        "listing the target for the sync back"
    );
    // Only a full listing tells a removed record from one left out as unchanged.
    let linked_before = (listing.full
        && pipeline.deletes_from_halo() != crate::config::model::DeletePolicy::Ignore)
        .then(|| LINKED_BEFORE_LISTING.to_string());
    if let Some(scratch) = &linked_before {
        store.keep_linked_targets(&pipeline.pipeline, scratch)?;
    }
    let mut snapshot = Snapshot {
        records: SnapshotRecords::staged_in(tables.table(Stage::Extracted), run_id),
        linked_before,
        ..Snapshot::default()
    };
    let id_field = reader.id_field().to_string();
    let kept_path = pipeline.kept_id_path(source_id_field);
    // Rows staged so far, for the progress line (a record listed twice counts twice).
    let staged_rows = std::cell::Cell::new(0u64);
    // Halo's pages are small: their rows are appended a few thousand at a time.
    let gathered = std::cell::RefCell::new(GatheredRows::new(store, &tables, Stage::Extracted));
    listing.start();
    let take_page = |snapshot: &mut Snapshot,
                     listing: &mut Listing,
                     page: Vec<Record>|
     -> Result<(), EngineError> {
        listing.observe(reader, &entity, &page);
        let mut rows = Vec::with_capacity(page.len());
        for record in page {
            let Some(id) = record
                .get(&id_field)
                .map(id_text)
                .filter(|id| !id.is_empty())
            else {
                continue;
            };
            if let Some(reason) = reader.skip_reason(&entity, &record) {
                snapshot.switched_off.insert(id.clone(), reason);
            }
            // One serialisation serves the staged row and the snapshot, which reads it back
            // from there.
            let text = serde_json::to_string(&record).unwrap_or_default();
            let mut row = vec![
                ("run_id".to_string(), super::rows::text(run_id)),
                ("source_id".to_string(), super::rows::text(&id)),
                ("record".to_string(), super::rows::text(&text)),
                ("staged_at".to_string(), super::rows::now_cell()),
            ];
            // The source id the record keeps, for relinking by a join (see [`relink`]).
            if let Some(source_id) = kept_path
                .and_then(|path| get_path(&record, path))
                .filter(|v| !is_blank(v))
                .map(id_text)
            {
                row.push((KEPT_SOURCE_ID.to_string(), super::rows::text(&source_id)));
            }
            rows.push(row);
        }
        staged_rows.set(staged_rows.get() + rows.len() as u64);
        gathered.borrow_mut().push(rows)?;
        progress.report(
            &pipeline.pipeline,
            "sync back",
            ProgressStage::Extract,
            staged_rows.get(),
            None,
        );
        Ok(())
    };
    let listed = reader.extract(&request, &mut |page| {
        take_page(&mut snapshot, &mut listing, page)
    });
    // What was listed is staged even when the listing stopped (whose error comes first);
    // what follows reads it back.
    let staged = gathered.borrow_mut().flush();
    listed?;
    staged?;
    // Records to settle again although they did not change, unless listed already.
    let again = snapshot
        .records
        .not_listed(store, std::mem::take(&mut listing.again))?;
    if !again.is_empty() {
        let request = ExtractRequest {
            ids: again,
            changed_since: None,
            ..request.clone()
        };
        let listed = reader.extract(&request, &mut |page| {
            take_page(&mut snapshot, &mut listing, page)
        });
        let staged = gathered.borrow_mut().flush();
        listed?;
        staged?;
    }
    snapshot.records.finish_listing(store)?;
    snapshot.listing = listing;
    snapshot.api_calls = reader.api_calls() - calls;
    Ok(snapshot)
}

/// Keeps where the run's listing stood, once its sync back has finished (see `listing.rs`).
pub fn listing_done(
    pipeline: &Pipeline,
    snapshot: &Snapshot,
    store: &Store,
    options: &RunOptions,
) -> Result<(), EngineError> {
    snapshot.listing.save(store, pipeline, options)
}

/// A target record in source terms, the stage rule applied.
fn backwards(
    back: &Transformer,
    stages: Option<&StageNames>,
    record: &Record,
    lookups: &EngineLookups,
) -> Transformed {
    let mut transformed = back.transform(record, lookups);
    if let Some(stages) = stages {
        transformed
            .problems
            .retain(|p| p.target != stages.salesforce);
        match stage_of(stages, record) {
            Ok(stage) => {
                transformed
                    .record
                    .insert(stages.salesforce.clone(), Value::String(stage));
            }
            Err(message) => transformed.problems.push(FieldProblem {
                target: stages.salesforce.clone(),
                message,
            }),
        }
    }
    transformed
}

/// The connectors sync back uses.
pub struct BackSystems<'a> {
    /// Reads the target system.
    pub reader: &'a dyn Source,
    /// Writes the source system.
    pub writer: &'a dyn Target,
    /// The import's source, to read records just created as the next import will.
    pub source: &'a dyn Source,
    /// The import's target, for the import transform's searches.
    pub target: &'a dyn Target,
}

/// How many snapshot records are planned per read of their whole links.
const WHOLE_LINKS_CHUNK: usize = 2_000;

/// Syncs the snapshot's records back to the source system.
pub fn sync_back(
    pipeline: &Pipeline,
    snapshot: &Snapshot,
    systems: &BackSystems,
    store: &Store,
    options: &RunOptions,
) -> Result<PipelineSummary, EngineError> {
    let mut summary = PipelineSummary {
        pipeline: pipeline.pipeline.clone(),
        direction: "sync back",
        extracted: snapshot.records.len() as u64,
        ..PipelineSummary::default()
    };
    let settings = &pipeline.sync.sync_back;
    let (writer_calls, reader_calls) = (systems.writer.api_calls(), systems.reader.api_calls());
    let tables = back_tables(pipeline);
    store.ensure_pipeline_tables(&tables)?;
    let back =
        Transformer::new(pipeline, Direction::SyncBack).map_err(|e| config_error(pipeline, e))?;
    let import =
        Transformer::new(pipeline, Direction::Import).map_err(|e| config_error(pipeline, e))?;
    let lookups = EngineLookups::new(store, systems.target);
    let run_id = options.run_id.as_str();
    // No link is held for the whole entity: one join puts the listed records' links in
    // listing order, and each chunk of the snapshot reads its own (see `back_links.rs`).
    let records = &snapshot.records;
    if let Some(rows) = match records.table.is_empty() {
        true => None,
        false => store.run_rowids(&records.table, &records.run_id)?,
    } {
        store.stage_back_links(&records.table, &records.run_id, &pipeline.pipeline, rows)?;
    }

    let selection = Selection::of(pipeline, options);
    let selection = selection.for_sync_back(store, pipeline, &pipeline_tables(pipeline))?;
    let planner = BackPlanner::new(pipeline, snapshot, systems, &back, &lookups, &selection);
    let mut matched_ids: HashSet<String> = HashSet::new();
    // Writes and links are staged as plan rows and read back by the load: here only how many
    // each chunk planned, and where its records were listed.
    let mut write_spans = WriteSpans::default();
    let mut link_spans = WriteSpans::default();
    let mut change_rows = Vec::new();
    let mut settled_rows = Vec::new();
    let mut unmarked: Vec<String> = Vec::new();
    let mut planned_count: u64 = 0;
    let review = Review::of_run(store, &tables, options)?;
    // The records are read back from staging a chunk at a time, in listing order.
    let mut cursor = ListingCursor::default();
    loop {
        let chunk = records.next_chunk(store, &mut cursor, WHOLE_LINKS_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        let links = match cursor.last_rows() {
            Some((from, to)) => store.back_links_between(from, to)?,
            None => {
                let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
                store.links_by_target(&pipeline.pipeline, &ids)?
            }
        };
        // First each record is planned up to the search for a source record its match keys
        // find; then one read of the id map tells which of those found are linked already.
        let mut drafts: Vec<Draft> = Vec::with_capacity(chunk.len());
        let (mut chunk_writes, mut chunk_links) = (0, 0);
        for (id, text) in &chunk {
            let Some(record) = parse(text) else {
                continue;
            };
            let record = &record;
            drafts.push(planner.draft(id, record, links.get(id))?);
        }
        let found: Vec<&String> = drafts
            .iter()
            .filter_map(|draft| draft.unlinked.as_ref()?.as_ref())
            .collect();
        let linked_sources: HashSet<String> = match found.is_empty() {
            true => HashSet::new(),
            false => store
                .link_heads_of(&pipeline.pipeline, found)?
                .into_keys()
                .collect(),
        };
        for draft in drafts {
            let Draft {
                mut planned,
                linked,
                unlinked,
            } = draft;
            if let Some(found) = unlinked {
                // A source record linked already (to another record, or earlier in this run)
                // is not matched again.
                match found.filter(|f| !linked_sources.contains(f) && !matched_ids.contains(f)) {
                    Some(found) => {
                        planned.reason =
                            Some(format!("matched on {}", settings.match_on.join(", ")));
                        planned.action = Action::Link;
                        matched_ids.insert(found.clone());
                        planned.target_id = Some(found);
                    }
                    None if !settings.create => {
                        planned.reason =
                            Some("not linked to a record, and `sync_back.create` is off".into());
                    }
                    None => {
                        planned.action = Action::Create;
                        planned.changes = changed_fields(&Map::new(), &planned.after);
                        planned.write = Some(planned.after.clone());
                    }
                }
            }
            let reappeared = linked
                .filter(|(_, link)| super::deletes::back_reappeared(pipeline, &mut planned, link));
            let held = review.as_ref().is_some_and(|r| r.hold(&mut planned));
            if let (Some((source_id, _)), false) = (reappeared, held) {
                unmarked.push(source_id.clone());
            }
            change_rows.push(change_row(run_id, &planned));
            summary.count_planned(planned.action);
            if planned.action.writes() {
                chunk_writes += 1;
            } else if planned.action == Action::Link {
                summary.linked += 1;
                chunk_links += 1;
            } else {
                match planned.action {
                    Action::Unchanged => summary.unchanged += 1,
                    _ => summary.skipped += 1,
                }
                let status = if planned.action == Action::Unchanged {
                    "unchanged"
                } else {
                    "skipped"
                };
                settled_rows.push(result_row(run_id, &planned, None, status, None));
            }
        }
        write_spans.push(chunk_writes, cursor.last_rows());
        link_spans.push(chunk_links, cursor.last_rows());
        // Each chunk's plan rows (before and after of every record) are staged as it is
        // planned, so memory holds one chunk's, not the entity's.
        store.append(&tables, Stage::Changes, &std::mem::take(&mut change_rows))?;
        if options.mode == Mode::Load {
            store.append(&tables, Stage::Results, &std::mem::take(&mut settled_rows))?;
        } else {
            settled_rows.clear();
        }
        planned_count += chunk.len() as u64;
        options.progress.report(
            &pipeline.pipeline,
            "sync back",
            ProgressStage::Plan,
            planned_count,
            Some(records.len() as u64),
        );
    }
    store.drop_scratch("back_links")?;
    // Before anything planned with a lookup that could not be answered is written.
    if let Some(error) = lookups.failure(&pipeline.pipeline) {
        return Err(error);
    }
    // Linked records gone from the target (or inactive there), by the pipeline's `from_halo`.
    let mut removals = Vec::new();
    // Only a full listing tells a record gone from one left out as unchanged.
    let gone = match (&snapshot.linked_before, snapshot.listing.full) {
        (Some(linked_before), true) => super::deletes::removed_in_target(
            pipeline,
            systems.reader,
            store,
            records,
            linked_before,
        )?,
        _ => Vec::new(),
    };
    if let Some(linked_before) = &snapshot.linked_before {
        store.drop_scratch(linked_before)?;
    }
    for (target_id, source_id, why) in gone {
        let mut planned = super::deletes::plan_back(pipeline, &target_id, &source_id, why);
        if let Some(review) = &review {
            review.hold(&mut planned);
        }
        change_rows.push(change_row(run_id, &planned));
        if matches!(planned.action, Action::Delete | Action::Deactivate) {
            summary.planned_removals += 1;
            removals.push(planned);
        } else {
            summary.skipped += 1;
            settled_rows.push(result_row(run_id, &planned, None, "skipped", None));
        }
    }
    store.append(&tables, Stage::Changes, &change_rows)?;
    if let Some(review) = &review {
        review.check(
            store,
            run_id,
            &pipeline.pipeline,
            "sync back",
            options.force,
        )?;
    }

    if options.mode == Mode::Load {
        store.append(&tables, Stage::Results, &settled_rows)?;
        let batch_size = options.batch_size.max(1);
        // Removals go a load batch at a time, each committed with its links (removed, or
        // re-saved marked, so read whole, keyed by the id the import's side gave them).
        for batch in removals.chunks(batch_size) {
            let links = store.links_of(
                &pipeline.pipeline,
                batch.iter().filter_map(|p| p.target_id.as_ref()),
            )?;
            super::deletes::load_back(
                store,
                &tables,
                run_id,
                pipeline,
                systems.writer,
                batch,
                &links,
                &mut summary,
            )?;
        }
        // Unmarking re-saves the links too: read whole, in the order planned.
        for batch in unmarked.chunks(batch_size) {
            let mut whole = store.links_of(&pipeline.pipeline, batch)?;
            let unmarked: Vec<(String, Link)> = batch
                .iter()
                .filter_map(|source_id| {
                    let link = whole.remove(source_id)?;
                    Some((source_id.clone(), link))
                })
                .collect();
            super::deletes::unmark(store, run_id, pipeline, unmarked)?;
        }
        // Matched records are linked first, then the writes go: each read back from the
        // staged plan and handed over a load batch at a time.
        let changes_table = tables.table(Stage::Changes);
        let changes_rows = match link_spans.total() + write_spans.total() {
            0 => None,
            _ => store.run_rowids(&changes_table, run_id)?,
        };
        let staged = [
            (&["link"][..], link_spans, link_matched as LoadBatch),
            (&["create", "update"][..], write_spans, write_batch),
        ];
        let back_load = BackLoad {
            pipeline,
            snapshot,
            systems,
            store,
            options,
            import: &import,
            lookups: &lookups,
        };
        for (actions, spans, load) in staged {
            let total = spans.total() as u64;
            let plan = (changes_table.as_str(), changes_rows);
            let mut batches = PlannedWrites::new(store, plan, run_id, actions, spans);
            let mut done = 0;
            while let Some((batch, rows)) = batches.next_batch(batch_size)? {
                done += batch.len() as u64;
                load(&back_load, &batch, rows, &mut summary)?;
                options.progress.report(
                    &pipeline.pipeline,
                    "sync back",
                    ProgressStage::Load,
                    done,
                    Some(total),
                );
            }
        }
    }
    summary.source_api_calls = systems.writer.api_calls() - writer_calls;
    summary.target_api_calls = systems.reader.api_calls() - reader_calls + snapshot.api_calls;
    Ok(summary)
}

/// The fields of a target record the pipeline maps (its import's target paths).
fn projection(pipeline: &Pipeline, record: &Record) -> Record {
    let mut out = Record::new();
    let paths = pipeline
        .fields
        .iter()
        .filter_map(|m| m.halo.as_ref())
        .chain(pipeline.halo.defaults.keys());
    for path in paths {
        if let Some(value) = get_path(record, path).filter(|v| !v.is_null()) {
            set_path(&mut out, path, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stages() -> StageNames {
        StageNames {
            salesforce: "StageName".into(),
            halo: vec![
                "salesforce_stage".into(),
                "tickettype.salesforce_default_stage".into(),
            ],
            names: vec![
                "Prospecting".into(),
                "Qualification".into(),
                "Closed Won".into(),
            ],
            default: "prospecting".into(),
        }
    }

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn the_most_specific_stage_wins() {
        let stages = stages();
        let stage = |value: Value| stage_of(&stages, &record(value));
        assert_eq!(stage(json!({})).unwrap(), "Prospecting");
        assert_eq!(
            stage(json!({"tickettype": {"salesforce_default_stage": "qualification"}})).unwrap(),
            "Qualification"
        );
        assert_eq!(
            stage(json!({"salesforce_stage": 3, "tickettype": {"salesforce_default_stage": "Qualification"}}))
                .unwrap(),
            "Closed Won"
        );
        assert!(stage(json!({"salesforce_stage": 4}))
            .unwrap_err()
            .contains("1 to 3"));
        assert!(stage(json!({"salesforce_stage": "Lost"}))
            .unwrap_err()
            .contains("not one of the stage names"));
    }
}
