//! The links lookups read, streamed from the id map (`Store::each_link_target`,
//! `Store::each_linked_field`): every link of the pipeline asked for, across more rows than one
//! of DuckDB's chunks, and nothing of other pipelines; the same answers as the collecting reads
//! they replaced.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use etl::staging::{Link, Store};

fn link(target_id: String, target_record: Option<Value>) -> Link {
    Link {
        target_id,
        source_hash: Some("h".into()),
        synced_record: None,
        target_record: target_record.and_then(|record| match record {
            Value::Object(map) => Some(map),
            _ => None::<Map<String, Value>>,
        }),
    }
}

/// A store with 5,000 account links (more than two of DuckDB's 2,048-row chunks), whose target
/// records hold `main_site_id` as a number, a string, a null or not at all, and a few links
/// of another pipeline.
fn store(dir: &tempfile::TempDir) -> Store {
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let run_id = store.begin_run("run", &["accounts".into()]).unwrap();
    let accounts: Vec<(String, Link)> = (0..5000)
        .map(|n| {
            let record = match n % 4 {
                0 => Some(json!({"id": n, "main_site_id": n + 1, "say \"hi\"": "quoted"})),
                1 => Some(json!({"id": n, "main_site_id": format!("site {n}")})),
                2 => Some(json!({"id": n, "main_site_id": null})),
                _ => None,
            };
            (format!("001{n:015}"), link(n.to_string(), record))
        })
        .collect();
    for batch in accounts.chunks(2000) {
        store.save_links(&run_id, "accounts", batch).unwrap();
    }
    let contacts: Vec<(String, Link)> = (0..10)
        .map(|n| (format!("003{n:015}"), link(format!("9{n}"), None)))
        .collect();
    store.save_links(&run_id, "contacts", &contacts).unwrap();
    store
}

#[test]
fn every_link_of_the_pipeline_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut streamed: HashMap<Box<str>, Box<str>> = HashMap::new();
    let mut count = 0;
    store
        .each_link_target("accounts", |source, target| {
            count += 1;
            streamed.insert(source.into(), target.into());
        })
        .unwrap();
    assert_eq!(count, 5000, "each link handed over once");
    assert_eq!(streamed.len(), 5000);
    assert_eq!(streamed["001000000000004999"].as_ref(), "4999");

    let mut contacts = Vec::new();
    store
        .each_link_target("contacts", |source, target| {
            contacts.push((source.to_string(), target.to_string()))
        })
        .unwrap();
    contacts.sort();
    assert_eq!(contacts.len(), 10);
    assert_eq!(contacts[3], ("003000000000000003".into(), "93".into()));

    let mut none = 0;
    store
        .each_link_target("opportunities", |_, _| none += 1)
        .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn a_field_of_the_linked_records_as_json_text_nulls_and_missing_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut streamed: HashMap<String, Value> = HashMap::new();
    store
        .each_linked_field("accounts", "main_site_id", |source, text| {
            let value = serde_json::from_str(text).expect("the value is JSON text");
            assert!(streamed.insert(source.to_string(), value).is_none());
        })
        .unwrap();
    // Numbers (n % 4 == 0) and strings (n % 4 == 1): half of the 5,000.
    assert_eq!(streamed.len(), 2500);
    assert_eq!(streamed["001000000000000004"], json!(5));
    assert_eq!(streamed["001000000000000005"], json!("site 5"));
    assert!(
        !streamed.contains_key("001000000000000006"),
        "null left out"
    );
    assert!(!streamed.contains_key("001000000000000007"), "no record");

    // A field name with quotes in it is asked for as that name.
    let mut quoted = Vec::new();
    store
        .each_linked_field("accounts", "say \"hi\"", |source, text| {
            quoted.push((source.to_string(), text.to_string()))
        })
        .unwrap();
    assert_eq!(quoted.len(), 1250);
    assert!(quoted.iter().all(|(_, text)| text == "\"quoted\""));
}
