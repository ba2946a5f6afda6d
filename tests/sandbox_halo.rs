//! The Halo sandbox over real HTTP, checked against `shared/reference/halo-api.md`: the token
//! endpoint and its errors, bearer checks, case-insensitive entities, wrapped and bare lists,
//! paging, filters, POST-array creates and partial updates, model-state 400s, custom fields,
//! attachments, deletes, the rolling rate limit, faults and persistence.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use etl::sandbox::faults::FaultPlan;
use etl::sandbox::halo::{Config, RateLimit};
use etl::sandbox::server::{self, Options, Running};

fn start(config: Config) -> Running {
    server::start(Options {
        accounts: 20,
        halo: config,
        ..Options::default()
    })
    .unwrap()
}

mod support;
use support::{agent, reply, Reply};

fn token_reply(sandbox: &Running, query: &str, fields: &[(&str, &str)]) -> Reply {
    reply(
        agent()
            .post(format!("{}/auth/token{query}", sandbox.halo_url))
            .send_form(fields.iter().copied()),
    )
}

fn token(sandbox: &Running) -> String {
    let r = token_reply(
        sandbox,
        "?tenant=sandbox",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "etl-sandbox-client"),
            ("client_secret", "etl-sandbox-secret"),
            ("scope", "all"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

struct Api<'a> {
    sandbox: &'a Running,
    token: String,
}

impl<'a> Api<'a> {
    fn new(sandbox: &'a Running) -> Api<'a> {
        Api {
            token: token(sandbox),
            sandbox,
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}/api/{path}", self.sandbox.halo_url)
    }
    fn get(&self, path: &str) -> Reply {
        reply(
            agent()
                .get(self.url(path))
                .header("Authorization", &format!("Bearer {}", self.token))
                .call(),
        )
    }
    fn post(&self, path: &str, body: Value) -> Reply {
        reply(
            agent()
                .post(self.url(path))
                .header("Authorization", &format!("Bearer {}", self.token))
                .send_json(body),
        )
    }
    fn delete(&self, path: &str) -> Reply {
        reply(
            agent()
                .delete(self.url(path))
                .header("Authorization", &format!("Bearer {}", self.token))
                .call(),
        )
    }
}

#[test]
fn token_endpoint_follows_halo() {
    let sandbox = start(Config::default());
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "etl-sandbox-client"),
        ("client_secret", "etl-sandbox-secret"),
        ("scope", "all"),
    ];
    let r = token_reply(&sandbox, "?tenant=sandbox", &good);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "all");
    assert!(body["access_token"].as_str().unwrap().len() >= 32);

    // Tenant in the form (as some clients send it) or left out (self-hosted) both work.
    let mut with_tenant = good.to_vec();
    with_tenant.push(("tenant", "sandbox"));
    assert_eq!(token_reply(&sandbox, "", &with_tenant).status, 200);
    assert_eq!(token_reply(&sandbox, "", &good).status, 200);
    let r = token_reply(&sandbox, "?tenant=other", &good);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_request"))
    );

    let mut bad = good.to_vec();
    bad[2] = ("client_secret", "wrong");
    let r = token_reply(&sandbox, "?tenant=sandbox", &bad);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(!r.text().contains("wrong"));

    let r = token_reply(&sandbox, "", &[("grant_type", "password")]);
    assert_eq!(r.json()["error"], "unsupported_grant_type");

    let info = reply(
        agent()
            .get(format!("{}/api/authinfo", sandbox.halo_url))
            .call(),
    );
    assert_eq!(info.status, 200);
    assert_eq!(
        info.json()["auth_url"],
        format!("{}/auth", sandbox.halo_url)
    );
    assert_eq!(info.json()["tenant_id"], "sandbox");

    let d = sandbox.description();
    assert_eq!(d["halo"]["base_url"], sandbox.halo_url.as_str());
    assert_eq!(d["halo"]["client_id"], "etl-sandbox-client");
    assert_eq!(d["halo"]["tenant"], "sandbox");
    assert!(d["salesforce"]["instance_url"].is_string());
}

