//! The Salesforce sandbox over real HTTP, checked against the wire formats of
//! `shared/reference/salesforce-api.md`: OAuth grants and errors, query paging, errors with
//! Salesforce's wording, sObject rows, Collections, describe, limits and persistence.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use etl::sandbox::salesforce::oauth::pkce_challenge;
use etl::sandbox::salesforce::state::Config;
use etl::sandbox::server::{self, Options, Running};

const ID: &str = "etl-sandbox-client";
const SECRET: &str = "etl-sandbox-secret";

fn start(accounts: u64, config: Config) -> Running {
    server::start(Options {
        accounts,
        salesforce: config,
        ..Options::default()
    })
    .unwrap()
}

mod support;
use support::{agent, reply, Reply};

fn form(url: &str, fields: &[(&str, &str)]) -> Reply {
    reply(agent().post(url).send_form(fields.iter().copied()))
}

fn token(sandbox: &Running) -> String {
    let r = form(
        &format!("{}/services/oauth2/token", sandbox.salesforce_url),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(r.status, 200);
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn get(sandbox: &Running, token: &str, path: &str) -> Reply {
    reply(
        agent()
            .get(format!("{}{path}", sandbox.salesforce_url))
            .header("Authorization", format!("Bearer {token}"))
            .call(),
    )
}

fn send(sandbox: &Running, token: &str, method: &str, path: &str, body: &Value) -> Reply {
    let url = format!("{}{path}", sandbox.salesforce_url);
    let auth = format!("Bearer {token}");
    let text = body.to_string();
    let request = match method {
        "POST" => agent()
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(text),
        "PATCH" => agent()
            .patch(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(text),
        "DELETE" => agent().delete(url).header("Authorization", &auth).call(),
        _ => unreachable!("test helper"),
    };
    reply(request)
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn client_credentials_token_has_salesforce_fields_and_a_valid_signature() {
    let sandbox = start(5, Config::default());
    let r = form(
        &format!("{}/services/oauth2/token", sandbox.salesforce_url),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", ID),
            ("client_secret", SECRET),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    let body = r.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "signature",
            "scope",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.find('!'), Some(15));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], sandbox.salesforce_url.as_str());
    let issued_at = body["issued_at"].as_str().unwrap();
    assert_eq!(issued_at.len(), 13, "milliseconds, as a string");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body["id"].as_str().unwrap().as_bytes());
    mac.update(issued_at.as_bytes());
    assert_eq!(
        body["signature"].as_str().unwrap(),
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let identity = get(
        &sandbox,
        token,
        &body["id"]
            .as_str()
            .unwrap()
            .replace(&sandbox.salesforce_url, ""),
    );
    assert_eq!(identity.status, 200);
    assert_eq!(identity.json()["user_id"], "0055g0000000001AAA");
}

#[test]
fn token_errors_are_salesforces() {
    let sandbox = start(1, Config::default());
    let url = format!("{}/services/oauth2/token", sandbox.salesforce_url);
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", ID),
                ("client_secret", "wrong"),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nope"),
                ("client_secret", SECRET),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            &[("grant_type", "magic"), ("client_id", ID)],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", ID),
                ("client_secret", SECRET),
                ("username", "integration@sandbox.example"),
                ("password", "bad"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            &[
                ("grant_type", "refresh_token"),
                ("client_id", ID),
                ("refresh_token", "5Aep861nope"),
            ],
            "invalid_grant",
            "expired access/refresh token",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("client_id", ID),
                ("client_secret", SECRET),
                ("code", "x"),
                ("redirect_uri", "http://localhost:1717/oauth/callback"),
            ],
            "invalid_grant",
            "expired authorization code",
        ),
    ];
    for (fields, error, description) in cases {
        let r = form(&url, fields);
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"error": error, "error_description": description})
        );
    }
    let ok = form(
        &url,
        &[
            ("grant_type", "password"),
            ("client_id", ID),
            ("client_secret", SECRET),
            ("username", "integration@sandbox.example"),
            ("password", "sandbox-password"),
        ],
    );
    assert_eq!(ok.status, 200);
    assert!(ok.json().get("refresh_token").is_none());
}

