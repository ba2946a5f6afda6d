//! How the sync back finds the links it needs without holding any set of the pipeline's ids:
//! the staging joins themselves (the listing's counts, relink candidates, each chunk's links,
//! linked records missing from the listing), then end to end with the `etl` binary against both
//! sandboxes: relinking by the Salesforce Id a customer keeps links each Account once, the first
//! customer listed winning; and a match never links an Account another customer has, nor one
//! matched earlier in the same run.

use duckdb::types::Value as Cell;
use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};
use etl::staging::{Link, PipelineTables, Stage, Store, KEPT_SOURCE_ID};

mod support;
use support::{direction, halo_post, halo_token, live_records, project, staging_rows, Project};

fn back_tables() -> PipelineTables {
    PipelineTables {
        pipeline: "accounts_back".into(),
        extracted: vec![etl::staging::Column::new(
            KEPT_SOURCE_ID,
            etl::staging::ColumnType::Text,
        )],
        transformed: Vec::new(),
    }
}

fn link(target: &str, hash: &str) -> Link {
    let mut synced = serde_json::Map::new();
    synced.insert("Name".into(), json!(format!("synced {target}")));
    Link {
        target_id: target.into(),
        source_hash: Some(hash.into()),
        synced_record: Some(synced),
        target_record: None,
    }
}

/// One listed row: Halo id, the Account Id it keeps (if any), its name.
fn listed(run_id: &str, id: &str, kept: Option<&str>, name: &str) -> Vec<(String, Cell)> {
    let mut row = vec![
        ("run_id".to_string(), Cell::Text(run_id.into())),
        ("source_id".to_string(), Cell::Text(id.into())),
        (
            "record".to_string(),
            Cell::Text(json!({"id": id, "name": name}).to_string()),
        ),
    ];
    if let Some(kept) = kept {
        row.push((KEPT_SOURCE_ID.to_string(), Cell::Text(kept.into())));
    }
    row
}

