//! The `etl` binary as a user runs it: exit codes, output formats, and the issue's
//! "done when" checks against copies of the example project.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `etl` in `dir` with a clean environment (no project variables from the caller).
fn etl(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("ETL_PROJECT");
    for (key, _) in std::env::vars() {
        if key.starts_with("SF_") || key.starts_with("HALO_") {
            command.env_remove(key);
        }
    }
    command.output().unwrap()
}

/// Starts `etl` in `dir` with its output piped; the process and the first line it printed (its
/// stdout is closed once that line is read).
fn spawn_reading_a_line(dir: &Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .current_dir(dir)
        .env_remove("ETL_PROJECT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of the example project (etl.yaml and pipelines/) in a fresh folder.
fn example_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("etl.yaml"), dir.path().join("etl.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("pipelines")).unwrap();
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.path().join("pipelines").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    dir
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let before = std::fs::read_to_string(&path).unwrap();
    assert!(before.contains(from), "{file} has no `{from}`");
    std::fs::write(&path, before.replacen(from, to, 1)).unwrap();
}

/// The line number of the first line containing `needle` in `file`.
fn line_of(dir: &Path, file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn sql_select_42() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(dir.path(), &["sql", "select 42"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("│ 42 │"),
        "{}",
        text(&out.stdout)
    );
    assert!(dir.path().join(".etl/staging.duckdb").exists());
}

#[test]
fn sql_formats() {
    let dir = tempfile::tempdir().unwrap();
    let query = "select 1 as n, 'a,b' as s, DATE '2024-02-29' as d, NULL as z";
    let table = etl(dir.path(), &["sql", query]);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stderr));
    let csv = etl(dir.path(), &["sql", query, "--format", "csv"]);
    assert_eq!(text(&csv.stdout), "n,s,d,z\n1,\"a,b\",2024-02-29,\n");
    let json = etl(dir.path(), &["sql", query, "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!([{"n": 1, "s": "a,b", "d": "2024-02-29", "z": null}])
    );
}

#[test]
fn sql_reads_the_query_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["sql", "-", "--format", "csv"])
        .current_dir(dir.path())
        .env_remove("ETL_PROJECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select 6 * 7 as answer;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "answer\n42\n");
}

#[test]
fn a_bad_query_prints_duckdbs_message_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(dir.path(), &["sql", "selec 1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("syntax error at or near \"selec\""),
        "{}",
        text(&out.stderr)
    );
    let out = etl(dir.path(), &["sql", "select * from no_such_table"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no_such_table"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn staging_tables_are_there_to_query() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(
        dir.path(),
        &[
            "sql",
            "select table_name from duckdb_tables() order by 1",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "table_name\netl_meta\nextracts\nid_map\nruns\nschemas\nwatermarks\n"
    );
}

#[test]
fn runs_is_empty_at_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(dir.path(), &["runs"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("no runs yet"));
    let json = etl(dir.path(), &["runs", "--format", "json"]);
    assert_eq!(text(&json.stdout).trim(), "[]");
    // Reading the history makes no staging file; a run it names is not there.
    assert!(!dir.path().join(".etl").exists());
    for args in [&["runs", "show", "r1"][..], &["diff", "accounts"][..]] {
        let out = etl(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("nothing has run in this project yet"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(!dir.path().join(".etl").exists());
}

#[test]
fn the_example_pipelines_validate() {
    let dir = example_project();
    let out = etl(dir.path(), &["validate", "pipelines/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok: 6 files valid (5 pipelines)\n");
    let out = etl(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn validating_one_file_still_knows_the_other_pipelines() {
    let dir = example_project();
    let out = etl(dir.path(), &["validate", "pipelines/opportunities.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn lower_case_stage_name_fails_with_line_and_hint() {
    let dir = example_project();
    edit(
        dir.path(),
        "pipelines/opportunities.yaml",
        "{ salesforce: StageName",
        "{ salesforce: stagename",
    );
    let line = line_of(dir.path(), "pipelines/opportunities.yaml", "stagename");
    let out = etl(dir.path(), &["validate", "pipelines/"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("pipelines/opportunities.yaml:{line}:19")),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `StageName`?"), "{stderr}");
    insta::assert_snapshot!("stagename", stderr);
}

#[test]
fn misspelt_fields_key_fails_with_line_and_hint() {
    let dir = example_project();
    edit(dir.path(), "pipelines/accounts.yaml", "fields:", "feilds:");
    let line = line_of(dir.path(), "pipelines/accounts.yaml", "feilds:");
    let out = etl(dir.path(), &["validate", "pipelines/"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("pipelines/accounts.yaml:{line}:1")),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `fields`?"), "{stderr}");
}

#[test]
fn account_id_mapped_twice_fails_with_line_and_hint() {
    let dir = example_project();
    edit(
        dir.path(),
        "pipelines/opportunities.yaml",
        "  # The guide's custom ticket field",
        "  - { salesforce: AccountId, halo: customfields.CFAccount }\n  # The guide's custom ticket field",
    );
    let line = line_of(dir.path(), "pipelines/opportunities.yaml", "CFAccount");
    let out = etl(dir.path(), &["validate", "pipelines/", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let diagnostic = &report["diagnostics"][0];
    assert_eq!(diagnostic["code"], "mapped-twice");
    assert_eq!(
        diagnostic["message"],
        "Salesforce field `AccountId` is mapped twice"
    );
    assert_eq!(diagnostic["line"], line);
    assert!(diagnostic["hint"].as_str().unwrap().contains("template"));
}

#[test]
fn missing_variable_in_the_project_file_exits_2_without_leaking() {
    let dir = example_project();
    edit(
        dir.path(),
        "etl.yaml",
        "${HALO_CLIENT_SECRET:-etl-sandbox-secret}",
        "${HALO_CLIENT_SECRET}",
    );
    let out = etl(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("environment variable `HALO_CLIENT_SECRET` is not set"),
        "{stderr}"
    );
    let line = line_of(dir.path(), "etl.yaml", "${HALO_CLIENT_SECRET}");
    assert!(stderr.contains(&format!("etl.yaml:{line}:20")), "{stderr}");
    let with_secret = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["validate"])
        .current_dir(dir.path())
        .env("HALO_CLIENT_SECRET", "s3cr3t-value-never-shown")
        .output()
        .unwrap();
    assert_eq!(
        with_secret.status.code(),
        Some(0),
        "{}",
        text(&with_secret.stderr)
    );
    assert!(!text(&with_secret.stdout).contains("s3cr3t"));
    assert!(!text(&with_secret.stderr).contains("s3cr3t"));
}

#[test]
fn schema_prints_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(dir.path(), &["schema", "pipeline"]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "etl pipeline");
    assert!(schema["properties"]["fields"].is_object());
}

#[test]
fn schema_write_puts_both_schemas_in_a_folder_as_checked_in() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("out");
    let out = etl(dir.path(), &["schema", "--write", folder.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in ["pipeline.schema.json", "project.schema.json"] {
        let written = std::fs::read_to_string(folder.join(name)).unwrap();
        let checked_in = std::fs::read_to_string(repo().join("schemas").join(name)).unwrap();
        assert_eq!(written, checked_in, "{name}");
    }
}

/// `etl sandbox` with these options, started as a child process; its JSON line of URLs and
/// credentials.
fn start_sandbox(options: &[&str]) -> (std::process::Child, serde_json::Value) {
    let args: Vec<&str> = std::iter::once("sandbox")
        .chain(options.iter().copied())
        .collect();
    let (child, line) = spawn_reading_a_line(Path::new("."), &args);
    let description = serde_json::from_str(&line).unwrap();
    (child, description)
}

#[test]
fn sandbox_prints_its_json_line_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("org");
    let (mut child, description) =
        start_sandbox(&["--accounts", "5", "--data", data.to_str().unwrap()]);
    let url = description["salesforce"]["instance_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(description["salesforce"]["client_id"], "etl-sandbox-client");
    let halo = description["halo"]["base_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        halo.starts_with("http://127.0.0.1:") && halo != url,
        "{halo}"
    );
    assert_eq!(
        description["halo"]["auth_url"],
        format!("{halo}/auth").as_str()
    );
    assert_eq!(description["halo"]["tenant"], "sandbox");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        data.join("salesforce-records.jsonl").exists() && data.join("halo-records.jsonl").exists(),
        "both systems are saved to the data folder"
    );
}

#[test]
fn sandbox_options_set_the_limits_token_lifetime_and_faults_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.yaml");
    std::fs::write(
        &faults,
        "seed: 1\nfaults:\n  - { route: \"/api/Agent\", kind: status, status: 503 }\n",
    )
    .unwrap();
    let (mut child, description) = start_sandbox(&[
        "--accounts",
        "2",
        "--daily-limit",
        "3",
        "--token-lifetime",
        "90",
        "--halo-rate-limit",
        "2/1m",
        "--faults",
        faults.to_str().unwrap(),
    ]);
    let salesforce = description["salesforce"]["instance_url"].as_str().unwrap();
    let halo = description["halo"]["base_url"].as_str().unwrap();
    let agent = support::agent();
    let credentials = [
        ("grant_type", "client_credentials"),
        ("client_id", "etl-sandbox-client"),
        ("client_secret", "etl-sandbox-secret"),
    ];

    // Halo: the token lives as long as asked; the faulted route answers 503; past two calls in
    // the window, Halo's 429.
    let token = support::reply(
        agent
            .post(format!("{halo}/auth/token"))
            .send_form(credentials),
    );
    assert_eq!(token.status, 200, "{}", token.text());
    assert_eq!(token.json()["expires_in"], 90, "{}", token.text());
    let bearer = format!("Bearer {}", token.json()["access_token"].as_str().unwrap());
    let halo_get = |path: &str| {
        support::reply(
            agent
                .get(format!("{halo}/api/{path}"))
                .header("Authorization", &bearer)
                .call(),
        )
    };
    assert_eq!(halo_get("Agent").status, 503, "the fault's route");
    let clients: Vec<u16> = (0..3).map(|_| halo_get("Client").status).collect();
    assert_eq!(clients, [200, 200, 429], "2 calls a minute");

    // Salesforce: three API calls a day, then REQUEST_LIMIT_EXCEEDED.
    let token = support::reply(
        agent
            .post(format!("{salesforce}/services/oauth2/token"))
            .send_form(credentials),
    );
    assert_eq!(token.status, 200, "{}", token.text());
    let bearer = format!("Bearer {}", token.json()["access_token"].as_str().unwrap());
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            support::reply(
                agent
                    .get(format!("{salesforce}/services/data/v61.0/limits"))
                    .header("Authorization", &bearer)
                    .call(),
            )
        })
        .map(|reply| reply.status)
        .collect();
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    let refused = support::reply(
        agent
            .get(format!("{salesforce}/services/data/v61.0/limits"))
            .header("Authorization", &bearer)
            .call(),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("REQUEST_LIMIT_EXCEEDED"),
        "{}",
        refused.text()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The example project pointed at an in-process sandbox whose callback is on a free port.
fn project_for_sandbox() -> (tempfile::TempDir, etl::sandbox::server::Running) {
    let port = support::callback_port();
    let redirect_uri = format!("http://localhost:{port}/oauth/callback");
    let sandbox = etl::sandbox::server::start(etl::sandbox::server::Options {
        accounts: 5,
        salesforce: etl::sandbox::salesforce::state::Config {
            redirect_uri: redirect_uri.clone(),
            auto_approve: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let dir = example_project();
    edit(
        dir.path(),
        "etl.yaml",
        "http://127.0.0.1:8441",
        &sandbox.salesforce_url,
    );
    edit(
        dir.path(),
        "etl.yaml",
        "redirect_uri: http://localhost:1717/oauth/callback",
        &format!("redirect_uri: {redirect_uri}"),
    );
    // The interactive sign-in these tests drive (the example defaults to client credentials).
    edit(
        dir.path(),
        "etl.yaml",
        "flow: ${SF_FLOW:-client_credentials}",
        "flow: web_server",
    );
    (dir, sandbox)
}

/// Signs in through the sandbox's auto-approved authorize page: the finished `etl auth login`,
/// the status of the page its callback listener answered, and the URL it printed.
fn login_through_the_sandbox(dir: &Path) -> (Output, u16, String) {
    let (login, url) = spawn_reading_a_line(dir, &["auth", "login", "salesforce", "--no-browser"]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let redirect = agent.get(url.trim()).call().unwrap();
    let callback = redirect.headers()["location"].to_str().unwrap().to_string();
    let page = agent.get(&callback).call().unwrap();
    (
        login.wait_with_output().unwrap(),
        page.status().as_u16(),
        url,
    )
}

#[test]
fn a_sign_in_that_asks_for_no_refresh_token_is_refused_with_the_fix() {
    let (dir, _sandbox) = project_for_sandbox();
    // Only the guide's "Full access": Salesforce then issues no refresh token.
    edit(
        dir.path(),
        "etl.yaml",
        "    pkce: true\n",
        "    pkce: true\n    scope: full\n",
    );
    let (refused, _, _) = login_through_the_sandbox(dir.path());
    let said = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{said}");
    assert!(said.contains("issued no refresh token"), "{said}");
    assert!(said.contains("full refresh_token"), "{said}");
    assert!(!dir.path().join(".etl/salesforce-token.json").exists());

    edit(
        dir.path(),
        "etl.yaml",
        "scope: full\n",
        "scope: full refresh_token\n",
    );
    let (signed_in, _, _) = login_through_the_sandbox(dir.path());
    let said = text(&signed_in.stderr);
    assert_eq!(signed_in.status.code(), Some(0), "{said}");
    assert!(dir.path().join(".etl/salesforce-token.json").exists());
}

#[test]
fn auth_login_status_logout_against_the_sandbox() {
    let (dir, _sandbox) = project_for_sandbox();
    let before = etl(dir.path(), &["auth", "status"]);
    assert_eq!(before.status.code(), Some(3));
    assert!(text(&before.stderr).contains("etl auth login salesforce"));

    // `etl auth login salesforce --no-browser` prints the URL; opening it completes the login.
    let (finished, page, url) = login_through_the_sandbox(dir.path());
    assert_eq!(page, 200);
    let said = text(&finished.stderr);
    assert_eq!(finished.status.code(), Some(0), "{said}");
    assert!(said.contains("Signed in to Salesforce as"), "{said}");
    let store = dir.path().join(".etl/salesforce-token.json");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    let access = stored["access_token"].as_str().unwrap().to_string();
    let refresh = stored["refresh_token"].as_str().unwrap().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let status = etl(dir.path(), &["auth", "status"]);
    let shown = format!("{}{}", text(&status.stdout), text(&status.stderr));
    assert_eq!(status.status.code(), Some(0), "{shown}");
    assert!(shown.contains("org:           00D"), "{shown}");
    assert!(shown.contains("API usage:"), "{shown}");
    assert!(shown.contains("runs stop at 80%"), "{shown}");
    for output in [&said, &shown, &url] {
        assert!(!output.contains(&access[16..]), "a token was printed");
        assert!(!output.contains(&refresh), "a token was printed");
    }

    let online = etl(dir.path(), &["validate", "--online"]);
    assert_eq!(online.status.code(), Some(0), "{}", text(&online.stderr));

    let logout = etl(dir.path(), &["auth", "logout"]);
    assert_eq!(logout.status.code(), Some(0), "{}", text(&logout.stderr));
    assert!(!store.exists());
    let after = etl(dir.path(), &["auth", "status"]);
    assert_eq!(after.status.code(), Some(3));
}

#[test]
fn validate_online_flags_fields_the_org_does_not_have() {
    let (dir, _sandbox) = project_for_sandbox();
    edit(
        dir.path(),
        "etl.yaml",
        "flow: web_server",
        "flow: client_credentials",
    );
    edit(
        dir.path(),
        "pipelines/opportunities.yaml",
        "fields:",
        "fields:\n  - { salesforce: Tasktype__c, halo: customfields.CFTaskType }",
    );
    let output = etl(dir.path(), &["validate", "--online"]);
    let said = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("did you mean `TaskType__c`?"), "{said}");
    let line = line_of(dir.path(), "pipelines/opportunities.yaml", "Tasktype__c");
    assert!(
        said.contains(&format!("opportunities.yaml:{line}:")),
        "{said}"
    );
}

#[test]
fn validate_online_without_a_sign_in_is_a_connection_error() {
    let (dir, _sandbox) = project_for_sandbox();
    let output = etl(dir.path(), &["validate", "--online"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("etl auth login salesforce"));
}

#[test]
fn output_to_a_pipe_closed_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Like `| head -1`: one line read, then the pipe closed.
    let (child, first) = spawn_reading_a_line(
        dir.path(),
        &["sql", "select * from range(200000)", "--format", "csv"],
    );
    assert_eq!(first.trim(), "range");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
