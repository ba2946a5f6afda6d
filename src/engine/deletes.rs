//! Deletes: a linked source record that was deleted — read with its deleted flag when the
//! pipeline asks for deleted records (soft deletes), or missing from the extract and then not
//! found by Id, or found deleted (hard deletes and records deleted outside the filter) — leads
//! to the pipeline's choice for its target record: `ignore`, `deactivate` or `delete`. Planned
//! and staged like any other change (action `delete` / `deactivate`), so `etl plan` shows them.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::connector::{ExtractRequest, Source, Target};
use super::error::EngineError;
use super::lookups::id_text;
use super::plan::{Action, Planned};
use super::run::{result_row, PipelineSummary};
use crate::config::model::{DeletePolicy, Pipeline};
use crate::staging::{Link, PipelineTables, Stage, Store};

/// Marks a link whose target record was deactivated for a source deletion, so the next run
/// does not deactivate it again.
const DEACTIVATED: &str = "deactivated: deleted in the source";

/// Whether the record carries the source's deleted flag, set.
pub fn is_deleted(record: &serde_json::Map<String, Value>, flag: &str) -> bool {
    matches!(record.get(flag), Some(Value::Bool(true)))
}

/// The linked records missing from this run's extract that the source no longer has, or has
/// deleted: looked up by Id, deleted ones included.
pub fn missing(
    pipeline: &Pipeline,
    source: &dyn Source,
    flag: &str,
    links: &HashMap<String, Link>,
    seen: &HashSet<String>,
) -> Result<HashSet<String>, EngineError> {
    let mut candidates: Vec<String> = links
        .keys()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    candidates.sort();
    let mut request = ExtractRequest::new(&pipeline.salesforce.object, Vec::new());
    request.ids = candidates.clone();
    request.include_deleted = true;
    let id_field = source.id_field().to_string();
    let mut alive = HashSet::new();
    source.extract(&request, &mut |page| {
        for record in page {
            if let Some(id) = record.get(&id_field).map(id_text) {
                if !is_deleted(&record, flag) {
                    alive.insert(id);
                }
            }
        }
        Ok(())
    })?;
    Ok(candidates
        .into_iter()
        .filter(|id| !alive.contains(id))
        .collect())
}

/// What to do with the target record of a source record that was deleted.
pub fn plan(policy: DeletePolicy, source_id: &str, link: Option<&Link>) -> Planned {
    let mut planned = Planned {
        source_id: source_id.to_string(),
        action: Action::Skip,
        target_id: link.map(|l| l.target_id.clone()),
        reason: Some("deleted in the source".into()),
        changes: Vec::new(),
        before: None,
        after: Default::default(),
        write: None,
        hash: String::new(),
        matched: None,
    };
    match (policy, link) {
        (_, None) => {
            planned.reason = Some("deleted in the source and never loaded".into());
        }
        (DeletePolicy::Ignore, Some(_)) => {}
        (DeletePolicy::Deactivate, Some(link))
            if link.source_hash.as_deref() == Some(DEACTIVATED) =>
        {
            planned.action = Action::Unchanged;
            planned.reason = Some("deleted in the source; deactivated by an earlier run".into());
        }
        (DeletePolicy::Deactivate, Some(_)) => planned.action = Action::Deactivate,
        (DeletePolicy::Delete, Some(_)) => planned.action = Action::Delete,
    }
    planned
}

/// Deletes or deactivates the planned target records, one call each, and commits their results
/// with the id map: a deleted record's link is removed, a deactivated one's is marked.
#[allow(clippy::too_many_arguments)]
pub fn load(
    store: &Store,
    tables: &PipelineTables,
    run_id: &str,
    pipeline: &Pipeline,
    entity: &str,
    target: &dyn Target,
    removals: &[Planned],
    links: &HashMap<String, Link>,
    summary: &mut PipelineSummary,
) -> Result<(), EngineError> {
    let mut rows = Vec::with_capacity(removals.len());
    let mut gone = Vec::new();
    let mut marked = Vec::new();
    for planned in removals {
        let Some(target_id) = &planned.target_id else {
            continue;
        };
        let outcome = match planned.action {
            Action::Delete => target.delete(entity, target_id),
            _ => target.deactivate(entity, target_id),
        };
        match outcome {
            Ok(()) if planned.action == Action::Delete => {
                summary.deleted += 1;
                rows.push(result_row(run_id, planned, None, "deleted", None));
                gone.push(planned.source_id.clone());
            }
            Ok(()) => {
                summary.deactivated += 1;
                rows.push(result_row(run_id, planned, None, "deactivated", None));
                if let Some(link) = links.get(&planned.source_id) {
                    let mut link = link.clone();
                    link.source_hash = Some(DEACTIVATED.into());
                    marked.push((planned.source_id.clone(), link));
                }
            }
            Err(message) => {
                summary.fail(&planned.source_id, &message);
                rows.push(result_row(run_id, planned, None, "failed", Some(&message)));
            }
        }
    }
    store.in_transaction(|store| {
        store.append(tables, Stage::Results, &rows)?;
        store.save_links(run_id, &pipeline.pipeline, &marked)?;
        store.remove_links(&pipeline.pipeline, &gone)
    })?;
    Ok(())
}