#[test]
fn web_server_flow_with_pkce_refresh_and_revoke() {
    let sandbox = start(
        1,
        Config {
            auto_approve: true,
            ..Config::default()
        },
    );
    let base = &sandbox.salesforce_url;
    let verifier = "a-long-random-verifier-string-of-forty-three-chars";
    let challenge = pkce_challenge(verifier);
    let authorize = format!(
        "{base}/services/oauth2/authorize?response_type=code&client_id={ID}&redirect_uri={}&state=xyz&code_challenge={challenge}&code_challenge_method=S256",
        encode("http://localhost:1717/oauth/callback")
    );
    let r = reply(agent().get(&authorize).call());
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap().to_string();
    assert!(
        location.starts_with("http://localhost:1717/oauth/callback?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz"));
    let code_encoded = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let code = code_encoded.replace("%3D", "=");
    let token_url = format!("{base}/services/oauth2/token");
    let exchange = |verifier: &str| {
        form(
            &token_url,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", ID),
                ("code", &code),
                ("redirect_uri", "http://localhost:1717/oauth/callback"),
                ("code_verifier", verifier),
            ],
        )
    };
    let bad = exchange("wrong-verifier");
    assert_eq!(bad.json()["error"], "invalid_request");
    // A failed exchange uses the code up, as Salesforce does; get another.
    let r = reply(agent().get(&authorize).call());
    let location = r.header("location").unwrap().to_string();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .replace("%3D", "=");
    let good = form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", ID),
            ("code", &code),
            ("redirect_uri", "http://localhost:1717/oauth/callback"),
            ("code_verifier", verifier),
        ],
    );
    assert_eq!(good.status, 200, "{}", String::from_utf8_lossy(&good.body));
    let body = good.json();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    assert!(refresh.starts_with("5Aep861"));
    let refreshed = form(
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", ID),
            ("client_secret", SECRET),
            ("refresh_token", &refresh),
        ],
    );
    assert_eq!(refreshed.status, 200);
    assert!(
        refreshed.json().get("refresh_token").is_none(),
        "no rotation by default"
    );
    let access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(&sandbox, &access, "/services/data/v62.0/limits").status,
        200
    );
    assert_eq!(
        form(
            &format!("{base}/services/oauth2/revoke"),
            &[("token", &refresh)]
        )
        .status,
        200
    );
    assert_eq!(
        get(&sandbox, &access, "/services/data/v62.0/limits").status,
        401
    );
    let unknown = reply(agent().get(authorize.replace(ID, "stranger")).call());
    assert_eq!(unknown.status, 400);
    assert_eq!(
        String::from_utf8_lossy(&unknown.body),
        "error=invalid_client_id&error_description=client%20identifier%20invalid"
    );
}

#[test]
fn query_pages_with_next_records_url() {
    let sandbox = start(150, Config::default());
    let token = token(&sandbox);
    let first = reply(
        agent()
            .get(format!(
                "{}/services/data/v62.0/query?q={}",
                sandbox.salesforce_url,
                encode("SELECT Id, Name, Account.Name FROM Contact")
            ))
            .header("Authorization", format!("Bearer {token}"))
            .header("Sforce-Query-Options", "batchSize=200")
            .call(),
    );
    assert_eq!(first.status, 200);
    let mut page = first.json();
    let total = page["totalSize"].as_u64().unwrap();
    assert_eq!(total, 300 - 300 / 50, "every 50th contact is deleted");
    let mut ids = std::collections::HashSet::new();
    let mut pages = 0;
    loop {
        pages += 1;
        for record in page["records"].as_array().unwrap() {
            assert!(ids.insert(record["Id"].as_str().unwrap().to_string()));
            assert_eq!(record["attributes"]["type"], "Contact");
        }
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap().to_string();
        assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
        page = get(&sandbox, &token, &next).json();
        assert_eq!(page["totalSize"].as_u64(), Some(total));
    }
    assert_eq!(ids.len() as u64, total);
    assert_eq!(pages, 2);
    let locator = first.json()["nextRecordsUrl"]
        .as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .0
        .to_string();
    let beyond = get(&sandbox, &token, &format!("{locator}-999999"));
    assert_eq!(
        beyond.status, 400,
        "an offset past the end is refused, not a crash"
    );
    let stale = get(
        &sandbox,
        &token,
        "/services/data/v62.0/query/01gNOSUCHLOCATOR-200",
    );
    assert_eq!(stale.status, 400);
    assert_eq!(
        stale.json(),
        json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    );
}

