//! Sync back (Halo → Salesforce) end to end: the `etl` binary against both sandboxes, one test
//! per rule of the sync-back issue. Customers become Accounts, users Contacts, opportunity
//! tickets Opportunities (with the stage rule), case tickets Cases and their actions
//! CaseComments (created once, never updated); Halo's own switches ("Don't sync to Salesforce",
//! "Sync to Salesforce") keep records out with a reason; fields land as mapped; a rerun writes
//! nothing in either direction; fields changed on both sides follow the conflict policy; and one
//! run creates a Halo-only customer with everything under it, each linked to its parent.

use serde_json::{json, Map, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{
    direction, halo_get, halo_post, halo_token, live_records, pipeline, project, staging_rows,
    touch, Project, ALL_PIPELINES,
};

type Record = Map<String, Value>;

fn sandbox(accounts: u64) -> Running {
    server::start(Options {
        accounts,
        ..Options::default()
    })
    .unwrap()
}

/// `etl run --json`, which must succeed; the summary.
fn run(project: &Project) -> Value {
    let (code, stdout, stderr) = support::etl_output(&project.root, &["run", "--json"]);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    summary
}

fn back<'a>(summary: &'a Value, name: &str) -> &'a Value {
    direction(summary, name, "sync back")
}

fn id_of(value: &Value) -> u64 {
    value["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// The sync-back result of one Halo record in a run: status, Salesforce Id, message.
fn back_result(project: &Project, summary: &Value, name: &str, halo_id: u64) -> Value {
    let run_id = summary["run_id"].as_str().unwrap();
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT status, target_id, error_message FROM {name}_back_results \
             WHERE run_id = '{run_id}' AND source_id = '{halo_id}'"
        ),
    );
    assert_eq!(rows.len(), 1, "{name} result of Halo {halo_id}: {rows:?}");
    rows[0].clone()
}

/// Asserts a Halo record was skipped by the sync back with a reason containing `reason`.
fn assert_skipped(project: &Project, summary: &Value, name: &str, halo_id: u64, reason: &str) {
    let result = back_result(project, summary, name, halo_id);
    assert_eq!(result["status"], "skipped", "{result}");
    let message = result["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(reason),
        "{name} Halo {halo_id}: `{message}` does not say `{reason}`"
    );
}

fn find(records: &[Record], field: &str, value: &str) -> Option<Record> {
    records
        .iter()
        .find(|r| r.get(field).and_then(Value::as_str) == Some(value))
        .cloned()
}

fn live(sandbox: &Running, object: &str, field: &str, value: &str) -> Option<Record> {
    find(&live_records(sandbox, object), field, value)
}

fn count(sandbox: &Running, object: &str, field: &str, value: &str) -> usize {
    live_records(sandbox, object)
        .iter()
        .filter(|r| r.get(field).and_then(Value::as_str) == Some(value))
        .count()
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// A new Halo customer (its main site made by Halo) and the site's id.
fn new_customer(sandbox: &Running, token: &str, fields: Value) -> (u64, u64) {
    let client = halo_post(sandbox, token, "Client", json!([fields]));
    let id = id_of(&client);
    let client = halo_get(sandbox, token, &format!("Client/{id}"));
    let site = client["main_site_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no main site: {client}"));
    (id, site)
}

fn new_user(sandbox: &Running, token: &str, client: u64, site: u64, fields: Value) -> u64 {
    let mut user = json!({"client_id": client, "site_id": site});
    user.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    id_of(&halo_post(sandbox, token, "Users", json!([user])))
}

fn new_record(sandbox: &Running, token: &str, entity: &str, fields: Value) -> u64 {
    id_of(&halo_post(sandbox, token, entity, json!([fields])))
}

/// The seeded customer that shares its name with the first Salesforce account (client 2),
/// with its Account's Id once synced.
fn seeded_customer(sandbox: &Running, token: &str) -> (u64, String) {
    let client = halo_get(sandbox, token, "Client/2");
    (2, client["name"].as_str().unwrap().to_string())
}

/// The sync-back updates of a run: Halo id, Salesforce Id and changed fields of each.
fn updates(project: &Project, summary: &Value, name: &str) -> Vec<Value> {
    let run_id = summary["run_id"].as_str().unwrap();
    staging_rows(
        &project.root,
        &format!(
            "SELECT source_id, target_id, changed_fields::VARCHAR AS changed \
             FROM {name}_back_changes WHERE run_id = '{run_id}' AND action = 'update' \
             ORDER BY source_id"
        ),
    )
}

/// Created, updated and conflicts of every entry of a summary are zero/empty.
fn assert_no_writes(summary: &Value) {
    for entry in summary["pipelines"].as_array().unwrap() {
        assert_eq!(
            (entry["created"].clone(), entry["updated"].clone()),
            (json!(0), json!(0)),
            "{} {} wrote on a rerun: {summary}",
            entry["pipeline"],
            entry["direction"]
        );
        assert_eq!(entry["failed"], 0, "{summary}");
    }
}

