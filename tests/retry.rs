//! `etl retry --failed` end to end: a run against a sandbox whose Halo refuses every user write
//! leaves failed contacts; the sandbox comes back (same data folder) without the fault, and the
//! retry sends exactly those contacts and nothing else; a second retry finds nothing to do.

use serde_json::Value;

use etl::sandbox::server::{self, Options};

mod support;
use support::{etl_json as etl, etl_output, pipeline, project, staging_rows};

#[test]
fn retry_sends_exactly_the_records_that_failed() {
    let data = tempfile::tempdir().unwrap();
    let plan: etl::sandbox::faults::FaultPlan = serde_saphyr::from_str(
        "faults:\n  - { route: \"/api/Users\", methods: [POST], kind: status, status: 500 }\n",
    )
    .unwrap();
    let faulty = server::start(Options {
        accounts: 6,
        data_dir: Some(data.path().to_path_buf()),
        faults: Some(plan),
        ..Options::default()
    })
    .unwrap();
    let project = project(&faulty, &["accounts", "contacts"]);
    project.import_only("contacts");

    // Nothing has run yet: nothing to retry.
    let (code, stdout, stderr) = etl_output(&project.root, &["retry", "--failed"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("nothing to retry"), "{stdout}");

    let (code, run, stderr) = etl(&project.root, &["run", "--json"]);
    assert_eq!(code, 1, "some records failed: {stderr}\n{run}");
    let failed = pipeline(&run, "contacts")["failed"].as_u64().unwrap();
    assert!(failed > 0, "{run}");
    assert_eq!(pipeline(&run, "accounts")["failed"], 0, "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let failed_ids: Vec<Value> = staging_rows(
        &project.root,
        &format!("SELECT source_id FROM contacts_results WHERE run_id = '{run_id}' AND status = 'failed' ORDER BY source_id"),
    );
    assert_eq!(failed_ids.len() as u64, failed);

    // The sandbox comes back on the same data, without the fault.
    let (old_sf, old_halo) = (faulty.salesforce_url.clone(), faulty.halo_url.clone());
    faulty.stop();
    let sandbox = server::start(Options {
        data_dir: Some(data.path().to_path_buf()),
        ..Options::default()
    })
    .unwrap();
    let config = project.root.join("etl.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(&old_sf, &sandbox.salesforce_url)
            .replace(&old_halo, &sandbox.halo_url),
    )
    .unwrap();

    let (code, retry, stderr) = etl(&project.root, &["retry", "--failed", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{retry}");
    assert_eq!(retry["command"], "retry");
    let contacts = pipeline(&retry, "contacts");
    // Users Halo already had (matched by email) are updated, the others created.
    assert_eq!(
        contacts["created"].as_u64().unwrap() + contacts["updated"].as_u64().unwrap(),
        failed,
        "{retry}"
    );
    assert_eq!(contacts["failed"], 0, "{retry}");
    // Accounts had no failure: not run, or run without writing anything.
    for entry in retry["pipelines"].as_array().unwrap() {
        if entry["pipeline"] == "accounts" {
            assert_eq!(entry["created"], 0, "{retry}");
            assert_eq!(entry["updated"], 0, "{retry}");
        }
    }
    assert!(
        retry["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["direction"] == "import" || (p["created"] == 0 && p["updated"] == 0)),
        "nothing synced back: {retry}"
    );

    // Exactly the failed records were written, each once.
    let retry_id = retry["run_id"].as_str().unwrap();
    let written: Vec<Value> = staging_rows(
        &project.root,
        &format!(
            "SELECT source_id FROM contacts_results WHERE run_id = '{retry_id}' ORDER BY source_id"
        ),
    );
    assert_eq!(written, failed_ids);
    let runs = staging_rows(
        &project.root,
        &format!("SELECT command FROM runs WHERE run_id = '{retry_id}'"),
    );
    assert_eq!(runs[0]["command"], "retry");

    // The last run (the retry) had no failure: nothing to do, nothing run.
    let (code, stdout, stderr) = etl_output(&project.root, &["retry", "--failed"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("no records failed in the last run") && stdout.contains(retry_id),
        "{stdout}"
    );
    let (code, again, _) = etl(&project.root, &["retry", "--failed", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(again["status"], "nothing to retry", "{again}");
    let count = staging_rows(&project.root, "SELECT count(*) AS n FROM runs");
    assert_eq!(
        count[0]["n"], 2,
        "only the run and the one retry: {count:?}"
    );

    // An unknown pipeline name is a configuration error.
    let (code, _, stderr) = etl_output(&project.root, &["retry", "nope", "--failed"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no pipeline named `nope`"), "{stderr}");
}
