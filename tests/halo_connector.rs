//! The Halo connector against the Halo sandbox over real HTTP: signing in with the credentials
//! the sandbox prints and renewing short-lived tokens, paging 2,500 users, batch creates and
//! partial updates, custom fields written by name and by id and read back, an attachment round
//! trip, a 429 storm ridden out without losing a write, a batch with one bad record, and
//! injected 503s, dropped connections and expired sessions. Nothing here asserts a timing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use etl::config::model::HaloConnection;
use etl::halo::custom_fields::{
    custom_field_value, custom_field_values, ids_for, set_custom_field,
};
use etl::halo::{
    partial_update, ClientOptions, FieldRef, HaloClient, HaloError, ListQuery, NewAttachment,
    RateLimit, RetryPolicy,
};
use etl::sandbox::faults::FaultPlan;
use etl::sandbox::halo::Config;
use etl::sandbox::server::{self, Options, Running};

fn start(config: Config, faults: Option<FaultPlan>) -> Running {
    server::start(Options {
        accounts: 5,
        halo: config,
        faults,
        ..Options::default()
    })
    .unwrap()
}

/// The connection exactly as `etl sandbox` prints it.
fn connection(sandbox: &Running) -> HaloConnection {
    let halo = sandbox.description()["halo"].clone();
    serde_json::from_value(halo.clone())
        .unwrap_or_else(|e| panic!("the printed halo connection does not load ({e}): {halo}"))
}

fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 30,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            rate_limit_delay: Duration::from_millis(5),
            rate_limit_max_delay: Duration::from_millis(50),
        },
        pages_in_flight: 4,
        ..ClientOptions::default()
    }
}

fn client(sandbox: &Running) -> HaloClient {
    HaloClient::new(&connection(sandbox), options()).unwrap()
}

fn saved(outcomes: &[etl::halo::WriteOutcome]) -> Vec<Value> {
    outcomes
        .iter()
        .map(|outcome| match &outcome.result {
            Ok(record) => record.clone(),
            Err(failure) => panic!("record #{} failed: {}", outcome.index, failure.message),
        })
        .collect()
}

fn id(record: &Value) -> u64 {
    record["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {record}"))
}

