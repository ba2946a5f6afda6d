//! Halo as the engine's [`Target`]: records shaped by the transform become Halo's POST arrays
//! (custom fields as `{"CFName": value}` turn into Halo's `[{"name", "value"}]`, a customer's
//! `main_site` fields go to its main site in one Site POST per batch), answers come back as the
//! saved records; matches and lookups search Halo's lists.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::attachments::NewAttachment;
use super::custom_fields::{set_custom_field, FieldRef};
use super::records::{key_text, normalise};
use super::{HaloClient, ListQuery};
use crate::engine::{
    EngineError, Record, Target, TargetAttachment, WriteAction, WriteRequest, WriteResult,
};

type MatchIndex = HashMap<String, (String, Record)>;

pub struct HaloTarget<'a> {
    client: &'a HaloClient,
    /// (entity, field) → lower-cased field value → id, filled by one listing per pair.
    searches: Mutex<HashMap<(String, String), HashMap<String, Value>>>,
    /// (entity, match fields) → key → (id, record): one listing of the entity answers every
    /// match of a run, instead of a search call per record.
    matches: Mutex<HashMap<(String, Vec<String>), MatchIndex>>,
}

impl<'a> HaloTarget<'a> {
    pub fn new(client: &'a HaloClient) -> HaloTarget<'a> {
        HaloTarget {
            client,
            searches: Mutex::new(HashMap::new()),
            matches: Mutex::new(HashMap::new()),
        }
    }

    fn match_index(&self, entity: &str, fields: &[String]) -> Result<MatchIndex, EngineError> {
        let mut index = MatchIndex::new();
        for record in self.client.records(entity, &ListQuery::default()) {
            let record = record.map_err(|e| EngineError::Connection(e.to_string()))?;
            let Some(id) = id_of(&record) else { continue };
            let normalised = normalise(record);
            let key: Option<Vec<String>> = fields
                .iter()
                .map(|field| {
                    crate::engine::plan::get_path(&normalised, field)
                        .filter(|v| !v.is_null())
                        .map(key_text)
                })
                .collect();
            if let Some(key) = key {
                index.entry(key.join("\u{1f}")).or_insert((id, normalised));
            }
        }
        Ok(index)
    }
}

fn id_of(record: &Value) -> Option<String> {
    let id = record.get("id")?;
    Some(key_text(id)).filter(|id| !id.is_empty() && id != "0")
}

/// The Halo JSON for one request, and the customer's main-site fields set aside.
fn to_halo(request: &WriteRequest) -> (Value, Option<Map<String, Value>>) {
    let mut record = request.record.clone();
    let main_site = match record.remove("main_site") {
        Some(Value::Object(site)) => Some(site),
        _ => None,
    };
    let custom = match record.remove("customfields") {
        Some(Value::Object(custom)) => custom,
        _ => Map::new(),
    };
    if let WriteAction::Update { target_id } = &request.action {
        let id = target_id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(target_id.clone()));
        record.insert("id".into(), id);
    }
    let mut value = Value::Object(record);
    for (name, field_value) in custom {
        set_custom_field(&mut value, FieldRef::Name(name), field_value);
    }
    (value, main_site)
}