#[test]
fn query_errors_are_worded_and_placed_like_salesforces() {
    let sandbox = start(3, Config::default());
    let token = token(&sandbox);
    let r = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT Id, Nmae FROM Account")
        ),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!([{"message": "\nSELECT Id, Nmae FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nmae' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", "errorCode": "INVALID_FIELD"}])
    );
    let r = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("select count() from XYZZY")
        ),
    );
    assert_eq!(r.json()[0]["errorCode"], "INVALID_TYPE");
    let r = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT Id FROM Account WHERE")
        ),
    );
    assert_eq!(r.json()[0]["errorCode"], "MALFORMED_QUERY");
    let count = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT COUNT() FROM Account")
        ),
    );
    assert_eq!(
        count.json(),
        json!({"totalSize": 3, "done": true, "records": []})
    );
}

#[test]
fn expired_sessions_and_missing_tokens_answer_401() {
    let sandbox = start(
        1,
        Config {
            token_lifetime: Duration::from_millis(300),
            ..Config::default()
        },
    );
    let token = token(&sandbox);
    assert_eq!(
        get(&sandbox, &token, "/services/data/v62.0/limits").status,
        200
    );
    std::thread::sleep(Duration::from_millis(400));
    let r = get(&sandbox, &token, "/services/data/v62.0/limits");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert_eq!(get(&sandbox, "", "/services/data/v62.0/limits").status, 401);
}

#[test]
fn limits_header_and_request_limit() {
    let sandbox = start(
        1,
        Config {
            daily_limit: 3,
            ..Config::default()
        },
    );
    let token = token(&sandbox);
    let versions = reply(
        agent()
            .get(format!("{}/services/data", sandbox.salesforce_url))
            .call(),
    );
    assert_eq!(versions.status, 200);
    assert!(versions.header("Sforce-Limit-Info").is_none());
    assert!(versions
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["version"] == "62.0"));
    for n in 1..=3 {
        let r = get(&sandbox, &token, "/services/data/v62.0/limits");
        assert_eq!(
            r.header("Sforce-Limit-Info"),
            Some(format!("api-usage={n}/3").as_str())
        );
    }
    let r = get(&sandbox, &token, "/services/data/v62.0/limits");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
}

