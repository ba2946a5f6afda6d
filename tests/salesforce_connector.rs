//! The Salesforce connector against the in-process sandbox over real HTTP: the web-server login
//! driven end to end, the token store, refresh in mid-extract, a dead refresh token, paging,
//! ties on one `SystemModstamp`, partial failures, retries under injected faults, the API
//! budget, Bulk API 2.0 and the online describe checks.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use etl::config::model::{SalesforceConnection, SalesforceFlow};
use etl::salesforce::auth::{self, LoginOptions, TokenStore};
use etl::salesforce::collections::{Operation, Outcome};
use etl::salesforce::incremental::{KeysetQuery, Watermark};
use etl::salesforce::{ClientOptions, Error, Record, SalesforceClient};
use etl::sandbox::faults::FaultPlan;
use etl::sandbox::salesforce::http::lock;
use etl::sandbox::salesforce::state::Config;
use etl::sandbox::server::{self, Options, Running};

struct Org {
    sandbox: Running,
    connection: SalesforceConnection,
    store: TokenStore,
    _folder: tempfile::TempDir,
}

fn org_with(accounts: u64, config: Config, faults: Option<&str>) -> Org {
    let port = support::callback_port();
    let redirect_uri = format!("http://localhost:{port}/oauth/callback");
    let config = Config {
        redirect_uri: redirect_uri.clone(),
        auto_approve: true,
        ..config
    };
    let faults = faults.map(|yaml| serde_saphyr::from_str::<FaultPlan>(yaml).unwrap());
    let sandbox = server::start(Options {
        accounts,
        salesforce: config.clone(),
        faults,
        ..Options::default()
    })
    .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let connection = SalesforceConnection {
        login_url: sandbox.salesforce_url.clone(),
        api_version: "62.0".into(),
        flow: SalesforceFlow::WebServer,
        client_id: config.client_id.clone(),
        client_secret: Some(config.client_secret.clone()),
        redirect_uri,
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
    let store = TokenStore::new(auth::store_path(folder.path(), None, None));
    Org {
        sandbox,
        connection,
        store,
        _folder: folder,
    }
}

fn org(accounts: u64) -> Org {
    org_with(accounts, Config::default(), None)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Plays the person at the browser: opens the authorize URL (the sandbox approves at once) and
/// follows its redirect to the login's callback listener. Returns the listener's page.
fn browse(url: &str) -> (u16, String) {
    let response = agent().get(url).call().unwrap();
    assert_eq!(response.status().as_u16(), 302, "authorize should redirect");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let mut page = agent().get(&location).call().unwrap();
    let status = page.status().as_u16();
    (status, page.body_mut().read_to_string().unwrap())
}

/// `etl auth login salesforce --no-browser`, with the test as the browser.
fn login(org: &Org) -> Result<auth::StoredTokens, Error> {
    let (tx, rx) = mpsc::channel::<String>();
    let browser = std::thread::spawn(move || {
        let url = rx.recv().unwrap();
        browse(&url)
    });
    let options = LoginOptions {
        open_browser: false,
        timeout: Duration::from_secs(30),
    };
    let tokens = auth::login(&org.connection, &org.store, &options, |url| {
        tx.send(url.to_string()).unwrap()
    });
    let (status, page) = browser.join().unwrap();
    if tokens.is_ok() {
        assert_eq!(status, 200);
        assert!(page.contains("Signed in"), "{page}");
    }
    tokens
}

fn client(org: &Org, options: ClientOptions) -> SalesforceClient {
    SalesforceClient::connect(&org.connection, org.store.clone(), options).unwrap()
}

fn fast() -> ClientOptions {
    ClientOptions {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_attempts: 8,
        ..ClientOptions::default()
    }
}

fn all_records(client: &SalesforceClient, soql: &str) -> Vec<Record> {
    client
        .query_pages(soql, false)
        .flat_map(|page| page.unwrap())
        .collect()
}

fn ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn web_server_login_stores_tokens_privately_and_never_shows_them() {
    let org = org(5);
    let tokens = login(&org).unwrap();
    let path: PathBuf = org.store.path().to_path_buf();
    assert!(
        path.ends_with(".etl/salesforce-token.json"),
        "{}",
        path.display()
    );
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(refresh.starts_with("5Aep861"));
    assert!(text.contains(&refresh));
    // Nothing meant for people shows a token.
    let shown = format!("{tokens:?} {}", auth::mask(&tokens.access_token));
    assert!(!shown.contains(&tokens.access_token), "{shown}");
    assert!(!shown.contains(&refresh), "{shown}");
    assert!(auth::mask(&tokens.access_token).starts_with(&tokens.access_token[..15]));
    // The stored sign-in works, and tells who it is.
    let client = client(&org, fast());
    let me = client.identity().unwrap();
    assert_eq!(Some(me["user_id"].as_str().unwrap()), tokens.user_id());
    assert_eq!(
        Some(me["organization_id"].as_str().unwrap()),
        tokens.org_id()
    );
    let usage = client.usage().unwrap();
    assert!(usage.used >= 1 && usage.limit == 1_000_000, "{usage:?}");
    // A re-saved store (after a refresh) keeps mode 0600.
    org.store.save(&tokens).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn login_without_pkce_uses_the_client_secret() {
    let mut org = org(1);
    org.connection.pkce = false;
    let (tx, rx) = mpsc::channel::<String>();
    let browser = std::thread::spawn(move || browse(&rx.recv().unwrap()));
    let options = LoginOptions {
        open_browser: false,
        timeout: Duration::from_secs(30),
    };
    auth::login(&org.connection, &org.store, &options, |url| {
        assert!(!url.contains("code_challenge"), "{url}");
        tx.send(url.to_string()).unwrap()
    })
    .unwrap();
    browser.join().unwrap();
    assert!(client(&org, fast()).identity().is_ok());
}

#[test]
fn a_callback_with_another_state_is_refused() {
    let org = org(1);
    let (tx, rx) = mpsc::channel::<String>();
    let browser = std::thread::spawn(move || {
        let url = rx.recv().unwrap();
        let redirect = url
            .split("redirect_uri=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .replace("%3A", ":")
            .replace("%2F", "/");
        let response = agent()
            .get(format!("{redirect}?code=aPrxforged%3D%3D&state=forged"))
            .call()
            .unwrap();
        response.status().as_u16()
    });
    let options = LoginOptions {
        open_browser: false,
        timeout: Duration::from_secs(30),
    };
    let error = auth::login(&org.connection, &org.store, &options, |url| {
        tx.send(url.to_string()).unwrap()
    })
    .unwrap_err();
    assert_eq!(browser.join().unwrap(), 400);
    assert!(error.to_string().contains("state"), "{error}");
    assert!(!org.store.path().exists());
}

#[test]
fn without_a_sign_in_the_client_says_how_to_get_one() {
    let org = org(1);
    let error = SalesforceClient::connect(&org.connection, org.store.clone(), fast())
        .err()
        .unwrap();
    assert!(matches!(error, Error::NotLoggedIn));
    assert!(error.to_string().contains("etl auth login salesforce"));
    assert_eq!(error.exit_code(), 3);
}

#[test]
fn pages_of_5000_records_stream_with_every_record_once() {
    let org = org(5000);
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            query_batch_size: Some(500),
            ..fast()
        },
    );
    let mut pages = client.query_pages(
        "SELECT Id, Name, Owner.Email, BillingCity FROM Account",
        false,
    );
    let mut seen = HashSet::new();
    let mut largest = 0;
    let mut count = 0;
    for page in pages.by_ref() {
        let page = page.unwrap();
        largest = largest.max(page.len());
        for record in &page {
            assert!(!record.contains_key("attributes"));
            assert!(record.contains_key("Owner.Email"), "{record:?}");
            seen.insert(record["Id"].as_str().unwrap().to_string());
            count += 1;
        }
    }
    assert_eq!(pages.total_size(), Some(5000));
    assert_eq!((count, seen.len()), (5000, 5000));
    assert_eq!(largest, 500, "one page at a time, never the whole result");
}

#[test]
fn an_expired_session_is_refreshed_in_mid_extract() {
    // Every fourth query page finds its session ended (as when the org's timeout passes): the
    // client refreshes once and replays, and the extract neither fails nor loses a record.
    let org = org_with(
        2000,
        Config::default(),
        Some("seed: 3\nfaults:\n  - { route: \"/services/data/*/query/*\", probability: 0.25, kind: session_expired }\n"),
    );
    let first = login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            query_batch_size: Some(200),
            ..fast()
        },
    );
    let records = all_records(&client, "SELECT Id FROM Account");
    assert_eq!(records.len(), 2000);
    assert_eq!(
        ids(&records).into_iter().collect::<HashSet<_>>().len(),
        2000
    );
    assert!(
        client.refreshes() >= 1,
        "the fault plan should have ended a session"
    );
    let stored = org.store.load().unwrap().unwrap();
    assert_ne!(
        stored.access_token, first.access_token,
        "the new token is stored"
    );
    assert_eq!(stored.refresh_token, first.refresh_token);
}

