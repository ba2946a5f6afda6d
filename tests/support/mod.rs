//! Shared by the end-to-end tests that run the `etl` binary against both sandboxes: a project in
//! a temporary folder with some of the example pipelines, running the binary, and reading Halo.
#![allow(dead_code)] // each test file uses its own part of it

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

use etl::sandbox::server::Running;

pub struct Project {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

/// A project over both sandboxes with the example pipelines named (secrets from the
/// environment, Halo's limiter off, batches of 50).
/// Every example pipeline, in `depends_on` order.
pub const ALL_PIPELINES: [&str; 5] = [
    "accounts",
    "contacts",
    "opportunities",
    "cases",
    "case_comments",
];

pub fn project(sandbox: &Running, pipelines: &[&str]) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    for name in pipelines {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{name}.yaml"));
        std::fs::copy(&from, root.join(format!("pipelines/{name}.yaml"))).unwrap();
    }
    std::fs::write(
        root.join("etl.yaml"),
        format!(
            "project: test\nstaging: .etl/staging.duckdb\npipelines: pipelines\nconnections:\n  salesforce:\n    login_url: {sf}\n    api_version: \"62.0\"\n    flow: client_credentials\n    client_id: etl-sandbox-client\n    client_secret: ${{SF_SECRET}}\n  halo:\n    base_url: {halo}\n    tenant: sandbox\n    client_id: etl-sandbox-client\n    client_secret: ${{HALO_SECRET}}\n    rate_limit: \"off\"\ndefaults:\n  batch_size: 50\n",
            sf = sandbox.salesforce_url,
            halo = sandbox.halo_url
        ),
    )
    .unwrap();
    Project { _dir: dir, root }
}

/// A sandbox with `accounts` accounts and a project with only the accounts pipeline, importing
/// (no sync back), acting on deletes as `deletes` says (a `deletes:` value) when given.
pub fn accounts_importing(accounts: u64, deletes: Option<&str>) -> (Running, Project) {
    let sandbox = etl::sandbox::server::start(etl::sandbox::server::Options {
        accounts,
        ..Default::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    project.import_only("accounts");
    if let Some(deletes) = deletes {
        project.edit(
            "accounts",
            "attachments: true",
            &format!("attachments: true\ndeletes: {deletes}"),
        );
    }
    (sandbox, project)
}

impl Project {
    /// Replaces `from` with `to` in a pipeline file of the project (the first occurrence).
    pub fn edit(&self, pipeline: &str, from: &str, to: &str) {
        let path = self.root.join(format!("pipelines/{pipeline}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{pipeline}.yaml has no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Makes a pipeline import only.
    pub fn import_only(&self, pipeline: &str) {
        self.edit(
            pipeline,
            "sync_back: { create: true, update: true }",
            "sync_back: { create: false, update: false }",
        );
    }
}

/// Runs the binary on the project: exit code, stdout, stderr.
pub fn etl_output(root: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("--project")
        .arg(root.join("etl.yaml"))
        .args(args)
        .env("SF_SECRET", "etl-sandbox-secret")
        .env("HALO_SECRET", "etl-sandbox-secret")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Runs the binary on the project with `--json` among `args`: exit code, what it printed as
/// JSON (null when it printed none), stderr.
pub fn etl_json(root: &Path, args: &[&str]) -> (i32, Value, String) {
    let (code, stdout, stderr) = etl_output(root, args);
    (
        code,
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr,
    )
}

/// One pipeline's import entry in a `--json` summary.
pub fn pipeline<'a>(summary: &'a Value, name: &str) -> &'a Value {
    direction(summary, name, "import")
}

/// One pipeline's entry for a direction (`import`, `sync back`) in a `--json` summary.
pub fn direction<'a>(summary: &'a Value, name: &str, direction: &str) -> &'a Value {
    summary["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pipeline"] == name && p["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} of {name} in {summary}"))
}

pub fn halo_token(sandbox: &Running) -> String {
    let mut response = ureq::post(format!("{}/auth/token", sandbox.halo_url))
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_id", "etl-sandbox-client"),
            ("client_secret", "etl-sandbox-secret"),
        ])
        .unwrap();
    let body: Value = response.body_mut().read_json().unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

