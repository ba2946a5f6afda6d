//! Deletes end to end: with `deletes: deactivate`, an Account deleted in Salesforce (in the
//! recycle bin, or purged from it) deactivates its Halo customer, once; with `deletes: delete`,
//! a deleted Contact's Halo user is deleted and its link forgotten; with the default `ignore`,
//! nothing happens in Halo. `etl plan` shows the deletion before it is made.

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{
    accounts_importing, halo_get, halo_token, live_records, pipeline, project, touch, Project,
};

fn run(project: &Project, command: &str) -> Value {
    let (code, stdout, stderr) = support::etl_output(&project.root, &[command, "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn halo_client(sandbox: &Running, name: &str) -> Value {
    let token = halo_token(sandbox);
    let clients = halo_get(
        sandbox,
        &token,
        &format!(
            "Client?includeinactive=true&search={}",
            name.replace(' ', "%20")
                .replace('#', "%23")
                .replace('&', "%26")
        ),
    );
    clients["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn deleted_accounts_deactivate_their_customers_and_deleted_contacts_delete_users() {
    let sandbox = server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts", "contacts"]);
    for name in ["accounts", "contacts"] {
        project.import_only(name);
    }
    // A pipeline that reads changes looks purged records up once a day by default; this one
    // looks every run.
    project.edit(
        "accounts",
        "attachments: true",
        "attachments: true\ndeletes: { from_salesforce: deactivate, hard_delete_check: every_run }",
    );
    let contacts_yaml = std::fs::read_to_string(project.root.join("pipelines/contacts.yaml"))
        .unwrap()
        + "\ndeletes: delete\n";
    std::fs::write(project.root.join("pipelines/contacts.yaml"), contacts_yaml).unwrap();
    run(&project, "run");

    // Not one of the first three accounts, which Halo's seed holds already.
    let accounts = live_records(&sandbox, "Account");
    let (soft, hard) = (&accounts[4], &accounts[5]);
    let contact = live_records(&sandbox, "Contact")
        .into_iter()
        .find(|c| c["AccountId"] == accounts[3]["Id"])
        .unwrap();
    touch(
        &sandbox,
        soft["Id"].as_str().unwrap(),
        json!({"IsDeleted": true}),
    );
    {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        assert!(state.org.purge(hard["Id"].as_str().unwrap()));
    }
    touch(
        &sandbox,
        contact["Id"].as_str().unwrap(),
        json!({"IsDeleted": true}),
    );

    // The plan shows them; nothing changes in Halo yet.
    let plan = run(&project, "plan");
    assert_eq!(pipeline(&plan, "accounts")["planned_removals"], 2, "{plan}");
    assert_eq!(pipeline(&plan, "contacts")["planned_removals"], 1, "{plan}");
    assert_eq!(
        halo_client(&sandbox, soft["Name"].as_str().unwrap())["inactive"],
        false
    );

    let done = run(&project, "run");
    assert_eq!(pipeline(&done, "accounts")["deactivated"], 2, "{done}");
    assert_eq!(pipeline(&done, "contacts")["deleted"], 1, "{done}");
    for account in [soft, hard] {
        let client = halo_client(&sandbox, account["Name"].as_str().unwrap());
        assert_eq!(client["inactive"], true, "{client}");
    }
    let token = halo_token(&sandbox);
    let users = halo_get(
        &sandbox,
        &token,
        &format!("Users?search={}", contact["Email"].as_str().unwrap()),
    );
    assert_eq!(users["record_count"], 0, "the user is gone: {users}");

    // Once done, a deletion is not made again.
    let again = run(&project, "run");
    for name in ["accounts", "contacts"] {
        let entry = pipeline(&again, name);
        assert_eq!(
            (
                entry["deactivated"].as_u64(),
                entry["deleted"].as_u64(),
                entry["failed"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{entry}"
        );
    }
}

#[test]
fn deletes_are_ignored_by_default() {
    let (sandbox, project) = accounts_importing(6, None);
    run(&project, "run");
    let account = live_records(&sandbox, "Account")[4].clone();
    touch(
        &sandbox,
        account["Id"].as_str().unwrap(),
        json!({"IsDeleted": true}),
    );
    let done = run(&project, "run");
    let entry = pipeline(&done, "accounts");
    assert_eq!(
        (entry["deactivated"].as_u64(), entry["deleted"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        halo_client(&sandbox, account["Name"].as_str().unwrap())["inactive"],
        false
    );
}

/// The id map's link of a Salesforce record: (Halo id, its mark or hash).
fn link_of(project: &Project, pipeline_name: &str, source_id: &str) -> Option<(String, String)> {
    let rows = support::staging_rows(
        &project.root,
        &format!(
            "SELECT target_id, coalesce(source_hash, '') AS mark FROM id_map WHERE pipeline = '{pipeline_name}' AND source_id = '{source_id}'"
        ),
    );
    rows.first().map(|row| {
        (
            row["target_id"].as_str().unwrap().to_string(),
            row["mark"].as_str().unwrap().to_string(),
        )
    })
}

#[test]
fn restored_records_reactivate_their_customer_or_are_created_again() {
    let sandbox = server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts", "contacts"]);
    for name in ["accounts", "contacts"] {
        project.import_only(name);
    }
    project.edit(
        "accounts",
        "attachments: true",
        "attachments: true\ndeletes: { from_salesforce: deactivate }",
    );
    let contacts_yaml = std::fs::read_to_string(project.root.join("pipelines/contacts.yaml"))
        .unwrap()
        + "\ndeletes: delete\n";
    std::fs::write(project.root.join("pipelines/contacts.yaml"), contacts_yaml).unwrap();
    run(&project, "run");

    let accounts = live_records(&sandbox, "Account");
    let account = accounts[4].clone();
    let account_id = account["Id"].as_str().unwrap();
    let contact = live_records(&sandbox, "Contact")
        .into_iter()
        .find(|c| c["AccountId"] == accounts[3]["Id"])
        .unwrap();
    let contact_id = contact["Id"].as_str().unwrap();
    touch(&sandbox, account_id, json!({"IsDeleted": true}));
    touch(&sandbox, contact_id, json!({"IsDeleted": true}));
    let done = run(&project, "run");
    assert_eq!(pipeline(&done, "accounts")["deactivated"], 1, "{done}");
    assert_eq!(pipeline(&done, "contacts")["deleted"], 1, "{done}");
    let (customer, mark) = link_of(&project, "accounts", account_id).unwrap();
    assert!(mark.starts_with("deactivated"), "{mark}");
    assert!(link_of(&project, "contacts", contact_id).is_none());

    // Both restored from the recycle bin (undeleted, so their SystemModstamp moves on).
    touch(&sandbox, account_id, json!({"IsDeleted": false}));
    touch(&sandbox, contact_id, json!({"IsDeleted": false}));
    let plan = run(&project, "plan");
    let planned = support::staging_rows(
        &project.root,
        &format!(
            "SELECT action, reason FROM accounts_changes WHERE run_id = '{}' AND source_id = '{account_id}'",
            plan["run_id"].as_str().unwrap()
        ),
    );
    assert_eq!(planned[0]["action"], "update", "{planned:?}");
    assert_eq!(
        planned[0]["reason"], "restored in the source: reactivated",
        "{planned:?}"
    );

    let done = run(&project, "run");
    assert_eq!(pipeline(&done, "accounts")["updated"], 1, "{done}");
    assert_eq!(pipeline(&done, "accounts")["failed"], 0, "{done}");
    assert_eq!(pipeline(&done, "contacts")["created"], 1, "{done}");
    let client = halo_client(&sandbox, account["Name"].as_str().unwrap());
    assert_eq!(client["inactive"], false, "reactivated: {client}");
    assert_eq!(client["id"].to_string(), customer, "the same customer");
    let (_, mark) = link_of(&project, "accounts", account_id).unwrap();
    assert!(!mark.starts_with("deactivated"), "unmarked: {mark}");
    let token = halo_token(&sandbox);
    let users = halo_get(
        &sandbox,
        &token,
        &format!("Users?search={}", contact["Email"].as_str().unwrap()),
    );
    assert_eq!(users["record_count"], 1, "created again: {users}");
    assert!(link_of(&project, "contacts", contact_id).is_some());

    // Nothing more to do.
    let again = run(&project, "run");
    for name in ["accounts", "contacts"] {
        let entry = pipeline(&again, name);
        assert_eq!(
            (
                entry["created"].as_u64(),
                entry["updated"].as_u64(),
                entry["deactivated"].as_u64(),
                entry["failed"].as_u64()
            ),
            (Some(0), Some(0), Some(0), Some(0)),
            "{entry}"
        );
    }
}

/// Moves the last hard-delete check of a pipeline back by `hours`.
fn age_last_check(project: &Project, pipeline_name: &str, hours: i64) {
    let store = etl::staging::Store::open(&project.root.join(".etl/staging.duckdb")).unwrap();
    let last = store
        .last_check(pipeline_name, "hard_delete_check")
        .unwrap()
        .expect("a recorded check");
    store
        .record_check(
            pipeline_name,
            "hard_delete_check",
            last - hours * 3_600_000,
            "test",
        )
        .unwrap();
}

#[test]
fn the_hard_delete_lookup_follows_its_schedule() {
    let (sandbox, project) = accounts_importing(
        7,
        Some("{ from_salesforce: deactivate, hard_delete_check: 24h }"),
    );
    run(&project, "run");
    let accounts = live_records(&sandbox, "Account");
    let purge = |account: &serde_json::Map<String, Value>| {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        assert!(state.org.purge(account["Id"].as_str().unwrap()));
    };
    purge(&accounts[4]);

    // Checked by the first run less than 24 hours ago: not looked up, nothing deactivated.
    let skipped = run(&project, "run");
    let entry = pipeline(&skipped, "accounts");
    assert_eq!(entry["deactivated"], 0, "{entry}");
    assert_eq!(
        halo_client(&sandbox, accounts[4]["Name"].as_str().unwrap())["inactive"],
        false
    );

    // A day later the look-up is due: the purged account's customer is deactivated. A plan
    // looks too, without moving the schedule on.
    age_last_check(&project, "accounts", 25);
    let plan = run(&project, "plan");
    assert_eq!(pipeline(&plan, "accounts")["planned_removals"], 1, "{plan}");
    let done = run(&project, "run");
    let entry = pipeline(&done, "accounts");
    assert_eq!(entry["deactivated"], 1, "{entry}");
    // The look-up costs a query: the run that skipped it made fewer Salesforce calls.
    assert!(
        entry["source_api_calls"].as_u64()
            > pipeline(&skipped, "accounts")["source_api_calls"].as_u64(),
        "{entry} vs {skipped}"
    );

    // `never`: a purge is not looked for at all, however old the last check.
    project.edit(
        "accounts",
        "hard_delete_check: 24h",
        "hard_delete_check: never",
    );
    purge(&accounts[5]);
    age_last_check(&project, "accounts", 48);
    let done = run(&project, "run");
    assert_eq!(pipeline(&done, "accounts")["deactivated"], 0, "{done}");
    assert_eq!(
        halo_client(&sandbox, accounts[5]["Name"].as_str().unwrap())["inactive"],
        false
    );
}

/// `etl apply` deactivates only what its reviewed plan did: an Account deleted after the
/// review keeps its customer active until a run (or a plan applied) that includes it.
#[test]
fn apply_removes_only_what_the_reviewed_plan_removed() {
    let (sandbox, project) = accounts_importing(
        6,
        Some("{ from_salesforce: deactivate, hard_delete_check: every_run }"),
    );
    run(&project, "run");
    let accounts = live_records(&sandbox, "Account");
    let (reviewed, late) = (&accounts[4], &accounts[5]);
    touch(
        &sandbox,
        reviewed["Id"].as_str().unwrap(),
        json!({"IsDeleted": true}),
    );
    let plan = run(&project, "plan");
    assert_eq!(pipeline(&plan, "accounts")["planned_removals"], 1, "{plan}");
    let plan_id = plan["run_id"].as_str().unwrap().to_string();
    touch(
        &sandbox,
        late["Id"].as_str().unwrap(),
        json!({"IsDeleted": true}),
    );

    let (code, stdout, stderr) = support::etl_output(&project.root, &["apply", &plan_id, "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let applied: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        pipeline(&applied, "accounts")["deactivated"],
        1,
        "{applied}"
    );
    let name =
        |record: &serde_json::Map<String, Value>| record["Name"].as_str().unwrap().to_string();
    assert_eq!(halo_client(&sandbox, &name(reviewed))["inactive"], true);
    assert_eq!(halo_client(&sandbox, &name(late))["inactive"], false);

    // The next run removes the one held back.
    let next = run(&project, "run");
    assert_eq!(pipeline(&next, "accounts")["deactivated"], 1, "{next}");
    assert_eq!(halo_client(&sandbox, &name(late))["inactive"], true);
}
