//! HTTPS end to end (feature `tls`: `cargo test --features tls --test tls`). The sandbox serves
//! both APIs over TLS with the self-signed certificate it keeps in its data folder; a client
//! that was not told to trust it is refused at once, with a clear certificate error and no
//! secret in it; with `trust_certificate` the `etl` binary signs in to both (real OAuth token
//! exchanges) and imports; a restart of the same folder serves the same certificate.
#![cfg(feature = "tls")]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use etl::config::model::{HaloConnection, SalesforceConnection};
use etl::halo::{ClientOptions as HaloOptions, HaloClient};
use etl::salesforce::auth::{self, TokenStore};
use etl::salesforce::{ClientOptions, Error, SalesforceClient};
use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{etl_output, pipeline, project};

const SECRET: &str = "etl-sandbox-secret";

fn start(dir: &Path) -> Running {
    server::start(Options {
        data_dir: Some(dir.to_path_buf()),
        accounts: 6,
        tls: true,
        ..Options::default()
    })
    .unwrap()
}

fn certificate(sandbox: &Running) -> String {
    sandbox
        .certificate
        .as_ref()
        .expect("an HTTPS sandbox names its certificate")
        .display()
        .to_string()
}

/// The Salesforce connection the sandbox prints, signing in with client credentials.
fn salesforce(sandbox: &Running, trust: Option<&str>) -> SalesforceConnection {
    serde_json::from_value(json!({
        "login_url": sandbox.salesforce_url,
        "flow": "client_credentials",
        "client_id": "etl-sandbox-client",
        "client_secret": SECRET,
        "trust_certificate": trust,
    }))
    .unwrap()
}

fn halo(sandbox: &Running, trust: Option<&str>) -> HaloConnection {
    serde_json::from_value(json!({
        "base_url": sandbox.halo_url,
        "tenant": "sandbox",
        "client_id": "etl-sandbox-client",
        "client_secret": SECRET,
        "trust_certificate": trust,
    }))
    .unwrap()
}

fn connect(connection: &SalesforceConnection) -> Result<SalesforceClient, Error> {
    let folder = tempfile::tempdir().unwrap();
    let store = TokenStore::new(auth::store_path(folder.path(), None, None));
    SalesforceClient::connect(connection, store, ClientOptions::default())
}

fn halo_options() -> HaloOptions {
    HaloOptions {
        rate_limit: None,
        ..HaloOptions::default()
    }
}

