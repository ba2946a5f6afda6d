//! Deletes, both ways. Import: a linked source record that was deleted — read with its
//! deleted flag when the pipeline asks for deleted records (soft deletes), or missing from the
//! extract and then not found by Id, or found deleted (hard deletes and records deleted
//! outside the filter; looked up on the pipeline's `hard_delete_check` schedule) — leads to
//! the pipeline's choice for its target record: `ignore`, `deactivate` or `delete`. A source
//! record restored after its target record was deactivated reactivates it. Sync back: a
//! linked target record the target no longer lists, and that is gone or inactive when read by
//! id, leads to the pipeline's `from_halo` choice for its source record: `delete`, or
//! `deactivate` by setting the configured field. Planned and staged like any other change
//! (action `delete` / `deactivate`), so `etl plan` shows them; each is made once, the link
//! removed (delete) or marked (deactivate).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::connector::{ExtractRequest, Record, Source, Target, WriteAction, WriteRequest};
use super::error::EngineError;
use super::lookups::id_text;
use super::plan::{set_path, Action, Planned};
use super::rows::result_row;
use super::summary::PipelineSummary;
use crate::config::model::{DeletePolicy, HardDeleteCheck, Pipeline};
use crate::staging::{Link, PipelineTables, Stage, Store};

/// Marks a link whose target record was deactivated for a source deletion, so the next run
/// does not deactivate it again, and a restored source record reactivates it.
const DEACTIVATED: &str = "deactivated: deleted in the source";

/// Marks a link whose source record was deactivated because its target record was removed,
/// so neither direction writes the pair until the target record is active again.
const REMOVED_IN_TARGET: &str = "deactivated: removed in the target";

/// The name of the hard-delete look-up in the staging file's check times.
const HARD_DELETE_CHECK: &str = "hard_delete_check";

/// Whether the record carries the source's deleted flag, set.
pub fn is_deleted(record: &serde_json::Map<String, Value>, flag: &str) -> bool {
    match record.get(flag) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn marked(link: Option<&Link>, mark: &str) -> bool {
    link.is_some_and(|l| l.source_hash.as_deref() == Some(mark))
}

/// Where the hard-delete look-up keeps its schedule: the staging file, and whether this run
/// records the check (a plan does not, so the run after it still checks).
pub struct Schedule<'a> {
    pub store: &'a Store,
    pub run_id: &'a str,
    pub record: bool,
}

/// Whether the look-up is due under the pipeline's `hard_delete_check`.
fn lookup_due(pipeline: &Pipeline, schedule: &Schedule) -> Result<bool, EngineError> {
    Ok(match pipeline.hard_delete_check() {
        HardDeleteCheck::EveryRun => true,
        HardDeleteCheck::Never => false,
        HardDeleteCheck::Every(seconds) => {
            match schedule
                .store
                .last_check(&pipeline.pipeline, HARD_DELETE_CHECK)?
            {
                None => true,
                Some(last) => crate::civil::now_millis() - last >= seconds as i64 * 1000,
            }
        }
    })
}

/// The linked records missing from this run's extract that the source no longer has, or has
/// deleted: looked up by Id, deleted ones included, when the schedule says the look-up is due.
/// Links already settled (deactivated for a deletion, or for a removal in the target) are not
/// looked up: a record restored from the recycle bin comes back through the extract.
pub fn missing(
    pipeline: &Pipeline,
    source: &dyn Source,
    flag: &str,
    extracted_table: &str,
    schedule: &Schedule,
) -> Result<HashSet<String>, EngineError> {
    if !lookup_due(pipeline, schedule)? {
        return Ok(HashSet::new());
    }
    let checked_at = crate::civil::now_millis();
    let candidates = schedule.store.linked_but_not_staged(
        &pipeline.pipeline,
        extracted_table,
        schedule.run_id,
        &[DEACTIVATED, REMOVED_IN_TARGET],
    )?;
    let mut alive = HashSet::new();
    if !candidates.is_empty() {
        let mut request = ExtractRequest::new(&pipeline.salesforce.object, Vec::new());
        request.ids = candidates.clone();
        request.include_deleted = true;
        let id_field = source.id_field().to_string();
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
    }
    if schedule.record {
        schedule.store.record_check(
            &pipeline.pipeline,
            HARD_DELETE_CHECK,
            checked_at,
            schedule.run_id,
        )?;
    }
    Ok(candidates
        .into_iter()
        .filter(|id| !alive.contains(id))
        .collect())
}

fn removal(source_id: &str, target_id: Option<String>, reason: &str) -> Planned {
    Planned {
        source_id: source_id.to_string(),
        action: Action::Skip,
        target_id,
        reason: Some(reason.into()),
        changes: Vec::new(),
        before: None,
        after: Default::default(),
        write: None,
        hash: String::new(),
        matched: None,
    }
}

