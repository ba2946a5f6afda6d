//! The Halo connector's retry and error paths against a scripted HTTP server (a few lines of
//! std networking), for answers the sandbox does not give on demand: a revoked token, a 429
//! with `Retry-After`, a 503, a 500 on a create, a connection dropped mid-answer, a 400 without
//! element indexes. Waits are shrunk to milliseconds; nothing here asserts a timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etl::config::model::HaloConnection;
use etl::halo::{ClientOptions, HaloClient, HaloError, ListQuery, RetryPolicy};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

/// What the server does with one request.
enum Reply {
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Promise `body`'s length, send half of it, close.
    Drop { body: String },
}

fn answer(status: u16, body: impl Into<String>) -> Reply {
    Reply::Answer {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn token(n: usize) -> Reply {
    answer(
        200,
        json!({"scope": "all", "token_type": "Bearer", "access_token": format!("tok{n}"), "expires_in": 3600})
            .to_string(),
    )
}

type Handler = Box<dyn FnMut(&Seen, &[Seen]) -> Reply + Send>;

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(mut handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let reply = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    handler(&request, &log)
                };
                write_reply(stream, reply);
            }
        });
        Server { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn client(&self, options: ClientOptions) -> HaloClient {
        let connection = HaloConnection {
            base_url: self.url.clone(),
            auth_url: None,
            tenant: Some("acme".into()),
            client_id: "etl-client".into(),
            client_secret: "very-secret-value".into(),
            scope: "all".into(),
            rate_limit: None,
            trust_certificate: None,
        };
        HaloClient::new(&connection, options).unwrap()
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        rate_limit: None,
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
            rate_limit_delay: Duration::from_millis(5),
            rate_limit_max_delay: Duration::from_millis(50),
        },
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn write_reply(mut stream: TcpStream, reply: Reply) {
    let (status, headers, body, whole) = match reply {
        Reply::Answer {
            status,
            headers,
            body,
        } => (status, headers, body, true),
        Reply::Drop { body } => (200, Vec::new(), body, false),
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let sent = if whole { body.len() } else { body.len() / 2 };
    let _ = stream.write_all(&body.as_bytes()[..sent]);
    let _ = stream.flush();
}

fn api_calls(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.target.starts_with("/api/"))
        .collect()
}

#[test]
fn a_refused_token_is_renewed_and_the_call_replayed_once() {
    let mut tokens = 0;
    let server = Server::start(Box::new(move |request, _| {
        if request.target.starts_with("/auth/token") {
            tokens += 1;
            return token(tokens);
        }
        // The first token is "revoked".
        if request.authorization.as_deref() == Some("Bearer tok1") {
            return answer(401, "");
        }
        answer(200, json!({"id": 3, "name": "Acme"}).to_string())
    }));
    let client = server.client(fast());
    let record = client.get("Client", 3).unwrap().unwrap();
    assert_eq!(record["name"], "Acme");
    assert_eq!(client.token_fetches(), 2);
    assert_eq!(client.api_calls(), 2);
    let seen = server.seen();
    // Tenant in the query string and the form; the secret only in the form.
    assert_eq!(seen[0].target, "/auth/token?tenant=acme");
    assert!(seen[0].body.contains("grant_type=client_credentials"));
    assert!(seen[0].body.contains("tenant=acme"));
    assert_eq!(
        api_calls(&seen)[1].authorization.as_deref(),
        Some("Bearer tok2")
    );
}

#[test]
fn a_token_refused_twice_is_an_error_not_a_loop() {
    let mut tokens = 0;
    let server = Server::start(Box::new(move |request, _| {
        if request.target.starts_with("/auth/token") {
            tokens += 1;
            return token(tokens);
        }
        answer(401, "")
    }));
    let client = server.client(fast());
    let error = client.get("Client", 3).unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(
        error.to_string().contains("freshly issued token"),
        "{error}"
    );
    // The first try, then one replay per attempt (4), each with a fresh token: a session that
    // expired twice in a row is not mistaken for missing permissions.
    assert_eq!(client.api_calls(), 5);
}

#[test]
fn bad_credentials_give_halos_message_without_the_secret() {
    let server = Server::start(Box::new(|_, _| {
        answer(
            401,
            json!({"error": "invalid_client", "error_description": "The client application is unknown."})
                .to_string(),
        )
    }));
    let client = server.client(fast());
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
    let text = error.to_string();
    assert!(
        text.contains("invalid_client: The client application is unknown."),
        "{text}"
    );
    assert!(!text.contains("very-secret-value"));
    assert!(!format!("{error:?}").contains("very-secret-value"));
    assert_eq!(client.api_calls(), 0);
}

#[test]
fn rate_limited_writes_wait_and_land_once() {
    let server = Server::start(Box::new(|request, seen| {
        if request.target.starts_with("/auth/token") {
            return token(1);
        }
        let posts = seen
            .iter()
            .filter(|s| s.method == "POST" && s.target == "/api/Users")
            .count();
        if posts <= 2 {
            return Reply::Answer {
                status: 429,
                headers: vec![("Retry-After", "0".into())],
                body: "Rate Limit Reached - 300 Requests per rolling 5 minute window".into(),
            };
        }
        let posted: Vec<Value> = serde_json::from_str(&request.body).unwrap();
        let saved: Vec<Value> = posted
            .iter()
            .enumerate()
            .map(|(n, user)| json!({"id": 100 + n, "name": user["name"]}))
            .collect();
        answer(201, Value::Array(saved).to_string())
    }));
    let client = server.client(fast());
    let outcomes = client.write(
        "Users",
        &[
            json!({"name": "A", "site_id": 1}),
            json!({"name": "B", "site_id": 1}),
        ],
    );
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].result.as_ref().unwrap()["id"], 100);
    assert_eq!(outcomes[1].result.as_ref().unwrap()["name"], "B");
    assert_eq!(client.api_calls(), 3);
}