pub fn halo_get(sandbox: &Running, token: &str, path: &str) -> Value {
    let mut response = ureq::get(format!("{}/api/{path}", sandbox.halo_url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    response.body_mut().read_json().unwrap()
}

/// The org's records of an object, read inside the sandbox.
pub fn salesforce_records(sandbox: &Running, object: &str) -> Vec<Map<String, Value>> {
    let state = sandbox.salesforce_state();
    let state = state.lock().unwrap();
    state.org.records(object).to_vec()
}

/// A whole HTTP answer, for tests that check status, headers and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP agent for tests that look at every answer: error statuses are answers, not errors,
/// and redirects are not followed (the OAuth tests read them).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// An access token from the org's client-credentials grant.
pub fn salesforce_token(sandbox: &Running) -> String {
    let r = reply(
        agent()
            .post(format!("{}/services/oauth2/token", sandbox.salesforce_url))
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", "etl-sandbox-client"),
                ("client_secret", "etl-sandbox-secret"),
            ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// Reads an answer whole (the agent must not turn error statuses into errors).
pub fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = response.body_mut().read_to_vec().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// The org's records of an object that are not deleted.
pub fn live_records(sandbox: &Running, object: &str) -> Vec<Map<String, Value>> {
    salesforce_records(sandbox, object)
        .into_iter()
        .filter(|r| r["IsDeleted"] != Value::Bool(true))
        .collect()
}

/// Changes a Salesforce record as an edit in the org would (its SystemModstamp moves on).
pub fn touch(sandbox: &Running, id: &str, fields: Value) {
    let mut response = ureq::post(format!("{}/__sandbox/touch/{id}", sandbox.salesforce_url))
        .send_json(fields)
        .unwrap();
    let _ = response.body_mut().read_to_string();
}

/// Saves Halo records as the Halo API does: `POST /api/<entity>` with an array; an element with
/// `id` updates that record, one without creates one. The saved object (one element) or objects.
pub fn halo_post(sandbox: &Running, token: &str, entity: &str, body: Value) -> Value {
    let mut response = ureq::post(format!("{}/api/{entity}", sandbox.halo_url))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(body)
        .unwrap();
    response.body_mut().read_json().unwrap()
}

/// Rows of a query on a project's staging file (`etl sql --format json`).
pub fn staging_rows(root: &Path, sql: &str) -> Vec<Value> {
    let (code, stdout, stderr) = etl_output(root, &["sql", "--format", "json", sql]);
    assert_eq!(code, 0, "{sql}: {stderr}");
    match serde_json::from_str(&stdout) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("{sql}: not a JSON array ({other:?}): {stdout}"),
    }
}

/// A File (ContentVersion linked to `parent` through a ContentDocumentLink), made in the org
/// the way Salesforce stores one; returns the version's Id.
pub fn put_file(sandbox: &Running, n: u64, parent: &str, bytes: &[u8]) -> String {
    let state = sandbox.salesforce_state();
    let mut state = state.lock().unwrap();
    let owner = etl::sandbox::salesforce::ids::make("005", 1);
    let document = etl::sandbox::salesforce::ids::make("069", n);
    let version = state.org.create(
        "ContentVersion",
        serde_json::json!({
            "ContentDocumentId": document,
            "Title": format!("file {n}"),
            "PathOnClient": format!("file-{n}.bin"),
            "FileExtension": "bin",
            "ContentSize": bytes.len(),
            "IsLatest": true,
        })
        .as_object()
        .unwrap()
        .clone(),
        &owner,
    );
    state.org.put_blob(&version, bytes.to_vec());
    drop(state);
    share_file(sandbox, n, parent);
    version
}

/// Shares the file `put_file` made with number `n` with one more record, as Salesforce does:
/// a new ContentDocumentLink, no new version.
pub fn share_file(sandbox: &Running, n: u64, parent: &str) {
    let state = sandbox.salesforce_state();
    let mut state = state.lock().unwrap();
    let owner = etl::sandbox::salesforce::ids::make("005", 1);
    let document = etl::sandbox::salesforce::ids::make("069", n);
    state.org.create(
        "ContentDocumentLink",
        serde_json::json!({"ContentDocumentId": document, "LinkedEntityId": parent, "ShareType": "V"})
            .as_object()
            .unwrap()
            .clone(),
        &owner,
    );
}

/// A free port for an OAuth callback listener, below Linux's ephemeral range (32768 and up),
/// so that servers other tests start on port 0 meanwhile cannot be given it before the
/// listener binds it.
pub fn callback_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        ^ std::process::id();
    (0..2_000u32)
        .map(|i| 20_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % 12_000) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port between 20000 and 32000")
}

/// The one number `sql` (a count, a sum) gives on `store`.
pub fn number(store: &etl::staging::Store, sql: &str) -> i64 {
    store
        .connection()
        .query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The link of Contact `i` (Salesforce Id `003` and `i` in 15 digits) to Halo user `i`, with
/// `version` as its hash and `record` (if any) as what was synced and what Halo holds.
pub fn contact_link(
    i: usize,
    version: &str,
    record: Option<Map<String, Value>>,
) -> (String, etl::staging::Link) {
    (
        format!("003{i:015}"),
        etl::staging::Link {
            target_id: i.to_string(),
            source_hash: Some(version.to_string()),
            synced_record: record.clone(),
            target_record: record,
        },
    )
}
