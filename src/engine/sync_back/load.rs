//! The sync back's writes: each batch of planned records written to the source (or, for
//! records matched by `sync_back.match`, linked), its results and links committed together,
//! new records read back so the id map holds what the next import will read, and the source
//! ids written back to the target records that keep them.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{back_tables, entity, projection, BackSystems};
use crate::config::model::Pipeline;
use crate::engine::connector::{ExtractRequest, Record, WriteAction, WriteRequest};
use crate::engine::error::EngineError;
use crate::engine::lookups::{id_text, EngineLookups};
use crate::engine::plan::{get_path, set_path, update_of, Action, Planned};
use crate::engine::rows::result_row;
use crate::engine::run::RunOptions;
use crate::engine::snapshot::Snapshot;
use crate::engine::summary::PipelineSummary;
use crate::staging::{Link, Stage, Store};
use crate::transform::{changed_fields, record_hash, Transformer};

/// What the sync back's writes need, for one pipeline's run.
#[derive(Clone, Copy)]
pub(super) struct BackLoad<'a> {
    pub pipeline: &'a Pipeline,
    pub snapshot: &'a Snapshot,
    pub systems: &'a BackSystems<'a>,
    pub store: &'a Store,
    pub options: &'a RunOptions,
    /// The import's transform: what the next import will read from a written record.
    pub import: &'a Transformer,
    pub lookups: &'a EngineLookups<'a>,
}

/// Links or writes one batch of planned records ([`link_matched`] or [`write_batch`]), given
/// the listing rows their records were in.
pub(super) type LoadBatch =
    fn(&BackLoad, &[Planned], Option<(i64, i64)>, &mut PipelineSummary) -> Result<(), EngineError>;

