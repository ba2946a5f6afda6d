//! The `etl` binary's logs, end to end against the sandbox: `--log-format json` writes one JSON
//! object per stderr line (level, target, fields, the run and pipeline spans) while stdout keeps
//! the `--json` summary; the events carry the counts the summary shows; `-v`, `-vv` and
//! `RUST_LOG` choose the level; `-q` leaves nothing on stderr but errors and failed records.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{direction, pipeline, project};

/// Runs the binary with `RUST_LOG` as given (unset when `None`): exit code, stdout, stderr.
fn etl_logged(root: &Path, rust_log: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .arg("--project")
        .arg(root.join("etl.yaml"))
        .args(args)
        .env("SF_SECRET", "etl-sandbox-secret")
        .env("HALO_SECRET", "etl-sandbox-secret")
        .env_remove("RUST_LOG");
    if let Some(directives) = rust_log {
        command.env("RUST_LOG", directives);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A sandbox whose Halo refuses every user create with a 500: the contacts fail, the rest
/// loads (a run that exits 1 with failed records).
fn sandbox_failing_users() -> Running {
    let plan: etl::sandbox::faults::FaultPlan = serde_saphyr::from_str(
        "faults:\n  - { route: \"/api/Users\", methods: [POST], kind: status, status: 500 }\n",
    )
    .unwrap();
    server::start(Options {
        accounts: 4,
        faults: Some(plan),
        ..Options::default()
    })
    .unwrap()
}

fn small_sandbox() -> Running {
    server::start(Options {
        accounts: 3,
        ..Options::default()
    })
    .unwrap()
}

/// Every stderr line as a JSON object, failing on the first line that is not one.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line}"));
            assert!(event.is_object(), "not an object: {line}");
            event
        })
        .collect()
}

fn events<'a>(all: &'a [Value], message: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|e| e["fields"]["message"] == message)
        .collect()
}

/// The value of `key` in the event's spans (innermost first), e.g. the pipeline it ran in.
fn span_field<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    event["spans"]
        .as_array()?
        .iter()
        .rev()
        .find_map(|span| span.get(key))
}

#[test]
fn json_logs_are_one_object_per_stderr_line_with_the_run_in_them() {
    let sandbox = sandbox_failing_users();
    let project = project(&sandbox, &["accounts", "contacts"]);
    project.import_only("contacts");
    let (code, stdout, stderr) = etl_logged(
        &project.root,
        None,
        &["-vv", "--log-format", "json", "run", "--json"],
    );
    assert_eq!(code, 1, "the contacts fail: {stderr}");
    // stdout is still exactly the summary document.
    let summary: Value = serde_json::from_str(&stdout).expect("stdout is the JSON summary");
    let run_id = summary["run_id"].as_str().unwrap();
    let failed_contacts = pipeline(&summary, "contacts")["failed"].as_u64().unwrap();
    assert!(failed_contacts > 0, "{summary}");

    let all = json_lines(&stderr);
    assert!(all.len() > 10, "a run at -vv says a lot: {stderr}");
    for event in &all {
        assert!(event["timestamp"].is_string(), "{event}");
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG"].contains(&event["level"].as_str().unwrap_or("")),
            "-vv stops at debug: {event}"
        );
        assert!(
            event["target"].as_str().unwrap_or("").starts_with("etl::"),
            "{event}"
        );
        assert!(event["fields"]["message"].is_string(), "{event}");
    }

    let started = events(&all, "run started");
    assert_eq!(started.len(), 1, "{stderr}");
    assert_eq!(span_field(started[0], "run_id"), Some(&Value::from(run_id)));

    // Each stage's counts are the summary's.
    let extracted = events(&all, "extracted and transformed");
    let accounts = extracted
        .iter()
        .find(|e| span_field(e, "pipeline") == Some(&Value::from("accounts")))
        .expect("the accounts' extract stage");
    assert_eq!(
        accounts["fields"]["extracted"],
        pipeline(&summary, "accounts")["extracted"]
    );
    assert_eq!(accounts["fields"]["stage"], "extract");
    let loaded = events(&all, "loaded");
    let contacts = loaded
        .iter()
        .find(|e| span_field(e, "pipeline") == Some(&Value::from("contacts")))
        .expect("the contacts' load stage");
    assert_eq!(contacts["fields"]["failed"], failed_contacts);
    assert!(contacts["fields"]["elapsed_ms"].is_u64(), "{contacts}");

    // Every failed record is a warning naming it, inside its pipeline's span.
    let failed = events(&all, "record failed");
    assert_eq!(failed.len() as u64, failed_contacts, "{stderr}");
    for event in &failed {
        assert_eq!(event["level"], "WARN");
        assert_eq!(event["fields"]["pipeline"], "contacts");
        assert!(event["fields"]["source_id"].is_string(), "{event}");
        assert!(
            event["fields"]["error"]
                .as_str()
                .unwrap_or("")
                .contains("HTTP 500"),
            "the system's message: {event}"
        );
        assert_eq!(span_field(event, "run_id"), Some(&Value::from(run_id)));
    }

    // Each HTTP request at debug: method, a path without host or query, status, duration.
    let requests = events(&all, "Halo request");
    assert!(!requests.is_empty(), "{stderr}");
    for request in &requests {
        let path = request["fields"]["path"].as_str().unwrap();
        assert!(!path.contains('?') && !path.contains("://"), "{request}");
        assert!(request["fields"]["status"].is_u64(), "{request}");
        assert!(request["fields"]["elapsed_ms"].is_u64(), "{request}");
    }
    assert!(
        requests
            .iter()
            .any(|r| r["fields"]["status"] == 500 && r["fields"]["method"] == "POST"),
        "the refused user creates are logged: {stderr}"
    );
    assert!(!events(&all, "Salesforce request").is_empty(), "{stderr}");
    assert_eq!(events(&all, "Halo token obtained").len(), 1, "{stderr}");
    let finished = events(&all, "run finished");
    assert_eq!(finished.len(), 1, "{stderr}");
    assert_eq!(finished[0]["fields"]["status"], summary["status"]);
}