/// What to do with the target record of a source record that was deleted.
pub fn plan(policy: DeletePolicy, source_id: &str, link: Option<&Link>) -> Planned {
    let mut planned = removal(
        source_id,
        link.map(|l| l.target_id.clone()),
        "deleted in the source",
    );
    match (policy, link) {
        (_, None) => {
            planned.reason = Some("deleted in the source and never loaded".into());
        }
        (_, Some(link)) if marked(Some(link), REMOVED_IN_TARGET) => {
            planned.reason = Some("deleted in the source; its target record was removed".into());
        }
        (DeletePolicy::Ignore, Some(_)) => {}
        (DeletePolicy::Deactivate, Some(link)) if marked(Some(link), DEACTIVATED) => {
            planned.action = Action::Unchanged;
            planned.reason = Some("deleted in the source; deactivated by an earlier run".into());
        }
        (DeletePolicy::Deactivate, Some(_)) => planned.action = Action::Deactivate,
        (DeletePolicy::Delete, Some(_)) => planned.action = Action::Delete,
    }
    planned
}

/// Settles an import plan for a record whose link carries a mark: a record whose target
/// record was deactivated for its deletion and that is back in the source (restored from the
/// recycle bin) is reactivated — written as an update that also clears the target's inactive
/// flag, which unmarks the link; one whose target record was removed is left alone.
pub fn settle_marked(
    planned: &mut Planned,
    link: Option<&Link>,
    target: &dyn Target,
    entity: &str,
) {
    if marked(link, REMOVED_IN_TARGET) {
        planned.action = Action::Skip;
        planned.reason = Some(
            "its target record was removed and this record deactivated for it (`deletes`); synced again once the target record is active"
                .into(),
        );
        planned.write = None;
        return;
    }
    if !marked(link, DEACTIVATED) || !matches!(planned.action, Action::Unchanged | Action::Update) {
        return;
    }
    let Some(active) = target.reactivation(entity) else {
        return;
    };
    let mut write = planned.write.take().unwrap_or_default();
    for (field, value) in active {
        write.insert(field, value);
    }
    planned.action = Action::Update;
    planned.write = Some(write);
    planned.reason = Some("restored in the source: reactivated".into());
}

/// Deletes or deactivates the planned target records and commits their results with the id
/// map: a deleted record's link is removed, a deactivated one's is marked.
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
    let targeted: Vec<&Planned> = removals.iter().filter(|p| p.target_id.is_some()).collect();
    let deletes: Vec<&Planned> = targeted
        .iter()
        .copied()
        .filter(|p| p.action == Action::Delete)
        .collect();
    let ids: Vec<String> = deletes.iter().filter_map(|p| p.target_id.clone()).collect();
    let mut outcomes: HashMap<&str, Result<(), String>> = HashMap::new();
    if !ids.is_empty() {
        for (planned, outcome) in deletes.iter().zip(target.delete_many(entity, &ids)) {
            outcomes.insert(planned.source_id.as_str(), outcome);
        }
    }
    let mut done = Done::default();
    for planned in targeted {
        let outcome = match planned.action {
            Action::Delete => outcomes
                .remove(planned.source_id.as_str())
                .unwrap_or_else(|| Err("the target gave no result for this record".into())),
            _ => target.deactivate(entity, planned.target_id.as_deref().unwrap_or_default()),
        };
        done.settle(
            run_id,
            planned,
            outcome,
            &planned.source_id,
            links,
            DEACTIVATED,
            summary,
        );
    }
    done.commit(store, tables, run_id, &pipeline.pipeline)
}

/// The results of a set of removals and what they do to the id map.
#[derive(Default)]
struct Done {
    rows: Vec<Vec<(String, crate::staging::Cell)>>,
    gone: Vec<String>,
    marked: Vec<(String, Link)>,
}

impl Done {
    /// Counts one removal's outcome; `key` is the link's source id.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        run_id: &str,
        planned: &Planned,
        outcome: Result<(), String>,
        key: &str,
        links: &HashMap<String, Link>,
        mark: &str,
        summary: &mut PipelineSummary,
    ) {
        match outcome {
            Ok(()) if planned.action == Action::Delete => {
                summary.deleted += 1;
                self.rows
                    .push(result_row(run_id, planned, None, "deleted", None));
                self.gone.push(key.to_string());
            }
            Ok(()) => {
                summary.deactivated += 1;
                self.rows
                    .push(result_row(run_id, planned, None, "deactivated", None));
                if let Some(link) = links.get(key) {
                    let mut link = link.clone();
                    link.source_hash = Some(mark.into());
                    self.marked.push((key.to_string(), link));
                }
            }
            Err(message) => {
                summary.fail(&planned.source_id, &message);
                self.rows
                    .push(result_row(run_id, planned, None, "failed", Some(&message)));
            }
        }
    }

    fn commit(
        self,
        store: &Store,
        tables: &PipelineTables,
        run_id: &str,
        pipeline: &str,
    ) -> Result<(), EngineError> {
        store.in_transaction(|store| {
            store.append(tables, Stage::Results, &self.rows)?;
            store.save_links(run_id, pipeline, &self.marked)?;
            store.remove_links(pipeline, &self.gone)
        })?;
        Ok(())
    }
}

