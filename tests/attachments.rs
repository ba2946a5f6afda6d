//! Attachments end to end: the `etl` binary against both sandboxes over HTTP. Every attachment
//! (and file) of an imported opportunity lands on its Halo ticket byte for byte, `AttachmentCount`
//! is staged with each record, a rerun uploads nothing, and customers (which Halo cannot hold
//! attachments on) report theirs as skipped without failing the run.

use std::collections::HashMap;

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{halo_get, halo_token, pipeline, project, put_file, salesforce_records, Project};

fn etl(project: &Project, args: &[&str]) -> (i32, Value, String, String) {
    let (code, stdout, stderr) = support::etl_output(&project.root, args);
    let summary = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, summary, stdout, stderr)
}

/// `GET /api/Attachment/{id}`: the file's bytes as Halo serves them.
fn halo_download(sandbox: &Running, token: &str, id: &str) -> Vec<u8> {
    let mut response = ureq::get(format!("{}/api/Attachment/{id}", sandbox.halo_url))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Accept", "*/*")
        .call()
        .unwrap();
    response.body_mut().read_to_vec().unwrap()
}

fn salesforce_blob(sandbox: &Running, id: &str) -> Vec<u8> {
    let state = sandbox.salesforce_state();
    let state = state.lock().unwrap();
    state.org.blob(id).unwrap().to_vec()
}

/// Rows of a query on the staging file (the `etl` process has finished with it).
fn staged(project: &Project, sql: &str) -> Vec<Vec<Option<String>>> {
    let connection = duckdb::Connection::open(project.root.join(".etl/staging.duckdb")).unwrap();
    let mut statement = connection.prepare(sql).unwrap();
    let rows = statement
        .query_map([], |row| {
            let mut out = Vec::new();
            let mut i = 0;
            while let Ok(value) = row.get::<_, Option<String>>(i) {
                out.push(value);
                i += 1;
            }
            Ok(out)
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn opportunity_attachments_land_on_their_tickets_byte_equal_once() {
    let sandbox = server::start(Options {
        accounts: 40,
        ..Options::default()
    })
    .unwrap();
    // One opportunity also holds a File, with bytes that are not text.
    let live_opportunity = salesforce_records(&sandbox, "Opportunity")
        .into_iter()
        .rev()
        .find(|o| o["IsDeleted"] != json!(true))
        .unwrap();
    let file_bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let file_version = put_file(
        &sandbox,
        1,
        live_opportunity["Id"].as_str().unwrap(),
        &file_bytes,
    );
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);

    // The plan stages AttachmentCount and shows it in the review table.
    let (code, _, stdout, stderr) = etl(&project, &["plan"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("AttachmentCount"), "{stdout}");

    let (code, run, _, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{run}");
    let opportunities = pipeline(&run, "opportunities");
    assert_eq!(opportunities["failed"], 0, "{run}");
    assert_eq!(opportunities["attachments_failed"], 0, "{run}");

    // Which Halo ticket each opportunity became.
    let tickets: HashMap<String, String> = staged(
        &project,
        "SELECT source_id, target_id FROM id_map WHERE pipeline = 'opportunities'",
    )
    .into_iter()
    .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
    .collect();
    assert!(!tickets.is_empty());
    let copied: HashMap<String, (String, String)> = staged(
        &project,
        "SELECT source_id, target_id, json_extract_string(target_record, '$.record_id')
         FROM id_map WHERE pipeline = 'opportunities:attachments'",
    )
    .into_iter()
    .map(|row| {
        (
            row[0].clone().unwrap(),
            (row[1].clone().unwrap(), row[2].clone().unwrap()),
        )
    })
    .collect();

    // Every attachment of an imported opportunity, and the file, is on its ticket.
    let mut expected: Vec<(String, String, Vec<u8>)> = salesforce_records(&sandbox, "Attachment")
        .into_iter()
        .filter(|a| tickets.contains_key(a["ParentId"].as_str().unwrap()))
        .map(|a| {
            let id = a["Id"].as_str().unwrap().to_string();
            let bytes = salesforce_blob(&sandbox, &id);
            (id, a["ParentId"].as_str().unwrap().to_string(), bytes)
        })
        .collect();
    assert!(
        expected.len() >= 3,
        "the seed attaches to some opportunities"
    );
    let file_parent = live_opportunity["Id"].as_str().unwrap().to_string();
    assert!(
        tickets.contains_key(&file_parent),
        "the file's opportunity is imported"
    );
    expected.push((
        format!("{file_version}:{file_parent}"),
        file_parent,
        file_bytes,
    ));
    assert_eq!(
        opportunities["attachments_copied"],
        expected.len() as u64,
        "{run}"
    );
    let token = halo_token(&sandbox);
    for (key, parent, bytes) in &expected {
        let (halo_id, on) = copied
            .get(key)
            .unwrap_or_else(|| panic!("{key} was not copied"));
        assert_eq!(on, &tickets[parent]);
        let details = halo_get(
            &sandbox,
            &token,
            &format!("Attachment/{halo_id}?includedetails=true"),
        );
        assert_eq!(
            details["ticket_id"].to_string(),
            tickets[parent],
            "{details}"
        );
        assert_eq!(&halo_download(&sandbox, &token, halo_id), bytes, "{key}");
    }

    // AttachmentCount is staged with each extracted record.
    let counts: HashMap<String, Option<String>> = staged(
        &project,
        "SELECT source_id, json_extract_string(record, '$.AttachmentCount')
         FROM opportunities_extracted
         WHERE run_id = (SELECT max(run_id) FROM opportunities_extracted)",
    )
    .into_iter()
    .map(|row| (row[0].clone().unwrap(), row[1].clone()))
    .collect();
    for (_, parent, _) in &expected {
        let wanted = expected.iter().filter(|(_, p, _)| p == parent).count();
        assert_eq!(counts[parent], Some(wanted.to_string()), "{parent}");
    }
    assert!(counts.values().any(|c| c.as_deref() == Some("0")));

    // Customers hold no attachments in Halo: skipped, reported once, not failures.
    let accounts = pipeline(&run, "accounts");
    assert_eq!(accounts["failed"], 0, "{run}");
    assert_eq!(accounts["attachments_failed"], 0, "{run}");
    assert_eq!(accounts["attachments_copied"], 0, "{run}");
    assert!(
        accounts["attachments_skipped"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert_eq!(
        accounts["attachment_notes"],
        json!(["Halo cannot hold attachments on Client"]),
        "{run}"
    );
    let skipped = staged(
        &project,
        "SELECT DISTINCT status, message FROM accounts_attachments",
    );
    assert_eq!(
        skipped,
        vec![vec![
            Some("skipped".to_string()),
            Some("Halo cannot hold attachments on Client".to_string())
        ]]
    );

    // A second run reading every record (`--full`) uploads nothing.
    let before = staged(
        &project,
        "SELECT count(*)::VARCHAR FROM id_map WHERE pipeline = 'opportunities:attachments'",
    );
    let (code, rerun, _, stderr) = etl(&project, &["run", "--full", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{rerun}");
    let opportunities = pipeline(&rerun, "opportunities");
    assert_eq!(opportunities["attachments_copied"], 0, "{rerun}");
    assert_eq!(
        opportunities["attachments_unchanged"],
        expected.len() as u64,
        "{rerun}"
    );
    let after = staged(
        &project,
        "SELECT count(*)::VARCHAR FROM id_map WHERE pipeline = 'opportunities:attachments'",
    );
    assert_eq!(before, after);

    // Uploads whose answers were lost (the links are gone, as if the process died right
    // after them) are found on the tickets and linked, not uploaded again.
    {
        let connection =
            duckdb::Connection::open(project.root.join(".etl/staging.duckdb")).unwrap();
        connection
            .execute(
                "DELETE FROM id_map WHERE pipeline = 'opportunities:attachments'",
                [],
            )
            .unwrap();
    }
    let (code, recovered, _, stderr) = etl(&project, &["run", "--full", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{recovered}");
    let opportunities = pipeline(&recovered, "opportunities");
    assert_eq!(opportunities["attachments_copied"], 0, "{recovered}");
    assert_eq!(
        opportunities["attachments_unchanged"],
        expected.len() as u64,
        "{recovered}"
    );
    let relinked: HashMap<String, String> = staged(
        &project,
        "SELECT source_id, target_id FROM id_map WHERE pipeline = 'opportunities:attachments'",
    )
    .into_iter()
    .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
    .collect();
    for (key, (halo_id, _)) in &copied {
        assert_eq!(relinked.get(key), Some(halo_id), "{key}");
    }
}

#[test]
fn a_failed_copy_is_reported_per_record_and_the_run_goes_on() {
    let sandbox = server::start(Options {
        accounts: 40,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let (code, _, _, stderr) = etl(&project, &["plan"]);
    assert_eq!(code, 0, "{stderr}");
    let planned: Vec<String> = staged(&project, "SELECT source_id FROM opportunities_extracted")
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect();
    // An attachment Salesforce lists bigger than the body it sends: its copy fails with the
    // reason, and the other records and files still load.
    let victim = salesforce_records(&sandbox, "Attachment")
        .into_iter()
        .find(|a| planned.iter().any(|id| a["ParentId"] == json!(id)))
        .expect("an extracted opportunity with an attachment");
    let victim_id = victim["Id"].as_str().unwrap().to_string();
    {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        state
            .org
            .get_mut(&victim_id)
            .unwrap()
            .insert("BodyLength".into(), json!(999_999));
    }
    let (code, run, _, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(
        code, 1,
        "a failed attachment makes the run's exit 1: {stderr}\n{run}"
    );
    let opportunities = pipeline(&run, "opportunities");
    assert_eq!(opportunities["failed"], 0, "{run}");
    assert_eq!(opportunities["extracted"], planned.len() as u64, "{run}");
    let failures = opportunities["attachment_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{run}");
    assert_eq!(failures[0][0], victim["ParentId"]);
    let message = failures[0][1].as_str().unwrap();
    assert!(
        message.contains(&victim_id) && message.contains("999999"),
        "{message}"
    );
    assert!(
        opportunities["attachments_copied"].as_u64().unwrap() > 0,
        "{run}"
    );
    let staged_failure = staged(
        &project,
        &format!(
            "SELECT status FROM opportunities_attachments WHERE attachment_id = '{victim_id}'"
        ),
    );
    assert_eq!(staged_failure, vec![vec![Some("failed".to_string())]]);
}

#[test]
fn files_of_a_record_left_out_are_counted_as_left_with_it() {
    let sandbox = server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap();
    let opportunity = salesforce_records(&sandbox, "Opportunity")
        .into_iter()
        .find(|o| o["IsDeleted"] != json!(true))
        .unwrap();
    let id = opportunity["Id"].as_str().unwrap().to_string();
    put_file(&sandbox, 1, &id, b"kept for later");
    let project = project(&sandbox, &["accounts", "contacts", "opportunities"]);
    let (code, _, _, stderr) = etl(&project, &["run", "--exclude", &id]);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("opportunities: attachments:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.ends_with("left with records not loaded"),
        "the excluded opportunity's files are accounted for: {line}"
    );
    // Loaded with their record by the next run.
    let (code, run, _, stderr) = etl(&project, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let opportunities = pipeline(&run, "opportunities");
    assert!(
        opportunities["attachments_copied"].as_u64().unwrap() >= 1,
        "{run}"
    );
}