fn all(client: &HaloClient, entity: &str, query: &ListQuery) -> Vec<Value> {
    client
        .records(entity, query)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// The ids of the records `each_page` hands over (several pages in flight), in order, and the
/// calls it made.
fn paged_ids(client: &HaloClient, entity: &str, query: &ListQuery) -> (Vec<u64>, u64) {
    let before = client.api_calls();
    let mut ids = Vec::new();
    client
        .each_page(entity, query, |page| {
            ids.extend(page?.0.iter().map(id));
            Ok::<(), HaloError>(())
        })
        .unwrap();
    (ids, client.api_calls() - before)
}

fn default_site(client: &HaloClient) -> u64 {
    let sites = all(client, "Site", &ListQuery::default());
    id(sites.first().expect("the seed has a default site"))
}

#[test]
fn signs_in_with_the_printed_credentials_and_renews_short_tokens() {
    let sandbox = start(
        Config {
            token_lifetime: Duration::from_secs(2),
            ..Config::default()
        },
        None,
    );
    let client = client(&sandbox);
    let clients = all(&client, "Client", &ListQuery::default());
    assert!(!clients.is_empty());
    assert_eq!(client.token_fetches(), 1);
    // Outlive the token; the next calls sign in again instead of failing.
    std::thread::sleep(Duration::from_millis(2_500));
    let again = client.get("Client", id(&clients[0])).unwrap().unwrap();
    assert_eq!(again["id"], clients[0]["id"]);
    assert_eq!(client.token_fetches(), 2);
    assert!(client.get("Client", 987_654).unwrap().is_none());
}

#[test]
fn wrong_credentials_and_tenant_are_refused_with_halos_message() {
    let sandbox = start(Config::default(), None);
    let mut wrong_secret = connection(&sandbox);
    wrong_secret.client_secret = "not-the-secret".into();
    let client = HaloClient::new(&wrong_secret, options()).unwrap();
    let error = client.get("Client", 1).unwrap_err();
    assert!(
        matches!(
            error,
            HaloError::Auth {
                status: Some(401),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("invalid_client"), "{error}");
    assert!(!error.to_string().contains("not-the-secret"));

    let mut wrong_tenant = connection(&sandbox);
    wrong_tenant.tenant = Some("someone-else".into());
    let client = HaloClient::new(&wrong_tenant, options()).unwrap();
    assert!(matches!(
        client.get("Client", 1),
        Err(HaloError::Auth { .. })
    ));

    let mut no_tenant = connection(&sandbox);
    no_tenant.tenant = None;
    no_tenant.auth_url = None; // <base_url>/auth
    let client = HaloClient::new(&no_tenant, options()).unwrap();
    assert!(client
        .list("Client", &ListQuery::default())
        .next()
        .unwrap()
        .is_ok());
}

#[test]
fn pages_through_2500_users_a_page_at_a_time() {
    let sandbox = start(Config::default(), None);
    let client = HaloClient::new(
        &connection(&sandbox),
        ClientOptions {
            batch_size: 250,
            ..options()
        },
    )
    .unwrap();
    let site_id = default_site(&client);
    let users: Vec<Value> = (0..2_500)
        .map(|n| {
            json!({
                "firstname": "Paging", "surname": format!("User {n:04}"),
                "name": format!("Paging User {n:04}"),
                "emailaddress": format!("paging.{n}@example.com"), "site_id": site_id
            })
        })
        .collect();
    let before = client.api_calls();
    let created = saved(&client.write("Users", &users));
    assert_eq!(
        client.api_calls() - before,
        10,
        "2,500 users in POSTs of 250"
    );
    let created_ids: BTreeSet<u64> = created.iter().map(id).collect();
    assert_eq!(created_ids.len(), 2_500);
    for (sent, back) in users.iter().zip(&created) {
        assert_eq!(
            back["emailaddress"], sent["emailaddress"],
            "outcomes in input order"
        );
    }

    let before = client.api_calls();
    let mut seen = BTreeSet::new();
    let mut in_order = Vec::new();
    let mut pages = 0;
    let query = ListQuery {
        page_size: Some(100),
        ..ListQuery::default()
    };
    for page in client.list("Users", &query) {
        let page = page.unwrap();
        assert!(page.len() <= 100);
        pages += 1;
        for user in &page {
            assert!(seen.insert(id(user)), "user {} listed twice", user["id"]);
            in_order.push(id(user));
        }
    }
    assert!(created_ids.is_subset(&seen));
    let total = seen.len() as u64;
    assert_eq!(pages, total.div_ceil(100));
    assert_eq!(
        client.api_calls() - before,
        pages,
        "no call past the last page"
    );
    // Four pages in flight once the first gave the count: the same records in the same order,
    // in as many calls.
    assert_eq!(paged_ids(&client, "Users", &query), (in_order, pages));
}

#[test]
fn tickets_page_at_halos_cap_whatever_was_asked() {
    let sandbox = start(Config::default(), None);
    let client = client(&sandbox);
    let ticket_types = all(&client, "TicketType", &ListQuery::default());
    let clients = all(&client, "Client", &ListQuery::default());
    let tickets: Vec<Value> = (0..230)
        .map(|n| {
            json!({
                "summary": format!("Capped {n:03}"), "details": "paging",
                "tickettype_id": ticket_types[0]["id"], "client_id": clients[0]["id"]
            })
        })
        .collect();
    let created: BTreeSet<u64> = saved(&client.write("Tickets", &tickets))
        .iter()
        .map(id)
        .collect();
    let before = client.api_calls();
    let mut seen = BTreeSet::new();
    let mut in_order = Vec::new();
    let mut pages = 0;
    let query = ListQuery {
        page_size: Some(500),
        ..ListQuery::default()
    };
    for page in client.list("Tickets", &query) {
        let page = page.unwrap();
        assert!(page.len() <= 100, "Halo caps ticket pages at 100");
        pages += 1;
        seen.extend(page.iter().map(id));
        in_order.extend(page.iter().map(id));
    }
    assert!(created.is_subset(&seen));
    assert_eq!(pages, (seen.len() as u64).div_ceil(100));
    assert_eq!(client.api_calls() - before, pages);
    // Several pages in flight are numbered by the page size Halo used, not the one asked.
    assert_eq!(paged_ids(&client, "Tickets", &query), (in_order, pages));
}

#[test]
fn incremental_reads_pass_lastupdatefromdate() {
    // Customers are the entity Halo lists by update time (the reference's §2.2).
    let sandbox = start(Config::default(), None);
    let client = client(&sandbox);
    let customer = |name: &str| json!({ "name": name });
    let old = saved(&client.write("Client", &[customer("Old One")]));
    std::thread::sleep(Duration::from_millis(1_100));
    let new = saved(&client.write("Client", &[customer("New One")]));
    let stamp = new[0]["last_update"]
        .as_str()
        .expect("customers carry last_update")
        .chars()
        .take(19)
        .collect::<String>();
    let changed = all(
        &client,
        "Client",
        &ListQuery::default().updated_since(stamp),
    );
    let ids: BTreeSet<u64> = changed.iter().map(id).collect();
    assert!(ids.contains(&id(&new[0])));
    assert!(!ids.contains(&id(&old[0])));
}

#[test]
fn creates_in_one_post_and_updates_only_what_changed() {
    let sandbox = start(Config::default(), None);
    let client = client(&sandbox);
    let before = client.api_calls();
    let created = saved(&client.write(
        "Client",
        &[
            json!({ "name": "Batch One", "website": "https://one.example" }),
            json!({ "name": "Batch Two", "website": "https://two.example" }),
            json!({ "name": "Batch Three" }),
        ],
    ));
    assert_eq!(client.api_calls() - before, 1);
    assert_eq!(created[1]["name"], "Batch Two");

    let current = client.get("Client", id(&created[0])).unwrap().unwrap();
    let desired = json!({ "name": "Batch One", "website": "https://one.example/new" });
    let update = partial_update(&current, &desired).expect("the website changed");
    assert_eq!(
        update,
        json!({ "id": created[0]["id"], "website": "https://one.example/new" })
    );
    assert_eq!(
        partial_update(&current, &json!({ "name": "Batch One" })),
        None
    );
    let updated = saved(&client.write("Client", &[update]));
    assert_eq!(updated[0]["id"], created[0]["id"]);
    let back = client.get("Client", id(&created[0])).unwrap().unwrap();
    assert_eq!(back["website"], "https://one.example/new");
    assert_eq!(back["name"], "Batch One", "fields not sent are kept");

    let deleted = client.delete("Client", id(&created[2])).unwrap();
    assert_eq!(deleted["name"], "Batch Three");
    assert!(client.get("Client", id(&created[2])).unwrap().is_none());
}

#[test]
fn custom_fields_by_name_and_by_id_read_back_by_name() {
    let sandbox = start(Config::default(), None);
    let client = client(&sandbox);
    let definitions = client.custom_field_definitions().unwrap();
    // Custom fields belong to one kind of record (FieldInfo `typeid`): users' here.
    let user_fields: Vec<_> = definitions
        .iter()
        .filter(|definition| definition.type_id == Some(4))
        .cloned()
        .collect();
    let ids = ids_for(&user_fields, &["CFSalesforceContactId"]).unwrap();
    let site_id = default_site(&client);

    let mut by_name = json!({ "name": "Custom By Name", "site_id": site_id });
    set_custom_field(
        &mut by_name,
        FieldRef::Name("CFSalesforceContactId".into()),
        json!("003000000000001AAA"),
    );
    let mut by_id = json!({ "name": "Custom By Id", "site_id": site_id });
    set_custom_field(
        &mut by_id,
        FieldRef::Id(ids[0]),
        json!("003000000000002AAA"),
    );
    let created = saved(&client.write("Users", &[by_name, by_id]));

    let first = client.get("Users", id(&created[0])).unwrap().unwrap();
    assert_eq!(
        custom_field_value(&first, "CFSalesforceContactId"),
        Some(&json!("003000000000001AAA"))
    );
    let second = client.get("Users", id(&created[1])).unwrap().unwrap();
    assert_eq!(
        custom_field_values(&second)["CFSalesforceContactId"],
        json!("003000000000002AAA")
    );

    // A partial update of one custom field leaves the record's other fields alone.
    let mut desired = json!({ "name": "Custom By Id" });
    set_custom_field(
        &mut desired,
        FieldRef::Name("CFSalesforceContactId".into()),
        json!("003000000000003AAA"),
    );
    let update = partial_update(&second, &desired).expect("the custom field changed");
    assert_eq!(
        update,
        json!({ "id": second["id"], "customfields": [{ "name": "CFSalesforceContactId", "value": "003000000000003AAA" }] })
    );
    saved(&client.write("Users", &[update]));
    let second = client.get("Users", id(&created[1])).unwrap().unwrap();
    assert_eq!(
        custom_field_value(&second, "CFSalesforceContactId"),
        Some(&json!("003000000000003AAA"))
    );
    assert_eq!(second["name"], "Custom By Id");

    // Lists leave custom fields out unless asked for them.
    let query = ListQuery::default().filter("search", "Custom By");
    let plain = all(&client, "Users", &query);
    assert_eq!(plain.len(), 2);
    assert!(plain.iter().all(|user| user.get("customfields").is_none()));
    let with_fields = all(
        &client,
        "Users",
        &ListQuery {
            include_custom_fields: ids.clone(),
            ..query
        },
    );
    let values: BTreeSet<String> = with_fields
        .iter()
        .filter_map(|user| custom_field_value(user, "CFSalesforceContactId"))
        .filter_map(|value| value.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        values,
        BTreeSet::from([
            "003000000000001AAA".to_string(),
            "003000000000003AAA".to_string()
        ])
    );

    // Tickets carry their own fields (CFSalesforceStage), written by name too.
    let ticket_types = all(&client, "TicketType", &ListQuery::default());
    let clients = all(&client, "Client", &ListQuery::default());
    let mut ticket = json!({
        "summary": "Custom stage", "details": "x",
        "tickettype_id": ticket_types[0]["id"], "client_id": clients[0]["id"]
    });
    set_custom_field(
        &mut ticket,
        FieldRef::Name("CFSalesforceStage".into()),
        json!("Prospecting"),
    );
    let ticket = saved(&client.write("Tickets", &[ticket])).remove(0);
    let ticket = client.get("Tickets", id(&ticket)).unwrap().unwrap();
    assert_eq!(
        custom_field_value(&ticket, "CFSalesforceStage"),
        Some(&json!("Prospecting"))
    );

    // An unknown name is Halo's 400, reported against the record.
    let mut unknown = json!({ "name": "Custom Unknown", "site_id": site_id });
    set_custom_field(
        &mut unknown,
        FieldRef::Name("CFNoSuchField".into()),
        json!(1),
    );
    let outcome = client.write("Users", &[unknown]);
    let failure = outcome[0].result.as_ref().unwrap_err();
    assert_eq!(failure.status, Some(400));
    assert!(
        failure.message.contains("Custom Unknown"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("CFNoSuchField"),
        "{}",
        failure.message
    );
}

#[test]
fn an_attachment_round_trips_byte_for_byte() {
    let sandbox = start(Config::default(), None);
    let client = client(&sandbox);
    let ticket_types = all(&client, "TicketType", &ListQuery::default());
    let clients = all(&client, "Client", &ListQuery::default());
    let ticket = saved(&client.write(
        "Tickets",
        &[json!({
            "summary": "Attachment carrier", "details": "holds a file",
            "tickettype_id": ticket_types[0]["id"], "client_id": clients[0]["id"]
        })],
    ))
    .remove(0);
    // 300 KB of every byte value, not just text.
    let bytes: Vec<u8> = (0..300_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let uploaded = client
        .upload_attachment(&NewAttachment {
            ticket_id: id(&ticket),
            action_id: None,
            filename: "contract.bin",
            content_type: "application/octet-stream",
            bytes: &bytes,
        })
        .unwrap();
    let mut downloaded = Vec::new();
    let written = client
        .download_attachment(id(&uploaded), &mut downloaded)
        .unwrap();
    assert_eq!(written, bytes.len() as u64);
    assert!(downloaded == bytes, "the download differs from the upload");
    let listed = all(
        &client,
        "Attachment",
        &ListQuery::default().filter("ticket_id", id(&ticket)),
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["filename"], "contract.bin");
    let missing = client
        .download_attachment(987_654, &mut Vec::new())
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[test]
fn rides_out_a_429_storm_without_losing_a_write() {
    let sandbox = start(
        Config {
            rate_limit: Some(etl::sandbox::halo::RateLimit {
                requests: 6,
                window: Duration::from_secs(1),
            }),
            ..Config::default()
        },
        None,
    );
    // The client's own limiter is set far above the sandbox's, so Halo's 429s do the limiting;
    // four threads share the client and hit the limit together.
    let client = HaloClient::new(
        &connection(&sandbox),
        ClientOptions {
            rate_limit: Some(RateLimit {
                requests: 1_000,
                window: Duration::from_secs(1),
            }),
            batch_size: 3,
            ..options()
        },
    )
    .unwrap();
    let site_id = default_site(&client);
    let created: Vec<Value> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let client = &client;
                scope.spawn(move || {
                    let users: Vec<Value> = (0..18)
                        .map(|n| json!({ "name": format!("Storm User {writer}-{n:02}"), "site_id": site_id }))
                        .collect();
                    saved(&client.write("Users", &users))
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|writer| writer.join().unwrap())
            .collect()
    });
    assert_eq!(created.len(), 72);
    let admitted = etl::sandbox::halo::state::lock(&sandbox.halo_state()).requests;
    let refused = client.api_calls() - admitted;
    assert!(
        refused >= 3,
        "a storm: only {refused} calls were refused with 429"
    );

    let stored = all(
        &client,
        "Users",
        &ListQuery::default().filter("search", "Storm User"),
    );
    let names: BTreeSet<String> = stored
        .iter()
        .map(|user| user["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored.len(), 72, "every write landed exactly once");
    assert_eq!(names.len(), 72);
}

#[test]
fn the_client_limiter_keeps_under_halos_limit() {
    let sandbox = start(
        Config {
            rate_limit: Some(etl::sandbox::halo::RateLimit {
                requests: 5,
                window: Duration::from_secs(1),
            }),
            ..Config::default()
        },
        None,
    );
    // The same count over a slightly longer window: in-flight time cannot push two calls into
    // one of Halo's windows.
    let client = HaloClient::new(
        &connection(&sandbox),
        ClientOptions {
            rate_limit: Some(RateLimit {
                requests: 5,
                window: Duration::from_millis(1_200),
            }),
            ..options()
        },
    )
    .unwrap();
    let clients = all(&client, "Client", &ListQuery::default());
    for _ in 0..3 {
        for record in clients.iter().take(4) {
            assert!(client.get("Client", id(record)).unwrap().is_some());
        }
    }
    let admitted = etl::sandbox::halo::state::lock(&sandbox.halo_state()).requests;
    assert_eq!(client.api_calls(), 13);
    assert_eq!(admitted, 13, "no call was refused with 429");
}

#[test]
fn one_bad_record_fails_alone_and_the_batch_lands() {
    let sandbox = start(Config::default(), None);
    let client = client(&sandbox);
    let site_id = default_site(&client);
    let users = vec![
        json!({ "name": "Good A", "site_id": site_id }),
        json!({ "name": "Bad B", "site_id": 999_999 }),
        json!({ "name": "Good C", "site_id": site_id }),
        json!({ "name": "Good D", "site_id": site_id }),
    ];
    let outcomes = client.write("Users", &users);
    assert_eq!(outcomes.len(), 4);
    let failure = outcomes[1].result.as_ref().unwrap_err();
    assert_eq!(failure.status, Some(400));
    assert_eq!(failure.field.as_deref(), Some("site_id"));
    assert!(
        failure.message.contains("Users record #1 (name \"Bad B\")"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("999999"),
        "Halo's own message: {}",
        failure.message
    );
    for good in [0, 2, 3] {
        let record = outcomes[good].result.as_ref().unwrap();
        assert_eq!(record["name"], users[good]["name"]);
        assert!(client.get("Users", id(record)).unwrap().is_some());
    }
}

#[test]
fn injected_503s_dropped_connections_and_expired_sessions_are_ridden_out() {
    let plan: FaultPlan = serde_json::from_value(json!({
        "seed": 11,
        "faults": [
            { "route": "/api/*", "probability": 0.3, "kind": "status", "status": 503 },
            { "route": "/api/*", "methods": ["GET"], "probability": 0.2, "kind": "drop_connection" },
            { "route": "/api/*", "probability": 0.15, "kind": "session_expired" }
        ]
    }))
    .unwrap();
    let sandbox = start(Config::default(), Some(plan));
    let client = client(&sandbox);
    let site_id = default_site(&client);
    let users: Vec<Value> = (0..30)
        .map(|n| json!({ "name": format!("Faulty User {n:02}"), "site_id": site_id }))
        .collect();
    let created = saved(&client.write("Users", &users));
    assert_eq!(created.len(), 30);
    let query = ListQuery {
        page_size: Some(7),
        ..ListQuery::default().filter("search", "Faulty User")
    };
    let listed = all(&client, "Users", &query);
    assert_eq!(listed.len(), 30);
    assert!(
        client.token_fetches() > 1,
        "expired sessions were renewed and their calls replayed"
    );
    // Pages 2 to 5 four at a time, through the same faults: the same users in the same order.
    let (paged, _) = paged_ids(&client, "Users", &query);
    assert_eq!(paged, listed.iter().map(id).collect::<Vec<_>>());
}