#[test]
fn rule_1_customers_sync_back_to_accounts() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts"]);
    let token = halo_token(&sandbox);

    let (new_id, site) = new_customer(&sandbox, &token, json!({"name": "Halo Only Ltd"}));
    halo_post(
        &sandbox,
        &token,
        "Site",
        json!([{"id": site, "delivery_address": {
            "line1": "1 Harbour Road", "line3": "Portsmouth", "line4": "Hampshire",
            "postcode": "PO1 1AA"}}]),
    );
    let (hidden_id, _) = new_customer(
        &sandbox,
        &token,
        json!({"name": "Keep Out Ltd", "salesforce_dontsync": true}),
    );

    let first = run(&project);
    let synced = back(&first, "accounts");
    assert_eq!(synced["created"], 1, "{first}");
    assert_eq!(synced["failed"], 0, "{first}");
    let account = live(&sandbox, "Account", "Name", "Halo Only Ltd").expect("account created");
    assert_eq!(account["BillingStreet"], "1 Harbour Road", "{account:?}");
    assert_eq!(account["BillingCity"], "Portsmouth", "{account:?}");
    assert_eq!(account["BillingState"], "Hampshire", "{account:?}");
    assert_eq!(account["BillingPostalCode"], "PO1 1AA", "{account:?}");
    let result = back_result(&project, &first, "accounts", new_id);
    assert_eq!(result["status"], "created", "{result}");
    assert_eq!(result["target_id"], account["Id"], "{result}");

    // "Don't sync to Salesforce": skipped with the reason, and not in Salesforce.
    assert_skipped(
        &project,
        &first,
        "accounts",
        hidden_id,
        "\"Don't sync to Salesforce\" is set on this customer",
    );
    assert_skipped(
        &project,
        &first,
        "accounts",
        1,
        "\"Don't sync to Salesforce\" is set on this customer",
    );
    assert!(live(&sandbox, "Account", "Name", "Keep Out Ltd").is_none());
    assert!(live(&sandbox, "Account", "Name", "Unallocated Users").is_none());

    // A name edited in Halo updates only that Account, with only its Name.
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": new_id, "name": "Halo Only Renamed Ltd"}]),
    );
    let second = run(&project);
    let synced = back(&second, "accounts");
    assert_eq!(
        (synced["created"].clone(), synced["updated"].clone()),
        (json!(0), json!(1)),
        "{second}"
    );
    assert_eq!(pipeline(&second, "accounts")["updated"], 0, "{second}");
    let renamed = live_records(&sandbox, "Account")
        .into_iter()
        .find(|a| a["Id"] == account["Id"])
        .unwrap();
    assert_eq!(renamed["Name"], "Halo Only Renamed Ltd");
    assert_eq!(renamed["BillingStreet"], "1 Harbour Road");
    let run_id = second["run_id"].as_str().unwrap();
    let changes = staging_rows(
        &project.root,
        &format!(
            "SELECT source_id, changed_fields::VARCHAR AS changed FROM accounts_back_changes \
             WHERE run_id = '{run_id}' AND action = 'update'"
        ),
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["source_id"], new_id.to_string());
    let changed: Value = serde_json::from_str(changes[0]["changed"].as_str().unwrap()).unwrap();
    let fields: Vec<&str> = changed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["Name"], "{changed}");

    // With creating off, a new customer is skipped with the reason.
    project.edit(
        "accounts",
        "sync_back: { create: true, update: true }",
        "sync_back: { create: false, update: true }",
    );
    let (late_id, _) = new_customer(&sandbox, &token, json!({"name": "Too Late Ltd"}));
    let third = run(&project);
    assert_eq!(back(&third, "accounts")["created"], 0, "{third}");
    assert_skipped(
        &project,
        &third,
        "accounts",
        late_id,
        "not linked to a record, and `sync_back.create` is off",
    );
    assert!(live(&sandbox, "Account", "Name", "Too Late Ltd").is_none());
    // The Account updated by the sync back is not imported back.
    assert_no_writes(&third);
}

#[test]
fn rule_2_users_sync_back_to_contacts_under_their_customers_account() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts"]);
    let token = halo_token(&sandbox);
    let (client, client_name) = seeded_customer(&sandbox, &token);
    let site = halo_get(&sandbox, &token, &format!("Client/{client}"))["main_site_id"]
        .as_u64()
        .unwrap();

    let synced_user = new_user(
        &sandbox,
        &token,
        client,
        site,
        json!({"name": "Sam Synced", "firstname": "Sam", "surname": "Synced",
               "emailaddress": "sam.synced@halo.example"}),
    );
    let (hidden_client, hidden_site) = new_customer(
        &sandbox,
        &token,
        json!({"name": "Quiet Customer Ltd", "salesforce_dontsync": true}),
    );
    let unlinked_user = new_user(
        &sandbox,
        &token,
        hidden_client,
        hidden_site,
        json!({"name": "Uma Unlinked", "firstname": "Uma", "surname": "Unlinked",
               "emailaddress": "uma.unlinked@halo.example"}),
    );
    let dontsync_user = new_user(
        &sandbox,
        &token,
        client,
        site,
        json!({"name": "Dana Dontsync", "firstname": "Dana", "surname": "Dontsync",
               "emailaddress": "dana.dontsync@halo.example", "salesforce_dontsync": true}),
    );

    let first = run(&project);
    assert_eq!(back(&first, "contacts")["failed"], 0, "{first}");
    assert_eq!(back(&first, "contacts")["created"], 1, "{first}");
    let account = live(&sandbox, "Account", "Name", &client_name).unwrap();
    let contact = live(&sandbox, "Contact", "Email", "sam.synced@halo.example")
        .expect("user created as a contact");
    assert_eq!(contact["AccountId"], account["Id"], "{contact:?}");
    assert_eq!(contact["LastName"], "Synced");
    assert_eq!(
        back_result(&project, &first, "contacts", synced_user)["status"],
        "created"
    );

    assert_skipped(
        &project,
        &first,
        "contacts",
        unlinked_user,
        "is not linked to a Salesforce record by `accounts`",
    );
    assert!(live(&sandbox, "Contact", "Email", "uma.unlinked@halo.example").is_none());
    assert_skipped(
        &project,
        &first,
        "accounts",
        hidden_client,
        "\"Don't sync to Salesforce\" is set on this customer",
    );
    assert_skipped(
        &project,
        &first,
        "contacts",
        dontsync_user,
        "\"Don't sync to Salesforce\" is set on this user",
    );
    assert!(live(&sandbox, "Contact", "Email", "dana.dontsync@halo.example").is_none());

    // The customer's switch cleared: one run creates the customer, then its user under it.
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": hidden_client, "salesforce_dontsync": false}]),
    );
    let second = run(&project);
    assert_eq!(back(&second, "accounts")["created"], 1, "{second}");
    assert_eq!(back(&second, "contacts")["created"], 1, "{second}");
    let account = live(&sandbox, "Account", "Name", "Quiet Customer Ltd").expect("customer");
    let contact = live(&sandbox, "Contact", "Email", "uma.unlinked@halo.example").expect("user");
    assert_eq!(contact["AccountId"], account["Id"], "{contact:?}");
    assert_eq!(
        back_result(&project, &second, "contacts", unlinked_user)["status"],
        "created"
    );
    assert!(live(&sandbox, "Contact", "Email", "dana.dontsync@halo.example").is_none());
}

