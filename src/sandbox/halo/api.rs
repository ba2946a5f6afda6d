//! The Halo instance's HTTP routes: the token endpoint, and under `/api` (case-insensitive
//! entity names) list with paging and filters, get one, POST arrays that create or partially
//! update, and DELETE. Attachments download as raw bytes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{Map, Value};

use super::auth;
use super::entity::Entity;
use super::http::{admit, bad_request, json_response, not_found};
use super::render::{render, CustomFields};
use super::rules::{self, Prepared};
use super::state::{lock, Shared, State};
use super::store::{parse_halo_datetime, Row, Store};

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/auth/token", post(auth::token))
        .route("/api/{entity}", get(list).post(write))
        .route("/api/{entity}/{id}", get(one).delete(delete))
        .with_state(shared)
}

type Params = HashMap<String, String>;

/// Query parameters with lower-cased names (Halo's are lower-case; clients vary).
fn params(raw: Vec<(String, String)>) -> Params {
    raw.into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn flag(params: &Params, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Runs `work` for an admitted `/api/<name>` call (rate limit, bearer); any response it
/// refuses with is answered as is.
fn api_call(
    shared: &Shared,
    headers: &HeaderMap,
    name: &str,
    work: impl FnOnce(&mut State, Entity) -> Result<Response, Response>,
) -> Response {
    let Some(entity) = Entity::from_path(name) else {
        return not_found(&format!("No resource named '{name}'."));
    };
    let mut state = lock(shared);
    if let Err(response) = admit(&mut state, headers) {
        return response;
    }
    work(&mut state, entity).unwrap_or_else(|response| response)
}

/// Query parameters that filter on an id field of the same name.
const ID_FILTERS: [&str; 11] = [
    "client_id",
    "site_id",
    "user_id",
    "ticket_id",
    "action_id",
    "agent_id",
    "tickettype_id",
    "typeid",
    "halo_id",
    "table_id",
    "module_id",
];

/// Fields `search` looks in, per entity.
fn search_fields(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Client | Entity::Site | Entity::Agent | Entity::TicketType => &["name"],
        Entity::Users => &["name", "emailaddress", "firstname", "surname"],
        Entity::Tickets | Entity::Opportunities => &["summary", "details"],
        Entity::Actions => &["note"],
        Entity::Attachment => &["filename"],
        Entity::FieldInfo => &["name", "label"],
        Entity::ExternalLink => &["third_party_id"],
    }
}

/// Whether a row passes the list's filters.
fn matches(store: &Store, entity: Entity, row: &Row, params: &Params) -> Result<bool, Response> {
    if entity.has_inactive()
        && !flag(params, "includeinactive")
        && row.get("inactive").and_then(Value::as_bool) == Some(true)
    {
        return Ok(false);
    }
    for filter in ID_FILTERS {
        let Some(wanted) = params.get(filter) else {
            continue;
        };
        // `requesttype_id` is the spec's name for the ticket type filter.
        let wanted: i64 = wanted.trim().parse().map_err(|_| {
            bad_request(&[(filter.to_string(), format!("'{wanted}' is not a valid id."))])
        })?;
        if Store::int(row, filter) != Some(wanted) {
            return Ok(false);
        }
    }
    if let Some(wanted) = params.get("requesttype_id") {
        if Store::int(row, "tickettype_id")
            .map(|v| v.to_string())
            .as_deref()
            != Some(wanted)
        {
            return Ok(false);
        }
    }
    if let Some(wanted) = params.get("third_party_id") {
        if row.get("third_party_id").and_then(Value::as_str) != Some(wanted.as_str()) {
            return Ok(false);
        }
    }
    if matches!(entity, Entity::Tickets | Entity::Opportunities) {
        let opportunity = rules::is_opportunity(store, row);
        let domain = params.get("domain").map(String::as_str);
        if entity == Entity::Opportunities || domain == Some("opps") {
            if !opportunity {
                return Ok(false);
            }
        } else if domain == Some("reqs") && opportunity {
            return Ok(false);
        }
    }
    if let Some(search) = params.get("search").filter(|s| !s.is_empty()) {
        let needle = search.to_lowercase();
        let found = search_fields(entity).iter().any(|field| {
            row.get(*field)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_lowercase().contains(&needle))
        });
        if !found {
            return Ok(false);
        }
    }
    // Only customers take a last-update filter (the reference's §2.2); other lists ignore
    // the parameter, as Halo ignores parameters a list does not know.
    if let Some(bound) = params
        .get("lastupdatefromdate")
        .filter(|_| entity == Entity::Client)
    {
        let bound = parse_halo_datetime(bound).ok_or_else(|| {
            bad_request(&[(
                "lastupdatefromdate".to_string(),
                format!("'{bound}' is not a valid date."),
            )])
        })?;
        let updated = row
            .get("last_update")
            .and_then(Value::as_str)
            .and_then(parse_halo_datetime)
            .unwrap_or(0);
        if updated < bound {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ids a list matches, in id order. Kept for the next page of the same query while
/// nothing is written, so reading a large table page by page stays linear.
fn matching_ids(
    state: &mut State,
    entity: Entity,
    params: &Params,
) -> Result<Arc<Vec<u64>>, Response> {
    let mut key: Vec<(&String, &String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "page_no" | "page_size" | "pageinate" | "count"))
        .collect();
    key.sort();
    let key = format!("{}?{key:?}", entity.name());
    if let Some((cached_key, version, ids)) = &state.list_cache {
        if *cached_key == key && *version == state.version {
            return Ok(ids.clone());
        }
    }
    let store = &state.store;
    let mut ids = Vec::new();
    for (id, row) in &store.table(entity).rows {
        if matches(store, entity, row, params)? {
            ids.push(*id);
        }
    }
    let ids = Arc::new(ids);
    state.list_cache = Some((key, state.version, ids.clone()));
    Ok(ids)
}

fn custom_field_ids(params: &Params) -> Option<Vec<i64>> {
    let raw = params.get("include_custom_fields")?;
    Some(
        raw.split(',')
            .filter_map(|id| id.trim().parse().ok())
            .collect(),
    )
}

async fn list(
    Extract(shared): Extract<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Response {
    if name.eq_ignore_ascii_case("authinfo") {
        return auth::authinfo(Extract(shared)).await;
    }
    let params = params(raw);
    api_call(&shared, &headers, &name, |state, entity| {
        list_page(state, entity, &params)
    })
}

fn list_page(state: &mut State, entity: Entity, params: &Params) -> Result<Response, Response> {
    let ids = matching_ids(state, entity, params)?;
    let number_param = |name: &str| -> Result<Option<usize>, Response> {
        params
            .get(name)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    bad_request(&[(name.to_string(), format!("'{v}' is not a valid number."))])
                })
            })
            .transpose()
    };
    let page_size = number_param("page_size")?;
    let page_no = number_param("page_no")?;
    let count = number_param("count")?;
    let paged = entity.pages() && flag(params, "pageinate");
    let (slice, page) = if paged {
        let mut size = page_size.unwrap_or(50).max(1);
        if let Some(max) = entity.max_page_size() {
            size = size.min(max);
        }
        let no = page_no.unwrap_or(1).max(1);
        let start = (no - 1).saturating_mul(size).min(ids.len());
        let end = start.saturating_add(size).min(ids.len());
        (&ids[start..end], Some((no, size)))
    } else {
        let end = count.unwrap_or(ids.len()).min(ids.len());
        (&ids[..end], None)
    };
    let wanted = custom_field_ids(params);
    let custom = match &wanted {
        Some(ids) => CustomFields::Only(ids),
        None => CustomFields::None,
    };
    let store = &state.store;
    let rows: Vec<Value> = slice
        .iter()
        .filter_map(|id| store.get(entity, *id))
        .map(|row| render(store, entity, row, custom))
        .collect();
    let body = match entity.envelope() {
        None => Value::Array(rows),
        Some(key) => {
            let mut envelope = Map::new();
            if let Some((no, size)) = page {
                envelope.insert("page_no".into(), no.into());
                envelope.insert("page_size".into(), size.into());
            }
            envelope.insert("record_count".into(), ids.len().into());
            envelope.insert(key.into(), Value::Array(rows));
            Value::Object(envelope)
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn parse_id(entity: Entity, raw: &str) -> Result<u64, Response> {
    raw.trim()
        .parse()
        .map_err(|_| not_found(&format!("{} '{raw}' does not exist.", entity.noun())))
}

async fn one(
    Extract(shared): Extract<Shared>,
    Path((name, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Response {
    let params = params(raw);
    api_call(&shared, &headers, &name, |state, entity| {
        let id = parse_id(entity, &raw_id)?;
        let store = &state.store;
        let row = existing(store, entity, id)?;
        if entity == Entity::Attachment && !flag(&params, "includedetails") {
            return Ok(download(store, id, row));
        }
        Ok(json_response(
            StatusCode::OK,
            &render(store, entity, row, CustomFields::All),
        ))
    })
}

/// The row `/api/<entity>/<id>` names (an Opportunity must be an opportunity ticket), or 404.
fn existing(store: &Store, entity: Entity, id: u64) -> Result<&Row, Response> {
    store
        .get(entity, id)
        .filter(|row| entity != Entity::Opportunities || rules::is_opportunity(store, row))
        .ok_or_else(|| not_found(&format!("{} {id} does not exist.", entity.noun())))
}

/// `GET /api/Attachment/{id}`: the file itself.
fn download(store: &Store, id: u64, row: &Row) -> Response {
    let bytes = store.blob(id).map(<[u8]>::to_vec).unwrap_or_default();
    let mut response = (StatusCode::OK, bytes).into_response();
    let content_type = row
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let filename = row
        .get("filename")
        .and_then(Value::as_str)
        .unwrap_or("attachment")
        .replace(['"', '\r', '\n'], "");
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn write(
    Extract(shared): Extract<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api_call(&shared, &headers, &name, |state, entity| {
        save_elements(state, entity, &body)
    })
}

fn save_elements(state: &mut State, entity: Entity, body: &[u8]) -> Result<Response, Response> {
    let elements = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(elements)) => elements,
        Ok(_) => {
            return Err(bad_request(&[(
                String::new(),
                format!("POST /api/{} takes a JSON array of objects.", entity.name()),
            )]))
        }
        Err(error) => {
            return Err(bad_request(&[(
                String::new(),
                format!("Invalid JSON: {error}"),
            )]))
        }
    };
    // Every element is checked before anything is stored: Halo rejects the whole request.
    let mut prepared = Vec::with_capacity(elements.len());
    let mut errors = Vec::new();
    for (index, element) in elements.iter().enumerate() {
        let Some(object) = element.as_object() else {
            errors.push((
                format!("[{index}]"),
                "Each element must be an object.".into(),
            ));
            continue;
        };
        match rules::prepare(&state.store, entity, object) {
            Ok(ready) => prepared.push(ready),
            Err(rejections) => errors.extend(
                rejections
                    .into_iter()
                    .map(|r| (format!("[{index}].{}", r.field), r.message)),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(bad_request(&errors));
    }
    let saved: Vec<u64> = prepared
        .into_iter()
        .map(|ready| commit(&mut state.store, entity, ready))
        .collect();
    state.version += 1;
    state.dirty = true;
    let store = &state.store;
    let mut rendered: Vec<Value> = saved
        .iter()
        .filter_map(|id| store.get(entity, *id))
        .map(|row| render(store, entity, row, CustomFields::All))
        .collect();
    if entity == Entity::Attachment {
        // The upload response carries the file back as plain base64, and names no ticket or
        // action although the file went on one, as a recorded real response does.
        for (value, id) in rendered.iter_mut().zip(&saved) {
            if let (Some(object), Some(bytes)) = (value.as_object_mut(), store.blob(*id)) {
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                object.insert("data".into(), Value::String(data));
                object.insert("ticket_id".into(), 0.into());
                object.insert("action_id".into(), 0.into());
            }
        }
    }
    let body = if rendered.len() == 1 {
        rendered.remove(0)
    } else {
        Value::Array(rendered)
    };
    Ok(json_response(StatusCode::CREATED, &body))
}

/// Stores one checked element; a new customer gets its main site, as Halo creates one.
fn commit(store: &mut Store, entity: Entity, ready: Prepared) -> u64 {
    let Prepared { id, mut row, blob } = ready;
    let id = match id {
        Some(id) => {
            store.replace(entity, id, row);
            id
        }
        None if entity == Entity::Client => {
            let site_name = row
                .remove("newclient_sitename")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "Main".into());
            let address = row.remove("newclient_delivery_address");
            row.retain(|key, _| !key.starts_with("newclient_"));
            let client = store.insert(entity, row);
            if store
                .get(entity, client)
                .and_then(|r| Store::int(r, "main_site_id"))
                .is_none()
            {
                let mut site = Row::new();
                site.insert("name".into(), Value::String(site_name));
                site.insert("client_id".into(), client.into());
                site.insert("inactive".into(), false.into());
                if let Some(address) = address {
                    site.insert("delivery_address".into(), address);
                }
                let site = store.insert(Entity::Site, site);
                if let Some(mut row) = store.get(entity, client).cloned() {
                    row.insert("main_site_id".into(), site.into());
                    store.put(entity, client, row);
                }
            }
            client
        }
        None => store.insert(entity, row),
    };
    if let Some(bytes) = blob {
        store.put_blob(id, bytes);
    }
    id
}

async fn delete(
    Extract(shared): Extract<Shared>,
    Path((name, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    api_call(&shared, &headers, &name, |state, entity| {
        let id = parse_id(entity, &raw_id)?;
        // Rendered before removal so the echo carries the related names.
        let echo = render(
            &state.store,
            entity,
            existing(&state.store, entity, id)?,
            CustomFields::None,
        );
        state.store.remove(entity, id);
        state.version += 1;
        state.dirty = true;
        Ok(json_response(StatusCode::OK, &echo))
    })
}
