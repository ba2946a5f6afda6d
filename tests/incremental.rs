//! Incremental imports end to end: a pipeline with `salesforce.incremental` reads everything
//! once, then only what changed since its watermark; a plan does not move the watermark; a
//! record left skipped is read again by the next run; `--full` and an edited pipeline file read
//! everything again; and each run records in `extracts` how it read.

use serde_json::{json, Value};

use etl::sandbox::faults::{FaultKind, FaultPlan, FaultRule};
use etl::sandbox::server::{self, Options};

mod support;
use support::{
    accounts_importing, direction, halo_get, halo_token, live_records, project, put_file,
    share_file, staging_rows, touch, Project,
};

fn run(project: &Project, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, stdout, stderr) = support::etl_output(&project.root, &all);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// A sandbox of `accounts` accounts and a project whose `pipelines` only import.
fn importing(accounts: u64, pipelines: &[&str]) -> (server::Running, Project) {
    let sandbox = server::start(Options {
        accounts,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, pipelines);
    for name in pipelines {
        project.import_only(name);
    }
    (sandbox, project)
}

/// Runs once more and checks that the opportunities' read of changes found nothing to read.
fn nothing_more_to_read(project: &Project) {
    let settled = run(project, &["run"]);
    assert_eq!(
        direction(&settled, "opportunities", "import")["extracted"],
        0,
        "{settled}"
    );
}

/// Runs once more and checks that the opportunities' read of changes read one record again
/// and copied its file, and that the run after reads nothing.
fn one_record_read_again_for_its_file(project: &Project) {
    let next = run(project, &["run"]);
    let opportunities = direction(&next, "opportunities", "import");
    assert_eq!(opportunities["extracted"], 1, "{next}");
    assert_eq!(opportunities["attachments_copied"], 1, "{next}");
    nothing_more_to_read(project);
}

fn contacts(summary: &Value) -> &Value {
    direction(summary, "contacts", "import")
}

fn kinds(project: &Project) -> Vec<String> {
    staging_rows(
        &project.root,
        "SELECT e.kind FROM extracts e JOIN runs r USING (run_id)
         WHERE e.pipeline = 'contacts' ORDER BY r.started_at, e.staged_at",
    )
    .iter()
    .map(|row| row["kind"].as_str().unwrap().to_string())
    .collect()
}

#[test]
fn reads_only_changes_after_the_first_run_and_retries_what_was_left() {
    let (sandbox, project) = importing(8, &["accounts", "contacts"]);
    let all = live_records(&sandbox, "Contact").len() as u64;
    assert!(all >= 8, "the seed has contacts");

    let first = run(&project, &["run"]);
    assert_eq!(contacts(&first)["extracted"], all);
    assert_eq!(contacts(&first)["failed"], 0);

    // Nothing changed: nothing read.
    let second = run(&project, &["run"]);
    assert_eq!(contacts(&second)["extracted"], 0, "{second}");

    // One contact changes: a plan sees it, and so does the run after the plan.
    let contact = live_records(&sandbox, "Contact")
        .into_iter()
        .find(|c| c["Email"].is_string())
        .unwrap();
    let id = contact["Id"].as_str().unwrap().to_string();
    touch(&sandbox, &id, json!({"Phone": "+44 20 7946 0999"}));
    let planned = run(&project, &["plan"]);
    assert_eq!(contacts(&planned)["extracted"], 1, "{planned}");
    assert_eq!(contacts(&planned)["planned_updates"], 1, "{planned}");

    // Excluded from this run: skipped, so the next run reads it again though it did not change.
    let excluded = run(&project, &["run", "--exclude", &id]);
    assert_eq!(contacts(&excluded)["extracted"], 1, "{excluded}");
    assert_eq!(contacts(&excluded)["updated"], 0, "{excluded}");
    let retried = run(&project, &["run"]);
    assert_eq!(contacts(&retried)["extracted"], 1, "{retried}");
    assert_eq!(contacts(&retried)["updated"], 1, "{retried}");
    let token = halo_token(&sandbox);
    let email = contact["Email"].as_str().unwrap();
    let users = halo_get(
        &sandbox,
        &token,
        &format!("Users?search={}", email.replace('@', "%40")),
    );
    let user = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["emailaddress"] == email)
        .cloned()
        .expect("the contact's user");
    assert_eq!(user["phonenumber"], "+44 20 7946 0999");

    // Settled: the next run reads nothing again.
    let settled = run(&project, &["run"]);
    assert_eq!(contacts(&settled)["extracted"], 0, "{settled}");

    // `--full` reads everything, and finds it unchanged.
    let full = run(&project, &["run", "--full"]);
    assert_eq!(contacts(&full)["extracted"], all);
    assert_eq!(contacts(&full)["updated"], 0);
    assert_eq!(contacts(&full)["created"], 0);

    // An edited pipeline file reads everything again.
    project.edit(
        "contacts",
        "description: Contacts",
        "description: Edited. Contacts",
    );
    let edited = run(&project, &["run"]);
    assert_eq!(contacts(&edited)["extracted"], all);

    assert_eq!(
        kinds(&project),
        [
            "full",
            "incremental",
            "incremental",
            "incremental",
            "incremental",
            "incremental",
            "full",
            "full"
        ]
    );
    let marks = staging_rows(
        &project.root,
        "SELECT cursor_field, cursor_value, last_id FROM watermarks WHERE pipeline = 'contacts'",
    );
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0]["cursor_field"], "SystemModstamp");
}

