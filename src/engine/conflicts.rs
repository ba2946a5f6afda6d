//! Conflicts: fields an import update changes that the target changed too since the last
//! sync. The import finds them by reading the record's current state from the sync back's
//! snapshot, and settles them by the pipeline's policy: Salesforce's value written, Halo's
//! value kept (and sent back by the sync back), or neither written and the field held back
//! until someone settles it.

use std::collections::HashSet;

use serde_json::Value;

use super::error::EngineError;
use super::plan::{get_path, set_path, update_of, Action, Planned};
use super::snapshot::Snapshot;
use crate::config::model::ConflictPolicy;
use crate::staging::Store;
use crate::transform::record_hash;

/// One field changed on both sides since the last sync.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Conflict {
    pub source_id: String,
    pub target_id: String,
    /// The target path.
    pub field: String,
    pub last_synced: Option<Value>,
    pub source_value: Option<Value>,
    pub target_value: Option<Value>,
    pub resolution: &'static str,
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a.filter(|v| !v.is_null()), b.filter(|v| !v.is_null())) {
        (None, None) => true,
        (Some(a), Some(b)) => crate::transform::same_value(a, b),
        _ => false,
    }
}

/// The target record whose current state settling `planned`'s conflicts reads, if any: only
/// a linked record has a last synced state (a matched one is met for the first time), and only
/// an update of a field synced back can conflict.
pub fn conflict_check_target<'a>(
    planned: &'a Planned,
    synced: &HashSet<String>,
) -> Option<&'a str> {
    if planned.action != Action::Update || planned.matched.is_some() || planned.before.is_none() {
        return None;
    }
    if !planned
        .changes
        .iter()
        .any(|(path, _, _)| synced.contains(path))
    {
        return None;
    }
    planned.target_id.as_deref()
}

