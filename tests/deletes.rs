//! Deletes end to end: with `deletes: deactivate`, an Account deleted in Salesforce (in the
//! recycle bin, or purged from it) deactivates its Halo customer, once; with `deletes: delete`,
//! a deleted Contact's Halo user is deleted and its link forgotten; with the default `ignore`,
//! nothing happens in Halo. `etl plan` shows the deletion before it is made.

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{halo_get, halo_token, live_records, pipeline, project, touch, Project};

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
    project.edit(
        "accounts",
        "attachments: true",
        "attachments: true\ndeletes: deactivate",
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
    let sandbox = server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    project.import_only("accounts");
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
