//! Writing records: Halo saves a JSON array POSTed to `/api/<Entity>`, creating elements
//! without an `id` (or with `id: 0`) and partially updating the others. Records go in batches
//! of the client's `batch_size`, and every input record gets its own outcome — the object Halo
//! saved, or why it was not saved.
//!
//! Halo refuses a whole batch with 400 when one element is invalid. The failing elements are
//! found from the model-state keys (`"[1].site_id"`) when Halo gives them, and otherwise by
//! splitting the batch in halves until each bad record stands alone; the good records are sent
//! again and land, the bad ones are reported with Halo's message. A failure never stops the
//! records after it, except a sign-in failure, which would fail them all the same.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Map, Value};

use super::client::{check_entity, kind_of, HaloClient};
use super::custom_fields::custom_field_key;
use super::error::{field_errors, halo_message, HaloError};
use super::service::Call;

/// What became of one input record.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// The record's position in the input.
    pub index: usize,
    /// The record as Halo saved it (with its `id`), or why it was not saved.
    pub result: Result<Value, WriteFailure>,
}

/// Why a record was not saved.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFailure {
    /// Halo's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The field Halo blamed, when it named one.
    pub field: Option<String>,
    /// The whole story: entity, record, status and Halo's message.
    pub message: String,
}

impl HaloClient {
    /// Creates or partially updates `records` of `entity`, in batches; one outcome per record,
    /// in input order.
    pub fn write(&self, entity: &str, records: &[Value]) -> Vec<WriteOutcome> {
        let mut outcomes: Vec<Option<Result<Value, WriteFailure>>> = vec![None; records.len()];
        if let Err(error) = check_entity(entity) {
            return fail_all(records.len(), &error);
        }
        let mut pending: VecDeque<Vec<usize>> = (0..records.len())
            .collect::<Vec<_>>()
            .chunks(self.options.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let mut signed_out: Option<HaloError> = None;
        while let Some(batch) = pending.pop_front() {
            if let Some(error) = &signed_out {
                for &index in &batch {
                    outcomes[index] = Some(Err(failure(entity, index, &records[index], error)));
                }
                continue;
            }
            match self.post_batch(entity, &batch, records) {
                Ok(BatchAnswer::Saved(saved)) => {
                    for (index, result) in saved {
                        outcomes[index] = Some(result);
                    }
                }
                Ok(BatchAnswer::Refused {
                    failed,
                    retry,
                    split,
                }) => {
                    for (index, result) in failed {
                        outcomes[index] = Some(Err(result));
                    }
                    if !retry.is_empty() {
                        pending.push_front(retry);
                    }
                    // Halves go to the front so a batch is settled before the next one starts.
                    for half in split.into_iter().rev() {
                        pending.push_front(half);
                    }
                }
                Err(error) => {
                    for &index in &batch {
                        outcomes[index] =
                            Some(Err(failure(entity, index, &records[index], &error)));
                    }
                    if matches!(error, HaloError::Auth { .. }) {
                        signed_out = Some(error);
                    }
                }
            }
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(index, result)| WriteOutcome {
                index,
                result: result.unwrap_or_else(|| {
                    Err(WriteFailure {
                        status: None,
                        field: None,
                        message: format!("Halo {entity} record #{index}: not sent"),
                    })
                }),
            })
            .collect()
    }

    fn post_batch(
        &self,
        entity: &str,
        batch: &[usize],
        records: &[Value],
    ) -> Result<BatchAnswer, HaloError> {
        let elements: Vec<&Value> = batch.iter().map(|&index| &records[index]).collect();
        let body = serde_json::to_vec(&elements).map_err(|error| HaloError::Unexpected {
            entity: entity.to_string(),
            message: format!("cannot encode the batch: {error}"),
        })?;
        // Updates can be sent twice harmlessly; a create sent twice is a duplicate.
        let replay_safe = elements.iter().all(|record| is_update(record));
        let call = Call::post(entity, body, replay_safe);
        match self.service.json_or_rejection(&call)? {
            Ok(answer) => Ok(BatchAnswer::Saved(match_answers(
                entity, batch, records, answer,
            ))),
            Err(rejection) if rejection.status == 400 => {
                Ok(locate_refusal(entity, batch, records, &rejection.body))
            }
            Err(rejection) => Err(rejection.into_error(entity)),
        }
    }
}

enum BatchAnswer {
    Saved(Vec<(usize, Result<Value, WriteFailure>)>),
    /// A 400: the records found at fault, the rest to send again, or halves to try apart.
    Refused {
        failed: Vec<(usize, WriteFailure)>,
        retry: Vec<usize>,
        split: Vec<Vec<usize>>,
    },
}

fn is_update(record: &Value) -> bool {
    record
        .get("id")
        .and_then(|id| id.as_f64())
        .is_some_and(|id| id > 0.0)
}

/// Pairs Halo's answer with the posted records: one object for a single record, an array in
/// the posted order for several.
fn match_answers(
    entity: &str,
    batch: &[usize],
    records: &[Value],
    answer: Value,
) -> Vec<(usize, Result<Value, WriteFailure>)> {
    let saved: Vec<Value> = match answer {
        Value::Array(items) => items,
        Value::Object(_) => vec![answer],
        other => {
            let message = format!("the answer to a write was {}", kind_of(&other));
            return unmatched(entity, batch, records, message);
        }
    };
    if saved.len() != batch.len() {
        let message = format!(
            "Halo answered {} records for {} posted; they may be saved but cannot be paired",
            saved.len(),
            batch.len()
        );
        return unmatched(entity, batch, records, message);
    }
    batch
        .iter()
        .zip(saved)
        .map(|(&index, saved)| {
            let sent_id = records[index].get("id").and_then(Value::as_f64);
            let saved_id = saved.get("id").and_then(Value::as_f64);
            // An update must come back as the same record.
            if is_update(&records[index]) && sent_id != saved_id {
                let message = format!(
                    "Halo {entity} record {}: the answer is for id {}",
                    describe(index, &records[index]),
                    saved.get("id").map(Value::to_string).unwrap_or_default()
                );
                return (
                    index,
                    Err(WriteFailure {
                        status: None,
                        field: None,
                        message,
                    }),
                );
            }
            (index, Ok(saved))
        })
        .collect()
}

fn unmatched(
    entity: &str,
    batch: &[usize],
    records: &[Value],
    message: String,
) -> Vec<(usize, Result<Value, WriteFailure>)> {
    batch
        .iter()
        .map(|&index| {
            let error = HaloError::Unexpected {
                entity: entity.to_string(),
                message: message.clone(),
            };
            (index, Err(failure(entity, index, &records[index], &error)))
        })
        .collect()
}

/// Works out which records a 400 was about.
fn locate_refusal(entity: &str, batch: &[usize], records: &[Value], body: &str) -> BatchAnswer {
    let errors = field_errors(body);
    let mut blamed: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for error in &errors {
        if let Some(position) = error.index.filter(|&position| position < batch.len()) {
            blamed
                .entry(position)
                .or_default()
                .push((error.field.clone(), error.message.clone()));
        }
    }
    if !blamed.is_empty() {
        let failed = blamed
            .iter()
            .map(|(&position, fields)| {
                let index = batch[position];
                let message = fields
                    .iter()
                    .map(|(field, message)| format!("{field}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let failure = WriteFailure {
                    status: Some(400),
                    field: fields.first().map(|(field, _)| field.clone()),
                    message: format!(
                        "Halo {entity} record {}: HTTP 400: {message}",
                        describe(index, &records[index])
                    ),
                };
                (index, failure)
            })
            .collect();
        let retry = batch
            .iter()
            .enumerate()
            .filter(|(position, _)| !blamed.contains_key(position))
            .map(|(_, &index)| index)
            .collect();
        return BatchAnswer::Refused {
            failed,
            retry,
            split: Vec::new(),
        };
    }
    if batch.len() == 1 {
        let index = batch[0];
        let field = match errors.as_slice() {
            [only] => Some(only.field.clone()),
            _ => None,
        };
        let failure = WriteFailure {
            status: Some(400),
            field,
            message: format!(
                "Halo {entity} record {}: HTTP 400: {}",
                describe(index, &records[index]),
                halo_message(body)
            ),
        };
        return BatchAnswer::Refused {
            failed: vec![(index, failure)],
            retry: Vec::new(),
            split: Vec::new(),
        };
    }
    let (left, right) = batch.split_at(batch.len() / 2);
    BatchAnswer::Refused {
        failed: Vec::new(),
        retry: Vec::new(),
        split: vec![left.to_vec(), right.to_vec()],
    }
}

fn failure(entity: &str, index: usize, record: &Value, error: &HaloError) -> WriteFailure {
    let error = match error {
        HaloError::Api {
            status, message, ..
        } => HaloError::Api {
            entity: entity.to_string(),
            record: Some(describe(index, record)),
            status: *status,
            message: message.clone(),
        },
        other => {
            return WriteFailure {
                status: other.status(),
                field: None,
                message: format!("record {}: {other}", describe(index, record)),
            }
        }
    };
    WriteFailure {
        status: error.status(),
        field: None,
        message: error.to_string(),
    }
}

/// `#3 (id 12)` or `#3 (name "Ann Lee")`: the input position and what a person recognises.
fn describe(index: usize, record: &Value) -> String {
    if is_update(record) {
        if let Some(id) = record.get("id") {
            return format!("#{index} (id {id})");
        }
    }
    for key in ["name", "summary", "emailaddress", "filename", "note"] {
        if let Some(text) = record.get(key).and_then(Value::as_str) {
            let text: String = text.chars().take(60).collect();
            return format!("#{index} ({key} {text:?})");
        }
    }
    format!("#{index}")
}

/// The partial update that turns `current` (as Halo has it) into `desired`: `id` and only the
/// fields that differ, custom fields included one by one. `None` when nothing differs, so the
/// record costs no call. Numbers compare by value (Halo sends `site_id` as `18.0`).
pub fn partial_update(current: &Value, desired: &Value) -> Option<Value> {
    let id = current.get("id").or_else(|| desired.get("id"))?.clone();
    let desired = desired.as_object()?;
    let mut update = Map::new();
    for (key, wanted) in desired {
        if key == "id" {
            continue;
        }
        if key == "customfields" {
            let changed = changed_custom_fields(current.get("customfields"), wanted);
            if !changed.is_empty() {
                update.insert(key.clone(), Value::Array(changed));
            }
            continue;
        }
        if !same_value(current.get(key).unwrap_or(&Value::Null), wanted) {
            update.insert(key.clone(), wanted.clone());
        }
    }
    if update.is_empty() {
        return None;
    }
    let mut record = Map::new();
    record.insert("id".to_string(), id);
    record.extend(update);
    Some(Value::Object(record))
}

fn changed_custom_fields(current: Option<&Value>, wanted: &Value) -> Vec<Value> {
    let current: Vec<&Value> = current
        .and_then(Value::as_array)
        .map(|fields| fields.iter().collect())
        .unwrap_or_default();
    let Some(wanted) = wanted.as_array() else {
        return Vec::new();
    };
    wanted
        .iter()
        .filter(|field| {
            let Some(key) = custom_field_key(field) else {
                return true;
            };
            let now = current
                .iter()
                .find(|existing| key.matches(existing))
                .and_then(|existing| existing.get("value"))
                .unwrap_or(&Value::Null);
            !same_value(now, field.get("value").unwrap_or(&Value::Null))
        })
        .cloned()
        .collect()
}

fn same_value(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| same_value(x, y)))
        }
        _ => left == right,
    }
}