/// The source's records by id, read as the import reads them.
pub(super) fn read_back(
    systems: &BackSystems,
    object: &str,
    import: &Transformer,
    ids: Vec<String>,
) -> Result<HashMap<String, Record>, EngineError> {
    let mut found: HashMap<String, Record> = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let mut request = ExtractRequest::new(object, import.source_fields());
    request.ids = ids;
    let id_field = systems.source.id_field().to_string();
    systems.source.extract(&request, &mut |page| {
        for record in page {
            if let Some(id) = record.get(&id_field).map(id_text) {
                found.insert(id, record);
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// Links target records to the source records they matched, with the source's values as the
/// last synced ones, and writes the source ids back where the pipeline keeps them.
pub(super) fn link_matched(
    load: &BackLoad,
    matched: &[Planned],
    listed_in: Option<(i64, i64)>,
    summary: &mut PipelineSummary,
) -> Result<(), EngineError> {
    let BackLoad {
        pipeline,
        snapshot,
        systems,
        store,
        options,
        import,
        lookups,
    } = *load;
    let object = pipeline.salesforce.object.as_str();
    let ids: Vec<String> = matched.iter().filter_map(|p| p.target_id.clone()).collect();
    let found = read_back(systems, object, import, ids)?;
    let current = snapshot.records.get_many_within(
        store,
        matched.iter().map(|p| p.source_id.as_str()),
        listed_in,
    )?;
    let mut rows = Vec::new();
    let mut links = Vec::new();
    for planned in matched {
        let Some(source_id) = &planned.target_id else {
            continue;
        };
        let synced = match found.get(source_id) {
            Some(record) => import.transform(record, lookups).record,
            None => {
                let mut base = Record::new();
                imported_view(pipeline, import, lookups, &planned.after, &mut base);
                base
            }
        };
        rows.push(result_row(&options.run_id, planned, None, "linked", None));
        links.push((
            source_id.clone(),
            Link {
                target_id: planned.source_id.clone(),
                source_hash: Some(record_hash(&synced)),
                synced_record: Some(synced),
                target_record: current.get(&planned.source_id).cloned(),
            },
        ));
    }
    let tables = back_tables(pipeline);
    store.in_transaction(|store| {
        store.append(&tables, Stage::Results, &rows)?;
        store.save_links(&options.run_id, &pipeline.pipeline, &links)
    })?;
    fill_in_target(pipeline, systems, &current, matched, &links, summary);
    Ok(())
}

/// Writes one batch to the source system, then commits its results and links together.
pub(super) fn write_batch(
    load: &BackLoad,
    batch: &[Planned],
    listed_in: Option<(i64, i64)>,
    summary: &mut PipelineSummary,
) -> Result<(), EngineError> {
    let BackLoad {
        pipeline,
        snapshot,
        systems,
        store,
        options,
        import,
        lookups,
    } = *load;
    let object = pipeline.salesforce.object.as_str();
    let run_id = options.run_id.as_str();
    // What the links of the batch's updates last synced, which their new links start from:
    // read per batch, since held for every write of a large run they were most of its memory.
    let updated: Vec<&str> = batch
        .iter()
        .filter(|p| p.action == Action::Update)
        .map(|p| p.source_id.as_str())
        .collect();
    let synced_bases = store.links_by_target(&pipeline.pipeline, &updated)?;
    let requests: Vec<WriteRequest> = batch.iter().map(Planned::write_request).collect();
    let results = systems.writer.write(object, &requests);
    // Records just created, read back as the next import will read them.
    let created: Vec<String> = batch
        .iter()
        .zip(&results)
        .filter(|(planned, _)| planned.action == Action::Create)
        .filter_map(|(_, result)| result.outcome.as_ref().ok().map(|(id, _)| id.clone()))
        .collect();
    let read_back = read_back(systems, object, import, created)?;
    // The batch's target records as listed (and patched by the import), read together.
    let current = snapshot.records.get_many_within(
        store,
        batch.iter().map(|p| p.source_id.as_str()),
        listed_in,
    )?;
    let mut rows = Vec::with_capacity(batch.len());
    let mut links = Vec::new();
    let tables = back_tables(pipeline);
    for (planned, result) in batch.iter().zip(results) {
        match result.outcome {
            Ok((source_id, sent)) => {
                let status = summary.count_written(planned.action);
                rows.push(result_row(run_id, planned, Some(&source_id), status, None));
                let synced = match read_back.get(&source_id) {
                    Some(record) => import.transform(record, lookups).record,
                    None => {
                        let mut base = synced_bases
                            .get(&planned.source_id)
                            .and_then(|(_, link)| link.synced_record.clone())
                            .unwrap_or_default();
                        imported_view(pipeline, import, lookups, &sent, &mut base);
                        base
                    }
                };
                links.push((
                    source_id,
                    Link {
                        target_id: planned.source_id.clone(),
                        source_hash: Some(record_hash(&synced)),
                        synced_record: Some(synced),
                        target_record: current.get(&planned.source_id).cloned(),
                    },
                ));
            }
            Err(message) => {
                summary.fail(&planned.source_id, &message);
                rows.push(result_row(run_id, planned, None, "failed", Some(&message)));
            }
        }
    }
    store.in_transaction(|store| {
        store.append(&tables, Stage::Results, &rows)?;
        store.save_links(run_id, &pipeline.pipeline, &links)
    })?;
    fill_in_target(pipeline, systems, &current, batch, &links, summary);
    Ok(())
}

/// Completes the target records just linked to new (or matched) source records with what the
/// source holds and they lack: the source's id where the pipeline keeps it (so matching
/// survives the loss of the staging file) and the values the source filled in itself (an
/// opportunity's probability from its stage). Target and last synced state then agree, and
/// neither direction has anything to send on the next run.
pub(super) fn fill_in_target(
    pipeline: &Pipeline,
    systems: &BackSystems,
    current: &HashMap<String, Record>,
    batch: &[Planned],
    links: &[(String, Link)],
    summary: &mut PipelineSummary,
) {
    let new: HashSet<&str> = batch
        .iter()
        .filter(|p| matches!(p.action, Action::Create | Action::Link))
        .map(|p| p.source_id.as_str())
        .collect();
    let mut requests = Vec::new();
    let mut owners = Vec::new();
    for (source_id, link) in links {
        if !new.contains(link.target_id.as_str()) {
            continue;
        }
        let (Some(synced), Some(current)) = (&link.synced_record, current.get(&link.target_id))
        else {
            continue;
        };
        let changes: Vec<_> = changed_fields(&projection(pipeline, current), synced)
            .into_iter()
            .filter(|(_, _, new)| new.as_ref().is_some_and(|v| !v.is_null()))
            .collect();
        if changes.is_empty() {
            continue;
        }
        requests.push(WriteRequest {
            action: WriteAction::Update {
                target_id: link.target_id.clone(),
            },
            record: update_of(&changes, synced),
        });
        owners.push((link.target_id.clone(), source_id.clone()));
    }
    if requests.is_empty() {
        return;
    }
    let results = systems.target.write(&entity(pipeline), &requests);
    for ((target_id, source_id), result) in owners.into_iter().zip(results) {
        if let Err(message) = result.outcome {
            summary.failures.push((
                target_id,
                format!(
                    "linked to {source_id}, but writing its id and values back failed: {message}"
                ),
            ));
        }
    }
}

/// Sets in `base` the target fields the import would derive from the source fields just
/// `sent`, so the next import compares against what the source now holds.
pub(super) fn imported_view(
    pipeline: &Pipeline,
    import: &Transformer,
    lookups: &EngineLookups,
    sent: &Record,
    base: &mut Record,
) {
    let view = import.transform(sent, lookups).record;
    for mapping in &pipeline.fields {
        let (Some(source), Some(target)) = (&mapping.salesforce, &mapping.halo) else {
            continue;
        };
        if sent.contains_key(source) {
            set_path(
                base,
                target,
                get_path(&view, target).cloned().unwrap_or(Value::Null),
            );
        }
    }
}