#[test]
fn the_sync_back_asks_staging_for_its_links_and_sets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let tables = back_tables();
    store.ensure_pipeline_tables(&tables).unwrap();
    let pairs = |list: &[(&str, &str, &str)]| -> Vec<(String, Link)> {
        list.iter()
            .map(|(source, target, hash)| (source.to_string(), link(target, hash)))
            .collect()
    };
    store
        .save_links(
            "earlier",
            "accounts",
            &pairs(&[
                ("A", "10", "h"),
                ("B", "11", "h"),
                ("C", "12", "h"),
                ("D", "13", "removed"),
            ]),
        )
        .unwrap();
    // Linked when the listing started: A to D. E is linked later (the import's create).
    store.keep_linked_targets("accounts", "before").unwrap();
    store
        .save_links("run", "accounts", &pairs(&[("E", "14", "h")]))
        .unwrap();
    let run_id = store.begin_run("run", &["accounts".into()]).unwrap();
    let rows = vec![
        listed(&run_id, "10", Some("A"), "linked already"),
        listed(&run_id, "20", Some("X"), "keeps a free id"),
        listed(&run_id, "21", Some("X"), "keeps the same free id, later"),
        listed(&run_id, "22", Some("B"), "keeps an id linked to another"),
        listed(&run_id, "11", Some("Y"), "linked to B, keeps another id"),
        listed(&run_id, "23", None, "keeps no id"),
        listed(&run_id, "24", Some("Z"), "listed twice, first text"),
        listed(&run_id, "25", None, "listed twice, no id the first time"),
        listed(&run_id, "24", Some("W"), "listed twice, last text"),
        listed(
            &run_id,
            "25",
            Some("V"),
            "listed twice, an id the last time",
        ),
    ];
    store.append(&tables, Stage::Extracted, &rows).unwrap();
    let table = tables.table(Stage::Extracted);

    // Eight records, two listed twice, with their last texts.
    let counts = store.listing_counts(&table, &run_id).unwrap();
    assert_eq!(counts.distinct, 8);
    let twice: Vec<(&str, Value)> = counts
        .twice
        .iter()
        .map(|(id, text)| (id.as_str(), serde_json::from_str(text).unwrap()))
        .collect();
    assert_eq!(
        twice,
        vec![
            ("24", json!({"id": "24", "name": "listed twice, last text"})),
            (
                "25",
                json!({"id": "25", "name": "listed twice, an id the last time"})
            ),
        ]
    );

    // Relinking: the id each record kept in its first row, a free source id on a free target
    // record, the first record in listing order for an id kept twice; the last text.
    let count = store
        .stage_relink_candidates(&table, &run_id, "accounts")
        .unwrap();
    assert_eq!(count, 2);
    let mut candidates = store.relink_candidates(&table, &run_id, 0, 1).unwrap();
    candidates.extend(store.relink_candidates(&table, &run_id, 1, 10).unwrap());
    let found: Vec<(&str, &str, Value)> = candidates
        .iter()
        .map(|c| {
            (
                c.target_id.as_str(),
                c.source_id.as_str(),
                serde_json::from_str(&c.record).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("20", "X", json!({"id": "20", "name": "keeps a free id"})),
            (
                "24",
                "Z",
                json!({"id": "24", "name": "listed twice, last text"})
            ),
        ]
    );
    store.drop_scratch("relink_candidates").unwrap();

    // Each chunk reads the links of the records listed in its range of rows, with the
    // last synced record and without the target's.
    let (first, last) = store.run_rowids(&table, &run_id).unwrap().unwrap();
    store
        .stage_back_links(&table, &run_id, "accounts", (first, last))
        .unwrap();
    let head = store.back_links_between(first, first + 4).unwrap();
    let tail = store.back_links_between(first + 4, last + 1).unwrap();
    assert_eq!(head.keys().collect::<Vec<_>>(), ["10"]);
    assert_eq!(tail.keys().collect::<Vec<_>>(), ["11"]);
    let (source, linked) = &tail["11"];
    assert_eq!(source, "B");
    assert_eq!(linked.synced_record, link("11", "h").synced_record);
    assert_eq!(linked.target_record, None);
    store.drop_scratch("back_links").unwrap();

    // Removals: linked when the listing started, not listed, not marked; E came later.
    assert_eq!(
        store
            .linked_but_not_listed("accounts", "before", &table, &run_id, &["removed"])
            .unwrap(),
        vec![("12".to_string(), "C".to_string())]
    );
    assert_eq!(
        store.linked_target_ids_sorted("accounts").unwrap(),
        ["10", "11", "12", "13", "14"]
    );
}

fn sandbox() -> Running {
    server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap()
}

/// The accounts pipeline with the import off, so Accounts stay unlinked unless the sync back
/// links them, and `sync_back` set to `back`.
fn sync_back_only(sandbox: &Running, back: &str) -> Project {
    let project = project(sandbox, &["accounts"]);
    project.edit("accounts", "import: upsert", "import: off");
    project.edit(
        "accounts",
        "sync_back: { create: true, update: true }",
        &format!("sync_back: {back}"),
    );
    project
}

fn run(project: &Project) -> Value {
    let (code, stdout, stderr) = support::etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// The Halo id the accounts pipeline links `account` to.
fn linked_to(project: &Project, account: &str) -> Option<String> {
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT target_id FROM id_map WHERE pipeline = 'accounts' AND source_id = '{account}'"
        ),
    );
    rows.first()
        .and_then(|row| row["target_id"].as_str())
        .map(str::to_string)
}

/// What the run's sync back did with one customer: status and Account Id.
fn result_of(project: &Project, summary: &Value, customer: u64) -> (String, String) {
    let run_id = summary["run_id"].as_str().unwrap();
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT status, target_id FROM accounts_back_results \
             WHERE run_id = '{run_id}' AND source_id = '{customer}'"
        ),
    );
    assert_eq!(rows.len(), 1, "customer {customer}: {rows:?}");
    let text = |key: &str| rows[0][key].as_str().unwrap_or_default().to_string();
    (text("status"), text("target_id"))
}

