//! Halo as the engine's [`Source`], for sync back: an entity's records listed a page at a time
//! and shaped the way the import's transform shaped them (custom fields as `{"CFName": value}`,
//! a customer's main site under `main_site`, a ticket's type under `tickettype`), so one field
//! map reads both directions.
//!
//! The guide's per-record switches live here, since they are Halo's: a customer or user with
//! "Don't sync to Salesforce" (`salesforce_dontsync`), a ticket whose "Sync to Salesforce"
//! (`sync_to_salesforce`, defaulting to its type's `default_sync_to_salesforce`) is off, and
//! an action whose "Sync to Salesforce" (defaulting to its outcome's) is off are reported as
//! skipped with that reason. Actions are listed per ticket, as Halo lists them. Asked for
//! deleted records by id, it reads each one, inactive ones included, flagged `inactive`; asked
//! for other records by id, it reads each one and leaves inactive ones out, as a listing does.
//! Listings are read one page ahead (`crate::prefetch`): the next page is fetched while the
//! engine stages the one in hand. Customers can be listed from a time on (`lastupdatefromdate`, compared with each record's
//! `last_update`); the other entities only whole (see [`Source::lists_changes`] below).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::custom_fields::ids_for;
use super::records::{key_text, normalise};
use super::{HaloClient, HaloError, ListQuery};
use crate::engine::{EngineError, ExtractRequest, Record, Source};

/// Entities Halo lists by update time (`lastupdatefromdate`), per the reference's §2.2.
const LISTS_CHANGES: &[&str] = &["Client"];

/// List parameters Halo filters by; other `equals` are checked on each record.
const LIST_FILTERS: &[&str] = &[
    "tickettype_id",
    "client_id",
    "site_id",
    "user_id",
    "ticket_id",
];

pub struct HaloSource<'a> {
    client: &'a HaloClient,
    /// Ticket types by id, listed once.
    ticket_types: Mutex<Option<HashMap<String, Value>>>,
}

impl<'a> HaloSource<'a> {
    pub fn new(client: &'a HaloClient) -> HaloSource<'a> {
        HaloSource {
            client,
            ticket_types: Mutex::new(None),
        }
    }

    fn ticket_types(&self) -> Result<HashMap<String, Value>, EngineError> {
        let mut cached = self
            .ticket_types
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cached.is_none() {
            let mut types = HashMap::new();
            for record in self.client.records("TicketType", &ListQuery::default()) {
                let record = record.map_err(connection)?;
                if let Some(id) = record.get("id").map(key_text) {
                    types.insert(id, record);
                }
            }
            *cached = Some(types);
        }
        Ok(cached.clone().unwrap_or_default())
    }
}

impl HaloSource<'_> {
    /// The records with these ids, inactive ones included (with their `inactive` flag), one
    /// call each: how sync back tells a record deleted in Halo (not found) or made inactive
    /// from one that only left the list's filter.
    fn by_id(
        &self,
        entity: &str,
        ids: &[String],
        page: &mut dyn FnMut(Vec<Record>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let mut found = Vec::new();
        for id in ids {
            let Ok(number) = id.trim().parse::<u64>() else {
                continue;
            };
            if let Some(record) = self.client.get(entity, number).map_err(connection)? {
                found.push(normalise(record));
            }
        }
        if !found.is_empty() {
            page(found)?;
        }
        Ok(())
    }
}

/// What one extract keeps of each record Halo answers with, and how it completes it: the
/// request's `equals`, parents and ids checked on each record, the main site and the ticket
/// type added where the pipeline maps them.
struct Shape<'r> {
    request: &'r ExtractRequest,
    parent_field: Option<&'static str>,
    wanted_ids: Vec<String>,
    ticket_types: Option<HashMap<String, Value>>,
    wants_site: bool,
}