#[test]
fn a_429_that_never_ends_is_reported() {
    let server = Server::start(Box::new(|request, _| {
        if request.target.starts_with("/auth/token") {
            return token(1);
        }
        Reply::Answer {
            status: 429,
            headers: vec![("Retry-After", "0".into())],
            body: "Rate Limit Reached - 300 Requests per rolling 5 minute window".into(),
        }
    }));
    let client = server.client(fast());
    let error = client
        .list("Client", &ListQuery::default())
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, HaloError::RateLimited { attempts: 4, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("Rate Limit Reached"), "{error}");
}

#[test]
fn a_503_is_retried_but_a_500_on_a_create_is_not() {
    let server = Server::start(Box::new(|request, seen| {
        if request.target.starts_with("/auth/token") {
            return token(1);
        }
        let posts = api_calls(seen).len();
        let posted: Vec<Value> = serde_json::from_str(&request.body).unwrap();
        if posted[0]["name"] == "retry me" && posts == 1 {
            return answer(503, "");
        }
        if posted[0]["name"] == "explode" {
            return answer(
                500,
                json!({"Message": "An error has occurred."}).to_string(),
            );
        }
        answer(201, json!({"id": 9, "name": posted[0]["name"]}).to_string())
    }));
    let client = server.client(fast());
    let first = client.write("Client", &[json!({"name": "retry me"})]);
    assert_eq!(first[0].result.as_ref().unwrap()["id"], 9);
    let second = client.write("Client", &[json!({"name": "explode"})]);
    let failure = second[0].result.as_ref().unwrap_err();
    assert_eq!(failure.status, Some(500));
    assert_eq!(
        failure.message,
        "Halo Client record #0 (name \"explode\"): HTTP 500: An error has occurred."
    );
    let posts = server
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.target == "/api/Client")
        .count();
    assert_eq!(posts, 3, "the 500 create must not be resent");
}