fn fail_all(count: usize, error: &HaloError) -> Vec<WriteOutcome> {
    (0..count)
        .map(|index| WriteOutcome {
            index,
            result: Err(WriteFailure {
                status: None,
                field: None,
                message: error.to_string(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users(count: usize) -> Vec<Value> {
        (0..count)
            .map(|n| json!({ "name": format!("User {n}"), "site_id": 1 }))
            .collect()
    }

    #[test]
    fn indexed_400_blames_those_records_and_resends_the_rest() {
        let records = users(4);
        let batch = vec![4, 5, 6, 7]
            .into_iter()
            .map(|i| i - 4)
            .collect::<Vec<_>>();
        let answer = locate_refusal(
            "Users",
            &batch,
            &records,
            r#"{"[1].site_id": "Site 999 does not exist.", "[3].name": "Name is required."}"#,
        );
        let BatchAnswer::Refused {
            failed,
            retry,
            split,
        } = answer
        else {
            panic!("expected a refusal");
        };
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].0, 1);
        assert_eq!(failed[0].1.field.as_deref(), Some("site_id"));
        assert_eq!(
            failed[0].1.message,
            "Halo Users record #1 (name \"User 1\"): HTTP 400: site_id: Site 999 does not exist."
        );
        assert_eq!(failed[1].0, 3);
        assert_eq!(retry, vec![0, 2]);
        assert!(split.is_empty());
    }

    #[test]
    fn indexes_are_positions_in_the_batch_not_the_input() {
        let records = users(10);
        let batch = vec![6, 7, 8];
        let BatchAnswer::Refused { failed, retry, .. } =
            locate_refusal("Users", &batch, &records, r#"{"[2].site_id": "bad"}"#)
        else {
            panic!("expected a refusal");
        };
        assert_eq!(failed[0].0, 8);
        assert_eq!(retry, vec![6, 7]);
    }

    #[test]
    fn unindexed_400_splits_the_batch_then_blames_the_single_record() {
        let records = users(5);
        let BatchAnswer::Refused {
            failed,
            retry,
            split,
        } = locate_refusal("Users", &[0, 1, 2, 3, 4], &records, r#"{"Message":"bad"}"#)
        else {
            panic!("expected a refusal");
        };
        assert!(failed.is_empty() && retry.is_empty());
        assert_eq!(split, vec![vec![0, 1], vec![2, 3, 4]]);
        let BatchAnswer::Refused { failed, .. } =
            locate_refusal("Users", &[3], &records, r#"{"emailaddress":"taken"}"#)
        else {
            panic!("expected a refusal");
        };
        assert_eq!(failed[0].0, 3);
        assert_eq!(failed[0].1.field.as_deref(), Some("emailaddress"));
        assert!(failed[0]
            .1
            .message
            .ends_with("HTTP 400: emailaddress: taken"));
    }

    #[test]
    fn out_of_range_index_is_treated_as_unindexed() {
        let records = users(2);
        let BatchAnswer::Refused { failed, split, .. } =
            locate_refusal("Users", &[0, 1], &records, r#"{"[7].name":"bad"}"#)
        else {
            panic!("expected a refusal");
        };
        assert!(failed.is_empty());
        assert_eq!(split.len(), 2);
    }

    #[test]
    fn answers_pair_with_records_in_order() {
        let records = vec![json!({ "name": "a" }), json!({ "id": 7, "name": "b" })];
        let paired = match_answers(
            "Client",
            &[0, 1],
            &records,
            json!([{ "id": 31, "name": "a" }, { "id": 7, "name": "b" }]),
        );
        assert_eq!(paired[0].1.as_ref().unwrap()["id"], 31);
        assert_eq!(paired[1].1.as_ref().unwrap()["id"], 7);
        let single = match_answers("Client", &[1], &records, json!({ "id": 7 }));
        assert!(single[0].1.is_ok());
        let wrong = match_answers("Client", &[1], &records, json!({ "id": 8 }));
        assert!(wrong[0].1.as_ref().unwrap_err().message.contains("id 8"));
        let short = match_answers("Client", &[0, 1], &records, json!([{ "id": 31 }]));
        assert!(short.iter().all(|(_, result)| result
            .as_ref()
            .unwrap_err()
            .message
            .contains("1 records for 2 posted")));
    }

    #[test]
    fn partial_update_keeps_only_changes() {
        let current = json!({
            "id": 12, "name": "Ann", "site_id": 18.0, "emailaddress": "a@x",
            "customfields": [
                { "id": 5, "name": "CFSalesforceUserId", "value": "005A" },
                { "id": 6, "name": "CFSalesforceStage", "value": "Won" }
            ]
        });
        let desired = json!({
            "name": "Ann", "site_id": 18, "emailaddress": "ann@x",
            "customfields": [
                { "name": "CFSalesforceUserId", "value": "005A" },
                { "id": 6, "value": "Lost" }
            ]
        });
        assert_eq!(
            partial_update(&current, &desired),
            Some(json!({
                "id": 12, "emailaddress": "ann@x",
                "customfields": [{ "id": 6, "value": "Lost" }]
            }))
        );
        let same = json!({ "name": "Ann", "site_id": 18 });
        assert_eq!(partial_update(&current, &same), None);
    }

    #[test]
    fn describes_records_for_people() {
        assert_eq!(describe(2, &json!({ "id": 9, "name": "x" })), "#2 (id 9)");
        assert_eq!(
            describe(0, &json!({ "id": 0, "summary": "Renewal" })),
            "#0 (summary \"Renewal\")"
        );
        assert_eq!(describe(1, &json!({})), "#1");
    }
}