#[test]
fn a_short_token_lifetime_never_fails_a_long_extract() {
    let org = org_with(
        1500,
        Config {
            token_lifetime: Duration::from_millis(300),
            ..Config::default()
        },
        None,
    );
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            query_batch_size: Some(200),
            ..fast()
        },
    );
    let mut count = 0;
    for page in client.query_pages("SELECT Id FROM Account", false) {
        count += page.unwrap().len();
        // A slow consumer: staging a page outlives the token.
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(count, 1500);
    assert!(client.refreshes() >= 1);
}

#[test]
fn a_dead_refresh_token_stops_with_the_way_out() {
    let org = org_with(
        20,
        Config {
            token_lifetime: Duration::from_millis(200),
            ..Config::default()
        },
        None,
    );
    let tokens = login(&org).unwrap();
    // Someone revokes the app's access in Salesforce Setup.
    let revoked = agent()
        .post(format!(
            "{}/services/oauth2/revoke",
            org.sandbox.salesforce_url
        ))
        .send_form([("token", tokens.refresh_token.as_deref().unwrap())])
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    std::thread::sleep(Duration::from_millis(250));
    let client = client(&org, fast());
    let error = client
        .query_pages("SELECT Id FROM Account", false)
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, Error::LoginExpired { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("run `etl auth login salesforce` again"),
        "{text}"
    );
    assert!(!text.contains(tokens.refresh_token.as_deref().unwrap()));
    assert_eq!(error.exit_code(), 3);
}

