//! How a stored row goes out on the wire: nulls omitted, the `<x>_name` read-outs of related
//! records, custom fields as Halo's array of definitions with values, and Halo's quirks (a
//! user's `site_id` as a float beside `site_id_int`, `1900-01-01T00:00:00` for a ticket with no
//! target date, flattened address lines on sites).

use serde_json::{json, Map, Value};

use super::entity::Entity;
use super::rules::{self, custom_field_definitions};
use super::store::{Row, Store};

/// Halo's "no date".
pub const NO_DATE: &str = "1900-01-01T00:00:00";

/// Which custom fields a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomFields<'a> {
    None,
    All,
    /// `include_custom_fields=<comma ids>`.
    Only(&'a [i64]),
}

pub fn render(store: &Store, entity: Entity, row: &Row, custom: CustomFields) -> Value {
    let mut out = Map::with_capacity(row.len() + 6);
    // Halo puts the id first.
    if let Some(id) = row.get("id") {
        out.insert("id".into(), id.clone());
    }
    for (key, value) in row {
        if key == "id" || key == "customfields" || value.is_null() {
            continue;
        }
        out.insert(key.clone(), value.clone());
    }
    let name_of = |target: Entity, field: &str| {
        Store::int(row, field)
            .and_then(|id| store.name_of(target, id))
            .map(|name| Value::String(name.to_string()))
    };
    let mut add = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.to_string(), value);
        }
    };
    match entity {
        Entity::Client => {
            add("main_site_name", name_of(Entity::Site, "main_site_id"));
            add(
                "accountmanagertech_name",
                name_of(Entity::Agent, "accountmanagertech"),
            );
        }
        Entity::Site => {
            add("client_name", name_of(Entity::Client, "client_id"));
            for address in ["delivery_address", "invoice_address"] {
                if let Some(lines) = row.get(address).and_then(Value::as_object) {
                    for n in 1..=4 {
                        let line = lines.get(&format!("line{n}")).filter(|v| !v.is_null());
                        add(&format!("{address}_line{n}"), line.cloned());
                    }
                }
            }
        }
        Entity::Users => {
            add("client_name", name_of(Entity::Client, "client_id"));
            add("site_name", name_of(Entity::Site, "site_id"));
            if let Some(site) = Store::int(row, "site_id") {
                add("site_id", Some(json!(site as f64)));
                add("site_id_int", Some(json!(site)));
            }
        }
        Entity::Tickets | Entity::Opportunities => {
            add("client_name", name_of(Entity::Client, "client_id"));
            add("site_name", name_of(Entity::Site, "site_id"));
            add("user_name", name_of(Entity::Users, "user_id"));
            add(
                "tickettype_name",
                name_of(Entity::TicketType, "tickettype_id"),
            );
            if !row.contains_key("targetdate") {
                add("targetdate", Some(json!(NO_DATE)));
            }
            for field in rules::DOUBLE_FIELDS {
                if let Some(number) = row.get(field).and_then(Value::as_f64) {
                    add(field, Some(json!(number)));
                }
            }
        }
        _ => {}
    }
    if custom != CustomFields::None {
        let values = row.get("customfields").and_then(Value::as_object);
        let fields: Vec<Value> = custom_field_definitions(store, entity)
            .into_iter()
            .filter(|d| match custom {
                CustomFields::Only(ids) => Store::int(d, "id").is_some_and(|id| ids.contains(&id)),
                _ => true,
            })
            .map(|definition| custom_field(definition, values))
            .collect();
        out.insert("customfields".into(), Value::Array(fields));
    }
    Value::Object(out)
}

/// One element of `customfields`, shaped like a real response's.
fn custom_field(definition: &Row, values: Option<&Map<String, Value>>) -> Value {
    let id = Store::int(definition, "id").unwrap_or_default();
    let mut field = Map::new();
    field.insert("id".into(), json!(id));
    for key in ["name", "label"] {
        if let Some(value) = definition.get(key) {
            field.insert(key.into(), value.clone());
        }
    }
    field.insert("summary".into(), json!(""));
    field.insert(
        "type".into(),
        definition.get("type").cloned().unwrap_or(json!(0)),
    );
    if let Some(value) = values.and_then(|v| v.get(&id.to_string())) {
        field.insert("value".into(), value.clone());
        let display = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        field.insert("display".into(), json!(display));
    }
    field.insert("characterlimit".into(), json!(0));
    field.insert("inputtype".into(), json!(0));
    field.insert("searchable".into(), json!(false));
    field.insert("usage".into(), json!(1));
    Value::Object(field)
}