#[test]
fn a_dropped_answer_is_reread_for_a_list_but_not_resent_for_a_create() {
    let server = Server::start(Box::new(|request, seen| {
        if request.target.starts_with("/auth/token") {
            return token(1);
        }
        let body = json!({"record_count": 1, "clients": [{"id": 1}]}).to_string();
        let calls = api_calls(seen).len();
        if calls == 1 || request.method == "POST" {
            return Reply::Drop { body };
        }
        answer(200, body)
    }));
    let client = server.client(fast());
    let pages: Vec<_> = client.list("Client", &ListQuery::default()).collect();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().unwrap().len(), 1);
    let outcomes = client.write("Client", &[json!({"name": "new"})]);
    let failure = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        failure.message.contains("may or may not have been saved"),
        "{}",
        failure.message
    );
    let seen = server.seen();
    let posts = api_calls(&seen)
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn a_400_without_indexes_is_split_until_the_bad_record_stands_alone() {
    let server = Server::start(Box::new(|request, _| {
        if request.target.starts_with("/auth/token") {
            return token(1);
        }
        let posted: Vec<Value> = serde_json::from_str(&request.body).unwrap();
        if posted.iter().any(|record| record["name"] == "bad") {
            return answer(
                400,
                json!({"Message": "Client name is not allowed."}).to_string(),
            );
        }
        let saved: Vec<Value> = posted
            .iter()
            .map(|record| json!({"id": record["n"], "name": record["name"]}))
            .collect();
        if saved.len() == 1 {
            return answer(201, saved[0].to_string());
        }
        answer(201, Value::Array(saved).to_string())
    }));
    let client = server.client(ClientOptions {
        batch_size: 5,
        ..fast()
    });
    let records: Vec<Value> = (1..=12)
        .map(|n| json!({"n": n, "name": if n == 4 { "bad".to_string() } else { format!("c{n}") }}))
        .collect();
    let outcomes = client.write("Client", &records);
    assert_eq!(outcomes.len(), 12);
    for outcome in &outcomes {
        if outcome.index == 3 {
            let failure = outcome.result.as_ref().unwrap_err();
            assert_eq!(failure.status, Some(400));
            assert_eq!(
                failure.message,
                "Halo Client record #3 (name \"bad\"): HTTP 400: Client name is not allowed."
            );
        } else {
            let saved = outcome.result.as_ref().unwrap();
            assert_eq!(
                saved["id"],
                json!(outcome.index + 1),
                "paired with its input"
            );
        }
    }
}

#[test]
fn a_download_broken_midway_is_an_error_but_one_broken_before_any_byte_is_retried() {
    let server = Server::start(Box::new(|request, seen| {
        if request.target.starts_with("/auth/token") {
            return token(1);
        }
        let body = "x".repeat(10_000);
        match api_calls(seen).len() {
            // Half the body, then the connection closes: the writer already holds bytes.
            1 => Reply::Drop { body },
            // Closed before the first byte: safe to ask again.
            2 => Reply::Drop { body: "x".into() },
            _ => answer(200, body),
        }
    }));
    let client = server.client(fast());
    let mut out = Vec::new();
    let error = client.download_attachment(5, &mut out).unwrap_err();
    assert!(
        error.to_string().contains("broke off after 5000 bytes"),
        "{error}"
    );
    let mut out = Vec::new();
    assert_eq!(client.download_attachment(5, &mut out).unwrap(), 10_000);
    assert_eq!(out, "x".repeat(10_000).into_bytes());
    assert_eq!(client.api_calls(), 3);
}

#[test]
fn an_https_url_without_tls_fails_at_once_with_a_clear_error() {
    // Something listens, so the failure is TLS, not the connection.
    let server = Server::start(Box::new(|_, _| answer(200, "{}")));
    let connection = HaloConnection {
        base_url: server.url.replace("http://", "https://"),
        auth_url: None,
        tenant: None,
        client_id: "etl-client".into(),
        client_secret: "very-secret-value".into(),
        scope: "all".into(),
        rate_limit: None,
        trust_certificate: None,
    };
    let client = HaloClient::new(&connection, fast()).unwrap();
    let error = client.get("Client", 1).unwrap_err();
    assert!(
        matches!(error, HaloError::Auth { status: None, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("TLS") || error.to_string().contains("tls"),
        "{error}"
    );
    assert_eq!(
        client.token_fetches(),
        1,
        "not retried: asking again cannot help"
    );
}

#[test]
fn an_unreachable_auth_server_is_retried_then_reported() {
    // Bind and drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let connection = HaloConnection {
        base_url: format!("http://127.0.0.1:{port}"),
        auth_url: None,
        tenant: None,
        client_id: "etl-client".into(),
        client_secret: "very-secret-value".into(),
        scope: "all".into(),
        rate_limit: None,
        trust_certificate: None,
    };
    let client = HaloClient::new(&connection, fast()).unwrap();
    let error = client.get("Client", 1).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("gave up after 4 attempts"), "{text}");
    assert!(!text.contains("very-secret-value"));
    assert_eq!(client.token_fetches(), 4);
}