impl Target for HaloTarget<'_> {
    fn write(&self, entity: &str, batch: &[WriteRequest]) -> Vec<WriteResult> {
        let (records, sites): (Vec<Value>, Vec<Option<Map<String, Value>>>) =
            batch.iter().map(to_halo).unzip();
        let outcomes = self.client.write(entity, &records);
        let mut results: Vec<WriteResult> = outcomes
            .into_iter()
            .map(|outcome| WriteResult {
                outcome: match outcome.result {
                    Ok(saved) => match id_of(&saved) {
                        Some(id) => Ok((id, normalise(saved))),
                        None => Err(format!(
                            "Halo saved the {entity} record but answered without its id"
                        )),
                    },
                    Err(failure) => Err(failure.message),
                },
            })
            .collect();
        // The main sites of the customers just saved, in one POST.
        let mut site_writes = Vec::new();
        let mut site_owners = Vec::new();
        for (index, site) in sites.into_iter().enumerate() {
            let (Some(site), Ok((_, saved))) = (site, &results[index].outcome) else {
                continue;
            };
            match saved.get("main_site_id").filter(|v| !v.is_null()) {
                Some(site_id) => {
                    let mut site = site;
                    site.insert("id".into(), site_id.clone());
                    site_writes.push(Value::Object(site));
                    site_owners.push(index);
                }
                None => {
                    results[index].outcome = Err(format!(
                    "{entity} saved, but it has no main site to hold the mapped `main_site` fields"
                ))
                }
            }
        }
        if !site_writes.is_empty() {
            for (outcome, index) in self
                .client
                .write("Site", &site_writes)
                .into_iter()
                .zip(site_owners)
            {
                match outcome.result {
                    Ok(site) => {
                        if let Ok((_, saved)) = &mut results[index].outcome {
                            saved.insert("main_site".into(), Value::Object(normalise(site)));
                        }
                    }
                    Err(failure) => {
                        let id = results[index]
                            .outcome
                            .as_ref()
                            .map(|(id, _)| id.clone())
                            .unwrap_or_default();
                        results[index].outcome = Err(format!(
                            "{entity} {id} was saved but its main site was not: {}",
                            failure.message
                        ));
                    }
                }
            }
        }
        results
    }

    fn find(
        &self,
        entity: &str,
        key: &[(String, Value)],
    ) -> Result<Option<(String, Record)>, EngineError> {
        let fields: Vec<String> = key.iter().map(|(field, _)| field.clone()).collect();
        let wanted: Vec<String> = key.iter().map(|(_, value)| key_text(value)).collect();
        let mut matches = self
            .matches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pair = (entity.to_string(), fields);
        if !matches.contains_key(&pair) {
            let index = self.match_index(entity, &pair.1)?;
            matches.insert(pair.clone(), index);
        }
        Ok(matches[&pair].get(&wanted.join("\u{1f}")).cloned())
    }

    fn search(&self, entity: &str, by: &str, value: &Value) -> Result<Option<Value>, EngineError> {
        let mut searches = self
            .searches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pair = (entity.to_string(), by.to_string());
        if !searches.contains_key(&pair) {
            let mut index = HashMap::new();
            for record in self.client.records(entity, &ListQuery::default()) {
                let record = record.map_err(|e| EngineError::Connection(e.to_string()))?;
                if let (Some(field), Some(id)) = (record.get(by), record.get("id")) {
                    index.entry(key_text(field)).or_insert_with(|| id.clone());
                }
            }
            searches.insert(pair.clone(), index);
        }
        Ok(searches[&pair].get(&key_text(value)).cloned())
    }

    fn api_calls(&self) -> u64 {
        self.client.api_calls()
    }

    fn delete(&self, entity: &str, target_id: &str) -> Result<(), String> {
        let id: u64 = target_id
            .trim()
            .parse()
            .map_err(|_| format!("Halo id {target_id:?} is not a number"))?;
        self.client
            .delete(entity, id)
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    /// Customers, sites and users have Halo's `inactive` flag; tickets and actions have none.
    fn deactivate(&self, entity: &str, target_id: &str) -> Result<(), String> {
        if !matches!(entity, "Client" | "Site" | "Users") {
            return Err(format!(
                "Halo {entity} records have no inactive flag: use `deletes: delete` or `ignore`"
            ));
        }
        let mut record = Map::new();
        record.insert("inactive".into(), Value::Bool(true));
        let request = WriteRequest {
            action: WriteAction::Update {
                target_id: target_id.to_string(),
            },
            record,
        };
        match self.write(entity, &[request]).pop() {
            Some(WriteResult { outcome: Ok(_) }) => Ok(()),
            Some(WriteResult {
                outcome: Err(message),
            }) => Err(message),
            None => Err("Halo gave no answer".into()),
        }
    }

    fn reactivation(&self, entity: &str) -> Option<Record> {
        matches!(entity, "Client" | "Site" | "Users").then(|| {
            let mut record = Map::new();
            record.insert("inactive".into(), Value::Bool(false));
            record
        })
    }

    /// Halo holds attachments on tickets (opportunities are tickets); customers, sites, users
    /// and agents hold none.
    fn attachments_refused(&self, entity: &str) -> Option<String> {
        match entity {
            "Tickets" | "Opportunities" => None,
            other => Some(format!("Halo cannot hold attachments on {other}")),
        }
    }

    fn attach(
        &self,
        entity: &str,
        target_id: &str,
        name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        if let Some(refused) = self.attachments_refused(entity) {
            return Err(refused);
        }
        let ticket_id: u64 = target_id
            .trim()
            .parse()
            .map_err(|_| format!("Halo ticket id {target_id:?} is not a number"))?;
        let attachment = NewAttachment {
            ticket_id,
            action_id: None,
            filename: name,
            content_type,
            bytes,
        };
        let saved = self
            .client
            .upload_attachment(&attachment)
            .map_err(|error| error.to_string())?;
        id_of(&saved).ok_or_else(|| {
            format!(
                "Halo saved attachment {name:?} on ticket {ticket_id} but answered without its id"
            )
        })
    }

    fn attachments_of(
        &self,
        entity: &str,
        target_id: &str,
    ) -> Result<Vec<TargetAttachment>, String> {
        if self.attachments_refused(entity).is_some() {
            return Ok(Vec::new());
        }
        let query = ListQuery::default().filter("ticket_id", target_id.trim());
        let mut out = Vec::new();
        for record in self.client.records("Attachment", &query) {
            let record = record.map_err(|e| e.to_string())?;
            if names_another_ticket(&record, target_id.trim()) {
                continue;
            }
            let Some(id) = id_of(&record) else { continue };
            out.push(TargetAttachment {
                id,
                name: record
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                size: record.get("filesize").and_then(Value::as_u64),
            });
        }
        Ok(out)
    }
}

/// Whether a listed attachment names a ticket other than `ticket_id`. A list may ignore an
/// unknown filter, so such files are left out; but Halo answered an upload with
/// `"ticket_id": 0` although the file went on a ticket (the API reference's recorded
/// response), so a file naming no ticket (0, -1 or none) is taken for the listed ticket's.
fn names_another_ticket(record: &Value, ticket_id: &str) -> bool {
    let named = record.get("ticket_id").map(key_text);
    match named.as_deref() {
        None | Some("" | "0" | "-1") => false,
        Some(named) => named != ticket_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_file_naming_no_ticket_is_the_listed_tickets() {
        use serde_json::json;
        assert!(!names_another_ticket(&json!({"ticket_id": 42}), "42"));
        assert!(!names_another_ticket(&json!({"ticket_id": 0}), "42"));
        assert!(!names_another_ticket(&json!({"id": 7}), "42"));
        assert!(names_another_ticket(&json!({"ticket_id": 41}), "42"));
    }
}