#[test]
fn rule_3_opportunity_tickets_sync_back_with_their_stage() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let token = halo_token(&sandbox);
    let (client, _) = seeded_customer(&sandbox, &token);
    let by_number = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Won by number", "tickettype_id": 3, "client_id": client,
               "salesforce_stage": 9, "oppconversionprobability": 100, "targetdate": "2026-12-01T00:00:00"}),
    );
    let by_name = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Negotiating by name", "tickettype_id": 3, "client_id": client,
               "salesforce_stage": "Negotiation/Review", "oppconversionprobability": 90, "targetdate": "2026-12-02T00:00:00"}),
    );
    let switched_off = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Not for Salesforce", "tickettype_id": 3, "client_id": client,
               "sync_to_salesforce": false, "targetdate": "2026-12-03T00:00:00"}),
    );

    let first = run(&project);
    let synced = back(&first, "opportunities");
    assert_eq!(synced["failed"], 0, "{first}");
    assert_eq!(synced["created"], 3, "{first}");

    let renewal = live(&sandbox, "Opportunity", "Name", "Halo-side renewal").expect("renewal");
    assert_eq!(renewal["StageName"], "Prospecting", "{renewal:?}");
    assert_eq!(number(&renewal["Amount"]), 12000.0, "{renewal:?}");
    assert_eq!(renewal["CloseDate"], "2026-12-31", "{renewal:?}");

    let won = live(&sandbox, "Opportunity", "Name", "Won by number").expect("staged by number");
    assert_eq!(won["StageName"], "Closed Won", "{won:?}");
    assert_eq!(
        back_result(&project, &first, "opportunities", by_number)["target_id"],
        won["Id"]
    );
    let named = live(&sandbox, "Opportunity", "Name", "Negotiating by name").expect("by name");
    assert_eq!(named["StageName"], "Negotiation/Review", "{named:?}");
    assert_eq!(
        back_result(&project, &first, "opportunities", by_name)["status"],
        "created"
    );

    assert_skipped(
        &project,
        &first,
        "opportunities",
        switched_off,
        "\"Sync to Salesforce\" is off on this ticket",
    );
    assert!(live(&sandbox, "Opportunity", "Name", "Not for Salesforce").is_none());

    // A ticket's own stage changed in Halo moves the Opportunity's stage.
    halo_post(
        &sandbox,
        &token,
        "Tickets",
        json!([{"id": by_number, "salesforce_stage": 2}]),
    );
    let second = run(&project);
    let changed = updates(&project, &second, "opportunities");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(
        changed[0]["source_id"],
        by_number.to_string(),
        "{changed:?}"
    );
    assert_eq!(back(&second, "opportunities")["updated"], 1, "{second}");
    let moved = live_records(&sandbox, "Opportunity")
        .into_iter()
        .find(|o| o["Id"] == won["Id"])
        .unwrap();
    assert_eq!(moved["StageName"], "Qualification", "{moved:?}");
    let third = run(&project);
    assert_no_writes(&third);
}

#[test]
fn rule_3_tickets_of_a_type_that_does_not_sync_stay_out() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    // The pipeline pointed at Incident tickets (type 1, which does not sync), sync back only.
    project.edit(
        "opportunities",
        "defaults: { tickettype_id: 3 }",
        "defaults: { tickettype_id: 1 }",
    );
    project.edit("opportunities", "import: upsert", "import: off");
    let token = halo_token(&sandbox);
    let (client, _) = seeded_customer(&sandbox, &token);
    // Halo copies the type's default ("off") into a new ticket...
    let copied = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Laptop broken", "tickettype_id": 1, "client_id": client,
               "targetdate": "2026-12-01T00:00:00"}),
    );
    // ...and a ticket without its own switch falls back to its type's.
    let by_type = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Screen flickers", "tickettype_id": 1, "client_id": client,
               "targetdate": "2026-12-01T00:00:00"}),
    );
    halo_post(
        &sandbox,
        &token,
        "Tickets",
        json!([{"id": by_type, "sync_to_salesforce": null}]),
    );
    let before = live_records(&sandbox, "Opportunity").len();

    let summary = run(&project);
    let synced = back(&summary, "opportunities");
    assert_eq!(synced["created"], 0, "{summary}");
    assert_eq!(synced["failed"], 0, "{summary}");
    assert_eq!(live_records(&sandbox, "Opportunity").len(), before);
    assert_skipped(
        &project,
        &summary,
        "opportunities",
        copied,
        "\"Sync to Salesforce\" is off on this ticket",
    );
    assert_skipped(
        &project,
        &summary,
        "opportunities",
        by_type,
        "ticket type Incident does not sync to Salesforce",
    );
}

#[test]
fn rule_4_case_tickets_sync_back_to_cases() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "cases"]);
    let token = halo_token(&sandbox);
    let (client, client_name) = seeded_customer(&sandbox, &token);
    let switched_off = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Internal only", "details": "Not for the customer's case list.",
               "tickettype_id": 4, "client_id": client, "sync_to_salesforce": false}),
    );
    let cases_before = live_records(&sandbox, "Case").len();

    let summary = run(&project);
    let synced = back(&summary, "cases");
    assert_eq!(synced["failed"], 0, "{summary}");
    assert_eq!(synced["created"], 1, "{summary}");
    assert_eq!(live_records(&sandbox, "Case").len(), cases_before + 1);
    let account = live(&sandbox, "Account", "Name", &client_name).unwrap();
    let case = live(&sandbox, "Case", "Subject", "Printer offline").expect("case created");
    assert_eq!(case["Description"], "The second floor printer is offline.");
    assert_eq!(case["AccountId"], account["Id"], "{case:?}");
    assert!(case["ContactId"].is_string(), "{case:?}");

    assert_skipped(
        &project,
        &summary,
        "cases",
        switched_off,
        "\"Sync to Salesforce\" is off on this ticket",
    );
    assert!(live(&sandbox, "Case", "Subject", "Internal only").is_none());
}