#[test]
fn salesforce_errors_keep_their_code_and_message() {
    let org = org(3);
    login(&org).unwrap();
    let client = client(&org, fast());
    let error = client
        .query_pages("SELECT Id, stagename__x FROM Opportunity", false)
        .next()
        .unwrap()
        .unwrap_err();
    match &error {
        Error::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((*status, code.as_str()), (400, "INVALID_FIELD"));
            assert!(
                message.contains("No such column 'stagename__x'"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.exit_code(), 2);
}

/// Gives `count` Accounts one and the same `SystemModstamp`, as a mass update does.
fn stamp_alike(org: &Org, count: usize, stamp: &str) -> Vec<String> {
    let shared = org.sandbox.salesforce_state();
    let mut state = lock(&shared);
    let chosen: Vec<String> = state
        .org
        .records("Account")
        .iter()
        .take(count)
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    for id in &chosen {
        state
            .org
            .get_mut(id)
            .unwrap()
            .insert("SystemModstamp".into(), json!(stamp));
    }
    chosen
}

#[test]
fn a_tie_of_3000_records_on_one_timestamp_is_read_whole_by_keyset() {
    let org = org(3500);
    login(&org).unwrap();
    let tied = stamp_alike(&org, 3000, "2030-01-01T00:00:00.000+0000");
    let client = client(&org, fast());
    let query = KeysetQuery {
        batch_size: 700,
        ..KeysetQuery::new("Account", &["Id", "Name", "SystemModstamp"])
    };
    // First run: everything, in batches; the watermark is advanced only after each batch is
    // "staged" (collected here).
    let mut staged: Vec<String> = Vec::new();
    let mut watermark: Option<Watermark> = None;
    for batch in client.incremental(query.clone(), None) {
        let batch = batch.unwrap();
        assert!(batch.records.len() <= 700);
        staged.extend(ids(&batch.records));
        watermark = Some(batch.watermark);
    }
    let unique: HashSet<&String> = staged.iter().collect();
    assert_eq!(
        (staged.len(), unique.len()),
        (3500, 3500),
        "no record missed or read twice"
    );
    assert!(tied.iter().all(|id| unique.contains(id)));
    let mark = watermark.unwrap();
    assert_eq!(mark.modstamp, "2030-01-01T00:00:00.000+0000");

    // A run stopped half-way through the tie resumes exactly where it stopped.
    let mut first_two: Vec<String> = Vec::new();
    let mut resume_at = None;
    for batch in client.incremental(query.clone(), None).take(2) {
        let batch = batch.unwrap();
        first_two.extend(ids(&batch.records));
        resume_at = Some(batch.watermark);
    }
    let rest: Vec<String> = client
        .incremental(query.clone(), resume_at.as_ref())
        .flat_map(|b| ids(&b.unwrap().records))
        .collect();
    let mut together: Vec<String> = first_two.into_iter().chain(rest).collect();
    together.sort();
    let mut expected = staged.clone();
    expected.sort();
    assert_eq!(together, expected);

    // Nothing changed since the watermark: nothing read. With a lookback, the tie is read again
    // (duplicates by Id are for staging to absorb) and nothing older.
    assert_eq!(client.incremental(query.clone(), Some(&mark)).count(), 0);
    let again: usize = client
        .incremental(
            KeysetQuery {
                lookback: Duration::from_secs(60),
                ..query
            },
            Some(&mark),
        )
        .map(|b| b.unwrap().records.len())
        .sum();
    assert_eq!(again, 3000);
}

fn contact(i: usize, last_name: Option<&str>) -> Record {
    let mut record = Record::new();
    record.insert("FirstName".into(), json!(format!("Test{i}")));
    if let Some(last) = last_name {
        record.insert("LastName".into(), json!(last));
    }
    record.insert("External_Id__c".into(), json!(format!("ext-{i}")));
    record
}

fn count_contacts_with_prefix(org: &Org, prefix: &str) -> (usize, usize) {
    let shared = org.sandbox.salesforce_state();
    let state = lock(&shared);
    let values: Vec<&str> = state
        .org
        .records("Contact")
        .iter()
        .filter_map(|r| r.get("External_Id__c").and_then(Value::as_str))
        .filter(|v| v.starts_with(prefix))
        .collect();
    let distinct: HashSet<&&str> = values.iter().collect();
    (values.len(), distinct.len())
}

#[test]
fn writes_report_each_record_with_partial_failures() {
    let org = org(3);
    login(&org).unwrap();
    let client = client(&org, fast());
    // 450 records: three Collections calls; every tenth lacks the required LastName.
    let records: Vec<Record> = (0..450)
        .map(|i| contact(i, (i % 10 != 0).then_some("Person")))
        .collect();
    let create = Operation::Create {
        match_field: Some("External_Id__c".into()),
    };
    let outcomes = client
        .write("Contact", &create, &records)
        .into_result()
        .unwrap();
    assert_eq!(outcomes.len(), 450);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i % 10 == 0 {
            match outcome {
                Outcome::Failed {
                    code,
                    message,
                    fields,
                } => {
                    assert_eq!(code, "REQUIRED_FIELD_MISSING");
                    assert!(message.contains("LastName"), "{message}");
                    assert_eq!(fields, &vec!["LastName".to_string()]);
                }
                other => panic!("record {i}: {other:?}"),
            }
        } else {
            assert!(
                matches!(outcome, Outcome::Created { id } if id.starts_with("003")),
                "{outcome:?}"
            );
        }
    }
    assert_eq!(count_contacts_with_prefix(&org, "ext-"), (405, 405));

    // Upsert by the external id: the 405 are updated, the 45 fixed ones created.
    let fixed: Vec<Record> = (0..450).map(|i| contact(i, Some("Fixed"))).collect();
    let upsert = Operation::Upsert {
        external_id: "External_Id__c".into(),
    };
    let outcomes = client
        .write("Contact", &upsert, &fixed)
        .into_result()
        .unwrap();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Created { .. }))
        .count();
    let updated = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Updated { .. }))
        .count();
    assert_eq!((created, updated), (45, 405));
    assert_eq!(count_contacts_with_prefix(&org, "ext-"), (450, 450));

    // Update by Id, one of them with a bad Id.
    let mut changes: Vec<Record> = outcomes
        .iter()
        .take(3)
        .map(|o| {
            let mut r = Record::new();
            r.insert("Id".into(), json!(o.id().unwrap()));
            r.insert("Title".into(), json!("Boss"));
            r
        })
        .collect();
    changes[1].insert("Id".into(), json!("003000000000000AAA"));
    let outcomes = client
        .write("Contact", &Operation::Update, &changes)
        .into_result()
        .unwrap();
    assert!(matches!(outcomes[0], Outcome::Updated { .. }));
    assert!(outcomes[1].is_failure(), "{:?}", outcomes[1]);
    assert!(matches!(outcomes[2], Outcome::Updated { .. }));
}

