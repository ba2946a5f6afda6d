//! End-to-end import benchmark: starts both sandboxes in this process, seeded with N accounts
//! (and their contacts and opportunities), runs the `etl` binary on the example pipelines
//! (accounts, contacts, opportunities) three times — the first import, a no-op rerun, and a
//! rerun after 1% of the accounts changed — and prints wall time, records/s, API calls on each
//! side, the `etl` process's CPU time (user + system) and peak memory, and the CPU time the
//! sandboxes spent answering (this process's, over the run), for each. With
//! `--latency MS` it then imports the same data again into fresh sandboxes that wait MS
//! milliseconds before every API answer.
//! After each run it counts the Halo users on the default site: every seeded contact has an
//! account, so each should be on its customer's main site, which the contacts pipeline looks
//! up in the accounts' links (had that lookup answered nothing, they would all be there, and
//! Halo would file them under the default customer).
//! `--halo-changes` adds a fourth run after every Halo user got a new phone number through
//! Halo's API (a mass edit in Halo: the sync back updates every Contact).
//! `--in-flight N` sets the project's `defaults.in_flight` (attachment copies at once; etl's
//! default when not given). `--log DIR` runs `etl` with `-vv` and keeps each run's log lines
//! (stage times, every HTTP request) in `DIR/<run>.log`, to see where a run waits.
//!
//! ```sh
//! cargo build && cargo run --example bench_import -- 10000
//! cargo build && cargo run --example bench_import -- 2000 --latency 50
//! cargo build && cargo run --example bench_import -- 2000 --latency 50 --in-flight 1
//! cargo build && cargo run --example bench_import -- 2000 --latency 50 --log /tmp/bench-logs
//! cargo build && cargo run --example bench_import -- 25000 --halo-changes
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use etl::sandbox::faults::{FaultKind, FaultPlan, FaultRule};
use etl::sandbox::halo::entity::Entity;
use etl::sandbox::halo::store::Store as HaloStore;
use etl::sandbox::server::{self, Options, Running};

fn etl_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the example knows where it is");
    // target/debug/examples/bench_import → target/debug/etl
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("etl"))
        .expect("a target folder")
}

fn project(sandbox: &Running, root: &Path, in_flight: Option<u64>) {
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    for name in ["accounts", "contacts", "opportunities"] {
        // Run from the repository (as the README says); the build-time path is the fallback.
        let here = Path::new("pipelines").join(format!("{name}.yaml"));
        let from = if here.exists() {
            here
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{name}.yaml"))
        };
        std::fs::copy(from, root.join(format!("pipelines/{name}.yaml"))).unwrap();
    }
    let in_flight = in_flight
        .map(|n| format!("  in_flight: {n}\n"))
        .unwrap_or_default();
    std::fs::write(
        root.join("etl.yaml"),
        format!(
            "staging: .etl/staging.duckdb\npipelines: pipelines\nconnections:\n  salesforce:\n    login_url: {}\n    flow: client_credentials\n    client_id: etl-sandbox-client\n    client_secret: etl-sandbox-secret\n  halo:\n    base_url: {}\n    client_id: etl-sandbox-client\n    client_secret: etl-sandbox-secret\n    rate_limit: \"off\"\ndefaults:\n  batch_size: 200\n{in_flight}",
            sandbox.salesforce_url, sandbox.halo_url
        ),
    )
    .unwrap();
}

