//! Reading ahead against the sandboxes over real HTTP: the Salesforce source and the Halo
//! source fetch their next page while the engine works on the one in hand (`etl::prefetch`),
//! and still hand over every record once, in order; a page that fails stops the read with the
//! system's own message; an engine that stops early stops the read. The Salesforce source's
//! attachment listings, run several at a time, answer as one at a time would. Timings are
//! measured in `src/prefetch.rs`'s unit tests, not here.

use std::time::Duration;

use serde_json::{json, Value};

use etl::config::model::{HaloConnection, SalesforceConnection, SalesforceFlow};
use etl::engine::{EngineError, ExtractRequest, Record, Source};
use etl::halo::{HaloClient, HaloSource, RetryPolicy};
use etl::salesforce::auth::{self, TokenStore};
use etl::salesforce::source::SalesforceSource;
use etl::salesforce::{ClientOptions, SalesforceClient};
use etl::sandbox::faults::FaultPlan;
use etl::sandbox::server::{self, Options, Running};

fn sandbox(accounts: u64, faults: Option<&str>) -> Running {
    server::start(Options {
        accounts,
        faults: faults.map(|yaml| serde_saphyr::from_str::<FaultPlan>(yaml).unwrap()),
        ..Options::default()
    })
    .unwrap()
}

/// A client-credentials connection to the sandbox's org: pages of `page` records, one try
/// per call (so an injected 500 is an error, not a retry), `in_flight` listings at once.
fn salesforce(
    sandbox: &Running,
    folder: &std::path::Path,
    page: u32,
    in_flight: usize,
) -> SalesforceClient {
    let connection = SalesforceConnection {
        login_url: sandbox.salesforce_url.clone(),
        api_version: "62.0".into(),
        flow: SalesforceFlow::ClientCredentials,
        client_id: "etl-sandbox-client".into(),
        client_secret: Some("etl-sandbox-secret".into()),
        redirect_uri: "http://localhost:1717/oauth/callback".into(),
        pkce: true,
        scope: None,
        username: None,
        password: None,
        private_key_file: None,
        token_store: None,
        max_api_usage_percent: None,
        bulk_query_threshold: None,
        bulk_write_threshold: None,
        trust_certificate: None,
    };
    let options = ClientOptions {
        query_batch_size: Some(page),
        max_attempts: 1,
        writes_in_flight: in_flight,
        ..ClientOptions::default()
    };
    let store = TokenStore::new(auth::store_path(folder, None, None));
    SalesforceClient::connect(&connection, store, options).unwrap()
}