#[test]
fn levels_follow_v_and_rust_log() {
    let sandbox = small_sandbox();
    let project = project(&sandbox, &["accounts"]);
    project.import_only("accounts");
    let root = &project.root;
    let has = |stderr: &str, level: &str| stderr.lines().any(|l| l.contains(level));

    // No flag: warnings and errors only, so a clean run shows only its progress lines.
    let (code, _, stderr) = etl_logged(root, None, &["run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("accounts: extracting Account"), "{stderr}");
    assert!(
        !has(&stderr, " INFO ") && !has(&stderr, " DEBUG "),
        "{stderr}"
    );

    let (code, _, stderr) = etl_logged(root, None, &["-v", "run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(has(&stderr, " INFO "), "-v shows info: {stderr}");
    assert!(stderr.contains("pipeline done"), "{stderr}");
    assert!(!has(&stderr, " DEBUG "), "-v stops at info: {stderr}");

    let (code, _, stderr) = etl_logged(root, None, &["-vv", "run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        has(&stderr, " DEBUG ") && stderr.contains("Halo request"),
        "{stderr}"
    );
    assert!(!has(&stderr, " TRACE "), "{stderr}");

    // RUST_LOG replaces the flags: here the engine at info and nothing from the connectors.
    let (code, _, stderr) = etl_logged(root, Some("etl::engine=info"), &["-vv", "run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("etl::engine::run"), "{stderr}");
    assert!(
        !stderr.contains("Halo request") && !stderr.contains("etl::cli::run"),
        "{stderr}"
    );
    let (code, _, stderr) = etl_logged(root, Some("etl=debug"), &["run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Salesforce request"), "{stderr}");

    // -q and -v contradict each other.
    let (code, _, stderr) = etl_logged(root, None, &["-q", "-v", "run"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn quiet_leaves_only_errors_and_failed_records_on_stderr() {
    let sandbox = small_sandbox();
    let project = project(&sandbox, &["accounts"]);
    project.import_only("accounts");
    let root = &project.root;
    let (code, stdout, stderr) = etl_logged(root, None, &["-q", "run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "", "a clean run under -q prints nothing on stderr");
    assert!(
        stdout.contains("accounts"),
        "the summary table stays: {stdout}"
    );
    let (code, stdout, stderr) = etl_logged(root, None, &["-q", "run", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    let summary: Value = serde_json::from_str(&stdout).expect("the --json summary stays");
    assert_eq!(direction(&summary, "accounts", "import")["failed"], 0);

    let failing = sandbox_failing_users();
    let project = project_of(&failing);
    let (code, _, stderr) = etl_logged(&project.root, None, &["-q", "run"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.is_empty(), "the failed records are said");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("failed contacts (import) "),
            "only failed records under -q: {line}"
        );
    }
}

fn project_of(sandbox: &Running) -> support::Project {
    let project = project(sandbox, &["accounts", "contacts"]);
    project.import_only("accounts");
    project.import_only("contacts");
    project
}
