//! `etl run` / `etl plan` end to end: the binary against both sandboxes over HTTP, with a real
//! staging file. The example pipelines import; a rerun writes nothing; records changed in
//! Salesforce are updated with exactly the changed fields; customers and users that already
//! exist in Halo are linked, not duplicated; users of unimported accounts go to the default site.

use std::process::Command;

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options};

mod support;
use support::{
    halo_get, halo_post, halo_token, live_records, pipeline, project, salesforce_records,
    staging_rows, touch, Project,
};

fn etl(project: &Project, args: &[&str]) -> (i32, Value, String) {
    support::etl_json(&project.root, args)
}

#[test]
fn accounts_and_contacts_import_then_rerun_changes_nothing() {
    let sandbox = server::start(Options {
        accounts: 40,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts", "contacts"]);

    // The plan writes nothing and shows what a run would do.
    let (code, plan, stderr) = etl(&project, &["plan", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let estimate = plan["estimated_salesforce_calls"].as_u64().unwrap();
    let accounts = pipeline(&plan, "accounts");
    let live_accounts = live_records(&sandbox, "Account").len() as u64;
    assert_eq!(accounts["extracted"], live_accounts);
    // The three customers the Halo seed shares with Salesforce are matched by name.
    let matched =
        accounts["linked"].as_u64().unwrap() + accounts["planned_updates"].as_u64().unwrap();
    assert_eq!(matched, 3, "{plan}");
    assert_eq!(accounts["planned_creates"], live_accounts - 3);
    let token = halo_token(&sandbox);
    assert_eq!(
        halo_get(&sandbox, &token, "Client")["record_count"],
        4,
        "plan wrote nothing"
    );

    let (code, run, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{run}");
    // The plan's estimate: the describe, the query pages and the attachment listings of each
    // pipeline, as the run makes them (no retries against the sandbox).
    let used: u64 = run["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source_api_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(estimate, used, "the plan's estimate of Salesforce calls");
    // The run's history keeps the calls of each side (`etl runs show`).
    let run_id = run["run_id"].as_str().unwrap();
    let (code, shown, stderr) = etl(&project, &["runs", "show", run_id, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let halo_used: u64 = run["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["target_api_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(shown["api_calls"]["source"], used, "{shown}");
    assert_eq!(shown["api_calls"]["target"], halo_used, "{shown}");
    let accounts = pipeline(&run, "accounts");
    assert_eq!(accounts["created"], live_accounts - 3, "{run}");
    assert_eq!(accounts["failed"], 0);
    let contacts = pipeline(&run, "contacts");
    assert_eq!(contacts["failed"], 0, "{run}");
    assert!(contacts["created"].as_u64().unwrap() > 0);
    assert_eq!(
        halo_get(&sandbox, &token, "Client")["record_count"],
        1 + live_accounts,
        "every account once, the shared ones not duplicated"
    );

    // A user lands at its customer's main site; the account manager is the owner's agent.
    let sf_contact = live_records(&sandbox, "Contact")
        .into_iter()
        .find(|c| c["AccountId"].is_string())
        .unwrap();
    let email = sf_contact["Email"].as_str().unwrap();
    let users = halo_get(&sandbox, &token, &format!("Users?search={email}"));
    assert_eq!(users["record_count"], 1, "{users}");
    let user = &users["users"][0];
    let client = halo_get(&sandbox, &token, &format!("Client/{}", user["client_id"]));
    assert_eq!(user["site_id_int"], client["main_site_id"]);

    // A second run writes nothing.
    let (code, rerun, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    for name in ["accounts", "contacts"] {
        let p = pipeline(&rerun, name);
        assert_eq!(
            (p["created"].clone(), p["updated"].clone()),
            (json!(0), json!(0)),
            "{rerun}"
        );
    }

    // Five accounts changed in Salesforce: exactly those five are updated, with only the
    // changed field.
    let changed: Vec<String> = live_records(&sandbox, "Account")
        .iter()
        .take(5)
        .map(|a| a["Id"].as_str().unwrap().to_string())
        .collect();
    for id in &changed {
        touch(
            &sandbox,
            id,
            json!({"Website": format!("https://changed.example/{id}")}),
        );
    }
    let (code, third, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let accounts = pipeline(&third, "accounts");
    assert_eq!(accounts["updated"], 5, "{third}");
    assert_eq!(accounts["created"], 0);
    let run_id = third["run_id"].as_str().unwrap();
    let (code, _, _) = etl(&project, &["sql", "SELECT 1"]);
    assert_eq!(code, 0);
    let output = Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("--project")
        .arg(project.root.join("etl.yaml"))
        .args([
            "sql",
            "--format",
            "json",
            &format!("SELECT source_id, changed_fields::VARCHAR AS changed FROM accounts_changes WHERE run_id = '{run_id}' AND action = 'update' ORDER BY source_id"),
        ])
        .env("SF_SECRET", "x")
        .env("HALO_SECRET", "x")
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        let changed: Value = serde_json::from_str(row["changed"].as_str().unwrap()).unwrap();
        let fields: Vec<&str> = changed
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["website"], "{changed}");
    }
    let updated = halo_get(&sandbox, &token, "Client?search=");
    let websites: Vec<&Value> = updated["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["website"])
        .collect();
    for id in &changed {
        assert!(websites.contains(&&json!(format!("https://changed.example/{id}"))));
    }
}

#[test]
fn deselected_records_are_skipped_and_a_bad_query_shows_salesforces_error() {
    let sandbox = server::start(Options {
        accounts: 10,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let first = salesforce_records(&sandbox, "Account")[5]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, run, stderr) = etl(&project, &["run", "--json", "--exclude", &first]);
    assert_eq!(code, 0, "{stderr}");
    let accounts = pipeline(&run, "accounts");
    assert_eq!(accounts["skipped"], 1, "{run}");

    let pipeline_file = project.root.join("pipelines/accounts.yaml");
    let text = std::fs::read_to_string(&pipeline_file).unwrap();
    std::fs::write(
        &pipeline_file,
        text.replace("where: IsDeleted = false", "where: Nmae = 'x'"),
    )
    .unwrap();
    let (code, _, stderr) = etl(&project, &["run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Nmae"), "{stderr}");
}

#[test]
fn select_keeps_the_records_an_id_or_a_condition_names_and_a_bad_condition_says_why() {
    let sandbox = server::start(Options {
        accounts: 10,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let accounts = salesforce_records(&sandbox, "Account");
    let city = accounts[3]["BillingCity"].as_str().unwrap().to_string();
    let in_city = accounts
        .iter()
        .filter(|a| a["BillingCity"] == json!(city))
        .count() as u64;
    assert!(in_city < 10, "the seed puts accounts in several cities");
    let condition = format!("BillingCity = '{}'", city.replace('\'', "''"));
    let (code, plan, stderr) = etl(&project, &["plan", "--json", "--select", &condition]);
    assert_eq!(code, 0, "{stderr}");
    let planned = pipeline(&plan, "accounts");
    assert_eq!(planned["planned_creates"], in_city, "{plan}");
    assert_eq!(planned["skipped"], 10 - in_city, "{plan}");

    let one = accounts[7]["Id"].as_str().unwrap();
    let (code, plan, stderr) = etl(&project, &["plan", "--json", "--select", one]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(pipeline(&plan, "accounts")["planned_creates"], 1, "{plan}");
    assert_eq!(pipeline(&plan, "accounts")["skipped"], 9, "{plan}");

    // A condition over a column the staged extract lacks: DuckDB's message, the pipeline named.
    let (code, _, stderr) = etl(&project, &["plan", "--select", "Nmae = 'x'"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("selection `where` of pipeline accounts") && stderr.contains("Nmae"),
        "{stderr}"
    );
    // That plan stopped: applying it is refused, with where to look.
    let (_, runs, _) = etl(&project, &["runs", "--format", "json"]);
    let stopped = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "error", "{runs}");
    let (code, _, stderr) = etl(&project, &["apply", &stopped]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did not finish"), "{stderr}");
    assert_eq!(live_records(&sandbox, "Account").len(), 10);
    let token = halo_token(&sandbox);
    assert_eq!(halo_get(&sandbox, &token, "Client")["record_count"], 4);
}

#[test]
fn the_summary_table_says_what_a_plan_would_do_and_what_a_run_did() {
    let sandbox = server::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    // The cells of a table line drawn by comfy-table.
    let cells = |line: &str| -> Vec<String> {
        line.split(['│', '┆'])
            .map(|cell| cell.trim().to_string())
            .filter(|cell| !cell.is_empty())
            .collect()
    };
    let header = |stdout: &str| -> Vec<String> {
        cells(
            stdout
                .lines()
                .find(|line| line.contains("pipeline"))
                .unwrap_or_default(),
        )
    };
    // The summary's row of a direction (the plan's review table, printed first, has rows of
    // its own with fewer cells).
    let row = |stdout: &str, direction: &str| -> Vec<String> {
        stdout
            .lines()
            .map(cells)
            .find(|cells| cells.len() >= 10 && cells[0] == "accounts" && cells[1] == direction)
            .unwrap_or_default()
    };
    let (code, stdout, stderr) = support::etl_output(&project.root, &["plan"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        header(&stdout),
        [
            "pipeline",
            "direction",
            "extracted",
            "create",
            "update",
            "unchanged",
            "link",
            "skip",
            "remove",
            "conflicts",
            "API calls (SF/Halo)"
        ],
        "{stdout}"
    );
    // Five accounts, three of them matched by name to customers the Halo seed shares (each
    // differs in a few fields): two creates and three updates.
    let planned = row(&stdout, "import");
    assert_eq!(
        planned[..5],
        ["accounts", "import", "5", "2", "3"],
        "{stdout}"
    );

    let (code, stdout, stderr) = support::etl_output(&project.root, &["run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        header(&stdout),
        [
            "pipeline",
            "direction",
            "extracted",
            "created",
            "updated",
            "unchanged",
            "linked",
            "skipped",
            "removed",
            "failed",
            "conflicts",
            "API calls (SF/Halo)"
        ],
        "{stdout}"
    );
    let done = row(&stdout, "import");
    assert_eq!(done[..5], ["accounts", "import", "5", "2", "3"], "{stdout}");
    assert_eq!(done[9], "0", "nothing failed: {stdout}");
}

#[test]
fn apply_loads_the_reviewed_plan_and_refuses_one_the_source_moved_away_from() {
    let sandbox = server::start(Options {
        accounts: 12,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let accounts = salesforce_records(&sandbox, "Account");
    let deselected = accounts[4]["Id"].as_str().unwrap().to_string();
    let (code, plan, stderr) = etl(&project, &["plan", "--json", "--exclude", &deselected]);
    assert_eq!(code, 0, "{stderr}");
    let run_id = plan["run_id"].as_str().unwrap().to_string();
    let planned = pipeline(&plan, "accounts");
    let writes =
        planned["planned_creates"].as_u64().unwrap() + planned["planned_updates"].as_u64().unwrap();

    // Loading a run that is not a plan, or an unknown one, is refused.
    let (code, _, stderr) = etl(&project, &["apply", "r-nope"]);
    assert_eq!(code, 2, "{stderr}");

    let (code, applied, stderr) = etl(&project, &["apply", &run_id, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let loaded = pipeline(&applied, "accounts");
    assert_eq!(
        loaded["created"].as_u64().unwrap() + loaded["updated"].as_u64().unwrap(),
        writes,
        "{applied}"
    );
    assert_eq!(
        loaded["skipped"], 1,
        "the deselection of the plan holds: {applied}"
    );
    let (code, _, stderr) = etl(&project, &["apply", applied["run_id"].as_str().unwrap()]);
    assert_eq!(code, 2, "an apply is not a plan: {stderr}");

    // A new plan, then the record changes in Salesforce before it is applied.
    let target = accounts[0]["Id"].as_str().unwrap().to_string();
    touch(
        &sandbox,
        &target,
        json!({"Website": "https://first.example"}),
    );
    let (_, second_plan, _) = etl(&project, &["plan", "--json"]);
    let second = second_plan["run_id"].as_str().unwrap().to_string();
    touch(
        &sandbox,
        &target,
        json!({"Website": "https://second.example"}),
    );
    let (code, _, stderr) = etl(&project, &["apply", &second]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("moved on"), "{stderr}");
    let (code, forced, stderr) = etl(&project, &["apply", &second, "--force", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(pipeline(&forced, "accounts")["updated"], 1, "{forced}");
}

/// A sandbox of `accounts` accounts whose Halo refuses every user write with a server error.
fn users_refused(accounts: u64) -> etl::sandbox::server::Running {
    let plan: etl::sandbox::faults::FaultPlan = serde_saphyr::from_str(
        "faults:\n  - { route: \"/api/Users\", methods: [POST], kind: status, status: 500 }\n",
    )
    .unwrap();
    server::start(Options {
        accounts,
        faults: Some(plan),
        ..Options::default()
    })
    .unwrap()
}

#[test]
fn failed_writes_are_reported_staged_and_shown_by_runs_show() {
    // Halo refuses every user write with a server error: contacts fail, accounts land.
    let sandbox = users_refused(6);
    let project = project(&sandbox, &["accounts", "contacts"]);
    let (code, run, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 1, "some records failed: {stderr}");
    let contacts = pipeline(&run, "contacts");
    assert!(contacts["failed"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(pipeline(&run, "accounts")["failed"], 0);
    let run_id = run["run_id"].as_str().unwrap();
    let (code, shown, stderr) = etl(&project, &["runs", "show", run_id, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let failed = shown["failed_records"].as_array().unwrap();
    assert_eq!(failed.len() as u64, contacts["failed"].as_u64().unwrap());
    assert_eq!(failed[0]["pipeline"], "contacts");
    assert!(
        failed[0]["message"].as_str().unwrap().contains("500"),
        "{shown}"
    );
    assert!(shown["api_calls"]["target"].as_u64().unwrap() > 0);
}

#[test]
fn past_twenty_failed_records_the_text_summary_says_how_many_more() {
    let sandbox = users_refused(12);
    let project = project(&sandbox, &["accounts", "contacts"]);
    let (code, _, stderr) = support::etl_output(&project.root, &["run"]);
    assert_eq!(code, 1, "some records failed: {stderr}");
    let shown = stderr
        .lines()
        .filter(|l| l.starts_with("failed contacts (import)"))
        .count();
    let more_line = stderr
        .lines()
        .find(|l| l.contains("more failed records"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let more: usize = more_line
        .trim_start_matches("… and ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_, runs, _) = etl(&project, &["runs", "--format", "json"]);
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    assert!(
        more_line.contains(&format!("`etl runs show {run_id}`")),
        "{more_line}"
    );
    let (_, shown_run, _) = etl(&project, &["runs", "show", &run_id, "--format", "json"]);
    let all = shown_run["failed_records"].as_array().unwrap().len();
    assert!(all > 20, "the seed gives more than 20 contacts: {all}");
    assert_eq!((shown, shown + more), (20, all), "{stderr}");
}

#[test]
fn users_whose_account_was_not_imported_go_to_the_default_site() {
    let sandbox = server::start(Options {
        accounts: 8,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts", "contacts"]);
    // Not one of the three Halo already holds (those carry their Account Id and are linked).
    let left_out = live_records(&sandbox, "Account")
        .into_iter()
        .nth(4)
        .unwrap();
    let left_out_id = left_out["Id"].as_str().unwrap().to_string();
    let accounts = project.root.join("pipelines/accounts.yaml");
    let contacts = project.root.join("pipelines/contacts.yaml");
    let (code, run, stderr) = etl(
        &project,
        &[
            "run",
            accounts.to_str().unwrap(),
            "--json",
            "--exclude",
            &left_out_id,
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{run}");
    let (code, run, stderr) = etl(&project, &["run", contacts.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}\n{run}");
    let orphan = live_records(&sandbox, "Contact")
        .into_iter()
        .find(|c| c["AccountId"] == json!(left_out_id))
        .unwrap();
    let token = halo_token(&sandbox);
    let users = halo_get(
        &sandbox,
        &token,
        &format!("Users?search={}", orphan["Email"].as_str().unwrap()),
    );
    assert_eq!(users["record_count"], 1, "{users}");
    assert_eq!(
        users["users"][0]["site_id_int"], 1,
        "the default site: {users}"
    );
}

#[test]
fn a_field_the_org_does_not_have_points_at_the_pipeline_line() {
    let sandbox = server::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let line_of = |needle: &str| {
        let text = std::fs::read_to_string(project.root.join("pipelines/accounts.yaml")).unwrap();
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    };
    // A custom field the offline catalog cannot know about, so only the org can refuse it: in a
    // mapping, the org's describe does, before any data moves.
    project.edit(
        "accounts",
        "fields:\n",
        "fields:\n  - { salesforce: Region__c, halo: customfields.CFRegion }\n",
    );
    let (code, _, stderr) = etl(&project, &["run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Account has no field `Region__c` (fields[0])"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "--> pipelines/accounts.yaml:{}:",
            line_of("Region__c")
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pipeline accounts: pipeline accounts"),
        "{stderr}"
    );

    // In the `where`, Salesforce's own error for the query, pointing at the `where`.
    project.edit(
        "accounts",
        "  - { salesforce: Region__c, halo: customfields.CFRegion }\n",
        "",
    );
    project.edit(
        "accounts",
        "where: IsDeleted = false",
        "where: Region__c = 'North'",
    );
    let (code, _, stderr) = etl(&project, &["run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("INVALID_FIELD") && stderr.contains("No such column 'Region__c'"),
        "Salesforce's own words: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "--> pipelines/accounts.yaml:{}:",
            line_of("Region__c")
        )),
        "the pipeline line: {stderr}"
    );
}

/// A child subquery mapped to Halo custom fields: `$.Attachments.totalSize` imports each
/// account's number of attachments (0 for none), and a template over
/// `record.Attachments.records` sees every child row, also of a parent with more children than
/// one of Salesforce's child pages (the sandbox pages children 2 at a time here).
#[test]
fn child_subquery_counts_and_rows_import_whole() {
    let sandbox = server::start(Options {
        accounts: 6,
        salesforce: etl::sandbox::salesforce::state::Config {
            child_batch_size: 2,
            ..Default::default()
        },
        ..Options::default()
    })
    .unwrap();
    let accounts: Vec<String> = live_records(&sandbox, "Account")
        .iter()
        .map(|a| a["Id"].as_str().unwrap().to_string())
        .collect();
    {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        let owner = etl::sandbox::salesforce::ids::make("005", 1);
        for (parent, count) in [(&accounts[0], 5), (&accounts[1], 1)] {
            for n in 0..count {
                let attachment = json!({"ParentId": parent, "Name": format!("counted-{n}.txt"),
                    "ContentType": "text/plain", "BodyLength": 1, "IsPrivate": false});
                state.org.create(
                    "Attachment",
                    attachment.as_object().unwrap().clone(),
                    &owner,
                );
            }
        }
    }
    let attachments = live_records(&sandbox, "Attachment");
    let count_of = |account: &str| {
        attachments
            .iter()
            .filter(|a| a["ParentId"] == json!(account))
            .count()
    };
    assert!(count_of(&accounts[0]) > 2, "more than one child page");
    assert!(
        accounts.iter().any(|a| count_of(a) == 0),
        "an account without any"
    );

    let project = project(&sandbox, &[]);
    std::fs::write(
        project.root.join("pipelines/attachment_counts.yaml"),
        "pipeline: attachment_counts\n\
         salesforce:\n  object: Account\n  \
           query: SELECT Id, Name, (SELECT Id FROM Attachments) FROM Account\n\
         halo:\n  entity: Client\n  match: [name]\n\
         sync:\n  import: upsert\n  sync_back: { create: false, update: false }\n\
         fields:\n  \
           - { salesforce: Name, halo: name }\n  \
           - { salesforce: \"$.Attachments.totalSize\", halo: customfields.CFAttachmentCount }\n  \
           - { halo: customfields.CFAttachmentRows, template: \"{{ record.Attachments.records | length }}\" }\n",
    )
    .unwrap();
    let token = halo_token(&sandbox);
    for name in ["CFAttachmentCount", "CFAttachmentRows"] {
        halo_post(
            &sandbox,
            &token,
            "FieldInfo",
            json!([{"name": name, "label": name, "typeid": 2}]),
        );
    }

    let (code, run, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{run}");
    let imported = pipeline(&run, "attachment_counts");
    assert_eq!(imported["failed"], 0, "{run}");
    let links = staging_rows(
        &project.root,
        "SELECT source_id, target_id FROM id_map WHERE pipeline = 'attachment_counts'",
    );
    assert_eq!(links.len(), accounts.len());
    for link in &links {
        let account = link["source_id"].as_str().unwrap();
        let client = halo_get(
            &sandbox,
            &token,
            &format!("Client/{}", link["target_id"].as_str().unwrap()),
        );
        let field = |name: &str| {
            let value = client["customfields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .map(|f| f["value"].clone())
                .unwrap_or(Value::Null);
            match value {
                Value::String(text) => text,
                other => other.to_string(),
            }
        };
        let expected = count_of(account).to_string();
        assert_eq!(field("CFAttachmentCount"), expected, "{account}: {client}");
        assert_eq!(field("CFAttachmentRows"), expected, "{account}: {client}");
    }
}

#[test]
fn validate_online_starts_the_sandbox_when_etl_yaml_points_at_it() {
    // A project whose etl.yaml names a sandbox's ports, then that sandbox stopped.
    let first = server::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .unwrap();
    let project = project(&first, &["accounts"]);
    first.stop();
    let (code, stdout, stderr) = support::etl_output(&project.root, &["validate", "--online"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(stderr.contains("started the sandbox"), "{stderr}");
    assert!(stdout.starts_with("ok:"), "{stdout}");
}