fn new_customer(sandbox: &Running, token: &str, fields: Value) -> u64 {
    let created = halo_post(sandbox, token, "Client", json!([fields]));
    created["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {created}"))
}

fn accounts_named(sandbox: &Running, name: &str) -> usize {
    live_records(sandbox, "Account")
        .iter()
        .filter(|a| a["Name"] == name)
        .count()
}

/// The Accounts of the org in order: (Id, Name).
fn accounts(sandbox: &Running) -> Vec<(String, String)> {
    let mut accounts: Vec<(String, String)> = live_records(sandbox, "Account")
        .iter()
        .map(|a| {
            (
                a["Id"].as_str().unwrap().to_string(),
                a["Name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    accounts.sort();
    accounts
}

#[test]
fn relinking_by_a_kept_id_links_each_account_once() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = sync_back_only(&sandbox, "{ create: true, update: true }");
    let accounts = accounts(&sandbox);
    // The seeded customers keep the Ids of the first Accounts; a copy of the first one keeps
    // the same Id, and another customer keeps the Id of an Account no customer has.
    let (shared, _) = &accounts[0];
    let (free, _) = &accounts[5];
    let kept = |id: &str| json!([{"name": "CFSalesforceAccountId", "value": id}]);
    let copy = new_customer(
        &sandbox,
        &token,
        json!({"name": "Copy Ltd", "customfields": kept(shared)}),
    );
    let keeper = new_customer(
        &sandbox,
        &token,
        json!({"name": "Keeper Ltd", "customfields": kept(free)}),
    );

    let first = run(&project);
    let back = direction(&first, "accounts", "sync back");
    assert_eq!(back["failed"], 0, "{first}");
    // The seeded customer, listed before its copy, keeps its Account; the copy gets its own.
    let seeded = linked_to(&project, shared).expect("the shared Account is relinked");
    assert_ne!(seeded, copy.to_string());
    assert_eq!(linked_to(&project, free), Some(keeper.to_string()));
    let (status, account) = result_of(&project, &first, copy);
    assert_eq!(status, "created", "{first}");
    assert_ne!(&account, shared);
    assert_eq!(accounts_named(&sandbox, "Copy Ltd"), 1);
    assert_eq!(
        accounts_named(&sandbox, "Keeper Ltd"),
        0,
        "relinked, not created"
    );

    // Nothing left to do.
    let second = run(&project);
    let back = direction(&second, "accounts", "sync back");
    assert_eq!(
        (
            back["created"].clone(),
            back["linked"].clone(),
            back["failed"].clone()
        ),
        (json!(0), json!(0), json!(0)),
        "{second}"
    );
    assert_eq!(accounts_named(&sandbox, "Copy Ltd"), 1);
}

#[test]
fn a_match_never_links_an_account_twice() {
    let sandbox = sandbox();
    let token = halo_token(&sandbox);
    let project = sync_back_only(&sandbox, "{ create: true, update: true, match: [Name] }");
    let accounts = accounts(&sandbox);
    let first = run(&project);
    assert_eq!(
        direction(&first, "accounts", "sync back")["failed"],
        0,
        "{first}"
    );
    // One Account linked by the first run (the seeded customers keep their Ids), one no
    // customer has.
    let (linked, linked_name) = accounts
        .iter()
        .find(|(id, _)| linked_to(&project, id).is_some())
        .cloned()
        .expect("the first run links the seeded customers");
    let (free, free_name) = accounts
        .iter()
        .find(|(id, _)| linked_to(&project, id).is_none())
        .cloned()
        .expect("an Account no customer has");
    let before = linked_to(&project, &linked);

    // Two new customers named like the free Account: the first is linked to it, the second
    // gets its own. One named like the linked Account gets its own too.
    let first_namesake = new_customer(&sandbox, &token, json!({"name": free_name}));
    let second_namesake = new_customer(&sandbox, &token, json!({"name": free_name}));
    let taken_namesake = new_customer(&sandbox, &token, json!({"name": linked_name}));
    let second = run(&project);
    let back = direction(&second, "accounts", "sync back");
    assert_eq!(back["failed"], 0, "{second}");
    assert_eq!(back["linked"], 1, "{second}");
    assert_eq!(
        result_of(&project, &second, first_namesake),
        ("linked".to_string(), free.clone())
    );
    let (status, own) = result_of(&project, &second, second_namesake);
    assert_eq!(status, "created", "{second}");
    assert_ne!(own, free);
    let (status, own) = result_of(&project, &second, taken_namesake);
    assert_eq!(status, "created", "{second}");
    assert_ne!(own, linked);
    assert_eq!(
        linked_to(&project, &linked),
        before,
        "the linked Account keeps its customer"
    );
    assert_eq!(linked_to(&project, &free), Some(first_namesake.to_string()));
    assert_eq!(accounts_named(&sandbox, &free_name), 2);
    assert_eq!(accounts_named(&sandbox, &linked_name), 2);
}

/// Matched customers are linked a load batch at a time (50 here), read back from the staged
/// plan: each new customer named like an Account no customer has is linked to it, once.
#[test]
fn many_matches_are_linked_a_batch_at_a_time() {
    let sandbox = server::start(Options {
        accounts: 150,
        ..Options::default()
    })
    .unwrap();
    let token = halo_token(&sandbox);
    let project = sync_back_only(&sandbox, "{ create: true, update: true, match: [Name] }");
    let first = run(&project);
    assert_eq!(
        direction(&first, "accounts", "sync back")["failed"],
        0,
        "{first}"
    );
    let linked_before: std::collections::HashSet<String> = staging_rows(
        &project.root,
        "SELECT source_id FROM id_map WHERE pipeline = 'accounts'",
    )
    .iter()
    .filter_map(|row| row["source_id"].as_str().map(str::to_string))
    .collect();
    let free: Vec<(String, String)> = accounts(&sandbox)
        .into_iter()
        .filter(|(id, _)| !linked_before.contains(id))
        .collect();
    assert!(free.len() > 100, "{} free Accounts", free.len());
    let names: Vec<Value> = free.iter().map(|(_, name)| json!({"name": name})).collect();
    let created = halo_post(&sandbox, &token, "Client", Value::Array(names));
    assert!(created.is_object() || created.is_array(), "{created}");
    let second = run(&project);
    let back = direction(&second, "accounts", "sync back");
    assert_eq!(back["failed"], 0, "{second}");
    assert_eq!(back["created"], 0, "{second}");
    assert_eq!(back["linked"], free.len(), "{second}");
    // Per customer linked by the second run: its result and the Account its link holds.
    let run_id = second["run_id"].as_str().unwrap();
    let rows = staging_rows(
        &project.root,
        &format!(
            "SELECT r.status, r.target_id AS result_account, m.source_id AS linked_account
             FROM accounts_back_results r
             JOIN id_map m ON m.pipeline = 'accounts' AND m.target_id = r.source_id
             WHERE r.run_id = '{run_id}' AND r.status = 'linked'"
        ),
    );
    assert_eq!(rows.len(), free.len());
    let mut linked: Vec<String> = rows
        .iter()
        .map(|row| {
            assert_eq!(row["result_account"], row["linked_account"], "{row}");
            row["linked_account"].as_str().unwrap().to_string()
        })
        .collect();
    linked.sort();
    let mut expected: Vec<String> = free.iter().map(|(id, _)| id.clone()).collect();
    expected.sort();
    assert_eq!(linked, expected, "each free Account linked once");
    let all = live_records(&sandbox, "Account");
    assert_eq!(all.len(), 150, "no Account created");
}