/// Adds `trust_certificate: <path>` under both connections of a test project's etl.yaml.
fn trust_in_project(root: &Path, certificate: &str) {
    let path = root.join("etl.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = Vec::new();
    for line in text.lines() {
        lines.push(line.to_string());
        if line.starts_with("    login_url:") || line.starts_with("    base_url:") {
            lines.push(format!("    trust_certificate: {certificate}"));
        }
    }
    assert_eq!(lines.len(), text.lines().count() + 2, "{text}");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn serves_https_and_names_its_certificate_in_the_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start(dir.path());
    assert!(sandbox.salesforce_url.starts_with("https://127.0.0.1:"));
    assert!(sandbox.halo_url.starts_with("https://127.0.0.1:"));
    let description = sandbox.description();
    let certificate = certificate(&sandbox);
    assert_eq!(
        description["certificate"],
        Value::String(certificate.clone())
    );
    assert_eq!(
        Path::new(&certificate),
        dir.path().canonicalize().unwrap().join("sandbox-cert.pem")
    );
    for url in [
        &description["salesforce"]["instance_url"],
        &description["salesforce"]["login_url"],
        &description["halo"]["base_url"],
        &description["halo"]["auth_url"],
    ] {
        assert!(url.as_str().unwrap().starts_with("https://"), "{url}");
    }
    let pem = std::fs::read_to_string(&certificate).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(!pem.contains("PRIVATE KEY"), "the key is kept apart");
}

#[test]
fn a_client_without_the_trust_switch_is_refused_clearly_and_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start(dir.path());

    let started = Instant::now();
    let error = connect(&salesforce(&sandbox, None)).err().unwrap();
    let message = error.to_string();
    assert!(matches!(error, Error::Connection { .. }), "{error:?}");
    assert!(
        message.contains("TLS certificate is not trusted") && message.contains("trust_certificate"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not retried: {:?}",
        started.elapsed()
    );

    let client = HaloClient::new(&halo(&sandbox, None), halo_options()).unwrap();
    let error = client.get("Client", 1).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("TLS certificate is not trusted") && message.contains("trust_certificate"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
    assert_eq!(
        client.token_fetches(),
        1,
        "a refused certificate is not retried"
    );

    // The binary says the same and stops before any run.
    let project = project(&sandbox, &["accounts"]);
    let (code, stdout, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 3, "{stderr}\n{stdout}");
    assert!(
        stderr.contains("TLS certificate is not trusted"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET) && !stdout.contains(SECRET));
}

#[test]
fn with_trust_certificate_the_binary_signs_in_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start(dir.path());
    let project = project(&sandbox, &["accounts"]);
    project.import_only("accounts");
    trust_in_project(&project.root, &certificate(&sandbox));

    let (code, stdout, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let accounts = pipeline(&summary, "accounts");
    assert_eq!(accounts["failed"], 0, "{summary}");
    let extracted = accounts["extracted"].as_u64().unwrap();
    assert!(extracted > 0, "{summary}");

    // What the run wrote is in Halo, read back over HTTPS by a client trusting the same file.
    let client = HaloClient::new(
        &halo(&sandbox, Some(&certificate(&sandbox))),
        halo_options(),
    )
    .unwrap();
    let first = client.get("Client", 1).unwrap();
    assert!(first.is_some());
    let token = {
        let agent = https_agent(&certificate(&sandbox));
        let mut response = agent
            .post(format!("{}/auth/token", sandbox.halo_url))
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", "etl-sandbox-client"),
                ("client_secret", SECRET),
            ])
            .unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        body["access_token"].as_str().unwrap().to_string()
    };
    let clients: Value = https_agent(&certificate(&sandbox))
        .get(format!("{}/api/Client", sandbox.halo_url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let created = accounts["created"].as_u64().unwrap();
    assert!(created > 0, "{summary}");
    assert!(
        clients["record_count"].as_u64().unwrap() >= created,
        "{clients}"
    );

    // The Salesforce connector over HTTPS: a query after its own sign-in.
    let client = connect(&salesforce(&sandbox, Some(&certificate(&sandbox)))).unwrap();
    let answer = client
        .get_json("query?q=SELECT+COUNT()+FROM+Account")
        .unwrap();
    assert!(answer["totalSize"].as_u64().unwrap() > 0, "{answer}");
}

/// An HTTP agent trusting the sandbox's certificate, built the way the connectors build theirs.
fn https_agent(certificate: &str) -> ureq::Agent {
    etl::http_agent::config(Some(certificate), "test")
        .unwrap()
        .build()
        .into()
}

#[test]
fn the_certificate_is_reused_when_the_same_folder_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    let path = certificate(&first);
    let pem = std::fs::read(&path).unwrap();
    connect(&salesforce(&first, Some(&path))).unwrap();
    first.stop();

    let second = start(dir.path());
    assert_eq!(certificate(&second), path);
    assert_eq!(std::fs::read(&path).unwrap(), pem, "the same certificate");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("sandbox-key.pem")).unwrap();
        assert_eq!(
            key.permissions().mode() & 0o777,
            0o600,
            "the key is the owner's"
        );
    }
    // A client that trusted the first start trusts this one (another port, same file).
    connect(&salesforce(&second, Some(&path))).unwrap();
    let client = HaloClient::new(&halo(&second, Some(&path)), halo_options()).unwrap();
    assert!(client.get("Client", 1).unwrap().is_some());
}

