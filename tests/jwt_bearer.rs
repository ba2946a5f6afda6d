//! The OAuth 2.0 JWT bearer flow end to end: `flow: jwt_bearer` in `etl.yaml` against the
//! sandbox started in-process with the connected app's certificate. Signing in with a PKCS#8
//! key and an X.509 certificate (the committed TEST-ONLY pair under `tests/fixtures/`) or a
//! PKCS#1 key and a public key PEM; an expired token answered by a fresh assertion, mid-run
//! too; a key the app does not know (exit 3, Salesforce's `invalid_grant`), a missing or
//! non-RSA key file (exit 2, naming the file); and never a key or an assertion in the output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;
use serde_json::Value;

use etl::config::model::{SalesforceConnection, SalesforceFlow};
use etl::salesforce::auth::{store_path, TokenStore};
use etl::salesforce::client::{ClientOptions, SalesforceClient};
use etl::sandbox::salesforce::oauth::JwtCertificate;
use etl::sandbox::salesforce::state::Config;
use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{etl_output, pipeline, project, Project};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const TEST_KEY: &str = "jwt-TEST-ONLY-private-key.pem";
const TEST_CERTIFICATE: &str = "jwt-TEST-ONLY-certificate.crt";

/// `{"alg":"RS256"}` base64url-encoded: how every assertion starts.
const ASSERTION_START: &str = "eyJhbGciOiJSUzI1NiJ9";

fn sandbox(certificate: JwtCertificate, config: Config) -> Running {
    server::start(Options {
        accounts: 30,
        salesforce: Config {
            jwt_certificate: Some(certificate),
            ..config
        },
        ..Options::default()
    })
    .unwrap()
}

fn certificate() -> JwtCertificate {
    JwtCertificate::load(&fixture(TEST_CERTIFICATE)).unwrap()
}