#[test]
fn sobject_rows_create_read_update_delete_and_upsert() {
    let sandbox = start(2, Config::default());
    let token = token(&sandbox);
    let created = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/sobjects/Account",
        &json!({"Name": "New Co", "BillingCity": "Leeds"}),
    );
    assert_eq!(created.status, 201);
    let body = created.json();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body, json!({"id": id, "success": true, "errors": []}));
    assert!(id.starts_with("001") && id.len() == 18);
    let read = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
    );
    assert_eq!(read.json()["Name"], "New Co");
    let modstamp = read.json()["SystemModstamp"].as_str().unwrap().to_string();
    assert!(
        modstamp.ends_with("+0000") && modstamp.len() == 28,
        "{modstamp}"
    );
    let updated = send(
        &sandbox,
        &token,
        "PATCH",
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
        &json!({"BillingCity": "York"}),
    );
    assert_eq!(updated.status, 204);
    assert!(updated.body.is_empty());
    let read = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
    )
    .json();
    assert_eq!(read["BillingCity"], "York");
    assert!(read["SystemModstamp"].as_str().unwrap() > modstamp.as_str());

    let missing = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/sobjects/Contact",
        &json!({"FirstName": "No"}),
    );
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}])
    );
    let read_only = send(
        &sandbox,
        &token,
        "PATCH",
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
        &json!({"CreatedDate": "2020-01-01T00:00:00Z"}),
    );
    assert_eq!(
        read_only.json()[0]["errorCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    let malformed = get(
        &sandbox,
        &token,
        "/services/data/v62.0/sobjects/Account/001900K0001pPuOAAU",
    );
    assert_eq!(malformed.json()[0]["errorCode"], "MALFORMED_ID");
    let bad_ref = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/sobjects/Contact",
        &json!({"LastName": "X", "AccountId": "not-an-id"}),
    );
    assert_eq!(
        bad_ref.json(),
        json!([{"message": "Account ID: id value of incorrect type: not-an-id", "errorCode": "MALFORMED_ID", "fields": ["AccountId"]}])
    );

    assert_eq!(
        send(
            &sandbox,
            &token,
            "DELETE",
            &format!("/services/data/v62.0/sobjects/Account/{id}"),
            &Value::Null
        )
        .status,
        204
    );
    let gone = send(
        &sandbox,
        &token,
        "DELETE",
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
        &Value::Null,
    );
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json(),
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}])
    );
    let all = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/queryAll?q={}",
            encode(&format!(
                "SELECT Id, IsDeleted FROM Account WHERE Id = '{id}'"
            ))
        ),
    );
    assert_eq!(all.json()["records"][0]["IsDeleted"], true);

    let upsert = send(
        &sandbox,
        &token,
        "PATCH",
        "/services/data/v62.0/sobjects/Account/External_Id__c/EXT-1",
        &json!({"Name": "Upserted"}),
    );
    assert_eq!(upsert.status, 201);
    assert_eq!(upsert.json()["created"], true);
    let again = send(
        &sandbox,
        &token,
        "PATCH",
        "/services/data/v62.0/sobjects/Account/External_Id__c/EXT-1",
        &json!({"Name": "Upserted again"}),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["created"], false);
    assert_eq!(again.json()["id"], upsert.json()["id"]);
    let no_field = send(
        &sandbox,
        &token,
        "PATCH",
        "/services/data/v62.0/sobjects/Account/Namez/x",
        &json!({}),
    );
    assert_eq!(
        no_field.json(),
        json!([{"message": "Provided external ID field does not exist or is not accessible: Namez", "errorCode": "NOT_FOUND", "fields": []}])
    );
}

