//! Deletes from Halo toward Salesforce, end to end: the `etl` binary against both sandboxes
//! with the accounts pipeline syncing back. A linked Halo customer deleted in Halo, or made
//! inactive there, leads to `deletes.from_halo`: `delete` deletes its Account (Collections
//! delete, to the recycle bin) and forgets the link; `deactivate` sets the configured
//! `salesforce_inactive` field, marks the link so neither direction writes the pair, and sets
//! the `active` value back once the customer is active in Halo again; the default `ignore`
//! leaves Salesforce alone. `etl plan` shows each removal first, and none is made twice.

use serde_json::{json, Map, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{direction, halo_post, halo_token, live_records, staging_rows, Project};

fn sandbox() -> Running {
    server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap()
}

/// `etl <command> --json`, which must succeed; the summary.
fn etl(project: &Project, command: &str) -> Value {
    let (code, stdout, stderr) = support::etl_output(&project.root, &[command, "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// The accounts pipeline (import and sync back on) with these `deletes`, listing every
/// customer every run (between full listings, removals wait: see `sync_back_changes.rs`).
fn accounts_project(sandbox: &Running, deletes: &str) -> Project {
    let project = support::project(sandbox, &["accounts"]);
    project.edit(
        "accounts",
        "attachments: true",
        &format!("attachments: true\ndeletes: {deletes}"),
    );
    project.edit(
        "accounts",
        "sync_back: { create: true, update: true }",
        "sync_back: { create: true, update: true }\n  full_listing: every_run",
    );
    project
}

fn back(summary: &Value) -> &Value {
    direction(summary, "accounts", "sync back")
}

/// The Halo customer linked to an Account, and the link's mark (or hash).
fn link_of(project: &Project, account_id: &str) -> Option<(u64, String)> {
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT target_id, coalesce(source_hash, '') AS mark FROM id_map WHERE pipeline = 'accounts' AND source_id = '{account_id}'"
        ),
    );
    rows.first().map(|row| {
        (
            row["target_id"].as_str().unwrap().parse().unwrap(),
            row["mark"].as_str().unwrap().to_string(),
        )
    })
}

/// The Account with this Id, deleted or not.
fn account(sandbox: &Running, id: &str) -> Map<String, Value> {
    support::salesforce_records(sandbox, "Account")
        .into_iter()
        .find(|r| r["Id"] == id)
        .unwrap_or_else(|| panic!("no Account {id}"))
}

fn set_inactive(sandbox: &Running, client: u64, inactive: bool) {
    let token = halo_token(sandbox);
    halo_post(
        sandbox,
        &token,
        "Client",
        json!([{"id": client, "inactive": inactive}]),
    );
}

fn delete_client(sandbox: &Running, client: u64) {
    let token = halo_token(sandbox);
    let response = ureq::delete(format!("{}/api/Client/{client}", sandbox.halo_url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// The sync-back plan rows of a run: (Halo id, action, reason).
fn back_changes(project: &Project, summary: &Value, action: &str) -> Vec<(String, String)> {
    let run_id = summary["run_id"].as_str().unwrap();
    staging_rows(
        &project.root,
        &format!(
            "SELECT source_id, coalesce(reason, '') AS reason FROM accounts_back_changes WHERE run_id = '{run_id}' AND action = '{action}' ORDER BY source_id"
        ),
    )
    .into_iter()
    .map(|row| {
        (
            row["source_id"].as_str().unwrap().to_string(),
            row["reason"].as_str().unwrap().to_string(),
        )
    })
    .collect()
}

fn counts(entry: &Value) -> [u64; 5] {
    ["created", "updated", "deleted", "deactivated", "failed"].map(|k| entry[k].as_u64().unwrap())
}

/// Nothing written in either direction, nothing failed.
fn assert_quiet(summary: &Value) {
    for entry in summary["pipelines"].as_array().unwrap() {
        assert_eq!(counts(entry), [0; 5], "{summary}");
    }
}

#[test]
fn customers_deleted_or_made_inactive_in_halo_delete_their_accounts() {
    let sandbox = sandbox();
    let project = accounts_project(&sandbox, "{ from_halo: delete }");
    etl(&project, "run");
    let accounts = live_records(&sandbox, "Account");
    let (deleted_id, inactive_id) = (
        accounts[4]["Id"].as_str().unwrap().to_string(),
        accounts[5]["Id"].as_str().unwrap().to_string(),
    );
    let (deleted_client, _) = link_of(&project, &deleted_id).unwrap();
    let (inactive_client, _) = link_of(&project, &inactive_id).unwrap();
    delete_client(&sandbox, deleted_client);
    set_inactive(&sandbox, inactive_client, true);

    // The plan shows both; Salesforce is untouched.
    let plan = etl(&project, "plan");
    assert_eq!(back(&plan)["planned_removals"], 2, "{plan}");
    let mut expected = vec![
        (
            deleted_client.to_string(),
            "deleted in the target".to_string(),
        ),
        (
            inactive_client.to_string(),
            "made inactive in the target".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(back_changes(&project, &plan, "delete"), expected);
    assert_eq!(account(&sandbox, &deleted_id)["IsDeleted"], false);

    let done = etl(&project, "run");
    assert_eq!(back(&done)["deleted"], 2, "{done}");
    assert_eq!(back(&done)["failed"], 0, "{done}");
    for id in [&deleted_id, &inactive_id] {
        assert_eq!(
            account(&sandbox, id)["IsDeleted"],
            true,
            "{id} in the recycle bin"
        );
        assert!(link_of(&project, id).is_none(), "{id}'s link is forgotten");
    }
    // The other accounts stay.
    assert_eq!(live_records(&sandbox, "Account").len(), accounts.len() - 2);

    // Made once.
    assert_quiet(&etl(&project, "run"));
}

#[test]
fn customers_made_inactive_in_halo_deactivate_their_accounts_until_active_again() {
    let sandbox = sandbox();
    let project = accounts_project(
        &sandbox,
        "{ from_halo: deactivate, salesforce_inactive: { field: Rating, inactive: Cold, active: Hot } }",
    );
    etl(&project, "run");
    let account_id = live_records(&sandbox, "Account")[4]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (client, _) = link_of(&project, &account_id).unwrap();
    set_inactive(&sandbox, client, true);

    let plan = etl(&project, "plan");
    assert_eq!(back(&plan)["planned_removals"], 1, "{plan}");
    assert_eq!(back_changes(&project, &plan, "deactivate").len(), 1);

    let done = etl(&project, "run");
    assert_eq!(counts(back(&done)), [0, 0, 0, 1, 0], "{done}");
    let deactivated = account(&sandbox, &account_id);
    assert_eq!(deactivated["Rating"], "Cold", "{deactivated:?}");
    assert_eq!(deactivated["IsDeleted"], false);
    let (_, mark) = link_of(&project, &account_id).unwrap();
    assert!(mark.starts_with("deactivated"), "{mark}");

    // Made once; the import leaves the pair alone although the Account changed.
    assert_quiet(&etl(&project, "run"));

    // Active in Halo again: the Account gets its active value back and the pair syncs again.
    set_inactive(&sandbox, client, false);
    let done = etl(&project, "run");
    assert_eq!(counts(back(&done)), [0, 1, 0, 0, 0], "{done}");
    assert_eq!(account(&sandbox, &account_id)["Rating"], "Hot");
    let (_, mark) = link_of(&project, &account_id).unwrap();
    assert!(!mark.starts_with("deactivated"), "unmarked: {mark}");
    assert_quiet(&etl(&project, "run"));
}

#[test]
fn customers_removed_in_halo_are_ignored_by_default() {
    let sandbox = sandbox();
    let project = accounts_project(&sandbox, "{ from_salesforce: ignore }");
    etl(&project, "run");
    let account_id = live_records(&sandbox, "Account")[4]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (client, _) = link_of(&project, &account_id).unwrap();
    delete_client(&sandbox, client);
    let done = etl(&project, "run");
    assert_eq!(back(&done)["planned_removals"], 0, "{done}");
    assert_eq!(counts(back(&done)), [0; 5], "{done}");
    assert_eq!(account(&sandbox, &account_id)["IsDeleted"], false);
}

#[test]
fn deactivating_in_salesforce_needs_the_field_to_set() {
    let sandbox = sandbox();
    let project = accounts_project(&sandbox, "{ from_halo: deactivate }");
    let (code, stdout, stderr) = support::etl_output(&project.root, &["run"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("accounts.yaml:")
            && stderr.contains(
                "`from_halo: deactivate` needs the Account field that marks a record inactive"
            )
            && stderr.contains("salesforce_inactive"),
        "{stderr}"
    );
}