#[test]
fn cases_come_from_every_ticket_type_the_pipeline_lists() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "cases"]);
    // Incidents (type 1) too: their type does not sync, so only a ticket switched on goes.
    project.edit(
        "cases",
        "  defaults: { tickettype_id: 4 }\n",
        "  defaults: { tickettype_id: 4 }\n  list: { tickettype_id: [4, 1] }\n",
    );
    let token = halo_token(&sandbox);
    let (client, _) = seeded_customer(&sandbox, &token);
    new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Incident for Salesforce", "details": "Raised as an incident.",
               "tickettype_id": 1, "client_id": client, "sync_to_salesforce": true}),
    );
    let by_type = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Incident kept in Halo", "details": "Its type does not sync.",
               "tickettype_id": 1, "client_id": client}),
    );

    let summary = run(&project);
    let synced = back(&summary, "cases");
    assert_eq!(synced["failed"], 0, "{summary}");
    assert_eq!(
        synced["created"], 2,
        "the seeded case ticket and the incident: {summary}"
    );
    assert!(live(&sandbox, "Case", "Subject", "Printer offline").is_some());
    let case = live(&sandbox, "Case", "Subject", "Incident for Salesforce").expect("case");
    assert_eq!(case["Description"], "Raised as an incident.");
    assert_skipped(
        &project,
        &summary,
        "cases",
        by_type,
        // Halo sets a new ticket's switch from its type's default.
        "\"Sync to Salesforce\" is off on this ticket",
    );
    assert!(live(&sandbox, "Case", "Subject", "Incident kept in Halo").is_none());
    assert_no_writes(&run(&project));
}

#[test]
fn rule_5_actions_become_case_comments_once() {
    let sandbox = sandbox(6);
    let project = project(
        &sandbox,
        &["accounts", "contacts", "cases", "case_comments"],
    );
    let token = halo_token(&sandbox);
    let case_ticket = halo_get(&sandbox, &token, "Tickets?search=Printer%20offline")["tickets"][0]
        ["id"]
        .as_u64()
        .expect("the seeded case ticket");
    let actions = halo_get(
        &sandbox,
        &token,
        &format!("Actions?ticket_id={case_ticket}"),
    );
    let action_id = |note: &str| {
        actions["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["note"].as_str().is_some_and(|n| n.starts_with(note)))
            .map(id_of)
            .unwrap_or_else(|| panic!("no action {note}: {actions}"))
    };
    let public = action_id("We are looking into it.");
    let private = action_id("Toner ordered");
    let hidden_synced = new_record(
        &sandbox,
        &token,
        "Actions",
        json!({"ticket_id": case_ticket, "note": "Engineer booked for Tuesday.",
               "outcome": "Private Note", "hiddenfromuser": true, "sync_to_salesforce": true}),
    );

    let first = run(&project);
    let synced = back(&first, "case_comments");
    assert_eq!(synced["failed"], 0, "{first}");
    assert_eq!(synced["created"], 2, "{first}");
    let case = live(&sandbox, "Case", "Subject", "Printer offline").expect("case");
    let comment = live(
        &sandbox,
        "CaseComment",
        "CommentBody",
        "We are looking into it.",
    )
    .expect("public comment");
    assert_eq!(comment["IsPublished"], true, "{comment:?}");
    assert_eq!(comment["ParentId"], case["Id"], "{comment:?}");
    let hidden = live(
        &sandbox,
        "CaseComment",
        "CommentBody",
        "Engineer booked for Tuesday.",
    )
    .expect("hidden but synced comment");
    assert_eq!(hidden["IsPublished"], false, "{hidden:?}");
    assert_eq!(hidden["ParentId"], case["Id"], "{hidden:?}");
    assert_eq!(
        back_result(&project, &first, "case_comments", hidden_synced)["status"],
        "created"
    );
    assert_skipped(
        &project,
        &first,
        "case_comments",
        private,
        "\"Sync to Salesforce\" is off on this action",
    );
    assert_eq!(
        count(
            &sandbox,
            "CaseComment",
            "ParentId",
            case["Id"].as_str().unwrap()
        ),
        2
    );

    // An edited note is not synced: comments are created once and never updated.
    halo_post(
        &sandbox,
        &token,
        "Actions",
        json!([{"id": public, "note": "We are looking into it (edited)."}]),
    );
    let second = run(&project);
    let synced = back(&second, "case_comments");
    assert_eq!(
        (synced["created"].clone(), synced["updated"].clone()),
        (json!(0), json!(0)),
        "{second}"
    );
    assert_skipped(
        &project,
        &second,
        "case_comments",
        public,
        "changed, but `sync_back.update` is off",
    );
    let comment_now = live_records(&sandbox, "CaseComment")
        .into_iter()
        .find(|c| c["Id"] == comment["Id"])
        .unwrap();
    assert_eq!(comment_now["CommentBody"], "We are looking into it.");
    assert_eq!(
        count(
            &sandbox,
            "CaseComment",
            "ParentId",
            case["Id"].as_str().unwrap()
        ),
        2,
        "no duplicate"
    );
}

#[test]
fn rule_6_fields_land_as_mapped() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let token = halo_token(&sandbox);
    let (client, client_name) = seeded_customer(&sandbox, &token);
    let site = halo_get(&sandbox, &token, &format!("Client/{client}"))["main_site_id"]
        .as_u64()
        .unwrap();
    let user = new_user(
        &sandbox,
        &token,
        client,
        site,
        json!({"name": "Fran Fields", "firstname": "Fran", "surname": "Fields",
               "emailaddress": "fran.fields@halo.example", "phonenumber": "+44 20 7946 0001",
               "mobilenumber": "+44 7700 900001"}),
    );
    new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "Mapped deal", "details": "Three-year support renewal.",
               "tickettype_id": 3, "client_id": client, "user_id": user,
               "oppvalue": 4321.5, "oppconversionprobability": 60,
               "targetdate": "2026-12-15T00:00:00"}),
    );

    let summary = run(&project);
    for name in ["accounts", "contacts", "opportunities"] {
        assert_eq!(back(&summary, name)["failed"], 0, "{summary}");
    }
    let account = live(&sandbox, "Account", "Name", &client_name).unwrap();
    let contact = live(&sandbox, "Contact", "Email", "fran.fields@halo.example").expect("contact");
    assert_eq!(contact["FirstName"], "Fran", "{contact:?}");
    assert_eq!(contact["LastName"], "Fields", "{contact:?}");
    assert_eq!(contact["Phone"], "+44 20 7946 0001", "{contact:?}");
    assert_eq!(contact["MobilePhone"], "+44 7700 900001", "{contact:?}");
    assert_eq!(contact["AccountId"], account["Id"], "{contact:?}");

    let deal = live(&sandbox, "Opportunity", "Name", "Mapped deal").expect("opportunity");
    assert_eq!(
        deal["Description"], "Three-year support renewal.",
        "{deal:?}"
    );
    assert_eq!(number(&deal["Amount"]), 4321.5, "{deal:?}");
    assert_eq!(number(&deal["Probability"]), 60.0, "{deal:?}");
    assert_eq!(deal["CloseDate"], "2026-12-15", "{deal:?}");
    assert_eq!(deal["AccountId"], account["Id"], "{deal:?}");
    assert_eq!(deal["ContactId"], contact["Id"], "{deal:?}");
    assert_eq!(deal["StageName"], "Prospecting", "{deal:?}");
}