#[test]
fn collections_create_two_hundred_and_respect_all_or_none() {
    let sandbox = start(1, Config::default());
    let token = token(&sandbox);
    let records: Vec<Value> = (0..200)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Bulk {i}")}))
        .collect();
    let r = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/composite/sobjects",
        &json!({"allOrNone": false, "records": records}),
    );
    assert_eq!(r.status, 200);
    let results = r.json();
    assert_eq!(results.as_array().unwrap().len(), 200);
    assert!(results
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["success"] == true && x.get("created").is_none()));
    let too_many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("X {i}")}))
        .collect();
    let r = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/composite/sobjects",
        &json!({"records": too_many}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!([{"message": "record limit reached. cannot submit more than 200 records into this call", "errorCode": "EXCEEDED_ID_LIMIT"}])
    );
    let mixed = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Account"}, "Name": "Good"},
        {"attributes": {"type": "Contact"}, "FirstName": "No last name"}
    ]});
    let r = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/composite/sobjects",
        &mixed,
    )
    .json();
    assert_eq!(
        r[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        r[1]["errors"][0],
        json!({"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]})
    );
    let count = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT COUNT() FROM Account WHERE Name = 'Good'")
        ),
    )
    .json();
    assert_eq!(count["totalSize"], 0, "nothing was written");
    let partial = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/composite/sobjects",
        &json!({"allOrNone": false, "records": mixed["records"]}),
    )
    .json();
    assert_eq!(partial[0]["success"], true);
    assert_eq!(partial[1]["success"], false);
    let ids: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"attributes": {"type": "Account"}, "Id": id, "Website": "https://x.test"}))
        .collect();
    let r = send(
        &sandbox,
        &token,
        "PATCH",
        "/services/data/v62.0/composite/sobjects",
        &json!({"records": updates}),
    )
    .json();
    assert!(r.as_array().unwrap().iter().all(|x| x["success"] == true));
    let upserts = json!({"records": [{"attributes": {"type": "Contact"}, "External_Id__c": "C-1", "LastName": "One"}]});
    let r = send(
        &sandbox,
        &token,
        "PATCH",
        "/services/data/v62.0/composite/sobjects/Contact/External_Id__c",
        &upserts,
    )
    .json();
    assert_eq!(r[0]["created"], true);
    let r = send(
        &sandbox,
        &token,
        "PATCH",
        "/services/data/v62.0/composite/sobjects/Contact/External_Id__c",
        &upserts,
    )
    .json();
    assert_eq!(r[0]["created"], false);
    let deleted = send(
        &sandbox,
        &token,
        "DELETE",
        &format!(
            "/services/data/v62.0/composite/sobjects?ids={}&allOrNone=false",
            ids.join(",")
        ),
        &Value::Null,
    )
    .json();
    assert!(deleted
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["success"] == true));
}

#[test]
fn describe_has_real_field_metadata() {
    let sandbox = start(1, Config::default());
    let token = token(&sandbox);
    let global = get(&sandbox, &token, "/services/data/v62.0/sobjects").json();
    assert_eq!(global["maxBatchSize"], 200);
    assert!(global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == "Opportunity" && o["keyPrefix"] == "006"));
    let opportunity = get(
        &sandbox,
        &token,
        "/services/data/v62.0/sobjects/Opportunity/describe",
    )
    .json();
    let field = |name: &str| {
        opportunity["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap()
    };
    let stage = field("StageName");
    assert_eq!(stage["type"], "picklist");
    assert_eq!(stage["picklistValues"].as_array().unwrap().len(), 10);
    assert_eq!(
        stage["picklistValues"][0],
        json!({"active": true, "defaultValue": false, "label": "Prospecting", "validFor": null, "value": "Prospecting"})
    );
    let account_id = field("AccountId");
    assert_eq!(account_id["referenceTo"], json!(["Account"]));
    assert_eq!(account_id["relationshipName"], "Account");
    assert_eq!(account_id["soapType"], "tns:ID");
    assert_eq!(field("ContactId")["updateable"], false);
    assert_eq!(
        opportunity["recordTypeInfos"][0]["recordTypeId"],
        "012000000000000AAA"
    );
    let missing = get(
        &sandbox,
        &token,
        "/services/data/v62.0/sobjects/Nope/describe",
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn attachment_bodies_download_byte_equal() {
    let sandbox = start(1, Config::default());
    let token = token(&sandbox);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let account = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT Id FROM Account LIMIT 1")
        ),
    )
    .json()["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let created = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/sobjects/Attachment",
        &json!({"ParentId": account, "Name": "blob.bin", "ContentType": "application/octet-stream", "Body": body}),
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().unwrap().to_string();
    let row = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/sobjects/Attachment/{id}"),
    )
    .json();
    assert_eq!(
        row["Body"],
        format!("/services/data/v62.0/sobjects/Attachment/{id}/Body")
    );
    assert_eq!(row["BodyLength"], 5000);
    let download = get(&sandbox, &token, row["Body"].as_str().unwrap());
    assert_eq!(
        download.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(download.body, bytes);
    let counted = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode(&format!(
                "SELECT Id, (SELECT Id FROM Attachments) FROM Account WHERE Id = '{account}'"
            ))
        ),
    )
    .json();
    assert_eq!(counted["records"][0]["Attachments"]["totalSize"], 1);
}

