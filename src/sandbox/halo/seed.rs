//! Deterministic seed data for the Halo instance, drawn from the Salesforce org beside it so
//! that both sides share some people and companies: agents whose emails match Salesforce
//! owners, customers and users that already exist on both sides (to test matching rather than
//! duplicating), a default site for users whose account was not imported, ticket types with
//! their Salesforce switches, and the custom fields the example pipelines map.

use serde_json::{json, Map, Value};

use super::entity::Entity;
use super::store::{Row, Store};
use crate::sandbox::salesforce::org::Org;

/// Customers (and one contact each) copied from the first Salesforce accounts.
pub const SHARED_ACCOUNTS: usize = 3;
/// Salesforce users who are also Halo agents (matched by email).
pub const SHARED_AGENTS: usize = 3;
/// The site users go to when their account was not imported (`default: 1` in the examples).
pub const DEFAULT_SITE_ID: u64 = 1;

fn row(value: Value) -> Row {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn text<'a>(record: &'a Map<String, Value>, field: &str) -> &'a str {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub fn seed(store: &mut Store, org: &Org) {
    store.insert(
        Entity::Agent,
        row(
            json!({"name": "API Integration", "firstname": "API", "surname": "Integration",
                   "email": "api@halo.sandbox.example", "isapiagent": true, "is_agent": true,
                   "isdisabled": false}),
        ),
    );
    let mut agent_by_sf_user = Vec::new();
    for user in org.records("User").iter().take(SHARED_AGENTS) {
        let id = store.insert(
            Entity::Agent,
            row(json!({
                "name": text(user, "Name"),
                "firstname": text(user, "FirstName"),
                "surname": text(user, "LastName"),
                "email": text(user, "Email"),
                "is_agent": true, "isdisabled": false, "isapiagent": false,
            })),
        );
        agent_by_sf_user.push((text(user, "Id").to_string(), id));
    }
    store.insert(
        Entity::Agent,
        row(
            json!({"name": "Sam Service", "firstname": "Sam", "surname": "Service",
                   "email": "sam.service@halo.sandbox.example", "is_agent": true,
                   "isdisabled": false, "isapiagent": false}),
        ),
    );

    let mut field_ids = Vec::new();
    for (name, label, typeid) in [
        ("CFSalesforceUserId", "Salesforce User Id", 1),
        ("CFSalesforceStage", "Salesforce Stage", 1),
        ("CFTaskType", "Task Type", 1),
        ("CFSalesforceAccountId", "Salesforce Account Id", 2),
        ("CFSalesforceContactId", "Salesforce Contact Id", 4),
        ("CFSalesforceAccountType", "Salesforce Account Type", 2),
        // Where a ticket keeps the Salesforce record it is synced with.
        ("CFSalesforceOpportunityId", "Salesforce Opportunity Id", 1),
        ("CFSalesforceCaseId", "Salesforce Case Id", 1),
    ] {
        field_ids.push(store.insert(
            Entity::FieldInfo,
            row(json!({"name": name, "label": label, "type": 0, "typeid": typeid})),
        ));
    }
    let (account_id_field, contact_id_field) = (field_ids[3].to_string(), field_ids[4].to_string());

    // `isopportunity` stands for the database's RTIsOpportunity flag (the API name is inferred).
    let mut opportunity_type = 0;
    let mut case_type = 0;
    for (name, opportunity, sync, stage) in [
        ("Incident", false, false, None),
        ("Service Request", false, false, None),
        ("Opportunity", true, true, Some("Prospecting")),
        ("Salesforce Case", false, true, None),
        ("Change Request", false, false, None),
    ] {
        let mut ticket_type = row(json!({
            "name": name, "isopportunity": opportunity, "default_sync_to_salesforce": sync,
            "visible": true, "enduserscanselect": !opportunity,
        }));
        if let Some(stage) = stage {
            ticket_type.insert("salesforce_default_stage".into(), json!(stage));
        }
        let id = store.insert(Entity::TicketType, ticket_type);
        match name {
            "Opportunity" => opportunity_type = id,
            "Salesforce Case" => case_type = id,
            _ => {}
        }
    }

    let unallocated = store.insert(
        Entity::Client,
        row(json!({"name": "Unallocated Users", "inactive": false, "salesforce_dontsync": true})),
    );
    let default_site = store.insert(
        Entity::Site,
        row(json!({"name": "Default Site", "client_id": unallocated, "inactive": false})),
    );
    debug_assert_eq!(default_site, DEFAULT_SITE_ID);
    set(
        store,
        Entity::Client,
        unallocated,
        "main_site_id",
        json!(default_site),
    );

    let contacts = org.records("Contact");
    let mut first_shared = None;
    for account in org.records("Account").iter().take(SHARED_ACCOUNTS) {
        let owner = text(account, "OwnerId");
        let manager = agent_by_sf_user
            .iter()
            .find(|(user, _)| user == owner)
            .map(|(_, agent)| *agent);
        let mut client = row(json!({
            "name": text(account, "Name"),
            "website": text(account, "Website"),
            "main_phonenumber": text(account, "Phone"),
            "inactive": false,
            "salesforce_dontsync": false,
            "customfields": {account_id_field.clone(): text(account, "Id")},
        }));
        if let Some(manager) = manager {
            client.insert("accountmanagertech".into(), json!(manager));
        }
        let client = store.insert(Entity::Client, client);
        let address = json!({
            "line1": text(account, "BillingStreet"),
            "line2": text(account, "BillingCity"),
            "line3": text(account, "BillingState"),
            "postcode": text(account, "BillingPostalCode"),
        });
        let site = store.insert(
            Entity::Site,
            row(
                json!({"name": "Main", "client_id": client, "inactive": false,
                       "delivery_address": address, "invoice_address": address,
                       "invoice_address_isdelivery": true}),
            ),
        );
        set(store, Entity::Client, client, "main_site_id", json!(site));
        let account_id = text(account, "Id");
        if let Some(contact) = contacts.iter().find(|c| text(c, "AccountId") == account_id) {
            let user = store.insert(
                Entity::Users,
                row(json!({
                    "name": text(contact, "Name"),
                    "firstname": text(contact, "FirstName"),
                    "surname": text(contact, "LastName"),
                    "emailaddress": text(contact, "Email"),
                    "phonenumber": text(contact, "Phone"),
                    "mobilenumber": text(contact, "MobilePhone"),
                    "site_id": site, "client_id": client,
                    "inactive": false, "salesforce_dontsync": false,
                    "customfields": {contact_id_field.clone(): text(contact, "Id")},
                })),
            );
            first_shared.get_or_insert((client, site, user));
        }
    }
    for (first, last) in [("Pat", "Walk-in"), ("Robin", "Reception")] {
        store.insert(
            Entity::Users,
            row(json!({
                "name": format!("{first} {last}"), "firstname": first, "surname": last,
                "emailaddress": format!("{}.{}@halo.sandbox.example", first.to_lowercase(), last.to_lowercase()),
                "site_id": default_site, "client_id": unallocated,
                "inactive": false, "salesforce_dontsync": true,
            })),
        );
    }

    // One opportunity and one case on the first shared customer, with a public and a private
    // note on the case and a small attachment.
    let Some((client, site, user)) = first_shared else {
        return;
    };
    store.insert(
        Entity::Tickets,
        row(json!({
            "summary": "Halo-side renewal", "details": "Raised in Halo; not yet in Salesforce.",
            "tickettype_id": opportunity_type, "client_id": client, "site_id": site, "user_id": user,
            "status_id": 1, "oppvalue": 12000.0, "oppconversionprobability": 40.0,
            "targetdate": "2026-12-31T00:00:00", "sync_to_salesforce": true,
        })),
    );
    let case = store.insert(
        Entity::Tickets,
        row(json!({
            "summary": "Printer offline", "details": "The second floor printer is offline.",
            "tickettype_id": case_type, "client_id": client, "site_id": site, "user_id": user,
            "status_id": 1, "sync_to_salesforce": true,
        })),
    );
    for (note, outcome, hidden, sync) in [
        ("We are looking into it.", "Public Note", false, true),
        (
            "Toner ordered from the usual supplier.",
            "Private Note",
            true,
            false,
        ),
    ] {
        store.insert(
            Entity::Actions,
            row(json!({
                "ticket_id": case, "note": note, "note_html": format!("<p>{note}</p>"),
                "outcome": outcome, "hiddenfromuser": hidden, "sync_to_salesforce": sync,
                "who": "Sam Service",
            })),
        );
    }
    let attachment = store.insert(
        Entity::Attachment,
        row(
            json!({"filename": "printer-status.txt", "ticket_id": case, "action_id": 0,
                   "user_id": -1, "isimage": false, "content_type": "text/plain",
                   "filesize": 21}),
        ),
    );
    store.put_blob(attachment, b"status: paper jam\r\n\r\n".to_vec());
}

fn set(store: &mut Store, entity: Entity, id: u64, field: &str, value: Value) {
    if let Some(mut row) = store.get(entity, id).cloned() {
        row.insert(field.into(), value);
        store.put(entity, id, row);
    }
}
