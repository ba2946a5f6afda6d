//! The sync back lists only the Halo records changed since its last listing (issue 9, reruns):
//! the `etl` binary against both sandboxes on the accounts pipeline (customers, which Halo lists
//! by `lastupdatefromdate`). The first run lists every customer; a rerun with nothing changed
//! lists next to nothing and makes few Halo calls; a customer edited in Halo is listed and
//! synced back; one whose write back failed is read again until it lands; a conflict held by `skip_and_report` stays held although its records did not
//! change again; a customer deleted in Halo is acted on only at a full listing (at once with
//! `full_listing: every_run`, with `24h` not before `--full`); `etl plan` leaves the mark where
//! it was; an edited pipeline file lists everything. The tests set `listing_lookback: 0s`: runs
//! here follow each other within a second, and the default minute would list every record the
//! runs before wrote.

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{
    direction, halo_get, halo_post, halo_token, live_records, project, staging_rows, touch, Project,
};

/// Accounts in the org, so that a full listing of customers takes several pages (100 each).
const ACCOUNTS: u64 = 240;

fn sandbox() -> Running {
    server::start(Options {
        accounts: ACCOUNTS,
        ..Options::default()
    })
    .unwrap()
}

/// The accounts pipeline with no lookback and `settings` added to its `sync:`.
fn accounts_project(sandbox: &Running, settings: &str) -> Project {
    let project = project(sandbox, &["accounts"]);
    project.edit(
        "accounts",
        "sync_back: { create: true, update: true }",
        &format!("sync_back: {{ create: true, update: true }}\n  listing_lookback: 0s{settings}"),
    );
    project
}

fn etl(project: &Project, args: &[&str]) -> Value {
    let (code, stdout, stderr) = support::etl_output(&project.root, args);
    assert_eq!(code, 0, "{args:?}: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or(Value::Null)
}

fn run(project: &Project) -> Value {
    etl(project, &["run", "--json"])
}

/// `etl run --json` in which some records fail: the summary says so.
fn run_failing(project: &Project) -> Value {
    let (code, stdout, stderr) = support::etl_output(&project.root, &["run", "--json"]);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(
        summary["status"], "failed records",
        "exit {code}: {stderr}\n{stdout}"
    );
    summary
}

fn run_id(summary: &Value) -> String {
    summary["run_id"].as_str().unwrap().to_string()
}

/// How many customers a run staged in `accounts_back_extracted`.
fn listed(project: &Project, summary: &Value) -> u64 {
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT count(*) AS n FROM accounts_back_extracted WHERE run_id = '{}'",
            run_id(summary)
        ),
    );
    rows[0]["n"].as_u64().unwrap()
}

/// Whether a run listed every customer (`full`) or the changes (`incremental`).
fn listing_kind(project: &Project, summary: &Value) -> String {
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT kind FROM extracts WHERE run_id = '{}' AND pipeline = 'accounts_back'",
            run_id(summary)
        ),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["kind"].as_str().unwrap().to_string()
}

fn back(summary: &Value) -> &Value {
    direction(summary, "accounts", "sync back")
}

/// Active customers in Halo.
fn customers(sandbox: &Running, token: &str) -> u64 {
    halo_get(
        sandbox,
        token,
        "Client?pageinate=true&page_size=1&page_no=1",
    )["record_count"]
        .as_u64()
        .unwrap()
}

/// A customer linked to an Account by the runs so far: (Halo id, Account Id).
fn linked_customer(project: &Project) -> (u64, String) {
    let rows = staging_rows(
        &project.root,
        "SELECT source_id, target_id FROM id_map WHERE pipeline = 'accounts' \
         AND target_id IS NOT NULL ORDER BY source_id LIMIT 1",
    );
    let halo: u64 = rows[0]["target_id"].as_str().unwrap().parse().unwrap();
    (halo, rows[0]["source_id"].as_str().unwrap().to_string())
}