#[test]
fn a_file_added_to_an_unchanged_record_is_copied_by_the_next_read_of_changes() {
    let (sandbox, project) = importing(4, &["accounts", "contacts", "opportunities"]);
    let first = run(&project, &["run"]);
    let opportunities = direction(&first, "opportunities", "import");
    assert_eq!(opportunities["failed"], 0, "{first}");
    nothing_more_to_read(&project);

    let parent = live_records(&sandbox, "Opportunity")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    put_file(&sandbox, 9_001, &parent, b"added after the first import");
    let next = run(&project, &["run"]);
    let opportunities = direction(&next, "opportunities", "import");
    assert_eq!(opportunities["extracted"], 1, "{next}");
    assert_eq!(opportunities["updated"], 0, "{next}");
    assert_eq!(opportunities["attachments_copied"], 1, "{next}");
}

#[test]
fn a_file_shared_with_another_unchanged_record_is_copied_by_the_next_read_of_changes() {
    let (sandbox, project) = importing(4, &["accounts", "contacts", "opportunities"]);
    let opportunities = live_records(&sandbox, "Opportunity");
    let first = opportunities[0]["Id"].as_str().unwrap().to_string();
    let second = opportunities[1]["Id"].as_str().unwrap().to_string();
    put_file(&sandbox, 9_002, &first, b"shared later");
    let imported = run(&project, &["run"]);
    assert_eq!(
        direction(&imported, "opportunities", "import")["failed"],
        0,
        "{imported}"
    );
    // The file is newer than the records: the first read of changes reads its record again
    // (the first, full, read kept no mark of files); from then on the newest file found is
    // where the look starts, so a quiet org reads nothing.
    let again = run(&project, &["run"]);
    let opportunities = direction(&again, "opportunities", "import");
    assert_eq!(opportunities["extracted"], 1, "{again}");
    assert_eq!(opportunities["attachments_copied"], 0, "{again}");
    nothing_more_to_read(&project);

    // Only a link is new: the file's version and both records are as they were.
    share_file(&sandbox, 9_002, &second);
    let next = run(&project, &["run"]);
    let opportunities = direction(&next, "opportunities", "import");
    assert_eq!(opportunities["extracted"], 1, "{next}");
    assert_eq!(opportunities["updated"], 0, "{next}");
    assert_eq!(opportunities["attachments_copied"], 1, "{next}");
    let settled = run(&project, &["run"]);
    let opportunities = direction(&settled, "opportunities", "import");
    assert_eq!(opportunities["extracted"], 0, "{settled}");
    assert_eq!(opportunities["attachments_copied"], 0, "{settled}");
}