impl Shape<'_> {
    /// Keeps and completes one page of `records`, of `total` the extract reads in all.
    fn records(
        &mut self,
        source: &HaloSource,
        sites: &mut Sites,
        records: Vec<Value>,
        total: u64,
    ) -> Result<Vec<Record>, EngineError> {
        let mut kept = Vec::with_capacity(records.len());
        for record in records {
            let record = normalise(record);
            let same = |field: &str, wanted: &Value| {
                let value = record.get(field).map(key_text);
                match wanted {
                    Value::Array(any) => any.iter().any(|w| value == Some(key_text(w))),
                    one => value == Some(key_text(one)),
                }
            };
            if !self.request.equals.iter().all(|(f, v)| same(f, v)) {
                continue;
            }
            if let (Some(parents), Some(field)) = (&self.request.parents, self.parent_field) {
                let parent = record.get(field).map(key_text).unwrap_or_default();
                if !parents.iter().any(|p| p.trim() == parent) {
                    continue;
                }
            }
            if !self.wanted_ids.is_empty() {
                let id = record.get("id").map(key_text).unwrap_or_default();
                if !self.wanted_ids.contains(&id) {
                    continue;
                }
            }
            kept.push(record);
        }
        if self.wants_site {
            let site_ids: Vec<String> = kept
                .iter()
                .filter_map(|r| r.get("main_site_id").map(key_text))
                .collect();
            sites.prepare(source, &site_ids, total)?;
        }
        for record in &mut kept {
            if self.wants_site {
                let site = record
                    .get("main_site_id")
                    .map(key_text)
                    .and_then(|id| sites.get(&id));
                if let Some(site) = site {
                    record.insert("main_site".into(), Value::Object(site));
                }
            }
            if let Some(types) = &self.ticket_types {
                let ticket_type = record
                    .get("tickettype_id")
                    .map(key_text)
                    .and_then(|id| types.get(&id).cloned());
                if let Some(ticket_type) = ticket_type {
                    record.insert("tickettype".into(), ticket_type);
                }
            }
        }
        Ok(kept)
    }
}

/// The sites of one extract's customers, by id: every site listed once, or — for customers
/// read by id or listed since a time, usually few — each site read by id, as long as the
/// customers the extract reads in all are no more than the pages a listing of every site
/// takes (the site count, read once when first needed, says how many). A site is kept only
/// with the parts the pipeline maps (`delivery_address` for `main_site.delivery_address.line1`)
/// and as JSON text: a whole listed site is about 2.5 KB, and a listing holds one per customer.
struct Sites {
    one_by_one: bool,
    /// The site's top-level fields the request reads under `main_site.`; empty for all.
    wanted: Vec<String>,
    by_id: SiteTexts,
    /// Pages a listing of every site takes; unknown until first needed.
    pages: Option<u64>,
}

impl Sites {
    fn new(one_by_one: bool, fields: &[String]) -> Sites {
        let mut wanted: Vec<String> = Vec::new();
        for field in fields {
            match field.strip_prefix("main_site.") {
                Some(rest) => {
                    let top = rest.split('.').next().unwrap_or(rest).to_string();
                    if !wanted.contains(&top) {
                        wanted.push(top);
                    }
                }
                // The whole site is mapped: keep it whole.
                None if field == "main_site" => {
                    wanted.clear();
                    break;
                }
                None => {}
            }
        }
        Sites {
            one_by_one,
            wanted,
            by_id: SiteTexts::default(),
            pages: None,
        }
    }

    /// The part of `site` the request reads, as JSON text.
    fn kept(&self, site: Value) -> Box<str> {
        let site = normalise(site);
        let kept: Record = if self.wanted.is_empty() {
            site
        } else {
            site.into_iter()
                .filter(|(key, _)| self.wanted.iter().any(|w| w == key))
                .collect()
        };
        Value::Object(kept).to_string().into_boxed_str()
    }

    fn load_all(&mut self, source: &HaloSource) -> Result<(), EngineError> {
        self.by_id = SiteTexts::default();
        // Page after page, not `each_page`'s several at once: sites are the largest records
        // listed, and four pages of them in flight added 4 MB to the peak of a 1M-record first
        // import (BENCHMARKS.md, seventeenth session).
        for record in source.client.records("Site", &ListQuery::default()) {
            let record = record.map_err(connection)?;
            if let Some(id) = record.get("id").and_then(|id| site_id(&key_text(id))) {
                let kept = self.kept(record);
                self.by_id.push(id, Some(&kept))?;
            }
        }
        self.by_id.sort();
        self.one_by_one = false;
        Ok(())
    }

