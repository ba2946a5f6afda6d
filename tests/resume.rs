//! A run killed with SIGKILL in the middle of its load, then run again, ends exactly like an
//! uninterrupted run: every account once in Halo, no duplicate, nothing missing, and the
//! staging file still opens. Halo writes are slowed by an injected latency so the kill lands
//! between batches or inside one.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use etl::sandbox::faults::FaultPlan;
use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{halo_get, halo_token, live_records};

fn project(sandbox: &Running, root: &Path) {
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/accounts.yaml");
    std::fs::copy(from, root.join("pipelines/accounts.yaml")).unwrap();
    std::fs::write(
        root.join("etl.yaml"),
        format!(
            "staging: .etl/staging.duckdb\npipelines: pipelines\nconnections:\n  salesforce:\n    login_url: {}\n    flow: client_credentials\n    client_id: etl-sandbox-client\n    client_secret: ${{SF_SECRET}}\n  halo:\n    base_url: {}\n    client_id: etl-sandbox-client\n    client_secret: ${{HALO_SECRET}}\n    rate_limit: \"off\"\ndefaults:\n  batch_size: 4\n",
            sandbox.salesforce_url, sandbox.halo_url
        ),
    )
    .unwrap();
}

fn etl(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .arg("--project")
        .arg(root.join("etl.yaml"))
        .args(["run", "--json", "--no-sandbox"])
        .env("SF_SECRET", "etl-sandbox-secret")
        .env("HALO_SECRET", "etl-sandbox-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn halo_clients(sandbox: &Running) -> Vec<Value> {
    let body = halo_get(sandbox, &halo_token(sandbox), "Client?includeinactive=true");
    body["clients"].as_array().unwrap().clone()
}

#[test]
fn a_run_killed_mid_load_resumes_without_duplicates_or_losses() {
    // Kill points spread over the load: early, middle, late (the load takes about a second).
    for (trial, kill_after_ms) in [150u64, 450, 800].into_iter().enumerate() {
        let plan: FaultPlan = serde_saphyr::from_str(
            "faults:\n  - { route: \"/api/*\", methods: [POST], kind: latency, latency_ms: 40 }\n",
        )
        .unwrap();
        let sandbox = server::start(Options {
            accounts: 48,
            faults: Some(plan),
            ..Options::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        project(&sandbox, dir.path());

        let mut child = etl(dir.path()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let output = etl(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "trial {trial}: {stderr}");
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            summary["pipelines"][0]["failed"], 0,
            "trial {trial}: {summary}"
        );
        eprintln!(
            "trial {trial}: the rerun created {} and updated {}",
            summary["pipelines"][0]["created"], summary["pipelines"][0]["updated"]
        );

        let live: Vec<String> = live_records(&sandbox, "Account")
            .iter()
            .map(|a| a["Name"].as_str().unwrap().to_string())
            .collect();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for client in halo_clients(&sandbox) {
            *by_name
                .entry(client["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let duplicates: Vec<_> = by_name.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicates.is_empty(),
            "trial {trial}: duplicates {duplicates:?}"
        );
        for name in &live {
            assert_eq!(by_name.get(name), Some(&1), "trial {trial}: {name} missing");
        }
        assert_eq!(
            by_name.len(),
            live.len() + 1,
            "trial {trial}: plus the seed's own customer"
        );

        // A third run finds nothing left to do.
        let output = etl(dir.path()).output().unwrap();
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        let accounts = &summary["pipelines"][0];
        assert_eq!(
            (accounts["created"].clone(), accounts["updated"].clone()),
            (json!(0), json!(0)),
            "trial {trial}: {summary}"
        );
    }
}