/// CPU time (user + system) a running process has used so far, in clock ticks: on a shared
/// machine the wall time depends on the others' load, this does much less.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (in parentheses, which may hold spaces): utime and stime
    // are the 14th and 15th fields of the whole line.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Peak resident memory of a running process so far (VmHWM), in kB.
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn run(root: &Path, label: &str, logs: Option<&Path>) -> Value {
    let started = Instant::now();
    // The sandboxes serve from this process: its CPU time over the run is theirs.
    let sandboxes_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let mut command = Command::new(etl_binary());
    command
        .arg("--project")
        .arg(root.join("etl.yaml"))
        .args(["run", "--json", "--no-sandbox"])
        .stdout(Stdio::piped())
        // Kept to show why a run that did not finish "ok" stopped.
        .stderr(Stdio::piped());
    if let Some(dir) = logs {
        std::fs::create_dir_all(dir).expect("the log folder can be made");
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let file = std::fs::File::create(dir.join(format!("{name}.log")))
            .expect("the log file can be written");
        command.arg("-vv").stderr(file);
    }
    let mut child = command
        .spawn()
        .expect("build the etl binary first: cargo build");
    let pid = child.id();
    let mut peak = 0;
    let mut cpu = 0;
    let errors = read_all(child.stderr.take());
    let reader = read_all(child.stdout.take());
    while child.try_wait().ok().flatten().is_none() {
        peak = peak.max(peak_kb(pid).unwrap_or(0));
        cpu = cpu.max(cpu_ticks(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let sandboxes_cpu = cpu_ticks(std::process::id()).unwrap_or(0) - sandboxes_before;
    let summary: Value =
        serde_json::from_str(&reader.join().unwrap_or_default()).unwrap_or(Value::Null);
    let pipelines = summary["pipelines"].as_array().cloned().unwrap_or_default();
    let sum = |key: &str| {
        pipelines
            .iter()
            .map(|p| p[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let records = sum("extracted");
    println!(
        "{label:<22} {:>8.2} s  {:>9} records  {:>9.0} records/s  SF calls {:>6}  Halo calls {:>6}  written {:>7}  CPU {:>7.1} s  sandboxes CPU {:>7.1} s  peak RSS {:>6.1} MB",
        elapsed.as_secs_f64(),
        records,
        records as f64 / elapsed.as_secs_f64(),
        sum("source_api_calls"),
        sum("target_api_calls"),
        sum("created") + sum("updated"),
        // Linux counts CPU time in ticks of 1/100 s (USER_HZ) on every common platform.
        cpu as f64 / 100.0,
        sandboxes_cpu as f64 / 100.0,
        peak as f64 / 1024.0
    );
    let status = summary["status"].as_str().unwrap_or("no summary");
    if status != "ok" {
        // The progress lines left out, what etl said on stderr.
        let said: Vec<String> = errors
            .join()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains(" · "))
            .map(str::to_string)
            .collect();
        println!("  {label}: the run ended {status}: {}", said.join(" | "));
    }
    summary
}

/// Halo users on the default site (id 1, which holds the default customer), and users in all.
fn users_on_the_default_site(sandbox: &Running) -> (usize, usize) {
    let state = sandbox.halo_state();
    let state = etl::sandbox::halo::state::lock(&state);
    let users = &state.store.table(Entity::Users).rows;
    let on_default = users
        .values()
        .filter(|user| HaloStore::int(user, "site_id") == Some(1))
        .count();
    (on_default, users.len())
}

/// Prints how many Halo users are on the default site.
fn check_sites(sandbox: &Running, label: &str) {
    let (on_default, all) = users_on_the_default_site(sandbox);
    println!("  {label}: {on_default} of {all} Halo users on the default site");
}

/// Reads all of a child's pipe on a thread of its own, so that the child never waits on it.
fn read_all(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// Gives every Halo user a new phone number through Halo's API (a mass edit in Halo, which
/// the sync back writes to every Contact), 100 users a request. Returns how many changed.
fn change_every_halo_user(sandbox: &Running) -> usize {
    let mut answer = ureq::post(format!("{}/auth/token", sandbox.halo_url))
        .send_form([
            ("grant_type", "client_credentials"),
            ("client_id", "etl-sandbox-client"),
            ("client_secret", "etl-sandbox-secret"),
        ])
        .expect("the Halo sandbox signs in");
    let token: Value = answer.body_mut().read_json().expect("a token");
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap_or_default()
    );
    let mut ids = Vec::new();
    for page in 1.. {
        let mut answer = ureq::get(format!(
            "{}/api/Users?pageinate=true&page_size=100&page_no={page}",
            sandbox.halo_url
        ))
        .header("Authorization", &bearer)
        .call()
        .expect("the Halo sandbox lists users");
        let listed: Value = answer.body_mut().read_json().expect("a list of users");
        let users = listed["users"].as_array().cloned().unwrap_or_default();
        if users.is_empty() {
            break;
        }
        ids.extend(users.iter().filter_map(|user| user["id"].as_u64()));
    }
    for chunk in ids.chunks(100) {
        let body: Vec<Value> = chunk
            .iter()
            .map(|id| json!({"id": id, "phonenumber": format!("+44 20 {id:08}")}))
            .collect();
        ureq::post(format!("{}/api/Users", sandbox.halo_url))
            .header("Authorization", &bearer)
            .send_json(body)
            .expect("the Halo sandbox saves users");
    }
    ids.len()
}

/// Every API call of both sandboxes waits `ms` before answering.
fn latency(ms: u64) -> FaultPlan {
    FaultPlan {
        seed: 1,
        faults: vec![FaultRule {
            latency_ms: Some(ms),
            ..FaultRule::new("*", FaultKind::Latency)
        }],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let accounts: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let option = |name: &str| -> Option<u64> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|value| value.parse().ok())
    };
    let latency_ms = option("--latency");
    let in_flight = option("--in-flight");
    let logs: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--log")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let logs = logs.as_deref();
    let seeding = Instant::now();
    let sandbox = server::start(Options {
        accounts,
        ..Options::default()
    })
    .expect("the sandbox starts");
    println!(
        "sandbox seeded with {accounts} accounts in {:.1} s; etl binary {}",
        seeding.elapsed().as_secs_f64(),
        etl_binary().display()
    );
    let dir = tempfile::tempdir().unwrap();
    project(&sandbox, dir.path(), in_flight);
    run(dir.path(), "first import", logs);
    check_sites(&sandbox, "first import");
    run(dir.path(), "no-op rerun", logs);
    check_sites(&sandbox, "no-op rerun");
    let ids: Vec<String> = {
        let state = sandbox.salesforce_state();
        let state = state.lock().unwrap();
        state
            .org
            .records("Account")
            .iter()
            .filter(|a| a["IsDeleted"] != json!(true))
            .take((accounts / 100).max(1) as usize)
            .map(|a| a["Id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for id in &ids {
        let _ = ureq::post(format!("{}/__sandbox/touch/{id}", sandbox.salesforce_url))
            .send_json(json!({"Website": format!("https://changed.example/{id}")}));
    }
    run(dir.path(), "rerun, 1% changed", logs);
    check_sites(&sandbox, "rerun, 1% changed");
    if args.iter().any(|a| a == "--halo-changes") {
        let changed = change_every_halo_user(&sandbox);
        let label = format!("rerun, {changed} Halo users changed");
        run(dir.path(), &label, logs);
        check_sites(&sandbox, &label);
    }
    drop(sandbox);

    if let Some(ms) = latency_ms {
        let sandbox = server::start(Options {
            accounts,
            faults: Some(latency(ms)),
            ..Options::default()
        })
        .expect("the sandbox starts");
        let dir = tempfile::tempdir().unwrap();
        project(&sandbox, dir.path(), in_flight);
        let label = format!("first import, {ms} ms");
        run(dir.path(), &label, logs);
        check_sites(&sandbox, &label);
    }
}
