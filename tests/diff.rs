//! `etl diff` end to end: two `etl run`s against both sandboxes with records added, removed and
//! changed in Salesforce in between, then the binary's table and JSON, and a third run that
//! reads only what changed since (accounts has `salesforce.incremental`); and, over a staging file
//! built by hand, numbers compared by value, nested leaf paths, explicit runs and the refusals
//! (unknown pipeline, unknown run, a single run).

use std::path::{Path, PathBuf};

use duckdb::types::Value as Cell;
use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};
use etl::staging::{Column, ColumnType, PipelineTables, Stage, Store};

mod support;
use support::{live_records, project, staging_rows, touch};

/// Runs the binary; returns the exit code, stdout and stderr.
fn etl(root: &Path, args: &[&str]) -> (i32, String, String) {
    support::etl_output(root, args)
}

fn etl_json(root: &Path, args: &[&str]) -> Value {
    let (code, stdout, stderr) = etl(root, args);
    assert_eq!(code, 0, "{args:?}: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn live_account_ids(sandbox: &Running) -> Vec<String> {
    live_records(sandbox, "Account")
        .iter()
        .map(|a| a["Id"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn field_names(changed: &Value) -> Vec<String> {
    changed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_runs_of_accounts_diff_added_removed_and_changed_fields() {
    let sandbox = server::start(Options {
        accounts: 12,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    // The import is what is diffed here; sync back would add Halo's customers to the org.
    project.import_only("accounts");
    let ids = live_account_ids(&sandbox);
    let (back, gone, edited) = (&ids[1], &ids[2], [&ids[3], &ids[4]]);

    // `back` is deleted before the first run and restored before the second (added); `gone` is
    // deleted in between (removed); two others get a new website (changed).
    touch(&sandbox, back, json!({"IsDeleted": true}));
    let first = etl_json(&project.root, &["run", "--json"]);
    let (code, _, stderr) = etl(&project.root, &["diff", "accounts"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("only one run of accounts so far") && stderr.contains("`etl run` again"),
        "{stderr}"
    );

    touch(&sandbox, back, json!({"IsDeleted": false}));
    touch(&sandbox, gone, json!({"IsDeleted": true}));
    for id in edited {
        touch(
            &sandbox,
            id,
            json!({"Website": format!("https://changed.example/{id}")}),
        );
    }
    // A full read: `gone` is deleted, which a read of changes with `where: IsDeleted = false`
    // cannot see.
    let second = etl_json(&project.root, &["run", "--full", "--json"]);
    let (from, to) = (
        first["run_id"].as_str().unwrap(),
        second["run_id"].as_str().unwrap(),
    );

    // JSON, with the default runs: the latest and the one before it.
    let diff = etl_json(&project.root, &["diff", "accounts", "--json"]);
    assert_eq!(diff["pipeline"], "accounts");
    assert_eq!(
        (diff["from"].as_str(), diff["to"].as_str()),
        (Some(from), Some(to))
    );
    assert_eq!(diff["added"], json!([back]), "{diff}");
    assert_eq!(diff["removed"], json!([gone]), "{diff}");
    let changed = diff["changed"].as_array().unwrap();
    let mut changed_ids: Vec<&str> = changed
        .iter()
        .map(|c| c["source_id"].as_str().unwrap())
        .collect();
    changed_ids.sort();
    let mut expected: Vec<&str> = edited.iter().map(|s| s.as_str()).collect();
    expected.sort();
    assert_eq!(changed_ids, expected, "only the edited records: {diff}");
    for record in changed {
        let id = record["source_id"].as_str().unwrap();
        let website = record["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == "Website")
            .unwrap_or_else(|| panic!("no Website change in {record}"));
        assert_eq!(website["after"], format!("https://changed.example/{id}"));
        assert_ne!(website["before"], website["after"]);
        // With the cursor of `salesforce.incremental`, which every change moves.
        assert_eq!(
            sorted(field_names(record)),
            ["SystemModstamp", "Website"],
            "only the website: {record}"
        );
    }

    // The same as a table: one row per changed field and the count line.
    let (code, table, stderr) = etl(&project.root, &["diff", "accounts"]);
    assert_eq!(code, 0, "{stderr}");
    let heading = table.lines().next().unwrap();
    assert!(
        heading.starts_with(&format!("accounts (extracted records): {from} (etl run, "))
            && heading.contains(&format!(" → {to} (etl run, ")),
        "{table}"
    );
    assert!(
        table.contains("source_id") && table.contains("change"),
        "{table}"
    );
    assert!(table
        .lines()
        .any(|l| l.contains(back.as_str()) && l.contains("added")));
    assert!(table
        .lines()
        .any(|l| l.contains(gone.as_str()) && l.contains("removed")));
    for id in edited {
        assert!(
            table
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains("Website")),
            "{table}"
        );
    }
    assert_eq!(
        table.lines().last(),
        Some("1 added, 1 removed, 2 changed"),
        "{table}"
    );

    // The transformed records: Halo's field names.
    let transformed = etl_json(
        &project.root,
        &["diff", "accounts", "--stage", "transformed", "--json"],
    );
    assert_eq!(transformed["added"], json!([back]));
    assert_eq!(transformed["removed"], json!([gone]));
    for record in transformed["changed"].as_array().unwrap() {
        assert_eq!(field_names(record), ["website"], "{transformed}");
    }

    // Explicit runs, the other way round: added and removed swap.
    let reverse = etl_json(
        &project.root,
        &["diff", "accounts", "--from", to, "--to", from, "--json"],
    );
    assert_eq!(reverse["added"], json!([gone]));
    assert_eq!(reverse["removed"], json!([back]));
    assert_eq!(reverse["changed"].as_array().unwrap().len(), 2);

    // A run compared with itself has no differences.
    let same = etl_json(&project.root, &["diff", "accounts", "--from", to, "--json"]);
    assert_eq!(
        (&same["added"], &same["removed"], &same["changed"]),
        (&json!([]), &json!([]), &json!([]))
    );

    // Refusals, exit 2.
    let (code, _, stderr) = etl(&project.root, &["diff", "acounts"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no pipeline acounts") && stderr.contains("accounts (2 runs)"),
        "{stderr}"
    );
    let (code, _, stderr) = etl(&project.root, &["diff", "accounts", "--from", "r-nope"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no run r-nope") && stderr.contains(from) && stderr.contains(to),
        "{stderr}"
    );

    // A run that reads only the changes since the last one stages those few records; the
    // others are still in the state as of it, so only the edited one differs.
    let later = &ids[5];
    touch(
        &sandbox,
        later,
        json!({"Website": "https://later.example/"}),
    );
    let third = etl_json(&project.root, &["run", "--json"]);
    let third = third["run_id"].as_str().unwrap();
    let staged = staging_rows(
        &project.root,
        &format!("SELECT count(*) AS n FROM accounts_extracted WHERE run_id = '{third}'"),
    );
    let staged = staged[0]["n"].as_u64().unwrap();
    assert!(
        staged < ids.len() as u64 - 1,
        "the third run reads only changes ({staged} records staged)"
    );
    let diff = etl_json(&project.root, &["diff", "accounts", "--json"]);
    assert_eq!(
        (diff["from"].as_str(), diff["to"].as_str()),
        (Some(to), Some(third))
    );
    assert_eq!(
        (&diff["added"], &diff["removed"]),
        (&json!([]), &json!([])),
        "{diff}"
    );
    let changed = diff["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{diff}");
    assert_eq!(changed[0]["source_id"], json!(later));
    assert_eq!(
        sorted(field_names(&changed[0])),
        ["SystemModstamp", "Website"]
    );
    // From the first run: the second run's changes and the third's together.
    let diff = etl_json(
        &project.root,
        &["diff", "accounts", "--from", from, "--json"],
    );
    assert_eq!(diff["added"], json!([back]), "{diff}");
    assert_eq!(diff["removed"], json!([gone]), "{diff}");
    assert_eq!(diff["changed"].as_array().unwrap().len(), 3, "{diff}");
    let (code, table, stderr) = etl(&project.root, &["diff", "accounts"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|heading| heading.contains(&format!("{third} (etl run, "))
                && heading.contains(&format!(", incremental, {staged} record"))),
        "{table}"
    );
}

/// A staging file with `accounts` tables and runs inserted by hand (no sandbox), and a project
/// file that points at it.
struct Staged {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// A run inserted by hand: its id, when it started, and its records as (source id, the
/// extracted record, the transformed record).
type HandRun<'a> = (&'a str, &'a str, &'a [(&'a str, Value, Value)]);

fn staging_file(runs: &[HandRun]) -> Staged {
    staging_file_of("accounts", runs)
}

/// A staging file whose runs list `accounts`, staged in the tables of `tables` (`accounts`, or
/// `accounts_back` for the sync back's).
fn staging_file_of(tables: &str, runs: &[HandRun]) -> Staged {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(
        root.join("etl.yaml"),
        "project: test\nstaging: staging.duckdb\npipelines: pipelines\n",
    )
    .unwrap();
    let store = Store::open(&root.join("staging.duckdb")).unwrap();
    let tables = PipelineTables {
        pipeline: tables.into(),
        extracted: vec![Column::new("Name", ColumnType::Text)],
        transformed: vec![Column::new("name", ColumnType::Text)],
    };
    store.ensure_pipeline_tables(&tables).unwrap();
    for (run_id, started_at, records) in runs {
        store
            .connection()
            .execute(
                "INSERT INTO runs (run_id, command, started_at, status, pipelines)
                 VALUES (?, 'run', ?::TIMESTAMP, 'ok', ['accounts'])",
                [run_id, started_at],
            )
            .unwrap();
        let rows = |transformed: bool| -> Vec<Vec<(String, Cell)>> {
            records
                .iter()
                .map(|record| {
                    vec![
                        ("run_id".to_string(), Cell::Text(run_id.to_string())),
                        ("source_id".to_string(), Cell::Text(record.0.to_string())),
                        (
                            "record".to_string(),
                            Cell::Text(if transformed { &record.2 } else { &record.1 }.to_string()),
                        ),
                    ]
                })
                .collect()
        };
        store
            .append(&tables, Stage::Extracted, &rows(false))
            .unwrap();
        store
            .append(&tables, Stage::Transformed, &rows(true))
            .unwrap();
    }
    // A run of another pipeline, which stages nothing for accounts.
    store
        .connection()
        .execute_batch(
            "INSERT INTO runs (run_id, command, started_at, status, pipelines)
             VALUES ('r-contacts', 'run', '2026-01-05 00:00:00', 'ok', ['contacts'])",
        )
        .unwrap();
    drop(store);
    Staged { _dir: dir, root }
}

#[test]
fn numbers_compare_by_value_and_nested_fields_are_leaf_paths() {
    let staged = staging_file(&[
        (
            "r1",
            "2026-01-01 00:00:00",
            &[
                (
                    "001A",
                    json!({"Id": "001A", "Name": "Acme", "AnnualRevenue": 18, "Owner.Email": "a@x.io"}),
                    json!({"name": "Acme", "main_site": {"delivery_address": {"line1": "1 St", "line3": "Leeds"}}}),
                ),
                (
                    "001B",
                    json!({"Id": "001B", "Name": "Bolt", "AnnualRevenue": 2.5}),
                    json!({"name": "Bolt"}),
                ),
            ],
        ),
        (
            "r2",
            "2026-01-02 00:00:00",
            &[
                (
                    "001A",
                    json!({"Id": "001A", "Name": "Acme", "AnnualRevenue": 18.0, "Owner.Email": "b@x.io"}),
                    json!({"name": "Acme", "main_site": {"delivery_address": {"line1": "1 St", "line3": "York"}}}),
                ),
                (
                    "001B",
                    json!({"Id": "001B", "Name": "Bolt", "AnnualRevenue": 2.50}),
                    json!({"name": "Bolt"}),
                ),
            ],
        ),
    ]);
    let diff = etl_json(&staged.root, &["diff", "accounts", "--json"]);
    assert_eq!(
        diff,
        json!({
            "pipeline": "accounts", "from": "r1", "to": "r2", "added": [], "removed": [],
            "changed": [{"source_id": "001A", "fields": [
                {"field": "Owner.Email", "before": "a@x.io", "after": "b@x.io"}
            ]}]
        })
    );
    let diff = etl_json(
        &staged.root,
        &["diff", "accounts", "--stage", "transformed", "--json"],
    );
    assert_eq!(
        diff["changed"],
        json!([{"source_id": "001A", "fields": [
            {"field": "main_site.delivery_address.line3", "before": "Leeds", "after": "York"}
        ]}])
    );
    let (code, table, stderr) = etl(&staged.root, &["diff", "accounts"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        table.lines().next(),
        Some("accounts (extracted records): r1 (etl run, 2026-01-01 00:00:00, 2 records) → r2 (etl run, 2026-01-02 00:00:00, 2 records)"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains("Owner.Email"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("001A") && row.contains("changed") && row.contains("a@x.io"),
        "{table}"
    );
    assert_eq!(table.lines().last(), Some("0 added, 0 removed, 1 changed"));

    // A run that staged nothing for accounts, and the first run without a --from.
    let (code, _, stderr) = etl(&staged.root, &["diff", "accounts", "--to", "r-contacts"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("run r-contacts staged no records of accounts")
            && stderr.contains("contacts"),
        "{stderr}"
    );
    let (code, _, stderr) = etl(&staged.root, &["diff", "accounts", "--to", "r1"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("r1 is the first run of accounts"),
        "{stderr}"
    );
}

#[test]
fn the_sync_back_tables_diff_over_the_runs_of_their_pipeline() {
    let staged = staging_file_of(
        "accounts_back",
        &[
            (
                "r1",
                "2026-01-01 00:00:00",
                &[(
                    "7",
                    json!({"id": 7, "name": "Acme", "website": "https://a.example"}),
                    json!({"Name": "Acme", "Website": "https://a.example"}),
                )],
            ),
            (
                "r2",
                "2026-01-02 00:00:00",
                &[(
                    "7",
                    json!({"id": 7, "name": "Acme", "website": "https://b.example"}),
                    json!({"Name": "Acme", "Website": "https://b.example"}),
                )],
            ),
        ],
    );
    let diff = etl_json(&staged.root, &["diff", "accounts_back", "--json"]);
    assert_eq!(
        (diff["from"].as_str(), diff["to"].as_str()),
        (Some("r1"), Some("r2")),
        "{diff}"
    );
    let changed = diff["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{diff}");
    assert_eq!(
        field_names(&changed[0]),
        vec!["website".to_string()],
        "{diff}"
    );
}

#[test]
fn refusals_without_two_runs() {
    let staged = staging_file(&[(
        "r1",
        "2026-01-01 00:00:00",
        &[("001A", json!({"Id": "001A"}), json!({"name": "A"}))],
    )]);
    let (code, stdout, stderr) = etl(&staged.root, &["diff", "accounts"]);
    assert_eq!(code, 2, "{stdout}");
    assert!(
        stderr.contains(
            "only one run of accounts so far (r1): change something in Salesforce and `etl run` again"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = etl(&staged.root, &["diff", "contacts"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no pipeline contacts") && stderr.contains("accounts (1 run)"),
        "{stderr}"
    );

    // An empty staging file: no pipeline has runs.
    let empty = staging_file(&[]);
    let (code, _, stderr) = etl(&empty.root, &["diff", "accounts"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no run of accounts has staged records yet"),
        "{stderr}"
    );
    let (code, _, stderr) = etl(&empty.root, &["diff", "tickets"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no pipeline has staged runs yet"),
        "{stderr}"
    );
}