#[test]
fn creates_under_ten_percent_faults_neither_duplicate_nor_lose() {
    let faults = "seed: 11\nfaults:\n  \
        - { route: \"/services/data/*/composite/sobjects*\", probability: 0.1, kind: drop_connection }\n  \
        - { route: \"/services/data/*/composite/sobjects*\", probability: 0.1, kind: status, status: 503 }\n  \
        - { route: \"/services/data/*/composite/sobjects*\", probability: 0.1, kind: unable_to_lock_row }\n  \
        - { route: \"/services/data/*/composite/sobjects*\", probability: 0.05, kind: status, status: 500 }\n  \
        - { route: \"/services/data/*/composite/sobjects*\", probability: 0.05, kind: session_expired }\n  \
        - { route: \"/services/data/*/query*\", probability: 0.1, kind: drop_connection }\n";
    let org = org_with(3, Config::default(), Some(faults));
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            writes_in_flight: 3,
            max_attempts: 12,
            ..fast()
        },
    );
    let records: Vec<Record> = (0..2000).map(|i| contact(i, Some("Load"))).collect();
    let create = Operation::Create {
        match_field: Some("External_Id__c".into()),
    };
    let outcomes = client
        .write("Contact", &create, &records)
        .into_result()
        .unwrap();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.is_failure()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let ids: HashSet<&str> = outcomes.iter().filter_map(Outcome::id).collect();
    assert_eq!(ids.len(), 2000);
    assert_eq!(
        count_contacts_with_prefix(&org, "ext-"),
        (2000, 2000),
        "no duplicate, no loss"
    );
    assert!(
        client.retries() > 0,
        "the faults should have caused retries"
    );
}

#[test]
fn a_lost_create_without_an_external_id_is_not_resent() {
    let faults = "seed: 5\nfaults:\n  - { route: \"/services/data/*/composite/sobjects\", methods: [POST], kind: drop_connection }\n";
    let org = org_with(3, Config::default(), Some(faults));
    login(&org).unwrap();
    let client = client(&org, fast());
    let records: Vec<Record> = (0..5).map(|i| contact(i, Some("Once"))).collect();
    let outcomes = client
        .write(
            "Contact",
            &Operation::Create { match_field: None },
            &records,
        )
        .into_result()
        .unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Failed { code, .. } if code == "OUTCOME_UNKNOWN")),
        "{outcomes:?}"
    );
    // The dropped answer's records were written exactly once.
    assert_eq!(count_contacts_with_prefix(&org, "ext-"), (5, 5));
}