fn conflicts(summary: &Value, name: &str) -> Vec<Value> {
    ["import", "sync back"]
        .iter()
        .flat_map(|d| {
            direction(summary, name, d)["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn account_name(sandbox: &Running, id: &str) -> String {
    live_records(sandbox, "Account")
        .into_iter()
        .find(|a| a["Id"] == id)
        .unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_string()
}

fn client_name(sandbox: &Running, token: &str, id: u64) -> String {
    halo_get(sandbox, token, &format!("Client/{id}"))["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `etl run --select <condition> --json`, which must succeed; the summary.
fn run_selected(project: &Project, condition: &str) -> Value {
    let (code, stdout, stderr) =
        support::etl_output(&project.root, &["run", "--json", "--select", condition]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn a_selection_by_condition_holds_for_the_sync_back_too() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts"]);
    let token = halo_token(&sandbox);
    run(&project);
    // The seeded customer's Account, renamed on both sides.
    let (client, name) = seeded_customer(&sandbox, &token);
    let account = live(&sandbox, "Account", "Name", &name).unwrap();
    let account_id = account["Id"].as_str().unwrap().to_string();
    let city = account["BillingCity"].as_str().unwrap().replace('\'', "''");
    touch(
        &sandbox,
        &account_id,
        json!({"Name": "Renamed In Salesforce"}),
    );
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": "Renamed In Halo"}]),
    );

    // Left out by the condition: the import does not plan it, so the sync back must not
    // write Halo's name over Salesforce's either.
    let summary = run_selected(&project, &format!("BillingCity IS DISTINCT FROM '{city}'"));
    assert_eq!(back(&summary, "accounts")["updated"], 0, "{summary}");
    assert_eq!(account_name(&sandbox, &account_id), "Renamed In Salesforce");
    assert_eq!(client_name(&sandbox, &token, client), "Renamed In Halo");
    let reasons = staging_rows(
        &project.root,
        &format!(
            "SELECT reason FROM accounts_back_changes WHERE run_id = '{}' AND target_id = '{}'",
            summary["run_id"].as_str().unwrap(),
            account_id
        ),
    );
    assert_eq!(reasons, [json!({"reason": "deselected"})], "{summary}");

    // Kept by the condition: the conflict is found and reported, as without a selection.
    let summary = run_selected(&project, &format!("BillingCity = '{city}'"));
    assert_eq!(conflicts(&summary, "accounts").len(), 1, "{summary}");
    assert_eq!(account_name(&sandbox, &account_id), "Renamed In Salesforce");
    assert_eq!(client_name(&sandbox, &token, client), "Renamed In Halo");

    // The text summary counts the record in conflict in a column of its own.
    let (code, stdout, stderr) = support::etl_output(&project.root, &["run"]);
    assert_eq!(code, 0, "{stderr}");
    let cells = |line: &str| -> Vec<String> {
        line.split(['│', '┆'])
            .map(|cell| cell.trim().to_string())
            .filter(|cell| !cell.is_empty())
            .collect()
    };
    let lines: Vec<Vec<String>> = stdout.lines().map(cells).collect();
    let header = lines
        .iter()
        .find(|c| c.first().is_some_and(|h| h == "pipeline"))
        .unwrap();
    let column = header
        .iter()
        .position(|h| h == "conflicts")
        .expect("a conflicts column");
    let import = lines
        .iter()
        .find(|c| c.len() == header.len() && c[0] == "accounts" && c[1] == "import")
        .unwrap();
    assert_eq!(import[column], "1", "{stdout}");
}

#[test]
fn rule_7_no_loops_and_conflicts_follow_the_policy() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &ALL_PIPELINES);
    let token = halo_token(&sandbox);
    let first = run(&project);
    for entry in first["pipelines"].as_array().unwrap() {
        assert_eq!(entry["failed"], 0, "{first}");
    }
    let second = run(&project);
    assert_no_writes(&second);
    for name in ["accounts", "contacts", "opportunities"] {
        assert!(conflicts(&second, name).is_empty(), "{second}");
    }

    // The seeded customer and its Account, linked by the first run: both renamed.
    let (client, name) = seeded_customer(&sandbox, &token);
    let account_id = live(&sandbox, "Account", "Name", &name).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    touch(
        &sandbox,
        &account_id,
        json!({"Name": "Renamed In Salesforce"}),
    );
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": "Renamed In Halo"}]),
    );

    // skip_and_report (the default): listed with both values, neither side written, and
    // listed again on the next run.
    for _ in 0..2 {
        let summary = run(&project);
        let found = conflicts(&summary, "accounts");
        assert_eq!(found.len(), 1, "{summary}");
        let conflict = &found[0];
        assert_eq!(conflict["source_id"], account_id.as_str(), "{conflict}");
        assert_eq!(conflict["target_id"], client.to_string(), "{conflict}");
        assert_eq!(
            conflict["source_value"], "Renamed In Salesforce",
            "{conflict}"
        );
        assert_eq!(conflict["target_value"], "Renamed In Halo", "{conflict}");
        assert_eq!(conflict["last_synced"], name.as_str(), "{conflict}");
        assert_eq!(conflict["resolution"], "skipped", "{conflict}");
        assert_eq!(account_name(&sandbox, &account_id), "Renamed In Salesforce");
        assert_eq!(client_name(&sandbox, &token, client), "Renamed In Halo");
    }

    // halo_wins: Salesforce gets Halo's value.
    project.edit(
        "accounts",
        "sync:\n  import: upsert",
        "sync:\n  conflicts: halo_wins\n  import: upsert",
    );
    let summary = run(&project);
    let found = conflicts(&summary, "accounts");
    assert_eq!(found.len(), 1, "{summary}");
    assert_eq!(found[0]["resolution"], "target_wins", "{summary}");
    assert_eq!(found[0]["source_value"], "Renamed In Salesforce");
    assert_eq!(found[0]["target_value"], "Renamed In Halo");
    assert_eq!(account_name(&sandbox, &account_id), "Renamed In Halo");
    assert_eq!(client_name(&sandbox, &token, client), "Renamed In Halo");
    let settled = run(&project);
    assert!(conflicts(&settled, "accounts").is_empty(), "{settled}");
    assert_no_writes(&settled);

    // salesforce_wins: Halo gets Salesforce's value, and Salesforce keeps it.
    project.edit(
        "accounts",
        "conflicts: halo_wins",
        "conflicts: salesforce_wins",
    );
    touch(&sandbox, &account_id, json!({"Name": "Salesforce Again"}));
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": "Halo Again"}]),
    );
    let summary = run(&project);
    let found = conflicts(&summary, "accounts");
    assert_eq!(found.len(), 1, "{summary}");
    assert_eq!(found[0]["resolution"], "source_wins", "{summary}");
    assert_eq!(found[0]["source_value"], "Salesforce Again");
    assert_eq!(found[0]["target_value"], "Halo Again");
    assert_eq!(client_name(&sandbox, &token, client), "Salesforce Again");
    assert_eq!(account_name(&sandbox, &account_id), "Salesforce Again");
    let settled = run(&project);
    assert!(conflicts(&settled, "accounts").is_empty(), "{settled}");
    assert_no_writes(&settled);
}

#[test]
fn rule_9_one_run_creates_a_halo_only_customer_and_everything_under_it() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &ALL_PIPELINES);
    let token = halo_token(&sandbox);
    let (client, site) = new_customer(&sandbox, &token, json!({"name": "Brand New Halo Ltd"}));
    let user = new_user(
        &sandbox,
        &token,
        client,
        site,
        json!({"name": "Nina New", "firstname": "Nina", "surname": "New",
               "emailaddress": "nina.new@halo.example"}),
    );
    new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "First deal", "tickettype_id": 3, "client_id": client,
               "user_id": user, "oppvalue": 900, "targetdate": "2026-12-20T00:00:00"}),
    );
    let case_ticket = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "First problem", "details": "It does not start.",
               "tickettype_id": 4, "client_id": client, "user_id": user}),
    );
    new_record(
        &sandbox,
        &token,
        "Actions",
        json!({"ticket_id": case_ticket, "note": "Have you tried turning it off and on?",
               "outcome": "Public Note", "hiddenfromuser": false, "sync_to_salesforce": true}),
    );

    let (code, stdout, stderr) = support::etl_output(
        &project.root,
        &[
            "run",
            project.root.join("pipelines").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    for entry in summary["pipelines"].as_array().unwrap() {
        assert_eq!(entry["failed"], 0, "{summary}");
    }

    let account = live(&sandbox, "Account", "Name", "Brand New Halo Ltd").expect("account");
    let contact = live(&sandbox, "Contact", "Email", "nina.new@halo.example").expect("contact");
    assert_eq!(contact["AccountId"], account["Id"], "{contact:?}");
    let deal = live(&sandbox, "Opportunity", "Name", "First deal").expect("opportunity");
    assert_eq!(deal["AccountId"], account["Id"], "{deal:?}");
    assert_eq!(deal["ContactId"], contact["Id"], "{deal:?}");
    let case = live(&sandbox, "Case", "Subject", "First problem").expect("case");
    assert_eq!(case["AccountId"], account["Id"], "{case:?}");
    assert_eq!(case["ContactId"], contact["Id"], "{case:?}");
    let comment = live(
        &sandbox,
        "CaseComment",
        "CommentBody",
        "Have you tried turning it off and on?",
    )
    .expect("comment");
    assert_eq!(comment["ParentId"], case["Id"], "{comment:?}");
    assert_eq!(comment["IsPublished"], true, "{comment:?}");
}

/// Changes one line of a Halo site's delivery address (Halo saves the address whole).
fn set_address(sandbox: &Running, token: &str, site: u64, line: &str, value: &str) {
    let mut address = halo_get(sandbox, token, &format!("Site/{site}"))["delivery_address"].clone();
    address[line] = json!(value);
    halo_post(
        sandbox,
        token,
        "Site",
        json!([{"id": site, "delivery_address": address}]),
    );
}

#[test]
fn rule_7_a_conflict_on_an_address_field_and_changes_to_different_fields_both_flow() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts"]);
    let token = halo_token(&sandbox);
    run(&project);
    let (client, name) = seeded_customer(&sandbox, &token);
    let account_id = live(&sandbox, "Account", "Name", &name).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let site = halo_get(&sandbox, &token, &format!("Client/{client}"))["main_site_id"]
        .as_u64()
        .unwrap();

    // The same address field changed on both sides: held and reported (skip_and_report).
    touch(
        &sandbox,
        &account_id,
        json!({"BillingPostalCode": "SF 111"}),
    );
    set_address(&sandbox, &token, site, "postcode", "HALO 222");
    for _ in 0..2 {
        let summary = run(&project);
        let found = conflicts(&summary, "accounts");
        assert_eq!(found.len(), 1, "{summary}");
        assert_eq!(found[0]["source_value"], "SF 111", "{summary}");
        assert_eq!(found[0]["target_value"], "HALO 222", "{summary}");
        assert_eq!(found[0]["resolution"], "skipped", "{summary}");
        let account = live(&sandbox, "Account", "Id", &account_id).unwrap();
        assert_eq!(account["BillingPostalCode"], "SF 111");
        let site_now = halo_get(&sandbox, &token, &format!("Site/{site}"));
        assert_eq!(
            site_now["delivery_address"]["postcode"], "HALO 222",
            "{site_now}"
        );
    }

    // Different fields changed on each side are no conflict: each goes the other way.
    set_address(&sandbox, &token, site, "postcode", "SF 111");
    run(&project);
    touch(
        &sandbox,
        &account_id,
        json!({"Name": "Changed In Salesforce Only"}),
    );
    set_address(&sandbox, &token, site, "line3", "Changed In Halo Only");
    let summary = run(&project);
    assert!(conflicts(&summary, "accounts").is_empty(), "{summary}");
    assert_eq!(
        client_name(&sandbox, &token, client),
        "Changed In Salesforce Only"
    );
    let account = live(&sandbox, "Account", "Id", &account_id).unwrap();
    assert_eq!(
        account["BillingCity"], "Changed In Halo Only",
        "{account:?}"
    );
    assert_eq!(account["Name"], "Changed In Salesforce Only");
    assert_no_writes(&run(&project));
}