#[test]
fn missing_or_expired_bearer_gets_401() {
    let sandbox = start(Config {
        token_lifetime: Duration::from_millis(300),
        ..Config::default()
    });
    let r = reply(
        agent()
            .get(format!("{}/api/Client", sandbox.halo_url))
            .call(),
    );
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let api = Api::new(&sandbox);
    assert_eq!(api.get("Client").status, 200);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(api.get("Client").status, 401);
}

#[test]
fn lists_are_wrapped_paged_and_case_insensitive() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    // The seed: an "Unallocated Users" customer plus three shared with Salesforce.
    let all = api.get("client").json();
    assert_eq!(all["record_count"], 4);
    assert_eq!(all["clients"].as_array().unwrap().len(), 4);
    assert!(all.get("page_no").is_none());
    let salesforce_names: Vec<Value> = {
        let org = sandbox.salesforce_state();
        let org = org.lock().unwrap();
        org.org.records("Account")[..3]
            .iter()
            .map(|a| a["Name"].clone())
            .collect()
    };
    let halo_names: Vec<Value> = all["clients"].as_array().unwrap()[1..]
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(halo_names, salesforce_names);

    let page = api
        .get("CLIENT?pageinate=true&page_size=3&page_no=2")
        .json();
    assert_eq!(
        (
            page["page_no"].clone(),
            page["page_size"].clone(),
            page["record_count"].clone()
        ),
        (json!(2), json!(3), json!(4))
    );
    assert_eq!(page["clients"].as_array().unwrap().len(), 1);
    let beyond = api
        .get("Client?pageinate=true&page_size=3&page_no=9")
        .json();
    assert_eq!(beyond["clients"], json!([]));
    assert_eq!(
        api.get("Client?count=2").json()["clients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Bare arrays where Halo returns them.
    let types = api.get("TicketType").json();
    let opportunity = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Opportunity")
        .unwrap();
    assert_eq!(opportunity["default_sync_to_salesforce"], true);
    assert_eq!(opportunity["salesforce_default_stage"], "Prospecting");
    let agents = api.get("agent").json();
    assert!(agents.as_array().unwrap().len() >= 4);
    let owner_email = {
        let org = sandbox.salesforce_state();
        let org = org.lock().unwrap();
        org.org.records("User")[0]["Email"].clone()
    };
    assert!(agents
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["email"] == owner_email));
    let fields = api.get("FieldInfo?typeid=1").json();
    let names: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"CFSalesforceUserId") && names.contains(&"CFSalesforceStage"));

    assert_eq!(api.get("Nonsense").status, 404);
    assert_eq!(api.get("Client/999").status, 404);
    let one = api.get("Client/2").json();
    assert_eq!(one["id"], 2);
    assert_eq!(one["main_site_name"], "Main");
    assert!(one["customfields"].is_array());
}

#[test]
fn users_create_in_one_post_and_read_back() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    let r = api.post(
        "Users",
        json!([
            {"site_id": 2, "firstname": "Ada", "surname": "Byron", "emailaddress": "ada@example.org", "phonenumber": null},
            {"site_id": 2, "name": "Grace H", "emailaddress": "grace@example.org"}
        ]),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let saved = r.json();
    let saved = saved.as_array().unwrap();
    assert_eq!(saved.len(), 2);
    let ada = &saved[0];
    assert_eq!(ada["name"], "Ada Byron");
    assert_eq!(ada["client_id"], 2);
    assert_eq!(ada["site_id"], json!(2.0));
    assert!(serde_json::to_string(&ada["site_id"])
        .unwrap()
        .contains('.'));
    assert_eq!(ada["site_id_int"], 2);
    assert!(ada.get("phonenumber").is_none(), "nulls are omitted");
    let id = ada["id"].as_u64().unwrap();
    let back = api.get(&format!("Users/{id}")).json();
    assert_eq!(back["emailaddress"], "ada@example.org");
    assert_eq!(back["client_name"], api.get("Client/2").json()["name"]);

    // One element: the saved object itself, not an array.
    let one = api.post(
        "users",
        json!([{"id": id, "mobilenumber": "+44 7700 900123"}]),
    );
    assert_eq!(one.status, 201);
    let one = one.json();
    assert_eq!(one["mobilenumber"], "+44 7700 900123");
    assert_eq!(
        one["emailaddress"], "ada@example.org",
        "a partial update keeps the rest"
    );

    let listed = api.get("Users?client_id=2&search=byron").json();
    assert_eq!(listed["record_count"], 1);
}