#[test]
fn the_api_budget_stops_before_the_org_limit() {
    let org = org_with(
        50,
        Config {
            daily_limit: 20,
            ..Config::default()
        },
        None,
    );
    login(&org).unwrap();
    let mut connection = org.connection.clone();
    connection.max_api_usage_percent = Some(50);
    let client = SalesforceClient::connect(
        &connection,
        org.store.clone(),
        ClientOptions {
            query_batch_size: Some(200),
            ..fast()
        },
    )
    .unwrap();
    let mut calls = 0;
    let stopped = loop {
        match client
            .query_pages("SELECT Id FROM Account LIMIT 1", false)
            .next()
            .unwrap()
        {
            Ok(_) => calls += 1,
            Err(error) => break error,
        }
        assert!(calls < 20, "never stopped");
    };
    assert!(
        matches!(
            stopped,
            Error::QuotaReached {
                used: 10,
                limit: 20,
                max_percent: 50
            }
        ),
        "{stopped:?}"
    );
    assert_eq!(
        client.usage().unwrap().used,
        10,
        "the org never went past half its limit"
    );
}

fn online_diagnostics(org: &Org, pipeline_yaml: &str) -> Vec<etl::config::Diagnostic> {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("opportunities.yaml");
    std::fs::write(&path, pipeline_yaml).unwrap();
    let mut offline = Vec::new();
    let etl::config::loader::PipelineLoad::Loaded(loaded) =
        etl::config::loader::load_pipeline(&path, &|_| None, &mut offline)
    else {
        panic!("pipeline does not load: {offline:?}");
    };
    let client = client(org, fast());
    let mut describes = etl::salesforce::describe::OrgDescribes::new(&client);
    let mut out = Vec::new();
    etl::config::rules::check_pipeline_online(
        &loaded.source,
        &loaded.tree,
        &loaded.pipeline,
        &mut describes,
        &mut out,
    );
    assert!(describes.failure.is_none(), "{:?}", describes.failure);
    out
}

#[test]
fn online_checks_name_the_real_fields() {
    let org = org(3);
    login(&org).unwrap();
    let yaml = "pipeline: opportunities\n\
salesforce:\n  object: Opportunity\n  incremental: SystemModstamp\n\
halo:\n  entity: Opportunities\n\
sync:\n  sync_back: { create: true, update: true }\n\
fields:\n\
  - { salesforce: Name, halo: summary, sync_back: true }\n\
  - { salesforce: stagename, halo: status }\n\
  - { salesforce: TaskType, halo: customfields.CFTaskType }\n\
  - { salesforce: TaskType__c, halo: customfields.CFTaskType2 }\n\
  - { salesforce: Owner.Emial, halo: agent }\n\
  - { salesforce: Account.Owner.Email, halo: agent2 }\n\
  - { salesforce: Acount.Name, halo: client_name }\n\
  - { salesforce: IsWon, halo: won, sync_back: true }\n\
  - { salesforce: ContactId, halo: contact, sync_back: true }\n";
    let diagnostics = online_diagnostics(&org, yaml);
    let rendered: Vec<String> = diagnostics.iter().map(|d| d.render(None)).collect();
    let all = rendered.join("\n");
    assert_eq!(diagnostics.len(), 6, "{all}");
    let at = |line: usize| {
        diagnostics
            .iter()
            .find(|d| d.line == line)
            .map(|d| d.render(None))
            .unwrap_or_else(|| panic!("nothing on line {line}: {all}"))
    };
    assert!(at(11).contains("did you mean `StageName`?"), "{}", at(11));
    assert!(at(12).contains("did you mean `TaskType__c`?"), "{}", at(12));
    assert!(at(14).contains("did you mean `Email`?"), "{}", at(14));
    assert!(at(16).contains("did you mean `Account`?"), "{}", at(16));
    assert!(at(17).contains("read-only in this org"), "{}", at(17));
    // ContactId is create-only on Opportunity: a warning, not an error.
    assert!(at(18).contains("but not updated"), "{}", at(18));
    assert!(at(18).starts_with("warning"), "{}", at(18));
}