#[test]
fn rule_7_an_opportunity_created_without_a_probability_is_not_written_again() {
    // Salesforce fills in an Opportunity's Probability from its stage when none is sent; the
    // untouched ticket must not be synced again on the next run.
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let token = halo_token(&sandbox);
    let (client, _) = seeded_customer(&sandbox, &token);
    let ticket = new_record(
        &sandbox,
        &token,
        "Tickets",
        json!({"summary": "No probability yet", "tickettype_id": 3, "client_id": client,
               "targetdate": "2026-12-05T00:00:00"}),
    );
    let first = run(&project);
    // This ticket and the seeded "Halo-side renewal".
    assert_eq!(back(&first, "opportunities")["created"], 2, "{first}");
    let deal = live(&sandbox, "Opportunity", "Name", "No probability yet").unwrap();
    assert_eq!(
        number(&deal["Probability"]),
        10.0,
        "Prospecting's default: {deal:?}"
    );

    let second = run(&project);
    let changed = updates(&project, &second, "opportunities");
    assert!(
        changed.is_empty(),
        "Halo ticket {ticket} was not changed, yet the sync back updates: {changed:?}"
    );
    assert_no_writes(&second);
}

#[test]
fn apply_holds_the_sync_back_to_its_reviewed_plan() {
    let sandbox = sandbox(4);
    let project = project(&sandbox, &["accounts"]);
    let token = halo_token(&sandbox);
    run(&project);

    // Reviewed: one new customer created in Salesforce, another deselected.
    let (reviewed, _) = new_customer(&sandbox, &token, json!({"name": "Reviewed Ltd"}));
    let (deselected, _) = new_customer(&sandbox, &token, json!({"name": "Deselected Ltd"}));
    let (code, plan, stderr) = support::etl_json(
        &project.root,
        &["plan", "--json", "--exclude", &deselected.to_string()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(back(&plan, "accounts")["planned_creates"], 1, "{plan}");
    let plan_id = plan["run_id"].as_str().unwrap().to_string();
    // Added after the review: not in the plan.
    let (late, _) = new_customer(&sandbox, &token, json!({"name": "Late Ltd"}));

    let (code, applied, stderr) = support::etl_json(&project.root, &["apply", &plan_id, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(back(&applied, "accounts")["created"], 1, "{applied}");
    assert_eq!(count(&sandbox, "Account", "Name", "Reviewed Ltd"), 1);
    assert_eq!(count(&sandbox, "Account", "Name", "Deselected Ltd"), 0);
    assert_eq!(count(&sandbox, "Account", "Name", "Late Ltd"), 0);
    assert_skipped(
        &project,
        &applied,
        "accounts",
        deselected,
        "not in the reviewed plan",
    );
    assert_skipped(
        &project,
        &applied,
        "accounts",
        late,
        "not in the reviewed plan",
    );
    assert_eq!(
        back_result(&project, &applied, "accounts", reviewed)["status"],
        "created"
    );

    // What the apply held back is listed again by the next run (its mark did not move).
    let next = run(&project);
    assert_eq!(back(&next, "accounts")["created"], 2, "{next}");
    assert_eq!(count(&sandbox, "Account", "Name", "Deselected Ltd"), 1);
    assert_eq!(count(&sandbox, "Account", "Name", "Late Ltd"), 1);
    assert_eq!(count(&sandbox, "Account", "Name", "Reviewed Ltd"), 1);

    // A reviewed sync-back write that would now send something else is refused, unless forced.
    let (renamed, _) = new_customer(&sandbox, &token, json!({"name": "Before Ltd"}));
    let (_, plan, _) = support::etl_json(&project.root, &["plan", "--json"]);
    let plan_id = plan["run_id"].as_str().unwrap().to_string();
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": renamed, "name": "After Ltd"}]),
    );
    let (code, _, stderr) = support::etl_json(&project.root, &["apply", &plan_id, "--json"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("moved on") && stderr.contains("sync back"),
        "{stderr}"
    );
    assert_eq!(count(&sandbox, "Account", "Name", "Before Ltd"), 0);
    assert_eq!(count(&sandbox, "Account", "Name", "After Ltd"), 0);
    let (code, forced, stderr) =
        support::etl_json(&project.root, &["apply", &plan_id, "--force", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(back(&forced, "accounts")["created"], 1, "{forced}");
    assert_eq!(count(&sandbox, "Account", "Name", "After Ltd"), 1);
}

/// The Halo id the id map links to a Salesforce record of `pipeline`.
fn linked(project: &Project, pipeline: &str, source_id: &str) -> Option<String> {
    staging_rows(
        &project.root,
        &format!(
            "SELECT target_id FROM id_map WHERE pipeline = '{pipeline}' AND source_id = '{source_id}'"
        ),
    )
    .first()
    .and_then(|row| row["target_id"].as_str().map(str::to_string))
}

#[test]
fn an_opportunitys_contact_is_its_users_when_there_is_one_and_is_never_updated_in_salesforce() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let token = halo_token(&sandbox);
    // An opportunity the pipeline reads (its `where` keeps the recent ones), the last one: the
    // first contacts are the users Halo's seed holds already.
    let (code, _, stderr) = support::etl_output(&project.root, &["plan", "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let chosen = staging_rows(
        &project.root,
        "SELECT Id, ContactId FROM opportunities_extracted WHERE ContactId IS NOT NULL \
         ORDER BY Id DESC LIMIT 1",
    );
    let (opportunity_id, contact_id) = (
        chosen[0]["Id"].as_str().unwrap().to_string(),
        chosen[0]["ContactId"].as_str().unwrap().to_string(),
    );

    // The contact is not in Halo: the ticket still comes, without a user (the guide: users
    // are assigned "if they exist in the system").
    let (code, stdout, stderr) =
        support::etl_output(&project.root, &["run", "--json", "--exclude", &contact_id]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let ticket = linked(&project, "opportunities", &opportunity_id).expect("ticket created");
    let user = &halo_get(&sandbox, &token, &format!("Tickets/{ticket}"))["user_id"];
    assert!(user.is_null() || user == &json!(0), "{user}");

    // Once the contact is imported, the ticket gets its user; Salesforce keeps its contact.
    let summary = run(&project);
    assert_eq!(
        direction(&summary, "opportunities", "import")["updated"],
        1,
        "{summary}"
    );
    let user = linked(&project, "contacts", &contact_id).expect("contact imported");
    let halo_ticket = halo_get(&sandbox, &token, &format!("Tickets/{ticket}"));
    assert_eq!(halo_ticket["user_id"].to_string(), user, "{halo_ticket}");
    let contact_of = |sandbox: &Running| {
        live(sandbox, "Opportunity", "Id", &opportunity_id).unwrap()["ContactId"].clone()
    };
    assert_eq!(contact_of(&sandbox), json!(contact_id));
    assert_no_writes(&run(&project));

    // Another user in Halo: Salesforce sets an Opportunity's ContactId only on create, so the
    // sync back says so instead of failing the record, and writes nothing.
    let other = staging_rows(
        &project.root,
        &format!(
            "SELECT target_id FROM id_map WHERE pipeline = 'contacts' AND target_id <> '{user}' LIMIT 1"
        ),
    )[0]["target_id"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    halo_post(
        &sandbox,
        &token,
        "Tickets",
        json!([{"id": ticket.parse::<u64>().unwrap(), "user_id": other}]),
    );
    let summary = run(&project);
    let synced = back(&summary, "opportunities");
    assert_eq!(
        (synced["failed"].as_u64(), synced["updated"].as_u64()),
        (Some(0), Some(0)),
        "{summary}"
    );
    let reasons = staging_rows(
        &project.root,
        &format!(
            "SELECT reason FROM opportunities_back_changes WHERE run_id = '{}' AND source_id = '{ticket}'",
            summary["run_id"].as_str().unwrap()
        ),
    );
    assert!(
        reasons[0]["reason"]
            .as_str()
            .unwrap()
            .contains("`ContactId` can be set only when the Opportunity is created"),
        "{reasons:?}"
    );
    assert_eq!(contact_of(&sandbox), json!(contact_id));
}

#[test]
fn the_potential_values_sync_both_ways_once_mapped() {
    let sandbox = sandbox(6);
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    project.edit(
        "opportunities",
        "  # - { salesforce: Annual_Value__c,  halo: oppvalue_annual,  sync_back: true }\n  # - { salesforce: Monthly_Value__c, halo: oppvalue_monthly, sync_back: true }\n  # - { salesforce: One_off_Value__c, halo: oppvalue_oneoff,  sync_back: true }",
        "  - { salesforce: Annual_Value__c,  halo: oppvalue_annual,  sync_back: true }\n  - { salesforce: Monthly_Value__c, halo: oppvalue_monthly, sync_back: true }\n  - { salesforce: One_off_Value__c, halo: oppvalue_oneoff,  sync_back: true }",
    );
    let first = run(&project);
    assert_eq!(
        direction(&first, "opportunities", "import")["failed"],
        0,
        "{first}"
    );
    let (opportunity_id, ticket) = staging_rows(
        &project.root,
        "SELECT source_id, target_id FROM id_map WHERE pipeline = 'opportunities' LIMIT 1",
    )
    .first()
    .map(|row| {
        (
            row["source_id"].as_str().unwrap().to_string(),
            row["target_id"].as_str().unwrap().parse::<u64>().unwrap(),
        )
    })
    .unwrap();

    // Set in Halo: written to Salesforce.
    let token = halo_token(&sandbox);
    halo_post(
        &sandbox,
        &token,
        "Tickets",
        json!([{"id": ticket, "oppvalue_annual": 12000, "oppvalue_monthly": 1000, "oppvalue_oneoff": 2500}]),
    );
    let summary = run(&project);
    assert_eq!(back(&summary, "opportunities")["updated"], 1, "{summary}");
    let opportunity = live(&sandbox, "Opportunity", "Id", &opportunity_id).unwrap();
    assert_eq!(
        (
            number(&opportunity["Annual_Value__c"]),
            number(&opportunity["Monthly_Value__c"]),
            number(&opportunity["One_off_Value__c"])
        ),
        (12000.0, 1000.0, 2500.0),
        "{opportunity:?}"
    );
    assert_no_writes(&run(&project));

    // Changed in Salesforce: written to Halo.
    touch(&sandbox, &opportunity_id, json!({"Monthly_Value__c": 1100}));
    let summary = run(&project);
    assert_eq!(
        direction(&summary, "opportunities", "import")["updated"],
        1,
        "{summary}"
    );
    let halo_ticket = halo_get(&sandbox, &token, &format!("Tickets/{ticket}"));
    assert_eq!(
        number(&halo_ticket["oppvalue_monthly"]),
        1100.0,
        "{halo_ticket}"
    );
}
