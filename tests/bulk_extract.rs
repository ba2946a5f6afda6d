//! A pipeline whose object is big enough (by `SELECT COUNT()`, against the connection's
//! `bulk_query_threshold`) is read through a Bulk API 2.0 query job, and stages exactly the
//! records a read through REST pages stages: same ids, same values, same types.

use std::collections::BTreeMap;

use serde_json::Value;

use etl::sandbox::server::{self, Options};

mod support;
use support::{project, staging_rows, Project};

fn plan(project: &Project) -> String {
    let (code, stdout, stderr) =
        support::etl_output(&project.root, &["plan", "--json", "--full", "-v"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    stderr
}

fn set_threshold(project: &Project, threshold: u64) {
    let path = project.root.join("etl.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = match text.find("    bulk_query_threshold:") {
        Some(at) => {
            let end = at + text[at..].find('\n').unwrap() + 1;
            format!("{}{}", &text[..at], &text[end..])
        }
        None => text,
    };
    let text = text.replacen(
        "    flow: client_credentials\n",
        &format!("    flow: client_credentials\n    bulk_query_threshold: {threshold}\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
}

/// The records a run staged, by source id.
fn staged(project: &Project, run_id: &str) -> BTreeMap<String, Value> {
    staging_rows(
        &project.root,
        &format!("SELECT source_id, record FROM contacts_extracted WHERE run_id = '{run_id}'"),
    )
    .into_iter()
    .map(|row| {
        let record = match &row["record"] {
            Value::String(text) => serde_json::from_str(text).unwrap(),
            other => other.clone(),
        };
        (row["source_id"].as_str().unwrap().to_string(), record)
    })
    .collect()
}

#[test]
fn a_big_object_is_read_through_bulk_and_stages_what_rest_stages() {
    let sandbox = server::start(Options {
        accounts: 12,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts", "contacts"]);
    for name in ["accounts", "contacts"] {
        project.import_only(name);
        project.edit(name, "  incremental:", "  # incremental:");
    }

    set_threshold(&project, 1_000_000);
    let rest_log = plan(&project);
    assert!(!rest_log.contains("Bulk API 2.0 query job"), "{rest_log}");
    set_threshold(&project, 1);
    let bulk_log = plan(&project);
    assert!(bulk_log.contains("Bulk API 2.0 query job"), "{bulk_log}");

    let runs = staging_rows(&project.root, "SELECT run_id FROM runs ORDER BY started_at");
    let (rest_run, bulk_run) = (
        runs[0]["run_id"].as_str().unwrap(),
        runs[1]["run_id"].as_str().unwrap(),
    );
    let (rest, bulk) = (staged(&project, rest_run), staged(&project, bulk_run));
    assert!(rest.len() >= 12, "{}", rest.len());
    assert_eq!(
        rest.keys().collect::<Vec<_>>(),
        bulk.keys().collect::<Vec<_>>()
    );
    for (id, record) in &rest {
        assert_eq!(Some(record), bulk.get(id), "{id}");
    }
}