#[test]
fn big_extracts_go_through_bulk_page_by_page() {
    let org = org(5000);
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            bulk_query_threshold: 1000,
            bulk_page_size: 1200,
            ..fast()
        },
    );
    let mut extract = client
        .extract(
            "SELECT Id, Name, NumberOfEmployees, IsDeleted, SystemModstamp FROM Account",
            false,
        )
        .unwrap();
    assert!(extract.is_bulk());
    let mut seen = HashSet::new();
    let mut pages = 0;
    for page in extract.by_ref() {
        let page = page.unwrap();
        assert!(page.len() <= 1200);
        pages += 1;
        for record in page {
            assert_eq!(record["IsDeleted"], json!(false), "typed by the describe");
            assert!(record["SystemModstamp"]
                .as_str()
                .unwrap()
                .ends_with("+0000"));
            assert!(record["NumberOfEmployees"].is_null() || record["NumberOfEmployees"].is_i64());
            seen.insert(record["Id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!((seen.len(), pages), (5000, 5));
    // Below the threshold, REST.
    let small = client
        .extract("SELECT Id FROM Account WHERE Name = 'nobody at all'", false)
        .unwrap();
    assert!(!small.is_bulk());
}

#[test]
fn a_query_bulk_refuses_falls_back_to_rest() {
    let org = org(150);
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            bulk_query_threshold: 100,
            ..fast()
        },
    );
    // Subqueries are not supported by Bulk API 2.0.
    let extract = client
        .extract("SELECT Id, (SELECT Id FROM Contacts) FROM Account", false)
        .unwrap();
    assert!(!extract.is_bulk());
    let records: Vec<Record> = extract.flat_map(|p| p.unwrap()).collect();
    assert_eq!(records.len(), 150);
    assert!(records.iter().all(|r| r.contains_key("Contacts")));
}

#[test]
fn big_writes_go_through_bulk_ingest_with_results_joined_back() {
    let org = org(3);
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            bulk_write_threshold: 1000,
            ..fast()
        },
    );
    let records: Vec<Record> = (0..1500)
        .map(|i| contact(i, (i % 10 != 3).then_some("Bulk")))
        .collect();
    let create = Operation::Create {
        match_field: Some("External_Id__c".into()),
    };
    let calls_before = client.calls();
    let outcomes = client
        .write("Contact", &create, &records)
        .into_result()
        .unwrap();
    assert!(
        client.calls() - calls_before < 10,
        "one job, not 8 Collections calls"
    );
    assert_eq!(outcomes.len(), 1500);
    let shared = org.sandbox.salesforce_state();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Failed { code, fields, .. } => {
                assert_eq!(i % 10, 3, "record {i}");
                assert_eq!(code, "REQUIRED_FIELD_MISSING");
                assert_eq!(fields, &vec!["LastName".to_string()]);
            }
            Outcome::Created { id } => {
                // The Id really is this input row's record.
                let state = lock(&shared);
                let stored = state.org.get(id).unwrap();
                assert_eq!(stored["External_Id__c"], json!(format!("ext-{i}")));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(count_contacts_with_prefix(&org, "ext-"), (1350, 1350));
}

/// Sync back's creates (no external id to match by) through a Bulk ingest job whose
/// `successfulResults` echo numbers the way Salesforce does (`9.12260031E8`, `50.0`): every
/// record is reported created with its own Id, identical rows each get one of the two records,
/// and a refused row keeps Salesforce's error. Matching by the echoed text instead left the
/// numeric rows `NOT_PROCESSED`, so the next run created them again.
#[test]
fn bulk_creates_with_numbers_are_all_reported_created_with_their_ids() {
    use etl::engine::{Target, WriteAction, WriteRequest};
    use etl::salesforce::target::SalesforceTarget;

    let org = org(1);
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            bulk_write_threshold: 1000,
            ..fast()
        },
    );
    let target = SalesforceTarget::new(&client);
    let name = |i: usize| {
        // Every hundredth record repeats the one before it, field for field.
        let i = if i % 100 == 7 { i - 1 } else { i };
        format!("Bulk numbers {i}")
    };
    let refused = |i: usize| i % 250 == 3;
    let requests: Vec<WriteRequest> = (0..1100)
        .map(|i| {
            let amount = if i % 100 == 7 { i - 1 } else { i };
            let mut record = json!({
                "StageName": "Prospecting",
                "CloseDate": "2026-12-31",
                // Halo's answers: whole numbers, decimals and text, shaped by the describe.
                "Amount": if amount % 2 == 0 { json!(912_260_031 + amount) } else { json!(1234.5 + amount as f64) },
                "Probability": "50",
                "IsPrivate": "false",
            });
            if !refused(i) {
                record["Name"] = json!(name(i));
            }
            WriteRequest {
                action: WriteAction::Create,
                record: record.as_object().unwrap().clone(),
            }
        })
        .collect();
    let calls_before = client.calls();
    let results = target.write("Opportunity", &requests);
    assert!(client.calls() - calls_before < 10, "one Bulk job");
    assert_eq!(results.len(), 1100);
    let shared = org.sandbox.salesforce_state();
    let mut ids = HashSet::new();
    for (i, result) in results.iter().enumerate() {
        match &result.outcome {
            Err(message) => {
                assert!(refused(i), "record {i}: {message}");
                assert!(
                    message
                        .starts_with("REQUIRED_FIELD_MISSING: Required fields are missing: [Name]"),
                    "record {i}: {message}"
                );
            }
            Ok((id, _)) => {
                assert!(!refused(i), "record {i} was refused by the org");
                assert!(ids.insert(id.clone()), "record {i}: {id} given twice");
                let state = lock(&shared);
                let stored = state.org.get(id).unwrap();
                assert_eq!(stored["Name"], json!(name(i)), "record {i}");
                let amount = requests[i].record["Amount"].as_f64().unwrap();
                assert_eq!(stored["Amount"].as_f64(), Some(amount), "record {i}");
            }
        }
    }
    let refusals = (0..1100).filter(|&i| refused(i)).count();
    assert_eq!(ids.len(), 1100 - refusals);
    let stored = live_opportunities_named(&org, "Bulk numbers ");
    assert_eq!(stored, 1100 - refusals, "each record written once");
}