fn account_name(sandbox: &Running, id: &str) -> Option<String> {
    live_records(sandbox, "Account")
        .into_iter()
        .find(|a| a["Id"] == id)
        .map(|a| a["Name"].as_str().unwrap_or_default().to_string())
}

fn client_name(sandbox: &Running, token: &str, id: u64) -> String {
    halo_get(sandbox, token, &format!("Client/{id}"))["name"]
        .as_str()
        .unwrap()
        .to_string()
}

fn delete_customer(sandbox: &Running, token: &str, id: u64) {
    let mut response = ureq::delete(format!("{}/api/Client/{id}", sandbox.halo_url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let _ = response.body_mut().read_to_string();
}

/// The first run, then the run that lists what the first wrote: every customer is linked and
/// the next run has nothing to list. The pause between them lets the first run's writes fall
/// before what the second listing knows of Halo's clock (the seeded customers' update times,
/// carried on by the time passed), so the next listing does not start among them.
fn settled(project: &Project) -> Value {
    let first = run(project);
    assert_eq!(back(&first)["failed"], 0, "{first}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    run(project)
}

#[test]
fn the_first_run_lists_everything_and_a_rerun_next_to_nothing() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = accounts_project(&sandbox, "");
    let before = customers(&sandbox, &token);

    let first = run(&project);
    assert_eq!(listing_kind(&project, &first), "full");
    assert_eq!(listed(&project, &first), before, "{first}");
    std::thread::sleep(std::time::Duration::from_secs(2));

    // The second run lists what the first wrote (every customer the import created): changes
    // all the same, from the first listing on.
    let second = run(&project);
    assert_eq!(listing_kind(&project, &second), "incremental");
    assert!(listed(&project, &second) >= ACCOUNTS - 3, "{second}");
    let second_calls = back(&second)["target_api_calls"].as_u64().unwrap();

    // Nothing changed since: at most the last customers saved before the second listing
    // started, in a listing of one page, and no write either way.
    let rerun = run(&project);
    assert_eq!(listing_kind(&project, &rerun), "incremental");
    let again = listed(&project, &rerun);
    assert!(
        again <= 3,
        "a no-op rerun listed {again} customers: {rerun}"
    );
    let calls = back(&rerun)["target_api_calls"].as_u64().unwrap();
    assert!(
        calls <= 3 && calls * 2 < second_calls,
        "a no-op rerun made {calls} Halo calls, listing every customer {second_calls}: {rerun}"
    );
    for entry in rerun["pipelines"].as_array().unwrap() {
        assert_eq!(
            (&entry["created"], &entry["updated"]),
            (&json!(0), &json!(0)),
            "{rerun}"
        );
    }
}

#[test]
fn a_customer_edited_in_halo_is_synced_back_on_the_rerun() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = accounts_project(&sandbox, "");
    settled(&project);
    let (client, account) = linked_customer(&project);
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": "Edited In Halo"}]),
    );

    // `etl plan` sees the change but moves no mark: the run after it still lists it.
    let plan = etl(&project, &["plan", "--json"]);
    assert_eq!(back(&plan)["planned_updates"], 1, "{plan}");
    let summary = run(&project);
    assert_eq!(listing_kind(&project, &summary), "incremental");
    assert!(listed(&project, &summary) <= 3, "{summary}");
    assert_eq!(back(&summary)["updated"], 1, "{summary}");
    assert_eq!(
        account_name(&sandbox, &account).as_deref(),
        Some("Edited In Halo")
    );
    // The Account's new name comes back through the import unchanged: nothing more to do.
    let after = run(&project);
    assert_eq!(back(&after)["updated"], 0, "{after}");
    assert_eq!(
        direction(&after, "accounts", "import")["updated"],
        0,
        "{after}"
    );
}