/// Settles the fields of an import update that the target changed too since the last sync,
/// by `policy`; returns the conflicts found. `synced` are the target paths synced back (a
/// field that only flows one way cannot conflict).
pub fn settle_conflicts(
    planned: &mut Planned,
    snapshot: &mut Snapshot,
    store: &Store,
    synced: &HashSet<String>,
    policy: ConflictPolicy,
) -> Result<Vec<Conflict>, EngineError> {
    let Some(target_id) = conflict_check_target(planned, synced).map(str::to_string) else {
        return Ok(Vec::new());
    };
    let Some(before) = planned.before.clone() else {
        return Ok(Vec::new());
    };
    // Kept in memory: the import patches it when the update is written.
    let Some(current) = snapshot.records.get_and_keep(store, &target_id)? else {
        return Ok(Vec::new());
    };
    let current = &current;
    let resolution = match policy {
        ConflictPolicy::SalesforceWins => "source_wins",
        ConflictPolicy::HaloWins => "target_wins",
        ConflictPolicy::SkipAndReport => "skipped",
    };
    let mut conflicts = Vec::new();
    let mut kept = Vec::new();
    for (path, last, new) in std::mem::take(&mut planned.changes) {
        let now = get_path(current, &path);
        let conflict =
            synced.contains(&path) && !same(now, last.as_ref()) && !same(now, new.as_ref());
        if !conflict {
            kept.push((path, last, new));
            continue;
        }
        conflicts.push(Conflict {
            source_id: planned.source_id.clone(),
            target_id: target_id.clone(),
            field: path.clone(),
            last_synced: last.clone(),
            source_value: new.clone(),
            target_value: now.cloned(),
            resolution,
        });
        match policy {
            ConflictPolicy::SalesforceWins => kept.push((path, last, new)),
            // The source's value stays the last synced one, so the sync back sends the
            // target's value.
            ConflictPolicy::HaloWins => {}
            ConflictPolicy::SkipAndReport => {
                // Neither side is written and the last synced value stays, so the next run
                // finds the same conflict until someone settles it.
                set_path(
                    &mut planned.after,
                    &path,
                    get_path(&before, &path).cloned().unwrap_or(Value::Null),
                );
                snapshot.held.insert((target_id.clone(), path));
            }
        }
    }
    planned.changes = kept;
    if !conflicts.is_empty() {
        planned.hash = record_hash(&planned.after);
        let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
        planned.reason = Some(format!("changed on both sides: {}", fields.join(", ")));
        if planned.changes.is_empty() {
            planned.action = Action::Unchanged;
            planned.write = None;
        } else {
            let mut write = update_of(&planned.changes, &planned.after);
            // A whole nested object sent for another field must carry the target's own value
            // of a field the import leaves alone.
            if policy != ConflictPolicy::SalesforceWins {
                for conflict in &conflicts {
                    if get_path(&write, &conflict.field).is_some() {
                        let value = conflict.target_value.clone().unwrap_or(Value::Null);
                        set_path(&mut write, &conflict.field, value);
                    }
                }
            }
            planned.write = Some(write);
        }
    }
    Ok(conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::Record;
    use crate::engine::plan::subset;
    use serde_json::json;

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    fn planned(changes: Vec<(&str, Value, Value)>) -> Planned {
        let before = record(json!({"name": "Old", "website": "w"}));
        let mut after = before.clone();
        for (path, _, new) in &changes {
            set_path(&mut after, path, new.clone());
        }
        let changes: Vec<_> = changes
            .into_iter()
            .map(|(p, old, new)| (p.to_string(), Some(old), Some(new)))
            .collect();
        Planned {
            source_id: "001".into(),
            action: Action::Update,
            target_id: Some("7".into()),
            reason: None,
            write: Some(subset(&changes)),
            changes,
            before: Some(before),
            after,
            hash: String::new(),
            matched: None,
        }
    }

    fn snapshot(store: &Store) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot
            .records
            .insert(
                store,
                "7".into(),
                &record(json!({"id": 7, "name": "Halo name", "website": "w"})),
            )
            .unwrap();
        snapshot
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("staging.duckdb")).unwrap();
        (dir, store)
    }

    #[test]
    fn conflicts_follow_the_policy() {
        let (_dir, store) = store();
        let store = &store;
        let synced: HashSet<String> = ["name".to_string()].into();
        let changes = || {
            vec![
                ("name", json!("Old"), json!("Salesforce name")),
                ("website", json!("w"), json!("w2")),
            ]
        };
        // Salesforce wins: both fields are written, the conflict is listed.
        let mut plan = planned(changes());
        let found = settle_conflicts(
            &mut plan,
            &mut snapshot(store),
            store,
            &synced,
            ConflictPolicy::SalesforceWins,
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].target_value, Some(json!("Halo name")));
        assert_eq!(plan.changes.len(), 2);
        // Halo wins: only the one-way field is written.
        let mut plan = planned(changes());
        settle_conflicts(
            &mut plan,
            &mut snapshot(store),
            store,
            &synced,
            ConflictPolicy::HaloWins,
        )
        .unwrap();
        assert_eq!(plan.write, Some(record(json!({"website": "w2"}))));
        // Skip and report: not written, the last synced value kept, the field held back.
        let mut plan = planned(changes());
        let mut held = snapshot(store);
        settle_conflicts(
            &mut plan,
            &mut held,
            store,
            &synced,
            ConflictPolicy::SkipAndReport,
        )
        .unwrap();
        assert_eq!(plan.write, Some(record(json!({"website": "w2"}))));
        assert_eq!(plan.after["name"], json!("Old"));
        assert!(held.held.contains(&("7".to_string(), "name".to_string())));
        // The same change on both sides is no conflict.
        let mut plan = planned(vec![("name", json!("Old"), json!("Halo name"))]);
        assert!(settle_conflicts(
            &mut plan,
            &mut snapshot(store),
            store,
            &synced,
            ConflictPolicy::SkipAndReport
        )
        .unwrap()
        .is_empty());
        assert_eq!(plan.action, Action::Update);
    }
}
