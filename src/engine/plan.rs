//! The plan: for each transformed record, what the load will do and why — create, update with
//! only the changed fields, unchanged (no API call), link to a record the target already has
//! (matched by the pipeline's `match` keys instead of duplicating), or skip with a reason.

use serde_json::{Map, Value};

use super::connector::{Record, Target, WriteAction, WriteRequest};
use super::error::EngineError;
use super::linked_targets::LinkedTargets;
use crate::config::model::ImportMode;
use crate::staging::Link;
use crate::transform::{changed_fields, record_hash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Linked to an existing target record that already holds these values.
    Link,
    Skip,
    /// The source record was deleted: delete the target's.
    Delete,
    /// The source record was deleted: mark the target's inactive.
    Deactivate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Link => "link",
            Action::Skip => "skip",
            Action::Delete => "delete",
            Action::Deactivate => "deactivate",
        }
    }

    /// Whether the load writes to the target for this action.
    pub fn writes(self) -> bool {
        matches!(self, Action::Create | Action::Update)
    }
}

/// One field that changes: its target path, the value before (if any) and after.
pub type Change = (String, Option<Value>, Option<Value>);

#[derive(Debug, Clone)]
pub struct Planned {
    pub source_id: String,
    pub action: Action,
    pub target_id: Option<String>,
    pub reason: Option<String>,
    pub changes: Vec<Change>,
    /// What the target held (last synced, or the matched record).
    pub before: Option<Record>,
    /// The transformed record.
    pub after: Record,
    /// What to send: the whole record for a create, the changed fields for an update.
    pub write: Option<Record>,
    pub hash: String,
    /// The target's record found by the match keys.
    pub matched: Option<Record>,
}

impl Planned {
    /// The write the load sends for this record: an update of its linked record, or a create.
    pub fn write_request(&self) -> WriteRequest {
        WriteRequest {
            action: match (&self.action, &self.target_id) {
                (Action::Update, Some(id)) => WriteAction::Update {
                    target_id: id.clone(),
                },
                _ => WriteAction::Create,
            },
            record: self.write.clone().unwrap_or_default(),
        }
    }
}

/// The settings of a pipeline the plan needs.
pub struct PlanContext<'a> {
    pub entity: &'a str,
    pub import: ImportMode,
    pub match_keys: &'a [String],
    pub target: &'a dyn Target,
    /// Target records already linked to a source record (from the id map, and matched earlier
    /// in this plan): a match key never links a second source record to one of them.
    pub linked_targets: &'a LinkedTargets<'a>,
}

fn skip(source_id: &str, after: Record, hash: String, reason: String) -> Planned {
    Planned {
        source_id: source_id.to_string(),
        action: Action::Skip,
        target_id: None,
        reason: Some(reason),
        changes: Vec::new(),
        before: None,
        after,
        write: None,
        hash,
        matched: None,
    }
}

/// Decides what to do with one transformed record; `staged_hash` is its hash when staging
/// kept one with it (the same [`record_hash`], not worked out again).
pub fn plan_record(
    context: &PlanContext,
    source_id: &str,
    after: Record,
    staged_hash: Option<String>,
    problems: &[String],
    link: Option<&Link>,
) -> Result<Planned, EngineError> {
    let hash = staged_hash.unwrap_or_else(|| record_hash(&after));
    if !problems.is_empty() {
        return Ok(skip(source_id, after, hash, problems.join("; ")));
    }
    if let Some(link) = link {
        let same_hash = link.source_hash.as_deref() == Some(hash.as_str());
        // An equal hash settles it without comparing fields (the link may then come without
        // its record: see `run_links.rs`).
        let changes = match (&link.synced_record, same_hash) {
            (_, true) => Vec::new(),
            (Some(before), false) => changed_fields(before, &after),
            (None, false) => changed_fields(&Record::new(), &after),
        };
        let mut planned = Planned {
            source_id: source_id.to_string(),
            action: Action::Unchanged,
            target_id: Some(link.target_id.clone()),
            reason: None,
            changes: Vec::new(),
            before: match same_hash {
                true => link.synced_record.clone(),
                false => Some(link.synced_record.clone().unwrap_or_default()),
            },
            after,
            write: None,
            hash,
            matched: None,
        };
        if same_hash || changes.is_empty() {
            return Ok(planned);
        }
        if context.import == ImportMode::Create {
            planned.action = Action::Skip;
            planned.reason = Some("already in the target; `import: create` never updates".into());
            return Ok(planned);
        }
        planned.action = Action::Update;
        planned.write = Some(update_of(&changes, &planned.after));
        planned.changes = changes;
        return Ok(planned);
    }
    let matched = find_match(context, &after)?;
    match matched {
        Some((target_id, record)) => {
            let changes: Vec<Change> = changed_fields(&record, &after)
                .into_iter()
                .filter(|(_, _, new)| new.is_some())
                .collect();
            let action = if changes.is_empty() || context.import == ImportMode::Create {
                Action::Link
            } else {
                Action::Update
            };
            Ok(Planned {
                source_id: source_id.to_string(),
                action,
                target_id: Some(target_id),
                reason: Some(format!("matched on {}", context.match_keys.join(", "))),
                write: (action == Action::Update).then(|| update_of(&changes, &after)),
                changes,
                before: Some(record.clone()),
                after,
                hash,
                matched: Some(record),
            })
        }
        None if context.import == ImportMode::Update => Ok(skip(
            source_id,
            after,
            hash,
            "not in the target; `import: update` never creates".into(),
        )),
        None => {
            let changes = changed_fields(&Map::new(), &after);
            Ok(Planned {
                source_id: source_id.to_string(),
                action: Action::Create,
                target_id: None,
                reason: None,
                changes,
                before: None,
                write: Some(after.clone()),
                after,
                hash,
                matched: None,
            })
        }
    }
}