    /// Makes sure the sites with these ids are at hand, for a page of an extract that reads
    /// `total` customers in all.
    fn prepare(
        &mut self,
        source: &HaloSource,
        ids: &[String],
        total: u64,
    ) -> Result<(), EngineError> {
        if !self.one_by_one {
            return Ok(());
        }
        let mut missing: Vec<u64> = ids
            .iter()
            .filter_map(|id| site_id(id))
            .filter(|id| !self.by_id.holds(*id))
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let pages = match self.pages {
            Some(pages) => pages,
            None => {
                let count = source
                    .client
                    .count("Site", &ListQuery::default())
                    .map_err(connection)?
                    .unwrap_or(u64::MAX);
                let pages = count.div_ceil(u64::from(source.client.options.page_size.max(1)));
                self.pages = Some(pages);
                pages
            }
        };
        // One read per customer at most: cheaper than the listing only below its page count.
        if total > pages {
            return self.load_all(source);
        }
        for id in missing {
            let site = source.client.get("Site", id).map_err(connection)?;
            let kept = site.map(|site| self.kept(site));
            self.by_id.push(id, kept.as_deref())?;
        }
        self.by_id.sort();
        Ok(())
    }

    fn get(&self, id: &str) -> Option<Record> {
        let text = self.by_id.text(site_id(id)?)?;
        match serde_json::from_str(text) {
            Ok(Value::Object(site)) => Some(site),
            _ => None,
        }
    }
}

