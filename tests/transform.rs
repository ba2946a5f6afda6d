//! The transform layer over the real example pipelines (`pipelines/*.yaml`, loaded as
//! `etl validate` loads them), with Salesforce records shaped like the sandbox's seed and an
//! in-test `Lookups` standing in for the engine's id maps and Halo searches.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use etl::config::{self, model::Pipeline};
use etl::transform::{changed_fields, record_hash, Direction, FieldProblem, Lookups, Transformer};

fn no_env(_: &str) -> Option<String> {
    None
}

fn pipeline(name: &str) -> Pipeline {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = config::load(&root.join("etl.yaml"), &[], &no_env);
    assert!(
        !workspace.has_errors(),
        "the example pipelines must validate: {:?}",
        workspace.diagnostics
    );
    workspace
        .pipelines
        .into_iter()
        .map(|loaded| loaded.pipeline)
        .find(|p| p.pipeline == name)
        .unwrap_or_else(|| panic!("no pipeline {name}"))
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

/// Id maps and Halo records as the engine would answer from DuckDB and the connector.
#[derive(Default)]
struct FakeLookups {
    /// (pipeline, Salesforce Id) → Halo id.
    linked: HashMap<(String, String), Value>,
    /// (pipeline, Salesforce Id, field) → a field of the linked Halo record.
    linked_fields: HashMap<(String, String, String), Value>,
    /// (entity, by, value) → Halo id.
    search: HashMap<(String, String, String), Value>,
}

impl FakeLookups {
    fn guide() -> FakeLookups {
        let mut l = FakeLookups::default();
        l.linked
            .insert(("accounts".into(), "001000000000001AAA".into()), json!(11));
        l.linked
            .insert(("contacts".into(), "003000000000001AAA".into()), json!(31));
        l.linked_fields.insert(
            (
                "accounts".into(),
                "001000000000001AAA".into(),
                "main_site_id".into(),
            ),
            json!(111),
        );
        l.search.insert(
            (
                "Agent".into(),
                "email".into(),
                "ava.owner@example.com".into(),
            ),
            json!(7),
        );
        l
    }
}

impl Lookups for FakeLookups {
    fn linked(&self, pipeline: &str, field: Option<&str>, source_id: &str) -> Option<Value> {
        match field {
            None => self
                .linked
                .get(&(pipeline.into(), source_id.into()))
                .cloned(),
            Some(field) => self
                .linked_fields
                .get(&(pipeline.into(), source_id.into(), field.into()))
                .cloned(),
        }
    }

    fn search(&self, entity: &str, by: &str, value: &Value) -> Option<Value> {
        let text = value.as_str()?.to_lowercase();
        self.search.get(&(entity.into(), by.into(), text)).cloned()
    }

    fn source_of(&self, pipeline: &str, target_id: &Value) -> Option<Value> {
        self.linked
            .iter()
            .find(|((p, _), id)| p == pipeline && *id == target_id)
            .map(|((_, source), _)| json!(source))
    }
}

fn account() -> Map<String, Value> {
    obj(json!({
        "Id": "001000000000001AAA",
        "Name": "Acme Holdings",
        "Type": "Customer - Direct",
        "BillingStreet": "12 High Street",
        "BillingCity": "Leeds",
        "BillingState": "West Yorkshire",
        "BillingPostalCode": "01234",
        "BillingCountry": "United Kingdom",
        "Website": "https://www.example-1.com",
        "OwnerId": "005000000000001AAA",
        "Owner.Email": "Ava.Owner@example.com",
        "SystemModstamp": "2024-05-01T10:00:00.000+0000"
    }))
}

fn contact() -> Map<String, Value> {
    obj(json!({
        "Id": "003000000000001AAA",
        "AccountId": "001000000000001AAA",
        "Account.Id": "001000000000001AAA",
        "FirstName": "Olivia",
        "LastName": "Smith",
        "Email": "olivia.smith.1@example.org",
        "Phone": "+44 161 496 0001",
        "MobilePhone": "+44 7700 900001",
        "Title": "CTO"
    }))
}

fn opportunity() -> Map<String, Value> {
    obj(json!({
        "Id": "006000000000001AAA",
        "AccountId": "001000000000001AAA",
        "ContactId": "003000000000001AAA",
        "Name": "Opportunity 1 for account 1",
        "Description": "Seeded opportunity 1",
        "StageName": "Closed Won",
        "Amount": 1200.0,
        "Probability": 100.0,
        "CloseDate": "2025-11-03",
        "IsClosed": true,
        "IsWon": true
    }))
}

#[test]
fn accounts_import() {
    let t = Transformer::new(&pipeline("accounts"), Direction::Import).unwrap();
    let out = t.transform(&account(), &FakeLookups::guide());
    assert_eq!(out.problems, vec![]);
    assert_eq!(
        Value::Object(out.record),
        json!({
            "name": "Acme Holdings",
            "website": "https://www.example-1.com",
            "accountmanagertech": 7,
            "main_site": {"delivery_address": {
                "line1": "12 High Street", "line3": "Leeds", "line4": "West Yorkshire", "postcode": "01234"
            }},
            "customfields": {
                "CFSalesforceAccountType": "Customer - Direct",
                "CFSalesforceAccountId": "001000000000001AAA"
            }
        })
    );
    assert_eq!(
        t.source_fields(),
        [
            "Name",
            "Website",
            "Owner.Email",
            "BillingStreet",
            "BillingCity",
            "BillingState",
            "BillingPostalCode",
            "Type",
            "Id"
        ]
    );
    assert_eq!(t.target_fields()[2], "accountmanagertech");
    assert_eq!(t.target_fields()[3], "main_site.delivery_address.line1");
}

#[test]
fn accounts_nested_owner_and_unknown_agent() {
    let t = Transformer::new(&pipeline("accounts"), Direction::Import).unwrap();
    // The owner as a nested object (a connector that keeps relationships nested).
    let mut record = account();
    record.remove("Owner.Email");
    record.insert("Owner".into(), json!({"Email": "ava.owner@example.com"}));
    let out = t.transform(&record, &FakeLookups::guide());
    assert_eq!(out.record["accountmanagertech"], json!(7));
    // An owner who is not a Halo agent: the example says `if_not_found: empty`, so the
    // customer has no account manager and the rest is kept.
    record.insert("Owner".into(), json!({"Email": "nobody@example.com"}));
    let out = t.transform(&record, &FakeLookups::guide());
    assert_eq!(out.problems, vec![]);
    assert_eq!(out.record["accountmanagertech"], Value::Null);
    assert_eq!(out.record["name"], json!("Acme Holdings"));
    // Without it, the record is reported with the reason.
    let mut strict = pipeline("accounts");
    for field in &mut strict.fields {
        field.if_not_found = None;
    }
    let out = Transformer::new(&strict, Direction::Import)
        .unwrap()
        .transform(&record, &FakeLookups::guide());
    assert!(!out.record.contains_key("accountmanagertech"));
    assert_eq!(
        out.problems,
        vec![FieldProblem {
            target: "accountmanagertech".into(),
            message: "no Agent has email `nobody@example.com` and the field has no default (`if_not_found: empty` leaves it empty instead)".into()
        }]
    );
    // No owner at all: empty, not a problem.
    record.remove("Owner");
    record.insert("Website".into(), Value::Null);
    let out = t.transform(&record, &FakeLookups::guide());
    assert_eq!(out.problems, vec![]);
    assert_eq!(out.record["accountmanagertech"], Value::Null);
    assert_eq!(out.record["website"], Value::Null);
}

#[test]
fn contacts_import_with_lookups_and_default_site() {
    let t = Transformer::new(&pipeline("contacts"), Direction::Import).unwrap();
    let lookups = FakeLookups::guide();
    let out = t.transform(&contact(), &lookups);
    assert_eq!(out.problems, vec![]);
    assert_eq!(
        Value::Object(out.record),
        json!({
            "firstname": "Olivia", "surname": "Smith", "emailaddress": "olivia.smith.1@example.org",
            "phonenumber": "+44 161 496 0001", "mobilenumber": "+44 7700 900001",
            "name": "Olivia Smith", "client_id": 11, "site_id": 111,
            "customfields": {"CFSalesforceContactId": "003000000000001AAA"}
        })
    );
    // An account that was not imported: no client (`if_not_found: empty`), the default site.
    let mut orphan = contact();
    orphan.insert("AccountId".into(), json!("001000000000999AAA"));
    orphan.insert("Account.Id".into(), json!("001000000000999AAA"));
    let out = t.transform(&orphan, &lookups);
    assert_eq!(out.record["site_id"], json!(1));
    assert_eq!(out.record["client_id"], Value::Null);
    assert_eq!(out.problems, vec![]);
    // The name template reads record fields, which become source fields.
    assert!(t.source_fields().contains(&"FirstName".to_string()));
    assert!(t.source_fields().contains(&"Account.Id".to_string()));
    // A missing first name renders as empty, not "none".
    let mut no_first = contact();
    no_first.insert("FirstName".into(), Value::Null);
    let out = t.transform(&no_first, &lookups);
    assert_eq!(out.record["name"], json!(" Smith"));
}

#[test]
fn opportunities_import_with_constants_custom_fields_and_lookups() {
    let t = Transformer::new(&pipeline("opportunities"), Direction::Import).unwrap();
    let out = t.transform(&opportunity(), &FakeLookups::guide());
    assert_eq!(out.problems, vec![]);
    assert_eq!(
        Value::Object(out.record),
        json!({
            "tickettype_id": 3,
            "summary": "Opportunity 1 for account 1",
            "details": "Seeded opportunity 1",
            "oppvalue": 1200.0,
            "oppconversionprobability": 100.0,
            "targetdate": "2025-11-03",
            "customfields": {
                "CFSalesforceStage": "Closed Won",
                "CFSalesforceOpportunityId": "006000000000001AAA",
                "CFSalesforceUserId": "003000000000001AAA"
            },
            "client_id": 11,
            "user_id": 31
        })
    );
    assert_eq!(t.target_fields()[0], "tickettype_id");
    assert!(t.source_fields().contains(&"ContactId".to_string()));
}

/// The opportunities pipeline with the value map, date filter and templated lookup the guide
/// describes, as a user would add them.
fn opportunities_extended() -> Pipeline {
    let mut p = pipeline("opportunities");
    for mapping in &mut p.fields {
        if mapping.salesforce.as_deref() == Some("StageName") {
            mapping.values = Some(obj(json!({"Closed Won": "Won", "Closed Lost": "Lost"})));
            mapping.default = Some(json!("Open"));
        }
        if mapping.salesforce.as_deref() == Some("CloseDate") {
            mapping.template = Some("{{ value | halo_date }}".into());
            mapping.sync_back = false;
        }
        if mapping.salesforce.as_deref() == Some("ContactId") {
            mapping.salesforce = None;
            mapping.lookup = None;
            mapping.sync_back = false;
            mapping.template = Some("{{ lookup('contacts', record.ContactId) }}".into());
        }
    }
    p
}

#[test]
fn opportunities_value_map_date_and_templated_lookup() {
    let t = Transformer::new(&opportunities_extended(), Direction::Import).unwrap();
    let lookups = FakeLookups::guide();
    let out = t.transform(&opportunity(), &lookups);
    assert_eq!(out.problems, vec![]);
    assert_eq!(
        out.record["customfields"]["CFSalesforceStage"],
        json!("Won")
    );
    assert_eq!(out.record["targetdate"], json!("2025-11-03T00:00:00"));
    // `user_id` ends in `_id`: the rendered whole number is written as a number.
    assert_eq!(out.record["user_id"], json!(31));

    let mut other = opportunity();
    other.insert("StageName".into(), json!("closed lost"));
    other.insert("ContactId".into(), json!("003000000000999AAA"));
    let out = t.transform(&other, &lookups);
    assert_eq!(
        out.record["customfields"]["CFSalesforceStage"],
        json!("Lost")
    );
    assert_eq!(out.record["user_id"], Value::Null);
    other.insert("StageName".into(), json!("Prospecting"));
    let out = t.transform(&other, &lookups);
    assert_eq!(
        out.record["customfields"]["CFSalesforceStage"],
        json!("Open")
    );
}

#[test]
fn value_not_in_map_without_default_is_a_problem() {
    let mut p = opportunities_extended();
    for mapping in &mut p.fields {
        if mapping.salesforce.as_deref() == Some("StageName") {
            mapping.default = None;
        }
    }
    let t = Transformer::new(&p, Direction::Import).unwrap();
    let mut record = opportunity();
    record.insert("StageName".into(), json!("Prospecting"));
    let out = t.transform(&record, &FakeLookups::guide());
    assert_eq!(out.problems.len(), 1);
    assert_eq!(out.problems[0].target, "customfields.CFSalesforceStage");
    assert_eq!(
        out.problems[0].message,
        "`Prospecting` is not in the value map (known: Closed Won, Closed Lost) and the field has no default"
    );
    assert!(!out.record["customfields"]
        .as_object()
        .unwrap()
        .contains_key("CFSalesforceStage"));
}

#[test]
fn runtime_template_error_is_a_field_problem() {
    let mut p = pipeline("opportunities");
    p.fields.push(config::model::FieldMapping {
        salesforce: Some("CloseDate".into()),
        halo: Some("customfields.CFCloseMonth".into()),
        template: Some("{{ value | date('%B %Y') }}".into()),
        ..Default::default()
    });
    p.fields.push(config::model::FieldMapping {
        salesforce: Some("Name".into()),
        halo: Some("customfields.CFBroken".into()),
        template: Some("{{ value + 1 }}".into()),
        ..Default::default()
    });
    let t = Transformer::new(&p, Direction::Import).unwrap();
    let mut record = opportunity();
    record.insert("CloseDate".into(), json!("next spring"));
    let out = t.transform(&record, &FakeLookups::guide());
    let targets: Vec<&str> = out.problems.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(
        targets,
        ["customfields.CFCloseMonth", "customfields.CFBroken"]
    );
    assert!(
        out.problems[0]
            .message
            .contains("`next spring` is not an ISO date"),
        "{}",
        out.problems[0].message
    );
    assert_eq!(out.record["summary"], json!("Opportunity 1 for account 1"));
    let out = t.transform(&opportunity(), &FakeLookups::guide());
    assert_eq!(
        out.record["customfields"]["CFCloseMonth"],
        json!("November 2025")
    );
}

#[test]
fn accounts_sync_back() {
    let t = Transformer::new(&pipeline("accounts"), Direction::SyncBack).unwrap();
    assert_eq!(
        t.target_fields(),
        [
            "Name",
            "BillingStreet",
            "BillingCity",
            "BillingState",
            "BillingPostalCode"
        ]
    );
    assert_eq!(t.source_fields()[1], "main_site.delivery_address.line1");
    let client = obj(json!({
        "id": 11, "name": "Acme Holdings Ltd", "website": "https://ignored.example",
        "main_site": {"id": 111, "delivery_address": {"line1": "14 High Street", "line3": "Leeds", "line4": null, "postcode": "LS1 1AA"}},
        "customfields": {"CFSalesforceAccountType": "Other"}
    }));
    let out = t.transform(&client, &FakeLookups::guide());
    assert_eq!(out.problems, vec![]);
    assert_eq!(
        Value::Object(out.record),
        json!({"Name": "Acme Holdings Ltd", "BillingStreet": "14 High Street", "BillingCity": "Leeds", "BillingState": null, "BillingPostalCode": "LS1 1AA"})
    );
}

#[test]
fn sync_back_reverses_lookups_and_value_maps() {
    let lookups = FakeLookups::guide();
    let t = Transformer::new(&pipeline("opportunities"), Direction::SyncBack).unwrap();
    let ticket = obj(json!({
        "id": 501, "summary": "Renewal", "details": "", "oppvalue": 900, "client_id": 11, "user_id": 99,
        "customfields": {"CFSalesforceStage": "Negotiation/Review"}, "targetdate": "2025-12-01T00:00:00"
    }));
    let out = t.transform(&ticket, &lookups);
    assert_eq!(out.record["AccountId"], json!("001000000000001AAA"));
    assert_eq!(out.record["StageName"], json!("Negotiation/Review"));
    assert_eq!(out.record["Description"], Value::Null);
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    assert_eq!(out.problems[0].target, "ContactId");
    // Halo's `hiddenfromuser` false → Salesforce IsPublished true.
    let t = Transformer::new(&pipeline("case_comments"), Direction::SyncBack).unwrap();
    let mut linked = FakeLookups::guide();
    linked
        .linked
        .insert(("cases".into(), "500000000000001AAA".into()), json!(700));
    let action =
        obj(json!({"id": 1, "ticket_id": 700, "note": "Called back", "hiddenfromuser": false}));
    let out = t.transform(&action, &linked);
    assert_eq!(out.problems, vec![]);
    assert_eq!(
        Value::Object(out.record),
        json!({"CommentBody": "Called back", "IsPublished": true, "ParentId": "500000000000001AAA"})
    );
}

#[test]
fn every_example_pipeline_compiles_both_ways() {
    for name in [
        "accounts",
        "contacts",
        "opportunities",
        "cases",
        "case_comments",
    ] {
        let p = pipeline(name);
        Transformer::new(&p, Direction::Import).unwrap();
        Transformer::new(&p, Direction::SyncBack).unwrap();
    }
    // A templated field is not synced back.
    let t = Transformer::new(&pipeline("contacts"), Direction::SyncBack).unwrap();
    assert!(!t.target_fields().contains(&"name".to_string()));
    assert!(!t.target_fields().contains(&"Account.Id".to_string()));
}

#[test]
fn hash_and_changes_of_transformed_records() {
    let t = Transformer::new(&pipeline("accounts"), Direction::Import).unwrap();
    let lookups = FakeLookups::guide();
    let before = t.transform(&account(), &lookups).record;
    let again = t.transform(&account(), &lookups).record;
    assert_eq!(record_hash(&before), record_hash(&again));
    let mut moved = account();
    moved.insert("BillingCity".into(), json!("York"));
    moved.insert("Name".into(), json!("Acme Holdings"));
    let after = t.transform(&moved, &lookups).record;
    assert_ne!(record_hash(&before), record_hash(&after));
    assert_eq!(
        changed_fields(&before, &after),
        vec![(
            "main_site.delivery_address.line3".to_string(),
            Some(json!("Leeds")),
            Some(json!("York"))
        )]
    );
}

#[test]
fn odd_records_never_panic() {
    let lookups = FakeLookups::guide();
    let records = [
        json!({}),
        json!({"Name": [1, 2], "Owner.Email": {"x": 1}, "AccountId": true, "CloseDate": 5, "StageName": null}),
        json!({"Owner": "not an object", "Account": [null], "FirstName": "é\u{0}<b>", "Amount": "NaN"}),
        json!({"customfields": [{"name": "CFSalesforceStage"}], "main_site": 3, "client_id": {"a": 1}}),
    ];
    for name in [
        "accounts",
        "contacts",
        "opportunities",
        "cases",
        "case_comments",
    ] {
        let p = pipeline(name);
        for direction in [Direction::Import, Direction::SyncBack] {
            let t = Transformer::new(&p, direction).unwrap();
            for record in &records {
                let out = t.transform(&obj(record.clone()), &lookups);
                let _ = record_hash(&out.record);
            }
        }
    }
}

#[test]
fn transformer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Transformer>();
}