/// The target record whose match keys equal the transformed record's, when all keys have values.
fn find_match(
    context: &PlanContext,
    after: &Record,
) -> Result<Option<(String, Record)>, EngineError> {
    if context.match_keys.is_empty() {
        return Ok(None);
    }
    let mut key = Vec::new();
    for field in context.match_keys {
        match get_path(after, field) {
            Some(value) if !value.is_null() && value != &Value::String(String::new()) => {
                key.push((field.clone(), value.clone()))
            }
            _ => return Ok(None),
        }
    }
    let found = context.target.find(context.entity, &key)?;
    match found {
        Some((target_id, record)) => {
            if !context.linked_targets.claim(&target_id)? {
                // Someone else's record: this one gets its own.
                return Ok(None);
            }
            Ok(Some((target_id, record)))
        }
        None => Ok(None),
    }
}

/// A value at a dotted path of a nested record.
pub fn get_path<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    if let Some(value) = record.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = record.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Sets a dotted path, creating objects on the way.
pub fn set_path(record: &mut Record, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or(path);
    let mut current = record;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        current = entry.as_object_mut().expect("made an object above");
    }
    current.insert(last.to_string(), value);
}

/// What an update sends: the changed fields, each nested one with the whole object holding it
/// as the transform made it, because a system may replace a nested object it is sent (a
/// site's address) rather than merge it, which would lose the fields that did not change.
pub fn update_of(changes: &[Change], after: &Record) -> Record {
    let mut record = subset(changes);
    for (path, _, _) in changes {
        if let Some((parent, _)) = path.rsplit_once('.') {
            if let Some(whole) = get_path(after, parent).filter(|v| v.is_object()) {
                set_path(&mut record, parent, whole.clone());
            }
        }
    }
    record
}

/// The record of only the changed fields (a removed value is sent as null).
pub fn subset(changes: &[Change]) -> Record {
    let mut record = Map::new();
    for (path, _, after) in changes {
        set_path(&mut record, path, after.clone().unwrap_or(Value::Null));
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_nest_by_path() {
        let changes = vec![
            ("name".to_string(), None, Some(json!("A"))),
            ("customfields.CFx".to_string(), None, Some(json!(1))),
            ("website".to_string(), Some(json!("w")), None),
        ];
        assert_eq!(
            Value::Object(subset(&changes)),
            json!({"name": "A", "customfields": {"CFx": 1}, "website": null})
        );
    }

    #[test]
    fn updates_send_whole_nested_objects() {
        let after = json!({"name": "A", "main_site": {"delivery_address": {"line1": "1 St", "line3": "York"}}})
            .as_object()
            .cloned()
            .unwrap();
        let changes = vec![(
            "main_site.delivery_address.line3".to_string(),
            Some(json!("Leeds")),
            Some(json!("York")),
        )];
        assert_eq!(
            Value::Object(update_of(&changes, &after)),
            json!({"main_site": {"delivery_address": {"line1": "1 St", "line3": "York"}}})
        );
    }

    #[test]
    fn paths_read_flat_or_nested() {
        let record = json!({"a.b": 1, "c": {"d": 2}});
        let record = record.as_object().unwrap();
        assert_eq!(get_path(record, "a.b"), Some(&json!(1)));
        assert_eq!(get_path(record, "c.d"), Some(&json!(2)));
        assert_eq!(get_path(record, "c.e"), None);
    }
}