fn live_opportunities_named(org: &Org, prefix: &str) -> usize {
    let shared = org.sandbox.salesforce_state();
    let state = lock(&shared);
    state
        .org
        .records("Opportunity")
        .iter()
        .filter(|r| r["IsDeleted"] != json!(true))
        .filter(|r| r["Name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .count()
}

/// Child subqueries come out as query results (`totalSize`, `done`, `records`), whole: a child
/// result Salesforce pages (here past 3 rows) has its other pages read through its own
/// `nextRecordsUrl`, and a parent without children gets an empty result, not `null`.
#[test]
fn child_results_keep_their_shape_and_every_page() {
    let org = org_with(
        4,
        Config {
            child_batch_size: 3,
            ..Config::default()
        },
        None,
    );
    login(&org).unwrap();
    let client = client(&org, fast());
    let accounts = ids(&all_records(&client, "SELECT Id FROM Account"));
    let shared = org.sandbox.salesforce_state();
    {
        let mut state = lock(&shared);
        let owner = etl::sandbox::salesforce::ids::make("005", 1);
        for (parent, count) in [(&accounts[0], 8), (&accounts[1], 2)] {
            for n in 0..count {
                let attachment = json!({"ParentId": parent, "Name": format!("paged-{n}.txt"),
                    "ContentType": "text/plain", "BodyLength": 1, "IsPrivate": false});
                state.org.create(
                    "Attachment",
                    attachment.as_object().unwrap().clone(),
                    &owner,
                );
            }
        }
    }
    let attachments_of = |parent: &str| -> HashSet<String> {
        let state = lock(&shared);
        state
            .org
            .records("Attachment")
            .iter()
            .filter(|a| a["ParentId"] == json!(parent) && a["IsDeleted"] != json!(true))
            .map(|a| a["Id"].as_str().unwrap().to_string())
            .collect()
    };
    let records = all_records(
        &client,
        "SELECT Id, Name, (SELECT Id, Name FROM Attachments) FROM Account",
    );
    assert_eq!(records.len(), accounts.len());
    let mut paged = 0;
    for record in &records {
        let id = record["Id"].as_str().unwrap();
        let expected = attachments_of(id);
        let children = record["Attachments"].as_object().unwrap();
        assert_eq!(children["totalSize"], json!(expected.len()), "{id}");
        assert_eq!(children["done"], json!(true), "{id}");
        assert!(!children.contains_key("nextRecordsUrl"), "{id}");
        let read: HashSet<String> = children["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["Id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(read, expected, "{id}");
        assert_eq!(
            children["records"].as_array().unwrap().len(),
            expected.len()
        );
        if expected.len() > 3 {
            paged += 1;
        }
    }
    assert!(paged >= 1, "a parent has more children than one child page");
}

#[test]
fn compound_addresses_come_out_as_their_components() {
    let org = org(20);
    login(&org).unwrap();
    let client = client(&org, fast());
    let records = all_records(
        &client,
        "SELECT Id, BillingAddress, Owner.Name FROM Account",
    );
    assert_eq!(records.len(), 20);
    let with_city = records
        .iter()
        .find(|r| r.get("BillingCity").is_some_and(|c| !c.is_null()))
        .expect("a seeded account with a billing city");
    for component in [
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "BillingLatitude",
        "BillingLongitude",
    ] {
        assert!(
            with_city.contains_key(component),
            "{component}: {with_city:?}"
        );
    }
    assert!(
        !with_city.contains_key("BillingAddress"),
        "never left as an object"
    );
    let shared = org.sandbox.salesforce_state();
    let state = lock(&shared);
    let stored = state.org.get(with_city["Id"].as_str().unwrap()).unwrap();
    assert_eq!(stored["BillingCity"], with_city["BillingCity"]);
}

#[test]
fn a_write_stopped_by_the_budget_reports_what_was_written() {
    let org = org_with(
        3,
        Config {
            daily_limit: 100,
            ..Config::default()
        },
        None,
    );
    login(&org).unwrap();
    let mut connection = org.connection.clone();
    connection.max_api_usage_percent = Some(10);
    let client = SalesforceClient::connect(
        &connection,
        org.store.clone(),
        ClientOptions {
            writes_in_flight: 1,
            ..fast()
        },
    )
    .unwrap();
    // 4,000 records need 20 calls; the budget allows 10 calls in all.
    let records: Vec<Record> = (0..4000).map(|i| contact(i, Some("Budget"))).collect();
    let create = Operation::Create {
        match_field: Some("External_Id__c".into()),
    };
    let written = client.write("Contact", &create, &records);
    assert!(
        matches!(written.stopped, Some(Error::QuotaReached { .. })),
        "{:?}",
        written.stopped
    );
    assert_eq!(written.outcomes.len(), 4000);
    let created = written
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Created { .. }))
        .count();
    let not_sent = written
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed { code, .. } if code == "NOT_SENT"))
        .count();
    assert_eq!(created + not_sent, 4000);
    assert!(
        created > 0 && not_sent > 0,
        "{created} created, {not_sent} not sent"
    );
    // What was reported created is exactly what the org has.
    assert_eq!(count_contacts_with_prefix(&org, "ext-"), (created, created));
    assert!(client.usage().unwrap().used <= 10);
}

