//! What a POST may write: the required fields and references Halo checks (a user needs a site, a
//! ticket's client must exist, ...), the defaults it fills in (a ticket's `sync_to_salesforce`
//! from its type, an action's visibility from its outcome), custom fields written by id or by
//! name, and attachment bodies sent as data URIs. A rejected element names the field at fault.

use base64::Engine;
use serde_json::{Map, Value};

use super::entity::Entity;
use super::store::{number, Row, Store};

/// Why an element of a POST was refused: the field (as Halo's model-state keys name it) and
/// the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub field: String,
    pub message: String,
}

fn reject(field: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A checked element, ready to store.
#[derive(Debug)]
pub struct Prepared {
    /// The row being updated, or `None` for a create.
    pub id: Option<u64>,
    pub row: Row,
    /// An attachment's decoded body.
    pub blob: Option<Vec<u8>>,
}

/// Outcomes configured on the instance: name, whether actions with it are hidden from the end
/// user, and whether they sync to Salesforce by default (the outcome-level switch the guide
/// describes for case comments).
pub const OUTCOMES: [(&str, bool, bool); 4] = [
    ("Private Note", true, false),
    ("Public Note", false, true),
    ("Email User", false, true),
    ("Salesforce Comment", false, true),
];

/// Fields that Halo types as doubles and therefore answers as `5000.0`.
pub const DOUBLE_FIELDS: [&str; 5] = [
    "oppvalue",
    "oppvalue_annual",
    "oppvalue_monthly",
    "oppvalue_oneoff",
    "oppconversionprobability",
];

/// Checks one posted element against the store and merges it into the row it updates.
pub fn prepare(
    store: &Store,
    entity: Entity,
    input: &Map<String, Value>,
) -> Result<Prepared, Vec<Rejection>> {
    let id = input.get("id").and_then(number).filter(|id| *id > 0);
    let mut row = match id {
        Some(id) => {
            let found = u64::try_from(id)
                .ok()
                .and_then(|id| store.get(entity, id))
                .filter(|row| entity != Entity::Opportunities || is_opportunity(store, row));
            match found {
                Some(row) => row.clone(),
                None => {
                    return Err(vec![reject(
                        "id",
                        format!("{} {id} does not exist.", entity.noun()),
                    )])
                }
            }
        }
        None => Row::new(),
    };
    let creating = id.is_none();
    let mut errors = Vec::new();
    let mut blob = None;
    for (key, value) in input {
        match key.as_str() {
            "id" => {}
            // Write-only control flags (`_novalidate`, `_dontupdate_salesforce`, ...) steer the
            // write and are never stored.
            k if k.starts_with('_') => {}
            "customfields" => {
                if let Err(e) = merge_custom_fields(store, entity, value, &mut row) {
                    errors.push(e);
                }
            }
            "data_base64" | "data" if entity == Entity::Attachment => {
                match decode_attachment(value) {
                    Ok((bytes, content_type)) => {
                        row.insert("filesize".into(), Value::from(bytes.len()));
                        if let Some(content_type) = content_type {
                            row.insert("isimage".into(), content_type.starts_with("image/").into());
                            row.insert("content_type".into(), Value::String(content_type));
                        }
                        blob = Some(bytes);
                    }
                    Err(message) => errors.push(reject(key, message)),
                }
            }
            _ if value.is_null() => {
                row.remove(key);
            }
            _ => {
                row.insert(key.clone(), value.clone());
            }
        }
    }
    if creating {
        defaults(store, entity, &mut row);
    }
    check(
        store,
        entity,
        &mut row,
        creating,
        blob.is_some(),
        &mut errors,
    );
    if errors.is_empty() {
        Ok(Prepared {
            id: id.map(|id| id as u64),
            row,
            blob,
        })
    } else {
        Err(errors)
    }
}

fn text<'a>(row: &'a Row, field: &str) -> Option<&'a str> {
    row.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A positive id in `field`, or `None` when absent, 0 or -1 (Halo's "none").
fn reference(row: &Row, field: &str) -> Option<i64> {
    Store::int(row, field).filter(|id| *id > 0)
}

fn require_reference(
    store: &Store,
    row: &Row,
    field: &str,
    target: Entity,
    errors: &mut Vec<Rejection>,
) -> Option<i64> {
    let id = reference(row, field)?;
    if store.exists(target, id as u64) {
        Some(id)
    } else {
        errors.push(reject(
            field,
            format!("{} {id} does not exist.", target.noun()),
        ));
        None
    }
}

pub fn is_opportunity(store: &Store, ticket: &Row) -> bool {
    reference(ticket, "tickettype_id")
        .and_then(|id| store.get(Entity::TicketType, id as u64))
        .and_then(|t| t.get("isopportunity"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Defaults Halo fills in on create.
fn defaults(store: &Store, entity: Entity, row: &mut Row) {
    let set = |row: &mut Row, key: &str, value: Value| {
        row.entry(key.to_string()).or_insert(value);
    };
    match entity {
        Entity::Client | Entity::Site | Entity::Users => {
            set(row, "inactive", false.into());
            if entity != Entity::Site {
                set(row, "salesforce_dontsync", false.into());
            }
        }
        Entity::Tickets | Entity::Opportunities => {
            if reference(row, "tickettype_id").is_none() {
                let want_opportunity = entity == Entity::Opportunities;
                let default_type = store
                    .table(Entity::TicketType)
                    .rows
                    .iter()
                    .find(|(_, t)| {
                        t.get("isopportunity")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            == want_opportunity
                    })
                    .map(|(id, _)| *id);
                if let Some(id) = default_type {
                    row.insert("tickettype_id".into(), id.into());
                }
            }
            let ticket_type = reference(row, "tickettype_id")
                .and_then(|id| store.get(Entity::TicketType, id as u64));
            let sync = ticket_type
                .and_then(|t| t.get("default_sync_to_salesforce"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            set(row, "sync_to_salesforce", sync.into());
            set(row, "status_id", 1.into());
            if let Some(user) = reference(row, "user_id")
                .and_then(|id| store.get(Entity::Users, id as u64))
                .cloned()
            {
                for field in ["client_id", "site_id"] {
                    if reference(row, field).is_none() {
                        if let Some(value) = Store::int(&user, field) {
                            row.insert(field.into(), value.into());
                        }
                    }
                }
            }
            if reference(row, "client_id").is_none() {
                if let Some(client) = reference(row, "site_id")
                    .and_then(|id| store.get(Entity::Site, id as u64))
                    .and_then(|site| Store::int(site, "client_id"))
                {
                    row.insert("client_id".into(), client.into());
                }
            }
        }
        Entity::Actions => {
            let outcome = text(row, "outcome").unwrap_or("Private Note").to_string();
            let known = OUTCOMES
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(&outcome));
            let (hidden, sync) = known.map_or((true, false), |(_, h, s)| (*h, *s));
            set(row, "outcome", Value::String(outcome));
            set(row, "hiddenfromuser", hidden.into());
            set(row, "sync_to_salesforce", sync.into());
        }
        Entity::TicketType => {
            set(row, "default_sync_to_salesforce", false.into());
            set(row, "isopportunity", false.into());
        }
        Entity::FieldInfo => {
            set(row, "type", 0.into());
        }
        Entity::Attachment => {
            set(row, "ticket_id", 0.into());
            set(row, "action_id", 0.into());
            set(row, "user_id", (-1).into());
        }
        Entity::Agent => {
            set(row, "isdisabled", false.into());
            set(row, "is_agent", true.into());
        }
        Entity::ExternalLink => {}
    }
}

/// Required fields, references and derived values, checked on the merged row.
fn check(
    store: &Store,
    entity: Entity,
    row: &mut Row,
    creating: bool,
    has_body: bool,
    errors: &mut Vec<Rejection>,
) {
    let required = |row: &Row, field: &str, errors: &mut Vec<Rejection>, what: &str| {
        if text(row, field).is_none() {
            errors.push(reject(field, format!("{what} is required.")));
        }
    };
    match entity {
        Entity::Client => {
            required(row, "name", errors, "Customer name");
            require_reference(store, row, "accountmanagertech", Entity::Agent, errors);
        }
        Entity::Site => {
            required(row, "name", errors, "Site name");
            if reference(row, "client_id").is_none() {
                errors.push(reject("client_id", "Please select a Customer."));
            }
            require_reference(store, row, "client_id", Entity::Client, errors);
        }
        Entity::Users => {
            if reference(row, "site_id").is_none() {
                errors.push(reject("site_id", "Please select a Site."));
            }
            if let Some(site) = require_reference(store, row, "site_id", Entity::Site, errors) {
                let client = store
                    .get(Entity::Site, site as u64)
                    .and_then(|s| Store::int(s, "client_id"));
                if let Some(client) = client {
                    row.insert("client_id".into(), client.into());
                }
                // Halo types Users.site_id as a double and answers `18.0`; keep it an integer
                // here and let rendering add the quirk.
                row.insert("site_id".into(), site.into());
            }
            if text(row, "name").is_none() {
                let name = [text(row, "firstname"), text(row, "surname")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                if name.is_empty() {
                    errors.push(reject("name", "User name is required."));
                } else {
                    row.insert("name".into(), Value::String(name));
                }
            }
        }
        Entity::Agent => required(row, "name", errors, "Agent name"),
        Entity::TicketType => required(row, "name", errors, "Ticket type name"),
        Entity::Tickets | Entity::Opportunities => {
            required(row, "summary", errors, "Summary");
            if reference(row, "tickettype_id").is_none() {
                errors.push(reject("tickettype_id", "Please select a Ticket Type."));
            }
            require_reference(store, row, "tickettype_id", Entity::TicketType, errors);
            require_reference(store, row, "client_id", Entity::Client, errors);
            require_reference(store, row, "site_id", Entity::Site, errors);
            require_reference(store, row, "user_id", Entity::Users, errors);
            require_reference(store, row, "agent_id", Entity::Agent, errors);
            if entity == Entity::Opportunities && errors.is_empty() && !is_opportunity(store, row) {
                errors.push(reject(
                    "tickettype_id",
                    "This Ticket Type is not an Opportunity Ticket Type.",
                ));
            }
            for field in DOUBLE_FIELDS {
                if let Some(value) = row.get(field) {
                    match value
                        .as_f64()
                        .or_else(|| value.as_str()?.trim().parse().ok())
                    {
                        Some(number) => {
                            row.insert(field.into(), Value::from(number));
                        }
                        None => errors.push(reject(field, format!("{field} must be a number."))),
                    }
                }
            }
            for field in ["targetdate", "dateoccurred", "dateclosed"] {
                if let Some(date) = row.get(field).and_then(Value::as_str) {
                    if super::store::parse_halo_datetime(date).is_none() {
                        errors.push(reject(field, format!("'{date}' is not a valid date.")));
                    }
                }
            }
        }
        Entity::Actions => {
            if reference(row, "ticket_id").is_none() {
                errors.push(reject("ticket_id", "Please select a Ticket."));
            }
            require_reference(store, row, "ticket_id", Entity::Tickets, errors);
            match (
                text(row, "note").is_some(),
                text(row, "note_html").is_some(),
            ) {
                (true, false) => {
                    let html = html_escape(text(row, "note").unwrap_or_default());
                    row.insert("note_html".into(), Value::String(html));
                }
                (false, true) => {
                    let plain = strip_tags(text(row, "note_html").unwrap_or_default());
                    row.insert("note".into(), Value::String(plain));
                }
                _ => {}
            }
        }
        Entity::Attachment => {
            required(row, "filename", errors, "File name");
            let body_refused = errors.iter().any(|e| e.field.starts_with("data"));
            if creating && !has_body && !body_refused {
                errors.push(reject("data_base64", "The file is empty."));
            }
            require_reference(store, row, "ticket_id", Entity::Tickets, errors);
            require_reference(store, row, "action_id", Entity::Actions, errors);
        }
        Entity::FieldInfo => {
            required(row, "name", errors, "Field name");
            if let Some(name) = text(row, "name").map(str::to_string) {
                // Halo prefixes custom field names with `CF`.
                if !name.starts_with("CF") {
                    row.insert("name".into(), Value::String(format!("CF{name}")));
                }
            }
            let typeid = Store::int(row, "typeid");
            if !matches!(typeid, Some(1..=5)) {
                errors.push(reject(
                    "typeid",
                    "typeid must be 1 (tickets), 2 (customers), 3 (sites), 4 (users) or 5 (actions).",
                ));
            }
            let name = text(row, "name").unwrap_or_default();
            let own_id = Store::int(row, "id");
            let taken = store.table(Entity::FieldInfo).rows.values().any(|f| {
                Store::int(f, "id") != own_id
                    && Store::int(f, "typeid") == typeid
                    && f.get("name").and_then(Value::as_str) == Some(name)
            });
            if taken {
                errors.push(reject(
                    "name",
                    format!("A field named {name} already exists."),
                ));
            }
            if text(row, "label").is_none() {
                let label = name.trim_start_matches("CF").to_string();
                row.insert("label".into(), Value::String(label));
            }
        }
        Entity::ExternalLink => {
            if reference(row, "halo_id").is_none() {
                errors.push(reject("halo_id", "halo_id is required."));
            }
        }
    }
}

/// The definitions of an entity's custom fields.
pub fn custom_field_definitions(store: &Store, entity: Entity) -> Vec<&Row> {
    let Some(typeid) = entity.custom_field_type() else {
        return Vec::new();
    };
    store
        .table(Entity::FieldInfo)
        .rows
        .values()
        .filter(|f| Store::int(f, "typeid") == Some(typeid as i64))
        .collect()
}

/// Applies `[{"id": 165, "value": 3}]` or `[{"name": "CFx", "value": …}]` to the row's
/// custom values (`null` clears one).
fn merge_custom_fields(
    store: &Store,
    entity: Entity,
    value: &Value,
    row: &mut Row,
) -> Result<(), Rejection> {
    let Some(items) = value.as_array() else {
        return Err(reject("customfields", "customfields must be an array."));
    };
    let definitions = custom_field_definitions(store, entity);
    let mut values = row
        .get("customfields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for item in items {
        let by_id = item.get("id").and_then(number);
        let by_name = item.get("name").and_then(Value::as_str);
        let definition = definitions.iter().find(|d| {
            by_id.is_some_and(|id| Store::int(d, "id") == Some(id))
                || by_name.is_some_and(|name| {
                    d.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
        });
        let Some(definition) = definition else {
            let which = by_name
                .map(|n| format!("'{n}'"))
                .or(by_id.map(|id| id.to_string()))
                .unwrap_or_else(|| "without id or name".into());
            return Err(reject(
                "customfields",
                format!("Custom field {which} does not exist for {}.", entity.name()),
            ));
        };
        let key = Store::int(definition, "id").unwrap_or_default().to_string();
        match item.get("value") {
            None | Some(Value::Null) => {
                values.remove(&key);
            }
            Some(value) => {
                values.insert(key, value.clone());
            }
        }
    }
    row.insert("customfields".into(), Value::Object(values));
    Ok(())
}

/// An attachment body: a data URI (`data:text/plain;base64,…`) or plain base64.
fn decode_attachment(value: &Value) -> Result<(Vec<u8>, Option<String>), String> {
    let text = value
        .as_str()
        .ok_or_else(|| "The file must be base64 text.".to_string())?;
    let (content_type, data) = match text.strip_prefix("data:") {
        Some(rest) => {
            let (meta, data) = rest
                .split_once(',')
                .ok_or_else(|| "The data URI has no ','.".to_string())?;
            let content_type = meta.trim_end_matches(";base64");
            (
                Some(content_type.to_string()).filter(|t| !t.is_empty()),
                data,
            )
        }
        None => (None, text),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("The file is not valid base64: {e}."))?;
    Ok((bytes, content_type))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br>")
}

/// The text of an HTML note: tags dropped, `<br>` and `</p>` as line breaks, the common
/// entities decoded.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = rest[start + 1..start + end].to_ascii_lowercase();
        if tag.starts_with("br") || tag == "/p" {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notes_convert_both_ways() {
        assert_eq!(
            strip_tags("<p>Hello <b>there</b></p><p>a &amp; b</p>"),
            "Hello there\na & b"
        );
        assert_eq!(html_escape("a < b\nc"), "a &lt; b<br>c");
    }

    #[test]
    fn data_uris_decode() {
        let (bytes, kind) = decode_attachment(&json!("data:text/plain;base64,aGk=")).unwrap();
        assert_eq!(
            (bytes.as_slice(), kind.as_deref()),
            (&b"hi"[..], Some("text/plain"))
        );
        assert!(decode_attachment(&json!("data:text/plain;base64,@@")).is_err());
    }
}
