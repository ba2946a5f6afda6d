//! Benchmark of the Salesforce connector against the sandbox: extracts N accounts through REST
//! pages (flattened records, one page held at a time) and through a Bulk API 2.0 query job,
//! then writes contacts through sObject Collections (several calls in flight) and through one
//! Bulk ingest job. Prints records/second, API calls and peak memory, so the connector's cost
//! can be told apart from the sandbox's (`bench_sandbox`).
//!
//! ```sh
//! cargo run --example bench_salesforce_connector -- 50000   # accounts to seed (default 50000)
//! ```

use std::time::Instant;

use serde_json::json;

use etl::config::model::{SalesforceConnection, SalesforceFlow};
use etl::salesforce::auth::TokenStore;
use etl::salesforce::{ClientOptions, Operation, Record, SalesforceClient};
use etl::sandbox::server::{self, Options};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let accounts: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let sandbox = server::start(Options {
        accounts,
        ..Options::default()
    })
    .expect("sandbox starts");
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
    let client = SalesforceClient::connect(
        &connection,
        TokenStore::new("/nonexistent/unused.json"),
        ClientOptions {
            bulk_query_threshold: u64::MAX,
            ..ClientOptions::default()
        },
    )
    .expect("client connects");
    // The sandbox lives in this process: its org is the baseline the extracts add to.
    println!(
        "seeded {accounts} accounts; peak RSS with the sandbox's org: {:.0} MB",
        peak_rss_mb()
    );
    let soql = "SELECT Id, Name, BillingCity, Owner.Email, SystemModstamp FROM Account";

    let (started, calls) = (Instant::now(), client.calls());
    let mut records = 0usize;
    for page in client.query_pages(soql, false) {
        records += page.expect("page").len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "REST extract: {records} records in {} calls, {seconds:.2} s, {:.0} records/s, peak RSS {:.0} MB",
        client.calls() - calls,
        records as f64 / seconds,
        peak_rss_mb()
    );

    let (started, calls) = (Instant::now(), client.calls());
    let mut records = 0usize;
    for page in client
        .bulk_query(soql.replace(", Owner.Email", "").as_str(), false)
        .expect("bulk job")
    {
        records += page.expect("bulk page").len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "Bulk extract: {records} records in {} calls, {seconds:.2} s, {:.0} records/s, peak RSS {:.0} MB",
        client.calls() - calls,
        records as f64 / seconds,
        peak_rss_mb()
    );

    let contact = |i: usize| -> Record {
        let mut r = Record::new();
        r.insert("LastName".into(), json!(format!("Bench{i}")));
        r.insert("External_Id__c".into(), json!(format!("bench-{i}")));
        r
    };
    let create = Operation::Create {
        match_field: Some("External_Id__c".into()),
    };
    let batch: Vec<Record> = (0..9_000).map(contact).collect();
    let (started, calls) = (Instant::now(), client.calls());
    let written = client
        .write_collections("Contact", &create, &batch)
        .into_result()
        .expect("writes");
    let seconds = started.elapsed().as_secs_f64();
    assert!(written.iter().all(|o| !o.is_failure()));
    println!(
        "Collections create: {} records in {} calls ({} in flight), {seconds:.2} s, {:.0} records/s",
        written.len(),
        client.calls() - calls,
        client.options().writes_in_flight,
        written.len() as f64 / seconds
    );

    let batch: Vec<Record> = (9_000..29_000).map(contact).collect();
    let (started, calls) = (Instant::now(), client.calls());
    let written = client
        .bulk_write("Contact", &create, &batch)
        .expect("bulk ingest");
    let seconds = started.elapsed().as_secs_f64();
    assert!(written.iter().all(|o| !o.is_failure()));
    println!(
        "Bulk ingest: {} records in {} calls, {seconds:.2} s, {:.0} records/s, peak RSS {:.0} MB",
        written.len(),
        client.calls() - calls,
        written.len() as f64 / seconds,
        peak_rss_mb()
    );
}