#[test]
fn headless_flows_sign_in_on_every_run() {
    let org = org(3);
    let mut connection = org.connection.clone();
    connection.flow = etl::config::model::SalesforceFlow::Password;
    connection.username = Some("integration@sandbox.example".into());
    connection.password = Some("sandbox-password".into());
    let client = SalesforceClient::connect(&connection, org.store.clone(), fast()).unwrap();
    assert_eq!(all_records(&client, "SELECT Id FROM Account").len(), 3);
    assert!(!org.store.path().exists(), "headless flows store nothing");
    assert_eq!(client.estimate_calls(4500, 450), 1 + 3 + 3);

    connection.password = Some("wrong".into());
    let refused = SalesforceClient::connect(&connection, org.store.clone(), fast())
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("invalid_grant: authentication failure"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("wrong"));

    connection.flow = etl::config::model::SalesforceFlow::ClientCredentials;
    let client = SalesforceClient::connect(&connection, org.store.clone(), fast()).unwrap();
    assert_eq!(
        client.identity().unwrap()["organization_id"]
            .as_str()
            .map(|s| &s[..3]),
        Some("00D")
    );

    // JWT bearer without a key is a configuration error (tests/jwt_bearer.rs signs in with one).
    connection.flow = etl::config::model::SalesforceFlow::JwtBearer;
    let jwt = SalesforceClient::connect(&connection, org.store.clone(), fast())
        .err()
        .unwrap();
    assert!(jwt.to_string().contains("private_key_file"), "{jwt}");
    assert_eq!(jwt.exit_code(), 2);
}

#[test]
fn a_denied_approval_ends_the_login_with_salesforces_words() {
    let mut org = org_with(1, Config::default(), None);
    // The approve page, not auto-approval: the person clicks Deny.
    lock(&org.sandbox.salesforce_state()).config.auto_approve = false;
    org.connection.pkce = true;
    let (tx, rx) = mpsc::channel::<String>();
    let browser = std::thread::spawn(move || {
        let url = rx.recv().unwrap();
        let page = agent()
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(page.contains("Allow access?"), "{page}");
        let (base, query) = url.split_once('?').unwrap();
        let mut fields: Vec<(String, String)> = query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                let decoded = v
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%20", " ");
                (k.to_string(), decoded)
            })
            .collect();
        fields.push(("decision".into(), "deny".into()));
        let answer = agent()
            .post(format!("{base}/approve"))
            .send_form(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap();
        assert_eq!(answer.status().as_u16(), 302);
        let callback = answer.headers()["location"].to_str().unwrap().to_string();
        agent().get(&callback).call().unwrap().status().as_u16()
    });
    let options = LoginOptions {
        open_browser: false,
        timeout: Duration::from_secs(30),
    };
    let error = auth::login(&org.connection, &org.store, &options, |url| {
        tx.send(url.to_string()).unwrap()
    })
    .unwrap_err();
    assert_eq!(browser.join().unwrap(), 400);
    assert_eq!(error.code(), Some("access_denied"));
    assert!(
        error.to_string().contains("end-user denied authorization"),
        "{error}"
    );
    assert!(!org.store.path().exists());
}

#[test]
fn a_bulk_results_page_that_breaks_off_is_read_again_without_losing_or_repeating() {
    let faults = "seed: 9\nfaults:\n  - { route: \"/services/data/*/jobs/query/*/results\", probability: 0.4, kind: drop_connection }\n";
    let org = org_with(3000, Config::default(), Some(faults));
    login(&org).unwrap();
    let client = client(
        &org,
        ClientOptions {
            bulk_query_threshold: 1000,
            bulk_page_size: 1000,
            max_attempts: 12,
            ..fast()
        },
    );
    let extract = client
        .extract("SELECT Id, Name FROM Account", false)
        .unwrap();
    assert!(extract.is_bulk());
    let ids: Vec<String> = extract.flat_map(|page| ids(&page.unwrap())).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (3000, 3000));
    assert!(
        client.retries() > 0,
        "the fault plan should have broken a page"
    );
}

#[test]
fn the_org_judges_a_pipelines_soql_with_its_own_words() {
    let org = org(3);
    login(&org).unwrap();
    let client = client(&org, fast());
    let check = |yaml: &str| {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("opportunities.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut offline = Vec::new();
        let etl::config::loader::PipelineLoad::Loaded(loaded) =
            etl::config::loader::load_pipeline(&path, &|_| None, &mut offline)
        else {
            panic!("pipeline does not load: {offline:?}");
        };
        let mut out = Vec::new();
        etl::salesforce::describe::check_pipeline_soql(&client, &loaded, &offline, &mut out)
            .unwrap();
        out
    };
    let pipeline = |condition: &str| {
        format!(
            "pipeline: opportunities\nsalesforce:\n  object: Opportunity\n  where: \"{condition}\"\n\
             halo:\n  entity: Opportunities\nfields:\n  - {{ salesforce: Name, halo: summary }}\n"
        )
    };
    assert!(check(&pipeline("IsDeleted = false AND TaskType__c = 'Renewal'")).is_empty());
    let refused = check(&pipeline("TaskTyp__c = 'Renewal'"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    let shown = refused[0].render(None);
    assert_eq!(refused[0].line, 4, "{shown}");
    assert!(shown.contains("INVALID_FIELD"), "{shown}");
    assert!(
        shown.contains("No such column 'TaskTyp__c' on entity 'Opportunity'"),
        "{shown}"
    );
}