/// A child result longer than `child_batch_size` comes back as Salesforce pages one: the first
/// rows, `done: false`, the whole result's `totalSize` and its own `nextRecordsUrl`, which
/// answers the rest like any query locator.
#[test]
fn long_child_results_page_with_their_own_locator() {
    let sandbox = start(
        2,
        Config {
            child_batch_size: 2,
            ..Config::default()
        },
    );
    let token = token(&sandbox);
    let account = {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        let account = state.org.records("Account")[0]["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let owner = etl::sandbox::salesforce::ids::make("005", 1);
        for n in 0..5 {
            let attachment =
                json!({"ParentId": account, "Name": format!("c{n}.txt"), "IsPrivate": false});
            state.org.create(
                "Attachment",
                attachment.as_object().unwrap().clone(),
                &owner,
            );
        }
        account
    };
    let total = support::live_records(&sandbox, "Attachment")
        .iter()
        .filter(|a| a["ParentId"] == json!(account))
        .count();
    let soql =
        format!("SELECT Id, (SELECT Id FROM Attachments) FROM Account WHERE Id = '{account}'");
    let page = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/query?q={}", encode(&soql)),
    )
    .json();
    assert_eq!(page["done"], true, "the parents fit one page");
    let children = &page["records"][0]["Attachments"];
    assert_eq!(children["totalSize"], total);
    assert_eq!(children["done"], false);
    assert_eq!(children["records"].as_array().unwrap().len(), 2);
    let mut seen = children["records"].as_array().unwrap().clone();
    let mut next = children["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
    assert!(next.ends_with("-2"), "{next}");
    loop {
        let more = get(&sandbox, &token, &next).json();
        assert_eq!(more["totalSize"], total);
        assert!(more["records"].as_array().unwrap().len() <= 2);
        seen.extend(more["records"].as_array().unwrap().iter().cloned());
        match more["nextRecordsUrl"].as_str() {
            Some(url) => next = url.to_string(),
            None => {
                assert_eq!(more["done"], true);
                break;
            }
        }
    }
    let ids: std::collections::HashSet<&str> =
        seen.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!((seen.len(), ids.len()), (total, total));
    assert!(seen.iter().all(|r| r["attributes"]["type"] == "Attachment"));
}

#[test]
fn a_second_start_sees_the_same_org() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        data_dir: Some(dir.path().to_path_buf()),
        accounts: 4,
        ..Options::default()
    };
    let id = {
        let sandbox = server::start(options()).unwrap();
        let token = token(&sandbox);
        let created = send(
            &sandbox,
            &token,
            "POST",
            "/services/data/v62.0/sobjects/Account",
            &json!({"Name": "Kept"}),
        );
        let id = created.json()["id"].as_str().unwrap().to_string();
        sandbox.stop();
        id
    };
    let sandbox = server::start(options()).unwrap();
    let token = token(&sandbox);
    let read = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
    );
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["Name"], "Kept");
    let count = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT COUNT() FROM Account")
        ),
    )
    .json();
    assert_eq!(count["totalSize"], 5, "the seed is not applied twice");
    let custom = get(
        &sandbox,
        &token,
        "/services/data/v62.0/sobjects/Opportunity/describe",
    )
    .json();
    assert!(custom["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "TaskType__c" && f["custom"] == true));
}

fn put_csv(sandbox: &Running, token: &str, path: &str, csv: &str) -> Reply {
    reply(
        agent()
            .put(format!("{}{path}", sandbox.salesforce_url))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "text/csv")
            .send(csv),
    )
}

