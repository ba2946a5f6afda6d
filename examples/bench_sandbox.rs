//! Benchmark of the Salesforce sandbox, so that it is never what limits a benchmark of the
//! engine: pages a SOQL query over N accounts with `nextRecordsUrl` (2,000 per page) and writes
//! records through sObject Collections (200 per call, several calls in flight). Prints
//! records/second, API calls and peak memory.
//!
//! ```sh
//! cargo run --example bench_sandbox -- 100000      # accounts to seed (default 100000)
//! ```

use std::time::Instant;

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options};

/// A query page, reading only what paging needs.
#[derive(serde::Deserialize)]
struct Page {
    records: Vec<serde::de::IgnoredAny>,
    #[serde(rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let accounts: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let seeded = Instant::now();
    let sandbox = server::start(Options {
        accounts,
        ..Options::default()
    })
    .expect("sandbox starts");
    println!(
        "seeded {accounts} accounts (with contacts, opportunities, cases) in {:.2} s",
        seeded.elapsed().as_secs_f64()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = sandbox.salesforce_url.clone();
    let token: Value = agent
        .post(format!("{base}/services/oauth2/token"))
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_id", "etl-sandbox-client"),
            ("client_secret", "etl-sandbox-secret"),
        ])
        .expect("token")
        .body_mut()
        .read_json()
        .expect("token json");
    let auth = format!(
        "Bearer {}",
        token["access_token"].as_str().expect("access token")
    );

    let started = Instant::now();
    let mut url = format!("{base}/services/data/v62.0/query?q=SELECT+Id,Name,BillingCity,OwnerId,SystemModstamp+FROM+Account");
    let (mut records, mut calls) = (0usize, 0usize);
    loop {
        // Counts records without building them: the figure is the sandbox's, not a JSON tree's.
        let page: Page = agent
            .get(&url)
            .header("Authorization", &auth)
            .call()
            .expect("page")
            .body_mut()
            .read_json()
            .expect("page json");
        calls += 1;
        records += page.records.len();
        match page.next_records_url {
            Some(next) => url = format!("{base}{next}"),
            None => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "query: {records} records in {calls} calls, {seconds:.2} s, {:.0} records/s",
        records as f64 / seconds
    );

    let writes = 20_000usize;
    let in_flight = 4;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..in_flight {
            let (agent, auth, base) = (agent.clone(), auth.clone(), base.clone());
            scope.spawn(move || {
                for batch in (0..writes / 200).filter(|b| b % in_flight == worker) {
                    let records: Vec<Value> = (0..200).map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Bench {batch}-{i}"), "BillingCity": "Leeds"})).collect();
                    let body = json!({"allOrNone": false, "records": records}).to_string();
                    let mut response = agent
                        .post(format!("{base}/services/data/v62.0/composite/sobjects"))
                        .header("Authorization", &auth)
                        .header("Content-Type", "application/json")
                        .send(body)
                        .expect("write");
                    let results: Value = response.body_mut().read_json().expect("results");
                    assert!(results.as_array().is_some_and(|r| r.iter().all(|x| x["success"] == true)));
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    println!("collections: {writes} records in {} calls ({in_flight} in flight), {seconds:.2} s, {:.0} records/s", writes / 200, writes as f64 / seconds);
    println!("peak RSS: {:.0} MB", peak_rss_mb());
}