#[test]
fn a_file_share_salesforce_would_not_list_is_found_by_the_look_after() {
    // The look for new file shares times out once, as a semi-join over a large object can:
    // the third look, after the two reads of changes that settle the first import.
    let shares = FaultRule {
        query: Some(
            "*FROM ContentDocumentLink WHERE LinkedEntityId IN (SELECT Id FROM Opportunity*".into(),
        ),
        after: 2,
        times: Some(1),
        ..FaultRule::new("/services/data/*/query*", FaultKind::QueryTimeout)
    };
    let pipelines = ["accounts", "contacts", "opportunities"];
    let sandbox = server::start(Options {
        accounts: 4,
        faults: Some(FaultPlan {
            seed: 1,
            faults: vec![shares],
        }),
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &pipelines);
    for name in pipelines {
        project.import_only(name);
    }
    run(&project, &["run"]);
    let imported = staging_rows(
        &project.root,
        "SELECT source_id FROM id_map WHERE pipeline = 'opportunities' ORDER BY source_id",
    );
    let id = |n: usize| imported[n]["source_id"].as_str().unwrap().to_string();
    put_file(&sandbox, 9_004, &id(0), b"shared while a look failed");
    let copied = run(&project, &["run"]);
    let opportunities = direction(&copied, "opportunities", "import");
    assert_eq!(opportunities["attachments_copied"], 1, "{copied}");
    nothing_more_to_read(&project);

    // A share, then an edit of another record: the read of changes moves the watermark past
    // the share, which the refused listing would have found.
    share_file(&sandbox, 9_004, &id(1));
    std::thread::sleep(std::time::Duration::from_millis(5));
    touch(
        &sandbox,
        &id(2),
        json!({"Description": "edited after the share"}),
    );
    let (code, refused, stderr) = support::etl_json(&project.root, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{refused}");
    assert!(stderr.contains("QUERY_TIMEOUT"), "{stderr}");
    let opportunities = direction(&refused, "opportunities", "import");
    assert_eq!(opportunities["updated"], 1, "{refused}");
    assert_eq!(opportunities["attachments_copied"], 0, "{refused}");

    one_record_read_again_for_its_file(&project);
}

#[test]
fn a_file_that_failed_to_copy_is_tried_again_by_the_next_read_of_changes() {
    let (sandbox, project) = importing(4, &["accounts", "contacts", "opportunities"]);
    run(&project, &["run"]);
    nothing_more_to_read(&project);
    let parent = live_records(&sandbox, "Opportunity")[1]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = b"listed bigger than it is";
    let version = put_file(&sandbox, 9_003, &parent, body);
    let set_size = |size: usize| {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        let version = state.org.get_mut(&version).unwrap();
        version.insert("ContentSize".into(), json!(size));
    };
    // Listed bigger than the body Salesforce sends: the copy fails, the run goes on.
    set_size(999_999);
    let (code, failed, stderr) = support::etl_json(&project.root, &["run", "--json"]);
    assert_eq!(code, 1, "{stderr}\n{failed}");
    let opportunities = direction(&failed, "opportunities", "import");
    assert_eq!(opportunities["extracted"], 1, "{failed}");
    assert_eq!(opportunities["attachments_failed"], 1, "{failed}");

    // Nothing moves in Salesforce's stamps, yet the record is read again for its file.
    set_size(body.len());
    one_record_read_again_for_its_file(&project);
}

#[test]
fn a_deletion_reaches_a_read_of_changes_that_filters_deleted_records_out() {
    let (sandbox, project) = accounts_importing(6, Some("deactivate"));
    run(&project, &["run"]);
    // Not one of the first three accounts, which Halo's seed holds already.
    let account = live_records(&sandbox, "Account")[4].clone();
    touch(
        &sandbox,
        account["Id"].as_str().unwrap(),
        json!({"IsDeleted": true}),
    );
    // The daily look-up of missing records is not due: the read of changes finds it.
    let done = run(&project, &["run"]);
    let accounts = direction(&done, "accounts", "import");
    assert_eq!(accounts["deactivated"], 1, "{done}");
    let again = run(&project, &["run"]);
    assert_eq!(
        direction(&again, "accounts", "import")["deactivated"],
        0,
        "{again}"
    );
}