#[test]
fn bulk_ingest_runs_to_job_complete_with_result_csvs() {
    let sandbox = start(1, Config::default());
    let token = token(&sandbox);
    let job = send(&sandbox, &token, "POST", "/services/data/v62.0/jobs/ingest", &json!({"object": "Account", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"})).json();
    assert_eq!(job["state"], "Open");
    assert_eq!(job["apiVersion"], 62.0);
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750"));
    assert_eq!(
        job["contentUrl"],
        format!("services/data/v62.0/jobs/ingest/{id}/batches")
    );
    let csv = "Name,BillingCity,AnnualRevenue\nBulk One,Leeds,1000\n\"Bulk, Two\",York,\n,Hull,5\n";
    assert_eq!(
        put_csv(
            &sandbox,
            &token,
            &format!("/services/data/v62.0/jobs/ingest/{id}/batches"),
            csv
        )
        .status,
        201
    );
    let closed = send(
        &sandbox,
        &token,
        "PATCH",
        &format!("/services/data/v62.0/jobs/ingest/{id}"),
        &json!({"state": "UploadComplete"}),
    )
    .json();
    assert_eq!(closed["state"], "UploadComplete");
    let done = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/jobs/ingest/{id}"),
    )
    .json();
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["numberRecordsProcessed"], 3);
    assert_eq!(done["numberRecordsFailed"], 1);
    assert_eq!(done["jobType"], "V2Ingest");
    let ok = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/jobs/ingest/{id}/successfulResults/"),
    );
    assert_eq!(ok.header("content-type"), Some("text/csv"));
    let text = String::from_utf8(ok.body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "\"sf__Id\",\"sf__Created\",\"Name\",\"BillingCity\",\"AnnualRevenue\""
    );
    assert_eq!(lines.len(), 3);
    // Values come back as Salesforce read them: the number in Java's spelling.
    assert!(
        lines[1].ends_with(",\"true\",\"Bulk One\",\"Leeds\",\"1000.0\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(",\"true\",\"Bulk, Two\",\"York\",\"\""),
        "{}",
        lines[2]
    );
    let failed = String::from_utf8(
        get(
            &sandbox,
            &token,
            &format!("/services/data/v62.0/jobs/ingest/{id}/failedResults/"),
        )
        .body,
    )
    .unwrap();
    assert_eq!(failed.lines().nth(1), Some("\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --\",\"\",\"Hull\",\"5\""));
    let query = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT AnnualRevenue FROM Account WHERE Name = 'Bulk One'")
        ),
    )
    .json();
    assert_eq!(query["records"][0]["AnnualRevenue"], 1000.0);
    assert_eq!(
        send(
            &sandbox,
            &token,
            "DELETE",
            &format!("/services/data/v62.0/jobs/ingest/{id}"),
            &Value::Null
        )
        .status,
        204
    );
}

#[test]
fn bulk_query_pages_with_sforce_locator() {
    let sandbox = start(30, Config::default());
    let token = token(&sandbox);
    let job = send(&sandbox, &token, "POST", "/services/data/v62.0/jobs/query", &json!({"operation": "query", "query": "SELECT Id, Name, Owner.Email, CreatedDate FROM Account"})).json();
    assert_eq!(job["state"], "UploadComplete");
    let id = job["id"].as_str().unwrap().to_string();
    let status = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/jobs/query/{id}"),
    )
    .json();
    assert_eq!(status["state"], "JobComplete");
    assert_eq!(status["numberRecordsProcessed"], 30);
    let first = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/jobs/query/{id}/results?maxRecords=20"),
    );
    assert_eq!(first.header("Sforce-NumberOfRecords"), Some("20"));
    let locator = first.header("Sforce-Locator").unwrap().to_string();
    assert_ne!(locator, "null");
    let text = String::from_utf8(first.body.clone()).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("\"Id\",\"Name\",\"Owner.Email\",\"CreatedDate\"")
    );
    assert!(
        text.lines().nth(1).unwrap().ends_with("Z\""),
        "datetimes end in Z in Bulk CSV"
    );
    let second = get(
        &sandbox,
        &token,
        &format!("/services/data/v62.0/jobs/query/{id}/results?maxRecords=20&locator={locator}"),
    );
    assert_eq!(second.header("Sforce-NumberOfRecords"), Some("10"));
    assert_eq!(second.header("Sforce-Locator"), Some("null"));
    assert_eq!(
        String::from_utf8(second.body).unwrap().lines().count(),
        11,
        "the header repeats on every page"
    );
}

