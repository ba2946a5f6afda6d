//! Secret hygiene, end to end: with both sandboxes configured with distinctive client secrets,
//! a web-server sign-in and every command a user runs (`run`, `run --json`, `auth status`,
//! `runs`, `runs show`, `validate`, `sql`, and runs that fail to sign in), with `RUST_LOG=trace`
//! set, and runs at `-vvv` in text and in `--log-format json` (a token refresh among them),
//! no client secret, password, access token or refresh token appears in stdout or stderr,
//! in any staging table, or in the committed snapshots. The token store is created 0600, and a
//! store others can read is refused. TLS certificate checks are covered by the connectors' own
//! tests: the default build speaks plain HTTP only (see the README's `tls` feature).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use etl::sandbox::server::{self, Options, Running};

const SF_SECRET: &str = "sf-s3cr3t-XYZ-81f2";
const HALO_SECRET: &str = "halo-s3cr3t-QRS-93c7";
const SF_PASSWORD: &str = "pw-s3cr3t-LMN-4d1e";
const WRONG_SECRET: &str = "wrong-s3cr3t-NOPE-7a0b";

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// Both sandboxes with distinctive secrets; the Salesforce side signs in with the web-server
/// flow (auto-approved) so that the token store holds an access and a refresh token.
fn start() -> (Running, Project) {
    let port = support::callback_port();
    let redirect_uri = format!("http://localhost:{port}/oauth/callback");
    let sandbox = server::start(Options {
        accounts: 5,
        salesforce: etl::sandbox::salesforce::state::Config {
            client_secret: SF_SECRET.into(),
            password: SF_PASSWORD.into(),
            redirect_uri: redirect_uri.clone(),
            auto_approve: true,
            ..Default::default()
        },
        halo: etl::sandbox::halo::state::Config {
            client_secret: HALO_SECRET.into(),
            ..Default::default()
        },
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    for name in ["accounts", "contacts"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{name}.yaml")),
            root.join(format!("pipelines/{name}.yaml")),
        )
        .unwrap();
    }
    std::fs::write(
        root.join("etl.yaml"),
        format!(
            "project: test\nstaging: .etl/staging.duckdb\npipelines: pipelines\nconnections:\n  salesforce:\n    login_url: {sf}\n    api_version: \"62.0\"\n    flow: ${{SF_FLOW}}\n    client_id: etl-sandbox-client\n    client_secret: ${{SF_SECRET}}\n    redirect_uri: {redirect_uri}\n  halo:\n    base_url: {halo}\n    tenant: sandbox\n    client_id: etl-sandbox-client\n    client_secret: ${{HALO_SECRET}}\n    rate_limit: \"off\"\ndefaults:\n  batch_size: 50\n",
            sf = sandbox.salesforce_url,
            halo = sandbox.halo_url,
        ),
    )
    .unwrap();
    (sandbox, Project { _dir: dir, root })
}

fn command(root: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .arg("--project")
        .arg(root.join("etl.yaml"))
        .env("SF_FLOW", "web_server")
        .env("SF_SECRET", SF_SECRET)
        .env("HALO_SECRET", HALO_SECRET)
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs `etl` with trace logging on: exit code and everything it printed.
fn etl_with(root: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let output = command(root, env).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn etl(root: &Path, args: &[&str]) -> (i32, String) {
    etl_with(root, &[], args)
}

/// `etl auth login salesforce --no-browser`, completed by following its URL.
fn sign_in(root: &Path) -> String {
    let mut login = command(root, &[])
        .args(["auth", "login", "salesforce", "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(login.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let redirect = agent.get(url.trim()).call().unwrap();
    let callback = redirect.headers()["location"].to_str().unwrap().to_string();
    let page = agent.get(&callback).call().unwrap();
    let mut page = page;
    let page_text = page.body_mut().read_to_string().unwrap_or_default();
    let finished = login.wait_with_output().unwrap();
    let said = format!(
        "{url}\n{}\n{}\n{page_text}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    );
    assert_eq!(finished.status.code(), Some(0), "{said}");
    said
}

/// Every secret the sandboxes and the token store know of now: the configured secrets and
/// password, the stored tokens, and every token either sandbox has issued.
fn secrets(sandbox: &Running, store: &Path) -> Vec<String> {
    let mut all = vec![
        SF_SECRET.to_string(),
        HALO_SECRET.to_string(),
        SF_PASSWORD.to_string(),
        WRONG_SECRET.to_string(),
    ];
    if let Ok(text) = std::fs::read_to_string(store) {
        let stored: Value = serde_json::from_str(&text).unwrap();
        for key in ["access_token", "refresh_token"] {
            if let Some(token) = stored[key].as_str() {
                all.push(token.to_string());
            }
        }
    }
    {
        let state = sandbox.salesforce_state();
        let state = state.lock().unwrap();
        all.extend(state.sessions.keys().cloned());
        all.extend(state.refresh_tokens.keys().cloned());
    }
    {
        let state = sandbox.halo_state();
        let state = etl::sandbox::halo::state::lock(&state);
        all.extend(state.tokens.keys().cloned());
    }
    // An access token's org prefix (`00D…!`) is public and shown masked; the rest is secret.
    all.into_iter()
        .map(|token| match token.split_once('!') {
            Some((org, rest)) if org.len() <= 18 => rest.to_string(),
            _ => token,
        })
        .filter(|token| token.len() >= 8)
        .collect()
}

fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} shows a secret ({}…):\n{text}",
            &secret[..6]
        );
    }
}

/// Every staging table as JSON text, row by row (through `etl sql`, as a user would dump it).
fn dump_staging(root: &Path) -> String {
    let (code, tables) = etl(
        root,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT table_name FROM duckdb_tables() ORDER BY 1",
        ],
    );
    assert_eq!(code, 0, "{tables}");
    let mut dump = String::new();
    let names: Vec<&str> = tables
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(names.len() > 5, "the staging file has tables: {tables}");
    for name in names {
        let (code, rows) = etl(
            root,
            &[
                "sql",
                "--format",
                "csv",
                &format!("SELECT to_json(t)::VARCHAR AS row FROM \"{name}\" AS t"),
            ],
        );
        assert_eq!(code, 0, "{name}: {rows}");
        dump.push_str(&rows);
    }
    dump
}

#[test]
fn no_secret_or_token_leaks_anywhere() {
    let (sandbox, project) = start();
    let root = &project.root;
    let store = root.join(".etl/salesforce-token.json");
    let mut printed = vec![("auth login".to_string(), sign_in(root))];

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token store is created 0600");
    }

    for args in [
        &["validate"][..],
        &["run"][..],
        &["run", "--json"][..],
        &["plan", "--json"][..],
        &["auth", "status"][..],
        &["runs"][..],
        &["runs", "--format", "json"][..],
    ] {
        let (code, output) = etl(root, args);
        assert!(code == 0 || code == 1, "etl {args:?}: {output}");
        printed.push((format!("etl {args:?}"), output));
    }
    // The logs at their most talkative, in both formats: every request, every sign-in. The
    // flags set the level here (an empty RUST_LOG counts as unset).
    let verbose = [("RUST_LOG", "")];
    for args in [
        &["-vvv", "run"][..],
        &["-vvv", "--log-format", "json", "run", "--json"][..],
        &["-vvv", "--log-format", "json", "plan"][..],
    ] {
        let (code, output) = etl_with(root, &verbose, args);
        assert!(code == 0 || code == 1, "etl {args:?}: {output}");
        for said in ["Salesforce request", "Halo request", "Halo token obtained"] {
            assert!(
                output.contains(said),
                "etl {args:?} logs `{said}`: {output}"
            );
        }
        printed.push((format!("etl {args:?}"), output));
    }
    // A refresh of the stored Salesforce sign-in, logged at -vvv: the org ends the session, the
    // client trades the refresh token for a new access token and carries on.
    let ended: Vec<String> = {
        let state = sandbox.salesforce_state();
        let mut state = state.lock().unwrap();
        state.sessions.drain().map(|(token, _)| token).collect()
    };
    let (code, output) = etl_with(root, &verbose, &["-vvv", "--log-format", "json", "run"]);
    assert!(
        code == 0 || code == 1,
        "a run after the session ended: {output}"
    );
    assert!(
        output.contains("Salesforce session renewed")
            && output.contains("\"grant\":\"refresh_token\""),
        "the refresh is logged: {output}"
    );
    printed.push(("a run that refreshes the session, at -vvv".into(), output));

    let (_, runs) = etl(root, &["runs", "--format", "json"]);
    let runs: Value = serde_json::from_str(runs.trim()).unwrap();
    for run in runs.as_array().unwrap() {
        let id = run["run_id"].as_str().unwrap();
        for format in ["table", "json"] {
            let (code, output) = etl(root, &["runs", "show", id, "--format", format]);
            assert_eq!(code, 0, "{output}");
            printed.push((format!("etl runs show {id}"), output));
        }
    }

    // Runs that fail to sign in: a wrong Halo secret, and a wrong Salesforce secret with a
    // flow that sends it at once. Both are connection problems (exit 3) that say so without
    // echoing what was sent.
    let (code, output) = etl_with(root, &[("HALO_SECRET", WRONG_SECRET)], &["run"]);
    assert_eq!(code, 3, "a wrong Halo secret: {output}");
    printed.push(("run with a wrong Halo secret".into(), output));
    let (code, output) = etl_with(
        root,
        &[("HALO_SECRET", WRONG_SECRET), ("RUST_LOG", "")],
        &["-vvv", "--log-format", "json", "run"],
    );
    assert_eq!(code, 3, "a wrong Halo secret, logged: {output}");
    printed.push(("run with a wrong Halo secret at -vvv".into(), output));
    let (code, output) = etl_with(
        root,
        &[
            ("SF_FLOW", "client_credentials"),
            ("SF_SECRET", WRONG_SECRET),
        ],
        &["run"],
    );
    assert_eq!(code, 3, "a wrong Salesforce secret: {output}");
    printed.push(("run with a wrong Salesforce secret".into(), output));
    let (code, output) = etl_with(
        root,
        &[
            ("SF_FLOW", "client_credentials"),
            ("SF_SECRET", WRONG_SECRET),
        ],
        &["validate", "--online"],
    );
    assert_ne!(code, 0, "{output}");
    printed.push(("validate --online with a wrong secret".into(), output));
    // A project file that fails to load with secrets in it (an unknown key next to them).
    let project_file = root.join("etl.yaml");
    let good = std::fs::read_to_string(&project_file).unwrap();
    std::fs::write(
        &project_file,
        good.replace("rate_limit:", "rate_limt:")
            .replace("${HALO_SECRET}", HALO_SECRET),
    )
    .unwrap();
    let (code, output) = etl(root, &["validate"]);
    assert_eq!(code, 2, "{output}");
    printed.push(("validate of a broken project file".into(), output));
    let (code, output) = etl(root, &["run"]);
    assert_eq!(code, 2, "{output}");
    printed.push(("run of a broken project file".into(), output));
    std::fs::write(&project_file, &good).unwrap();

    let mut secrets = secrets(&sandbox, &store);
    // The sessions the org ended are secrets too; the part after the org prefix is the secret.
    secrets.extend(
        ended
            .iter()
            .map(|token| {
                token
                    .split_once('!')
                    .map_or(token.as_str(), |(_, rest)| rest)
            })
            .filter(|token| token.len() >= 8)
            .map(str::to_string),
    );
    assert!(
        secrets.len() >= 6,
        "tokens were issued and found: {}",
        secrets.len()
    );
    for (what, output) in &printed {
        assert_no_secret(what, output, &secrets);
    }
    assert_no_secret("the staging tables", &dump_staging(root), &secrets);
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert_no_secret(
            &entry.path().display().to_string(),
            &text,
            &[
                "etl-sandbox-secret".to_string(),
                "sandbox-password".to_string(),
            ],
        );
    }
}

/// A token store others can read is refused, naming the file and the fix.
#[test]
fn a_token_store_others_can_read_is_refused() {
    let (_sandbox, project) = start();
    let root = &project.root;
    sign_in(root);
    let store = root.join(".etl/salesforce-token.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (code, output) = etl(root, &["auth", "status"]);
    // Exit 2: a local file to fix, like every other token-store problem.
    assert_eq!(
        code, 2,
        "a token store readable by others is refused: {output}"
    );
    assert!(
        output.contains(&store.display().to_string()) || output.contains("salesforce-token.json"),
        "the message names the file: {output}"
    );
    assert!(
        output.contains("chmod 600") || output.contains("0600"),
        "the message says how to fix it: {output}"
    );
}