#[test]
fn json_paths_and_flat_keys_in_templates() {
    let mut p = pipeline("accounts");
    p.fields.push(config::model::FieldMapping {
        salesforce: Some("$.Attachments.totalSize".into()),
        halo: Some("customfields.CFAttachmentCount".into()),
        ..Default::default()
    });
    p.fields.push(config::model::FieldMapping {
        halo: Some("customfields.CFOwner".into()),
        template: Some("{{ record['Owner.Email'] | lower }} / {{ record.Owner.Email | upper }} / {{ record.Attachments.records[0].Name }}".into()),
        ..Default::default()
    });
    let t = Transformer::new(&p, Direction::Import).unwrap();
    let mut record = account();
    record.insert(
        "Attachments".into(),
        json!({"totalSize": 2, "done": true, "records": [{"Id": "00P1", "Name": "contract.pdf"}, {"Id": "00P2", "Name": "logo.png"}]}),
    );
    let out = t.transform(&record, &FakeLookups::guide());
    assert_eq!(out.problems, vec![]);
    assert_eq!(out.record["customfields"]["CFAttachmentCount"], json!(2));
    assert_eq!(
        out.record["customfields"]["CFOwner"],
        json!("ava.owner@example.com / AVA.OWNER@EXAMPLE.COM / contract.pdf")
    );
    let fields = t.source_fields();
    assert!(fields.contains(&"$.Attachments.totalSize".to_string()));
    assert!(
        fields.contains(&"Attachments.records".to_string()),
        "{fields:?}"
    );
    assert_eq!(fields.iter().filter(|f| *f == "Owner.Email").count(), 1);
}