/// A site's id as a number (Halo's ids are).
fn site_id(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The kept sites' JSON texts by id, in one string with a sorted index: the texts plus 16
/// bytes a site, where a hash map of boxed strings took about 210 (at 1M records the
/// 250,000 sites held while the customers were listed were a no-op rerun's peak).
#[derive(Default)]
struct SiteTexts {
    texts: String,
    /// (site id, where its text starts and ends in `texts`), by id once sorted; a site read
    /// by id that Halo did not have starts at [`SiteTexts::ABSENT`].
    index: Vec<(u64, u32, u32)>,
}

impl SiteTexts {
    const ABSENT: u32 = u32::MAX;

    /// Adds a site (`None`: looked for and not there); [`SiteTexts::sort`] before reading.
    fn push(&mut self, id: u64, text: Option<&str>) -> Result<(), EngineError> {
        let too_big = || EngineError::Connection("more than 4 GB of Halo sites".into());
        let entry = match text {
            Some(text) => {
                let start = u32::try_from(self.texts.len()).map_err(|_| too_big())?;
                self.texts.push_str(text);
                let end = u32::try_from(self.texts.len()).map_err(|_| too_big())?;
                (id, start, end)
            }
            None => (id, Self::ABSENT, Self::ABSENT),
        };
        self.index.push(entry);
        Ok(())
    }

    /// Sorts the index by id (stable: of a site listed twice, the first stays first).
    fn sort(&mut self) {
        if !self.index.is_sorted_by_key(|entry| entry.0) {
            self.index.sort_by_key(|entry| entry.0);
        }
    }

    fn entry(&self, id: u64) -> Option<&(u64, u32, u32)> {
        let at = self.index.partition_point(|entry| entry.0 < id);
        self.index.get(at).filter(|entry| entry.0 == id)
    }

    /// Whether the site was listed or looked for.
    fn holds(&self, id: u64) -> bool {
        self.entry(id).is_some()
    }

    fn text(&self, id: u64) -> Option<&str> {
        match *self.entry(id)? {
            (_, Self::ABSENT, _) => None,
            (_, start, end) => Some(&self.texts[start as usize..end as usize]),
        }
    }
}

fn connection(error: HaloError) -> EngineError {
    match error {
        HaloError::Settings(message) => EngineError::Config(format!("Halo: {message}")),
        other => EngineError::Connection(other.to_string()),
    }
}

/// A Halo value as comparable text: ids as whole numbers, text trimmed and lower-cased.
fn flag(record: &Record, field: &str) -> Option<bool> {
    match record.get(field)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Source for HaloSource<'_> {
    fn id_field(&self) -> &str {
        "id"
    }

    fn extract(
        &self,
        request: &ExtractRequest,
        page: &mut dyn FnMut(Vec<Record>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let entity = request.object.as_str();
        if request.include_deleted && !request.ids.is_empty() {
            return self.by_id(entity, &request.ids, page);
        }
        let custom: Vec<&str> = request
            .fields
            .iter()
            .filter_map(|f| f.strip_prefix("customfields."))
            .map(|f| f.split('.').next().unwrap_or(f))
            .collect();
        let mut query = ListQuery::default();
        if !custom.is_empty() {
            let definitions = self.client.custom_field_definitions().map_err(connection)?;
            query.include_custom_fields = ids_for(&definitions, &custom).map_err(connection)?;
        }
        // A filter with several values is one listing per value (Halo filters by one).
        let mut any_of: Vec<(&str, &Vec<Value>)> = Vec::new();
        for (field, value) in &request.equals {
            if LIST_FILTERS.contains(&field.as_str()) {
                match value {
                    Value::Array(values) => any_of.push((field, values)),
                    one => query = query.filter(field, key_text(one)),
                }
            }
        }
        if let Some(since) = request.changed_since {
            if !self.lists_changes(entity) {
                return Err(EngineError::Config(format!(
                    "Halo cannot list {entity} records by update time"
                )));
            }
            query = query.updated_since_millis(since);
        }
        let parent_field = self.parent_field(entity);
        // Records read one by one (by id), or listed since a time, are usually few: their
        // sites are read one by one too, up to what listing every site would cost.
        let by_id = !request.ids.is_empty() && parent_field.is_none();
        let wants_site = request.fields.iter().any(|f| f.starts_with("main_site."));
        let mut sites = Sites::new(
            wants_site && (by_id || request.changed_since.is_some()),
            &request.fields,
        );
        if wants_site && !sites.one_by_one {
            sites.load_all(self)?;
        }
        let mut shape = Shape {
            request,
            parent_field,
            wanted_ids: request.ids.iter().map(|id| id.trim().to_string()).collect(),
            ticket_types: if matches!(entity, "Tickets" | "Opportunities") {
                Some(self.ticket_types()?)
            } else {
                None
            },
            wants_site,
        };
        if by_id {
            for ids in request
                .ids
                .chunks(self.client.options.page_size.max(1) as usize)
            {
                let mut records = Vec::with_capacity(ids.len());
                for id in ids {
                    let Ok(number) = id.trim().parse::<u64>() else {
                        continue;
                    };
                    let Some(record) = self.client.get(entity, number).map_err(connection)? else {
                        continue;
                    };
                    // A listing leaves inactive records out; so does a read by id.
                    if record.as_object().and_then(|r| flag(r, "inactive")) != Some(true) {
                        records.push(record);
                    }
                }
                let out = shape.records(self, &mut sites, records, request.ids.len() as u64)?;
                if !out.is_empty() {
                    page(out)?;
                }
            }
            return Ok(());
        }
        let mut queries: Vec<ListQuery> = match (&request.parents, parent_field) {
            (Some(parents), Some(field)) => parents
                .iter()
                .map(|id| query.clone().filter(field, id))
                .collect(),
            _ => vec![query],
        };
        for (field, values) in any_of {
            queries = queries
                .iter()
                .flat_map(|query| {
                    values
                        .iter()
                        .map(move |value| query.clone().filter(field, key_text(value)))
                })
                .collect();
        }
        for query in queries {
            // The next page is fetched while this one is shaped and staged.
            self.client.each_page(entity, &query, |read| {
                let (records, total) = read.map_err(connection)?;
                let out = shape.records(self, &mut sites, records, total.unwrap_or(u64::MAX))?;
                if out.is_empty() {
                    return Ok(());
                }
                page(out)
            })?;
        }
        Ok(())
    }

    /// Customers: `GET /Client` takes `lastupdatefromdate` (reference §2.2). Tickets and
    /// opportunities take `datesearch` with `startdate`/`enddate`, but no `datesearch` value
    /// known from a real source selects the last update (the documented ones are the opened
    /// and closed dates), so they, like users and sites (no date filter), are listed whole.
    fn lists_changes(&self, object: &str) -> bool {
        LISTS_CHANGES.contains(&object)
    }

    /// Halo's `last_update` (`lastupdate` in some answers), read on its own scale: a value
    /// without a zone is taken as it is, so a bound derived from it is sent back the same way.
    fn changed_at(&self, object: &str, record: &Record) -> Option<i64> {
        let _ = object;
        ["last_update", "lastupdate"]
            .iter()
            .find_map(|field| record.get(*field))
            .and_then(Value::as_str)
            .and_then(crate::civil::parse_datetime)
    }

    fn api_calls(&self) -> u64 {
        self.client.api_calls()
    }

    fn skip_reason(&self, object: &str, record: &Record) -> Option<String> {
        switched_off(object, record)
    }

    /// Halo marks a removed customer, site or user inactive rather than deleting it.
    fn deleted_field(&self) -> Option<&str> {
        Some("inactive")
    }

    fn parent_field(&self, object: &str) -> Option<&'static str> {
        (object == "Actions").then_some("ticket_id")
    }
}

/// Why the guide's switches keep this record from Salesforce, or `None`.
fn switched_off(object: &str, record: &Record) -> Option<String> {
    match object {
        "Client" | "Users" => (flag(record, "salesforce_dontsync") == Some(true)).then(|| {
            let noun = if object == "Client" {
                "customer"
            } else {
                "user"
            };
            format!("\"Don't sync to Salesforce\" is set on this {noun}")
        }),
        "Tickets" | "Opportunities" => {
            let ticket_type = record.get("tickettype").and_then(Value::as_object);
            let type_name = ticket_type
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            match flag(record, "sync_to_salesforce") {
                Some(true) => None,
                Some(false) => Some("\"Sync to Salesforce\" is off on this ticket".into()),
                None => {
                    let by_type = ticket_type
                        .and_then(|t| flag(t, "default_sync_to_salesforce"))
                        .unwrap_or(false);
                    (!by_type)
                        .then(|| format!("ticket type {type_name} does not sync to Salesforce"))
                }
            }
        }
        "Actions" => (flag(record, "sync_to_salesforce") != Some(true))
            .then(|| "\"Sync to Salesforce\" is off on this action".to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn switches_follow_the_guide() {
        let skip = |object: &str, value: Value| switched_off(object, &record(value));
        assert!(skip("Client", json!({"salesforce_dontsync": true})).is_some());
        assert!(skip("Client", json!({"salesforce_dontsync": false})).is_none());
        assert!(skip("Users", json!({})).is_none());
        // A ticket's own switch wins over its type's; without one, the type decides.
        let syncing_type = json!({"name": "Opportunity", "default_sync_to_salesforce": true});
        let quiet_type = json!({"name": "Incident", "default_sync_to_salesforce": false});
        assert!(skip("Tickets", json!({"tickettype": syncing_type})).is_none());
        assert!(skip(
            "Tickets",
            json!({"tickettype": syncing_type, "sync_to_salesforce": false})
        )
        .is_some());
        assert!(skip(
            "Tickets",
            json!({"tickettype": quiet_type, "sync_to_salesforce": true})
        )
        .is_none());
        assert_eq!(
            skip("Tickets", json!({"tickettype": quiet_type})).as_deref(),
            Some("ticket type Incident does not sync to Salesforce")
        );
        assert!(skip("Actions", json!({"sync_to_salesforce": true})).is_none());
        assert!(skip("Actions", json!({"hiddenfromuser": false})).is_some());
    }

    #[test]
    fn sites_keep_only_the_parts_the_pipeline_maps() {
        let fields = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let site = json!({"id": 7, "name": "Head office", "notes": "long text",
            "delivery_address": {"line1": "1 St", "postcode": "LS1"}});
        let sites = Sites::new(
            false,
            &fields(&["name", "main_site.delivery_address.line1", "main_site_id"]),
        );
        assert_eq!(
            serde_json::from_str::<Value>(&sites.kept(site.clone())).unwrap(),
            json!({"delivery_address": {"line1": "1 St", "postcode": "LS1"}})
        );
        let whole = Sites::new(false, &fields(&["main_site", "main_site.name"]));
        assert_eq!(
            serde_json::from_str::<Value>(&whole.kept(site.clone())).unwrap(),
            site
        );
    }
}