/// Sync back: the linked target records that the target's listing lacks, and that reading
/// them by id finds gone or flagged inactive: (target id, source id, why), by target id. Only
/// records linked when the listing started count (their ids are in the scratch table
/// `linked_before`); records that only left the listing's filter are alive, and links already
/// settled by a removal either way are passed over. The candidates are found by one join of
/// the id map with the listing, not by sets held in memory.
pub fn removed_in_target(
    pipeline: &Pipeline,
    reader: &dyn Source,
    store: &Store,
    listed: &super::snapshot::SnapshotRecords,
    linked_before: &str,
) -> Result<Vec<(String, String, &'static str)>, EngineError> {
    if pipeline.deletes_from_halo() == DeletePolicy::Ignore {
        return Ok(Vec::new());
    }
    let mut source_of: HashMap<String, String> = HashMap::new();
    let mut candidates: Vec<String> = Vec::new();
    for (target_id, source_id) in listed.linked_but_not_listed(
        store,
        &pipeline.pipeline,
        linked_before,
        &[DEACTIVATED, REMOVED_IN_TARGET],
    )? {
        candidates.push(target_id.clone());
        source_of.insert(target_id, source_id);
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    candidates.sort();
    let entity = format!("{:?}", pipeline.halo.entity);
    let mut request = ExtractRequest::new(&entity, Vec::new());
    request.ids = candidates.clone();
    request.include_deleted = true;
    let id_field = reader.id_field().to_string();
    let flag = reader.deleted_field().map(str::to_string);
    let mut inactive = HashSet::new();
    let mut alive = HashSet::new();
    reader.extract(&request, &mut |page| {
        for record in page {
            let Some(id) = record.get(&id_field).map(id_text) else {
                continue;
            };
            if flag.as_deref().is_some_and(|f| is_deleted(&record, f)) {
                inactive.insert(id);
            } else {
                alive.insert(id);
            }
        }
        Ok(())
    })?;
    Ok(candidates
        .into_iter()
        .filter(|id| !alive.contains(id))
        .map(|id| {
            let why = if inactive.contains(&id) {
                "made inactive in the target"
            } else {
                "deleted in the target"
            };
            let source_id = source_of.remove(&id).unwrap_or_default();
            (id, source_id, why)
        })
        .collect())
}

/// What to do with the source record of a target record that was removed (`from_halo`):
/// `source_id` of the plan is the target's id, `target_id` the source's, as sync back stages
/// them.
pub fn plan_back(pipeline: &Pipeline, target_id: &str, source_id: &str, why: &str) -> Planned {
    let mut planned = removal(target_id, Some(source_id.to_string()), why);
    match pipeline.deletes_from_halo() {
        DeletePolicy::Ignore => {}
        DeletePolicy::Delete => planned.action = Action::Delete,
        DeletePolicy::Deactivate => match pipeline.salesforce_inactive() {
            Some(inactive) => {
                let mut write = Record::new();
                set_path(&mut write, &inactive.field, inactive.inactive.clone());
                planned.action = Action::Deactivate;
                planned.changes = vec![(
                    inactive.field.clone(),
                    None,
                    Some(inactive.inactive.clone()),
                )];
                planned.write = Some(write);
            }
            None => {
                planned.reason = Some(format!(
                    "{why}; `deletes.from_halo: deactivate` names no `salesforce_inactive` field"
                ));
            }
        },
    }
    planned
}

/// Sync back: a linked record the target lists again after its removal deactivated its
/// source record. With an `active` value configured, a plan that would write or find nothing
/// to write becomes an update that also sets it; the write then unmarks the link. Returns
/// whether the link must still be unmarked (see [`unmark`]).
pub fn back_reappeared(pipeline: &Pipeline, planned: &mut Planned, link: &Link) -> bool {
    if !marked(Some(link), REMOVED_IN_TARGET) {
        return false;
    }
    let active = pipeline
        .salesforce_inactive()
        .and_then(|i| Some((i.field.clone(), i.active.clone()?)));
    match active {
        Some((field, value)) if matches!(planned.action, Action::Unchanged | Action::Update) => {
            let mut write = planned.write.take().unwrap_or_default();
            write.insert(field.clone(), value.clone());
            planned.changes.push((field, None, Some(value)));
            planned.action = Action::Update;
            planned.write = Some(write);
            planned.reason = Some("active in the target again: reactivated".into());
            false
        }
        _ => true,
    }
}

/// Sync back: deletes the planned source records (as many per call as the system allows) or
/// sets their inactive field, and commits the results with the id map: a deleted record's
/// link is removed, a deactivated one's marked so neither direction writes the pair.
#[allow(clippy::too_many_arguments)]
pub fn load_back(
    store: &Store,
    tables: &PipelineTables,
    run_id: &str,
    pipeline: &Pipeline,
    writer: &dyn Target,
    removals: &[Planned],
    links: &HashMap<String, Link>,
    summary: &mut PipelineSummary,
) -> Result<(), EngineError> {
    let object = pipeline.salesforce.object.as_str();
    let targeted: Vec<&Planned> = removals.iter().filter(|p| p.target_id.is_some()).collect();
    let (deletes, deactivations): (Vec<&Planned>, Vec<&Planned>) = targeted
        .into_iter()
        .partition(|p| p.action == Action::Delete);
    let ids: Vec<String> = deletes.iter().filter_map(|p| p.target_id.clone()).collect();
    let deleted = if ids.is_empty() {
        Vec::new()
    } else {
        writer.delete_many(object, &ids)
    };
    let requests: Vec<WriteRequest> = deactivations
        .iter()
        .map(|p| WriteRequest {
            action: WriteAction::Update {
                target_id: p.target_id.clone().unwrap_or_default(),
            },
            record: p.write.clone().unwrap_or_default(),
        })
        .collect();
    let written = if requests.is_empty() {
        Vec::new()
    } else {
        writer.write(object, &requests)
    };
    let mut done = Done::default();
    let no_answer = || Err("the system gave no result for this record".to_string());
    let delete_outcomes = deletes
        .iter()
        .enumerate()
        .map(|(i, planned)| (*planned, deleted.get(i).cloned().unwrap_or_else(no_answer)));
    let deactivate_outcomes = deactivations.iter().enumerate().map(|(i, planned)| {
        let outcome = written
            .get(i)
            .map(|w| w.outcome.clone().map(|_| ()))
            .unwrap_or_else(no_answer);
        (*planned, outcome)
    });
    for (planned, outcome) in delete_outcomes.chain(deactivate_outcomes) {
        let key = planned.target_id.clone().unwrap_or_default();
        done.settle(
            run_id,
            planned,
            outcome,
            &key,
            links,
            REMOVED_IN_TARGET,
            summary,
        );
    }
    done.commit(store, tables, run_id, &pipeline.pipeline)
}

/// Sync back: unmarks the links of records active in the target again (see
/// [`back_reappeared`]) that no write unmarks.
pub fn unmark(
    store: &Store,
    run_id: &str,
    pipeline: &Pipeline,
    links: Vec<(String, Link)>,
) -> Result<(), EngineError> {
    let links: Vec<(String, Link)> = links
        .into_iter()
        .map(|(key, mut link)| {
            link.source_hash = None;
            (key, link)
        })
        .collect();
    // Deleted and inserted together, so that a stop between the two loses no link.
    store.in_transaction(|store| store.save_links(run_id, &pipeline.pipeline, &links))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(mark: Option<&str>) -> Link {
        Link {
            target_id: "7".into(),
            source_hash: mark.map(str::to_string),
            ..Link::default()
        }
    }

    #[test]
    fn deletions_follow_the_policy_and_the_marks() {
        let plain = link(Some("hash"));
        assert_eq!(
            plan(DeletePolicy::Delete, "001", Some(&plain)).action,
            Action::Delete
        );
        assert_eq!(
            plan(DeletePolicy::Deactivate, "001", Some(&plain)).action,
            Action::Deactivate
        );
        assert_eq!(
            plan(DeletePolicy::Ignore, "001", Some(&plain)).action,
            Action::Skip
        );
        assert_eq!(
            plan(
                DeletePolicy::Deactivate,
                "001",
                Some(&link(Some(DEACTIVATED)))
            )
            .action,
            Action::Unchanged
        );
        // The target record was removed already: nothing left to remove.
        assert_eq!(
            plan(
                DeletePolicy::Delete,
                "001",
                Some(&link(Some(REMOVED_IN_TARGET)))
            )
            .action,
            Action::Skip
        );
        assert_eq!(plan(DeletePolicy::Delete, "001", None).action, Action::Skip);
    }

    #[test]
    fn flags_read_as_booleans() {
        let record = |v: Value| v.as_object().cloned().unwrap();
        assert!(is_deleted(&record(serde_json::json!({"f": true})), "f"));
        assert!(is_deleted(&record(serde_json::json!({"f": "True"})), "f"));
        assert!(is_deleted(&record(serde_json::json!({"f": 1})), "f"));
        assert!(!is_deleted(&record(serde_json::json!({"f": false})), "f"));
        assert!(!is_deleted(&record(serde_json::json!({})), "f"));
    }
}