#[test]
fn bad_elements_reject_the_whole_post_with_model_state_keys() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    let before = api.get("Users").json()["record_count"].clone();
    let r = api.post(
        "Users",
        json!([{"site_id": 2, "name": "Fine"}, {"name": "No site"}, {"site_id": 999, "name": "Bad site"}]),
    );
    assert_eq!(r.status, 400);
    let body = r.json();
    assert!(body["[1].site_id"].as_str().unwrap().contains("Site"));
    assert_eq!(body["[2].site_id"], "Site 999 does not exist.");
    assert!(body.get("[0].site_id").is_none());
    assert_eq!(
        api.get("Users").json()["record_count"],
        before,
        "nothing stored"
    );

    let r = api.post("Tickets", json!([{"summary": "x", "client_id": 4242}]));
    assert_eq!(r.json()["[0].client_id"], "Client 4242 does not exist.");
    let r = api.post("Client", json!({"name": "not an array"}));
    assert_eq!(r.status, 400);
    let r = api.post("Client", json!([{"id": 777, "name": "x"}]));
    assert_eq!(r.json()["[0].id"], "Client 777 does not exist.");
}

#[test]
fn clients_get_a_main_site_and_custom_fields_both_ways() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    let r = api.post(
        "Client",
        json!([{"name": "Acme", "website": "https://acme.example", "accountmanagertech": 2,
                "newclient_delivery_address": {"line1": "1 High St", "postcode": "AB1 2CD"},
                "customfields": [{"name": "CFSalesforceAccountId", "value": "001000000000099AAA"}]}]),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let client = r.json();
    assert!(client.get("newclient_delivery_address").is_none());
    let site_id = client["main_site_id"].as_u64().unwrap();
    let site = api.get(&format!("Site/{site_id}")).json();
    assert_eq!(site["client_name"], "Acme");
    assert_eq!(site["delivery_address"]["line1"], "1 High St");
    assert_eq!(site["delivery_address_line1"], "1 High St");
    assert!(client["accountmanagertech_name"].is_string());
    let field = client["customfields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "CFSalesforceAccountId")
        .unwrap()
        .clone();
    assert_eq!(field["value"], "001000000000099AAA");
    let field_id = field["id"].as_i64().unwrap();

    // By id; and lists carry custom fields only when asked.
    let id = client["id"].as_u64().unwrap();
    api.post(
        "Client",
        json!([{"id": id, "customfields": [{"id": field_id, "value": "001X"}]}]),
    );
    let listed = api
        .get(&format!(
            "Client?search=acme&include_custom_fields={field_id}"
        ))
        .json();
    assert_eq!(listed["clients"][0]["customfields"][0]["value"], "001X");
    assert!(api.get("Client?search=acme").json()["clients"][0]
        .get("customfields")
        .is_none());

    let r = api.post(
        "Client",
        json!([{"id": id, "customfields": [{"name": "CFNope", "value": 1}]}]),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["[0].customfields"]
        .as_str()
        .unwrap()
        .contains("CFNope"));
    let r = api.post(
        "Client",
        json!([{"name": "Bad manager", "accountmanagertech": 999}]),
    );
    assert_eq!(
        r.json()["[0].accountmanagertech"],
        "Agent 999 does not exist."
    );
}

#[test]
fn tickets_opportunities_and_actions_follow_their_types() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    let opp = api.post(
        "Opportunities",
        json!([{"summary": "Big deal", "client_id": 2, "oppvalue": 5000, "salesforce_stage": 3}]),
    );
    assert_eq!(opp.status, 201, "{}", opp.text());
    let opp = opp.json();
    assert_eq!(opp["tickettype_name"], "Opportunity");
    assert_eq!(opp["sync_to_salesforce"], true, "from the type's default");
    assert_eq!(opp["targetdate"], "1900-01-01T00:00:00");
    assert_eq!(serde_json::to_string(&opp["oppvalue"]).unwrap(), "5000.0");
    let ticket = api
        .post("Tickets", json!([{"summary": "Broken", "user_id": 1}]))
        .json();
    assert_eq!(ticket["tickettype_name"], "Incident");
    assert_eq!(ticket["sync_to_salesforce"], false);
    assert_eq!(ticket["client_id"], 2, "from the user");

    let opportunities = api.get("Opportunities").json();
    assert!(opportunities["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["tickettype_name"] == "Opportunity"));
    let requests = api.get("Tickets?domain=reqs").json();
    assert!(requests["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["tickettype_name"] != "Opportunity"));
    assert_eq!(
        api.get(&format!("Opportunities/{}", ticket["id"])).status,
        404
    );

    // Ticket pages stop at 100 whatever is asked.
    let many: Vec<Value> = (0..120)
        .map(|n| json!({"summary": format!("t{n}")}))
        .collect();
    assert_eq!(api.post("Tickets", Value::Array(many)).status, 201);
    let page = api
        .get("Tickets?pageinate=true&page_size=500&page_no=1")
        .json();
    assert_eq!(page["page_size"], 100);
    assert_eq!(page["tickets"].as_array().unwrap().len(), 100);

    let public = api.post("Actions", json!([{"ticket_id": ticket["id"], "note_html": "<p>Hello <b>you</b></p>", "outcome": "Public Note"}])).json();
    assert_eq!(
        (
            public["hiddenfromuser"].clone(),
            public["sync_to_salesforce"].clone()
        ),
        (json!(false), json!(true))
    );
    assert_eq!(public["note"], "Hello you");
    let private = api
        .post(
            "Actions",
            json!([{"ticket_id": ticket["id"], "note": "internal"}]),
        )
        .json();
    assert_eq!(private["hiddenfromuser"], true);
    assert_eq!(private["outcome"], "Private Note");
    let actions = api
        .get(&format!("Actions?ticket_id={}", ticket["id"]))
        .json();
    assert_eq!(actions["record_count"], 2);
    let r = api.post("Actions", json!([{"note": "orphan"}]));
    assert!(r.json()["[0].ticket_id"].is_string());
}

#[test]
fn incremental_lists_by_last_update() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    let mark = api.get("Client/2").json()["last_update"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(5));
    let updated = api
        .post(
            "Client",
            json!([{"id": 3, "website": "https://changed.example"}]),
        )
        .json();
    let since = updated["last_update"].as_str().unwrap();
    assert!(since > mark.as_str());
    let changed = api
        .get(&format!("Client?lastupdatefromdate={since}"))
        .json();
    assert_eq!(changed["record_count"], 1);
    assert_eq!(changed["clients"][0]["id"], 3);
    let r = api.get("Client?lastupdatefromdate=yesterday");
    assert_eq!(r.status, 400);
    // Only customers take the filter: other lists ignore it, as Halo's do.
    let users = api.get("Users").json()["record_count"].clone();
    let filtered = api.get(&format!("Users?lastupdatefromdate={since}")).json();
    assert_eq!(filtered["record_count"], users);
}

#[test]
fn attachments_round_trip_and_delete() {
    let sandbox = start(Config::default());
    let api = Api::new(&sandbox);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let r = api.post(
        "Attachment",
        json!([{"filename": "blob.bin", "isimage": false, "ticket_id": 1,
                "data_base64": format!("data:application/octet-stream;base64,{encoded}")}]),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let saved = r.json();
    assert_eq!(saved["filesize"], 70_000);
    assert_eq!(saved["data"], encoded.as_str());
    // As a recorded real response: the file is on ticket 1, the answer names none.
    assert_eq!(
        (&saved["ticket_id"], &saved["action_id"]),
        (&json!(0), &json!(0))
    );
    let id = saved["id"].as_u64().unwrap();
    let download = api.get(&format!("Attachment/{id}"));
    assert_eq!(download.status, 200);
    assert_eq!(download.body, bytes);
    assert_eq!(
        download.header("content-type"),
        Some("application/octet-stream")
    );
    let listed = api.get("Attachment?ticket_id=1").json();
    assert!(listed["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id));
    assert!(listed["attachments"][0].get("data").is_none());
    let details = api
        .get(&format!("Attachment/{id}?includedetails=true"))
        .json();
    assert_eq!(details["filename"], "blob.bin");

    let deleted = api.delete(&format!("Attachment/{id}"));
    assert_eq!(
        (deleted.status, deleted.json()["id"].clone()),
        (200, json!(id))
    );
    assert_eq!(api.get(&format!("Attachment/{id}")).status, 404);
    let r = api.post(
        "Attachment",
        json!([{"filename": "x", "data_base64": "data:text/plain;base64,@@"}]),
    );
    assert!(r.json()["[0].data_base64"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.text()))
        .contains("base64"));
}

#[test]
fn rate_limit_answers_429_in_halo_words() {
    let sandbox = start(Config {
        rate_limit: Some(RateLimit {
            requests: 3,
            window: Duration::from_secs(60),
        }),
        ..Config::default()
    });
    let api = Api::new(&sandbox);
    for _ in 0..3 {
        assert_eq!(api.get("Agent").status, 200);
    }
    let r = api.get("Agent");
    assert_eq!(r.status, 429);
    assert_eq!(
        r.text(),
        "Rate Limit Reached - 3 Requests per rolling 1 minute window"
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

#[test]
fn faults_reach_halo_routes() {
    let plan: FaultPlan = serde_saphyr::from_str(
        "faults:\n  - { route: \"/api/Users*\", kind: status, status: 503 }\n  - { route: \"/api/Site*\", kind: request_limit }\n",
    )
    .unwrap();
    let sandbox = server::start(Options {
        accounts: 5,
        faults: Some(plan),
        ..Options::default()
    })
    .unwrap();
    let api = Api::new(&sandbox);
    assert_eq!(api.get("Users").status, 503);
    assert_eq!(api.get("Site").status, 429);
    assert_eq!(api.get("Client").status, 200);
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        accounts: 10,
        data_dir: Some(dir.path().to_path_buf()),
        ..Options::default()
    };
    let sandbox = server::start(options()).unwrap();
    let api = Api::new(&sandbox);
    let user = api
        .post(
            "Users",
            json!([{"site_id": 1, "name": "Kept", "emailaddress": "kept@example.org"}]),
        )
        .json();
    let attachment = api
        .post(
            "Attachment",
            json!([{"filename": "a.txt", "data_base64": "data:text/plain;base64,aGVsbG8="}]),
        )
        .json();
    drop(api);
    sandbox.stop();
    let sandbox = server::start(options()).unwrap();
    let api = Api::new(&sandbox);
    assert_eq!(
        api.get(&format!("Users/{}", user["id"])).json()["name"],
        "Kept"
    );
    assert_eq!(
        api.get(&format!("Attachment/{}", attachment["id"])).body,
        b"hello"
    );
    let next = api
        .post("Users", json!([{"site_id": 1, "name": "Next"}]))
        .json();
    assert!(
        next["id"].as_u64() > user["id"].as_u64(),
        "ids keep counting"
    );
}