fn ids(records: &[Record], field: &str) -> Vec<String> {
    records
        .iter()
        .map(|record| match &record[field] {
            Value::String(id) => id.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Every page an extract hands over, as the engine would take them.
fn extract_all(
    source: &dyn Source,
    request: &ExtractRequest,
) -> Result<Vec<Vec<Record>>, EngineError> {
    let mut pages = Vec::new();
    source.extract(request, &mut |page| {
        pages.push(page);
        Ok(())
    })?;
    Ok(pages)
}

#[test]
fn salesforce_pages_read_ahead_come_once_each_in_order() {
    let sandbox = sandbox(1000, None);
    let folder = tempfile::tempdir().unwrap();
    let client = salesforce(&sandbox, folder.path(), 200, 4);
    let expected: Vec<Record> = client
        .query_pages("SELECT Id, Name FROM Account", false)
        .flat_map(|page| page.unwrap())
        .collect();
    let source = SalesforceSource::new(&client);
    let request = ExtractRequest::new("Account", vec!["Name".into()]);
    let pages = extract_all(&source, &request).unwrap();
    assert_eq!(pages.len(), 5);
    assert!(pages.iter().all(|page| page.len() == 200));
    let read: Vec<Record> = pages.into_iter().flatten().collect();
    assert_eq!(ids(&read, "Id"), ids(&expected, "Id"));
}

#[test]
fn a_salesforce_page_that_fails_stops_the_read_with_salesforces_message() {
    // Every page after the first (`nextRecordsUrl`) answers 500 with Salesforce's error body.
    let sandbox = sandbox(
        1000,
        Some("seed: 1\nfaults:\n  - { route: \"/services/data/*/query/*\", kind: status, status: 500 }\n"),
    );
    let folder = tempfile::tempdir().unwrap();
    let client = salesforce(&sandbox, folder.path(), 200, 4);
    let source = SalesforceSource::new(&client);
    let mut pages = 0;
    let error = source
        .extract(&ExtractRequest::new("Account", Vec::new()), &mut |page| {
            assert_eq!(page.len(), 200);
            pages += 1;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(pages, 1, "the first page, then the error");
    let message = error.to_string();
    assert!(message.contains("UNKNOWN_EXCEPTION"), "{message}");
    assert!(
        message.contains("An unexpected error occurred"),
        "{message}"
    );
    assert!(matches!(error, EngineError::Connection(_)), "{error:?}");
}

#[test]
fn an_engine_that_stops_stops_the_salesforce_read() {
    let sandbox = sandbox(1000, None);
    let folder = tempfile::tempdir().unwrap();
    let client = salesforce(&sandbox, folder.path(), 100, 4);
    let source = SalesforceSource::new(&client);
    let before = client.calls();
    let mut pages = 0;
    let error = source
        .extract(&ExtractRequest::new("Account", Vec::new()), &mut |_| {
            pages += 1;
            if pages == 2 {
                return Err(EngineError::Config("the staging disk is full".into()));
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(error.to_string(), "the staging disk is full");
    // COUNT(), the two pages handed over and at most the one fetched ahead; not all ten.
    let calls = client.calls() - before;
    assert!((3..=4).contains(&calls), "{calls} calls");
}

#[test]
fn salesforce_listings_several_at_a_time_answer_as_one_at_a_time() {
    let sandbox = sandbox(600, None);
    let folder = tempfile::tempdir().unwrap();
    let one = salesforce(&sandbox, folder.path(), 2000, 1);
    let opportunities: Vec<String> = ids(
        &one.query_pages("SELECT Id FROM Opportunity", false)
            .flat_map(|page| page.unwrap())
            .collect::<Vec<_>>(),
        "Id",
    );
    assert!(
        opportunities.len() > 400,
        "{} opportunities",
        opportunities.len()
    );
    let in_turn = SalesforceSource::new(&one)
        .attachments(&opportunities)
        .unwrap();
    let four = salesforce(&sandbox, folder.path(), 2000, 4);
    let together = SalesforceSource::new(&four)
        .attachments(&opportunities)
        .unwrap();
    assert!(!in_turn.attachments.is_empty());
    assert_eq!(together, in_turn);
    // The same queries either way (`one` also read the opportunities' ids).
    assert_eq!(four.calls(), one.calls() - 1);
}

fn halo(sandbox: &Running, page_size: u32) -> HaloClient {
    // The connection exactly as `etl sandbox` prints it.
    let connection: HaloConnection =
        serde_json::from_value(sandbox.description()["halo"].clone()).unwrap();
    let options = etl::halo::ClientOptions {
        rate_limit: None,
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(1),
            rate_limit_delay: Duration::from_millis(5),
            rate_limit_max_delay: Duration::from_millis(50),
        },
        page_size,
        ..etl::halo::ClientOptions::default()
    };
    HaloClient::new(&connection, options).unwrap()
}

#[test]
fn halo_pages_read_ahead_come_once_each_in_order() {
    let sandbox = sandbox(5, None);
    let client = halo(&sandbox, 5);
    let created: Vec<Value> = (0..23)
        .map(|n| json!({ "name": format!("Read ahead {n:02}") }))
        .collect();
    assert!(client
        .write("Client", &created)
        .iter()
        .all(|outcome| outcome.result.is_ok()));
    let expected: Vec<Record> = client
        .records("Client", &etl::halo::ListQuery::default())
        .map(|record| record.unwrap().as_object().cloned().unwrap())
        .collect();
    assert!(expected.len() >= 23);
    let source = HaloSource::new(&client);
    let request = ExtractRequest::new("Client", vec!["name".into()]);
    let pages = extract_all(&source, &request).unwrap();
    assert_eq!(pages.len(), expected.len().div_ceil(5));
    let read: Vec<Record> = pages.into_iter().flatten().collect();
    assert_eq!(ids(&read, "id"), ids(&expected, "id"));
}

#[test]
fn a_halo_listing_that_fails_stops_the_read_with_halos_answer() {
    let sandbox = sandbox(
        5,
        Some("seed: 1\nfaults:\n  - { route: \"/api/Client\", methods: [GET], kind: status, status: 503 }\n"),
    );
    let client = halo(&sandbox, 5);
    let source = HaloSource::new(&client);
    let mut pages = 0;
    let error = source
        .extract(
            &ExtractRequest::new("Client", vec!["name".into()]),
            &mut |_| {
                pages += 1;
                Ok(())
            },
        )
        .unwrap_err();
    assert_eq!(pages, 0);
    assert!(matches!(error, EngineError::Connection(_)), "{error:?}");
    assert!(error.to_string().contains("503"), "{error}");
}