#[test]
fn an_unreadable_or_invalid_certificate_is_a_config_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = start(dir.path());
    let missing = dir.path().join("nowhere.pem").display().to_string();
    let error = connect(&salesforce(&sandbox, Some(&missing)))
        .err()
        .unwrap();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert_eq!(error.exit_code(), 2);
    assert!(
        error
            .to_string()
            .contains("connections.salesforce.trust_certificate")
            && error.to_string().contains(&missing),
        "{error}"
    );
    let invalid = dir.path().join("invalid.pem");
    std::fs::write(&invalid, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let invalid = invalid.display().to_string();
    let error = HaloClient::new(&halo(&sandbox, Some(&invalid)), halo_options())
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("connections.halo.trust_certificate")
            && error.to_string().contains(&invalid),
        "{error}"
    );

    let not_a_certificate = dir.path().join("not-a-certificate.pem");
    std::fs::write(
        &not_a_certificate,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_a_certificate = not_a_certificate.display().to_string();
    let error = connect(&salesforce(&sandbox, Some(&not_a_certificate)))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains(&format!(
            "{not_a_certificate}: certificate 1 cannot be trusted as a root"
        )),
        "{error}"
    );

    // The binary: `etl validate` and `etl run` point at the line, relative paths from etl.yaml.
    let project = project(&sandbox, &["accounts"]);
    std::fs::write(project.root.join("broken.pem"), "no certificate here\n").unwrap();
    trust_in_project(&project.root, "broken.pem");
    for command in ["validate", "run"] {
        let (code, stdout, stderr) = etl_output(&project.root, &[command]);
        let output = format!("{stdout}{stderr}");
        assert_eq!(code, 2, "{command}: {output}");
        assert!(
            output.contains("trust_certificate") || output.contains("trust-certificate"),
            "{command}: {output}"
        );
        assert!(
            output.contains("broken.pem holds no certificate"),
            "{command}: {output}"
        );
        assert!(!output.contains(SECRET), "{command}: {output}");
    }
}

#[test]
fn a_broken_certificate_file_is_named_and_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path()).stop();
    let path = dir.path().join("sandbox-cert.pem");
    std::fs::write(&path, "garbage\n").unwrap();
    let error = server::start(Options {
        data_dir: Some(dir.path().to_path_buf()),
        accounts: 6,
        tls: true,
        ..Options::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("sandbox-cert.pem"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage\n");

    // Without a data folder there is nowhere to keep the certificate.
    let error = server::start(Options {
        tls: true,
        ..Options::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("--data"), "{error}");
}

#[test]
fn etl_run_starts_the_sandbox_over_https_when_etl_yaml_points_at_it() {
    // A project whose etl.yaml names the sandbox by https URLs, once its certificate exists
    // in the project's `.etl/sandbox` (made by a first start, then stopped).
    let first = server::start(Options::default()).unwrap();
    let project = project(&first, &["accounts"]);
    project.import_only("accounts");
    let data = project.root.join(".etl/sandbox");
    let made = start(&data);
    let yaml = std::fs::read_to_string(project.root.join("etl.yaml"))
        .unwrap()
        .replace(&first.salesforce_url, &made.salesforce_url)
        .replace(&first.halo_url, &made.halo_url);
    std::fs::write(project.root.join("etl.yaml"), yaml).unwrap();
    trust_in_project(&project.root, ".etl/sandbox/sandbox-cert.pem");
    let certificate_before = std::fs::read(data.join("sandbox-cert.pem")).unwrap();
    first.stop();
    made.stop();

    let (code, stdout, stderr) = etl_output(&project.root, &["run", "--json"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(
        stderr.contains("started the sandbox (Salesforce https://"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pipeline(&summary, "accounts")["failed"], 0, "{summary}");
    assert!(
        pipeline(&summary, "accounts")["extracted"]
            .as_u64()
            .unwrap()
            > 0,
        "{summary}"
    );
    assert_eq!(
        std::fs::read(data.join("sandbox-cert.pem")).unwrap(),
        certificate_before,
        "the certificate kept in the folder is reused"
    );
}