fn start_with_faults(yaml: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faults.yaml");
    std::fs::write(&path, yaml).unwrap();
    let plan = etl::sandbox::faults::FaultPlan::load(&path).unwrap();
    server::start(Options {
        accounts: 3,
        faults: Some(plan),
        ..Options::default()
    })
    .unwrap()
}

#[test]
fn injected_faults_look_like_salesforce_errors() {
    let sandbox = start_with_faults(
        "seed: 1\nfaults:\n  - { route: \"/services/data/*/limits\", kind: status, status: 503 }\n  - { route: \"/services/data/*/composite/*\", methods: [POST], kind: unable_to_lock_row }\n  - { route: \"/services/data/*/sobjects\", kind: session_expired }\n  - { route: \"/services/data/*/query*\", kind: latency, latency_ms: 5 }\n",
    );
    let token = token(&sandbox);
    let r = get(&sandbox, &token, "/services/data/v62.0/limits");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!([{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
    );
    let r = send(
        &sandbox,
        &token,
        "POST",
        "/services/data/v62.0/composite/sobjects",
        &json!({"records": [{"attributes": {"type": "Account"}, "Name": "x"}]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()[0]["errorCode"], "UNABLE_TO_LOCK_ROW");
    let r = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT Id FROM Account")
        ),
    );
    assert_eq!(r.status, 200, "latency delays but does not fail");
    let r = get(&sandbox, &token, "/services/data/v62.0/sobjects");
    assert_eq!(r.status, 401);
    let r = get(
        &sandbox,
        &token,
        &format!(
            "/services/data/v62.0/query?q={}",
            encode("SELECT Id FROM Account")
        ),
    );
    assert_eq!(r.status, 401, "the session stays expired");
}

#[test]
fn fault_decisions_are_reproducible_with_a_seed() {
    let plan = "seed: 42\nfaults:\n  - { route: \"/services/data/*/limits\", probability: 0.3, kind: status, status: 500 }\n";
    let pattern = |sandbox: &Running| {
        let token = token(sandbox);
        (0..60)
            .map(|_| get(sandbox, &token, "/services/data/v62.0/limits").status)
            .collect::<Vec<u16>>()
    };
    let first = pattern(&start_with_faults(plan));
    let second = pattern(&start_with_faults(plan));
    assert_eq!(first, second);
    let failures = first.iter().filter(|s| **s == 500).count();
    assert!(
        (5..=35).contains(&failures),
        "about 30% of 60, got {failures}"
    );
}

#[test]
fn a_dropped_connection_cuts_the_response() {
    let sandbox = start_with_faults(
        "faults:\n  - { route: \"/services/data/*/query*\", kind: drop_connection }\n",
    );
    let token = token(&sandbox);
    let response = agent()
        .get(format!(
            "{}/services/data/v62.0/query?q={}",
            sandbox.salesforce_url,
            encode("SELECT Id, Name FROM Account")
        ))
        .header("Authorization", format!("Bearer {token}"))
        .call();
    let cut = match response {
        Err(_) => true,
        Ok(mut r) => r.body_mut().read_to_vec().is_err(),
    };
    assert!(cut, "the body must not arrive whole");
}

#[test]
fn fault_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.yaml");
    std::fs::write(
        &path,
        "faults:\n  - { route: \"*\", kind: status, status: 404 }\n",
    )
    .unwrap();
    let error = etl::sandbox::faults::FaultPlan::load(&path).unwrap_err();
    assert!(
        error.contains("needs status: 500, 502, 503 or 504"),
        "{error}"
    );
    std::fs::write(&path, "faults:\n  - { route: \"*\", kind: explode }\n").unwrap();
    assert!(etl::sandbox::faults::FaultPlan::load(&path).is_err());
}