/// A project whose Salesforce connection signs in with `flow: jwt_bearer` and the key at
/// `key_file` (relative to etl.yaml); `key` is written there when given.
fn jwt_project(sandbox: &Running, key_file: &str, key: Option<&str>) -> Project {
    let project = project(sandbox, &["accounts"]);
    let path = project.root.join("etl.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = "    flow: client_credentials\n    client_id: etl-sandbox-client\n    client_secret: ${SF_SECRET}\n";
    assert!(text.contains(old), "{text}");
    let new = format!(
        "    flow: jwt_bearer\n    client_id: etl-sandbox-client\n    username: integration@sandbox.example\n    private_key_file: {key_file}\n"
    );
    std::fs::write(&path, text.replace(old, &new)).unwrap();
    if let Some(key) = key {
        let target = project.root.join(key_file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, key).unwrap();
    }
    project
}

fn test_key_pem() -> String {
    std::fs::read_to_string(fixture(TEST_KEY)).unwrap()
}

/// Asserts that nothing secret reached the output: no key material, no assertion, no token.
fn no_secrets(key_pem: &str, outputs: &[&str]) {
    let body_lines: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    for output in outputs {
        assert!(
            !output.contains(ASSERTION_START),
            "an assertion leaked: {output}"
        );
        assert!(
            !output.contains("PRIVATE KEY-----"),
            "a key leaked: {output}"
        );
        for line in &body_lines {
            assert!(!output.contains(line), "key material leaked: {output}");
        }
    }
}

#[test]
fn signs_in_with_a_pkcs8_key_and_a_certificate_then_runs() {
    let sandbox = sandbox(certificate(), Config::default());
    let key = test_key_pem();
    let project = jwt_project(&sandbox, "keys/salesforce.key", Some(&key));

    let (code, stdout, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("jwt_bearer"), "{stdout}");
    assert!(stdout.contains("user:"), "{stdout}");
    no_secrets(&key, &[&stdout, &stderr]);

    let (code, stdout, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let accounts = pipeline(&summary, "accounts");
    assert!(accounts["created"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(accounts["failed"], 0, "{summary}");
    no_secrets(&key, &[&stdout, &stderr]);
}

#[test]
fn signs_in_with_a_pkcs1_key_and_a_public_key_pem() {
    // A key made at test time (1024 bits: quick, and the sandbox does not judge key sizes).
    let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let private_pem = key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    assert!(private_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let sandbox = sandbox(
        JwtCertificate::from_pem(&public_pem, "generated.pub").unwrap(),
        Config::default(),
    );
    let project = jwt_project(&sandbox, "rsa.key", Some(&private_pem));
    let (code, stdout, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    no_secrets(&private_pem, &[&stdout, &stderr]);

    // PKCS#1 public keys are taken too.
    let pkcs1_public = key.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
    assert_eq!(
        JwtCertificate::from_pem(&pkcs1_public, "pkcs1.pub")
            .unwrap()
            .key,
        key.to_public_key()
    );
    // The certificate's key is the fixture key's public half.
    let fixture_key = RsaPrivateKey::from_pkcs8_pem(&test_key_pem()).unwrap();
    assert_eq!(certificate().key, fixture_key.to_public_key());
}

#[test]
fn an_expired_token_is_answered_with_a_fresh_assertion() {
    let sandbox = sandbox(
        certificate(),
        Config {
            token_lifetime: Duration::from_millis(700),
            ..Config::default()
        },
    );
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("sf.key"), test_key_pem()).unwrap();
    // Relative: resolved against the project folder the token store belongs to.
    let connection: SalesforceConnection = serde_json::from_value(serde_json::json!({
        "login_url": sandbox.salesforce_url,
        "api_version": "62.0",
        "flow": "jwt_bearer",
        "client_id": "etl-sandbox-client",
        "username": "integration@sandbox.example",
        "private_key_file": "sf.key",
    }))
    .unwrap();
    assert_eq!(connection.flow, SalesforceFlow::JwtBearer);
    let store = TokenStore::new(store_path(folder.path(), None, None));
    let client = SalesforceClient::connect(&connection, store, ClientOptions::default()).unwrap();
    let me = client.identity().unwrap();
    let user = me["user_id"].clone();
    assert!(user.is_string(), "{me}");
    assert_eq!(client.refreshes(), 0);
    std::thread::sleep(Duration::from_millis(900));
    let me = client.identity().unwrap();
    assert_eq!(me["user_id"], user);
    assert_eq!(client.refreshes(), 1, "a new assertion after the 401");
    // No refresh token in this flow, so nothing is stored.
    assert!(client.stored_tokens().is_none());
}

#[test]
fn a_run_goes_on_when_tokens_expire_mid_run() {
    // Tokens live 400 ms and every API call takes 150 ms: the run outlives several tokens, each
    // 401 answered by a new assertion.
    let lifetime = Duration::from_millis(400);
    let sandbox = server::start(Options {
        accounts: 30,
        salesforce: Config {
            jwt_certificate: Some(certificate()),
            token_lifetime: lifetime,
            ..Config::default()
        },
        faults: Some(
            serde_saphyr::from_str(
                "faults:\n  - { route: \"/services/data/*\", kind: latency, latency_ms: 150 }\n",
            )
            .unwrap(),
        ),
        ..Options::default()
    })
    .unwrap();
    let started = Instant::now();
    let key = test_key_pem();
    let project = jwt_project(&sandbox, "salesforce.key", Some(&key));
    let (code, stdout, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pipeline(&summary, "accounts")["failed"], 0, "{summary}");
    // The session in use at the end was issued after the first one had expired.
    let state = sandbox.salesforce_state();
    let latest = state
        .lock()
        .unwrap()
        .sessions
        .values()
        .map(|session| session.expires)
        .max()
        .unwrap();
    assert!(
        latest - lifetime >= started + lifetime,
        "no token was issued after the first one expired ({:?} into the run)",
        (latest - lifetime) - started
    );
    no_secrets(&key, &[&stdout, &stderr]);
}

#[test]
fn a_key_the_app_does_not_know_is_refused_by_salesforce() {
    let sandbox = sandbox(certificate(), Config::default());
    let other = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let other_pem = other.to_pkcs8_pem_string();
    let project = jwt_project(&sandbox, "wrong.key", Some(&other_pem));
    let (code, stdout, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("invalid_grant") && stderr.contains("invalid assertion"),
        "{stderr}"
    );
    no_secrets(&other_pem, &[&stdout, &stderr]);

    let (code, stdout, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("invalid_grant"), "{stderr}");
    no_secrets(&other_pem, &[&stdout, &stderr]);
}

#[test]
fn salesforce_refusals_come_through_with_its_wording() {
    let sandbox = sandbox(certificate(), Config::default());
    let key = test_key_pem();
    let project = jwt_project(&sandbox, "salesforce.key", Some(&key));
    let path = project.root.join("etl.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Another user of the org, not pre-authorized for the app.
    let other_user = {
        let state = sandbox.salesforce_state();
        let state = state.lock().unwrap();
        state
            .org
            .records("User")
            .iter()
            .filter(|u| u.get("Id").and_then(Value::as_str) != Some(state.user_id.as_str()))
            .filter_map(|u| u.get("Username").and_then(Value::as_str))
            .find(|u| *u != "integration@sandbox.example")
            .unwrap()
            .to_string()
    };
    std::fs::write(
        &path,
        text.replace("integration@sandbox.example", &other_user),
    )
    .unwrap();
    let (code, stdout, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("invalid_grant: user hasn't approved this consumer"),
        "{stderr}"
    );

    // A consumer key the org does not know.
    std::fs::write(
        &path,
        text.replace(
            "client_id: etl-sandbox-client\n    username",
            "client_id: 3MVGnope\n    username",
        ),
    )
    .unwrap();
    let (code, _, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("invalid_client_id"), "{stderr}");
}

#[test]
fn a_missing_or_unusable_key_file_is_a_configuration_error() {
    let sandbox = sandbox(certificate(), Config::default());
    let project = jwt_project(&sandbox, "keys/missing.key", None);
    let (code, stdout, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("keys/missing.key"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("private_key_file"), "{stderr}");
    let (code, _, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("keys/missing.key"), "{stderr}");

    // The certificate in place of the key.
    let certificate_pem = std::fs::read_to_string(fixture(TEST_CERTIFICATE)).unwrap();
    let project = jwt_project(&sandbox, "cert.pem", Some(&certificate_pem));
    let (code, _, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cert.pem") && stderr.contains("not an RSA private key in PEM"),
        "{stderr}"
    );
    assert!(!stderr.contains("BEGIN CERTIFICATE-----\n"), "{stderr}");
}

#[test]
fn the_sandbox_checks_audience_and_expiry() {
    let sandbox = sandbox(certificate(), Config::default());
    let key = RsaPrivateKey::from_pkcs8_pem(&test_key_pem()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let post = |assertion: &str| -> (u16, Value) {
        let mut response = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
            .post(format!("{}/services/oauth2/token", sandbox.salesforce_url))
            .send_form([
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
            ])
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json().unwrap())
    };
    let sign = |aud: &str, issued: i64| {
        etl::salesforce::auth::jwt::assertion(
            &key,
            "etl-sandbox-client",
            "integration@sandbox.example",
            aud,
            issued,
        )
        .unwrap()
    };
    // Salesforce's own hosts are accepted as the audience too; the answer has no refresh token.
    let (status, body) = post(&sign("https://login.salesforce.com", now));
    assert_eq!(status, 200, "{body}");
    for field in [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(body.get(field).is_some(), "{field} in {body}");
    }
    assert!(body.get("refresh_token").is_none(), "{body}");
    let (status, body) = post(&sign(&sandbox.salesforce_url, now));
    assert_eq!(status, 200, "{body}");

    let (status, body) = post(&sign("https://example.com", now));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "audience is invalid");

    // Expired (exp = issued + 3 min, in the past).
    let (status, body) = post(&sign(&sandbox.salesforce_url, now - 600));
    assert_eq!(status, 400);
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "expired authorization code"})
    );
    // Too far ahead.
    let (_, body) = post(&sign(&sandbox.salesforce_url, now + 3600));
    assert_eq!(body["error_description"], "invalid assertion");
    // Tampered claims.
    let good = sign(&sandbox.salesforce_url, now);
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = sign("https://login.salesforce.com", now)
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    let (_, body) = post(&parts.join("."));
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "invalid assertion"})
    );
    let (_, body) = post("not-a-jwt");
    assert_eq!(body["error_description"], "invalid assertion");
}

#[test]
fn without_a_certificate_the_sandbox_refuses_the_grant_and_says_which_file_it_uses() {
    let sandbox = server::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .unwrap();
    let project = jwt_project(&sandbox, "salesforce.key", Some(&test_key_pem()));
    let (code, _, stderr) = etl_output(&project.root, &["auth", "status"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("invalid_grant"), "{stderr}");
    assert!(sandbox.description()["salesforce"]
        .get("jwt_certificate")
        .is_none());

    let with = self::sandbox(certificate(), Config::default());
    let named = with.description()["salesforce"]["jwt_certificate"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(named.ends_with(TEST_CERTIFICATE), "{named}");
}

trait Pkcs8String {
    fn to_pkcs8_pem_string(&self) -> String;
}

impl Pkcs8String for RsaPrivateKey {
    fn to_pkcs8_pem_string(&self) -> String {
        use rsa::pkcs8::EncodePrivateKey;
        self.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    }
}