#[test]
fn a_customer_that_failed_to_sync_back_is_read_again_until_it_lands() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = accounts_project(&sandbox, "");
    settled(&project);
    let (client, account) = linked_customer(&project);
    // Longer than Salesforce's 255 characters for an Account name: the update is refused.
    let long = "Far Too Long ".repeat(25);
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": long}]),
    );
    // The third run would list it no more were it not read again.
    for _ in 0..3 {
        let summary = run_failing(&project);
        assert_eq!(back(&summary)["failed"], 1, "{summary}");
        assert!(listed(&project, &summary) <= 3, "{summary}");
    }
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": "Short Again"}]),
    );
    let summary = run(&project);
    assert_eq!(back(&summary)["failed"], 0, "{summary}");
    assert_eq!(
        account_name(&sandbox, &account).as_deref(),
        Some("Short Again")
    );
}

#[test]
fn a_held_conflict_stays_held_although_its_customer_is_not_listed_as_changed() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = accounts_project(&sandbox, "");
    settled(&project);
    let (client, account) = linked_customer(&project);
    touch(&sandbox, &account, json!({"Name": "Renamed In Salesforce"}));
    halo_post(
        &sandbox,
        &token,
        "Client",
        json!([{"id": client, "name": "Renamed In Halo"}]),
    );
    for _ in 0..3 {
        let summary = run(&project);
        let conflicts = direction(&summary, "accounts", "import")["conflicts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(conflicts.len(), 1, "{summary}");
        assert_eq!(conflicts[0]["resolution"], "skipped", "{summary}");
        assert_eq!(
            account_name(&sandbox, &account).as_deref(),
            Some("Renamed In Salesforce")
        );
        assert_eq!(client_name(&sandbox, &token, client), "Renamed In Halo");
    }
}

/// A settled accounts project with `deletes.from_halo: delete` (and `sync` settings `extra`)
/// whose first linked customer was just deleted in Halo; the sandbox, project and the
/// customer's account id.
fn deleted_customer(extra: &str) -> (Running, Project, String) {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = accounts_project(&sandbox, extra);
    project.edit(
        "accounts",
        "attachments: true",
        "attachments: true\ndeletes: { from_halo: delete }",
    );
    settled(&project);
    let (client, account) = linked_customer(&project);
    delete_customer(&sandbox, &token, client);
    (sandbox, project, account)
}

#[test]
fn a_customer_deleted_in_halo_waits_for_a_full_listing() {
    let (sandbox, project, account) = deleted_customer("");

    // Between full listings, a customer missing from a listing of changes is unchanged.
    let summary = run(&project);
    assert_eq!(listing_kind(&project, &summary), "incremental");
    assert!(account_name(&sandbox, &account).is_some(), "{summary}");

    // `--full` lists everything, so the deletion is seen.
    let full = etl(&project, &["run", "--full", "--json"]);
    assert_eq!(listing_kind(&project, &full), "full");
    assert_eq!(account_name(&sandbox, &account), None, "{full}");
}

#[test]
fn with_every_run_a_deletion_is_acted_on_at_once() {
    let (sandbox, project, account) = deleted_customer("\n  full_listing: every_run");
    let summary = run(&project);
    assert_eq!(listing_kind(&project, &summary), "full");
    assert_eq!(account_name(&sandbox, &account), None, "{summary}");
}

#[test]
fn an_edited_pipeline_file_lists_everything() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = accounts_project(&sandbox, "");
    settled(&project);
    let quiet = run(&project);
    assert_eq!(listing_kind(&project, &quiet), "incremental");
    project.edit(
        "accounts",
        "description: Accounts become Halo customers",
        "description: Accounts (edited) become Halo customers",
    );
    let edited = run(&project);
    assert_eq!(listing_kind(&project, &edited), "full");
    assert_eq!(
        listed(&project, &edited),
        customers(&sandbox, &token),
        "{edited}"
    );
    // And the run after it lists changes again.
    let next = run(&project);
    assert_eq!(listing_kind(&project, &next), "incremental");
}
