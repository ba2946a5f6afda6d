//! Shared by the crash and fault suites (`tests/crash.rs`, `tests/faults.rs`): a small project
//! over both sandboxes, the end state of both systems read inside the sandbox (every Halo
//! customer, user, ticket and attachment, every live Salesforce account, contact,
//! opportunity and case, and the staging file's id map), each record reduced to its key fields so that two
//! sandboxes seeded alike can be compared whatever ids their writes were given, and a seeded
//! random number generator whose seed the suites print so a failing trial can be replayed.
#![allow(dead_code)] // each suite uses its own part of it

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value};

use etl::sandbox::halo::entity::Entity;
use etl::sandbox::halo::store::Store;
use etl::sandbox::server::Running;

use crate::support::{self, Project};

/// The example pipelines both suites run (each imports and syncs back).
pub const PIPELINES: [&str; 3] = ["accounts", "contacts", "opportunities"];

/// A project with the example accounts, contacts and opportunities pipelines over `sandbox`,
/// loading `batch_size` records per write so a load has many batches to be cut between.
pub fn project(sandbox: &Running, batch_size: usize) -> Project {
    project_with(sandbox, &PIPELINES, batch_size)
}

/// A project with the example pipelines named, loading `batch_size` records per write.
pub fn project_with(sandbox: &Running, pipelines: &[&str], batch_size: usize) -> Project {
    let project = support::project(sandbox, pipelines);
    let file = project.root.join("etl.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("batch_size: 50"), "support::project changed");
    std::fs::write(
        &file,
        text.replace("batch_size: 50", &format!("batch_size: {batch_size}")),
    )
    .unwrap();
    project
}

/// `etl run --json --quiet` on the project (the sandbox is started by the test).
pub fn etl_run(root: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .arg("--project")
        .arg(root.join("etl.yaml"))
        .args(["run", "--json", "--no-sandbox", "--quiet"])
        .env("SF_SECRET", "etl-sandbox-secret")
        .env("HALO_SECRET", "etl-sandbox-secret");
    command
}

/// Runs to completion; the problems with how it ended (exit code, failed records).
pub fn run_to_completion(root: &std::path::Path) -> Vec<String> {
    let output = etl_run(root).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(0) {
        return vec![format!(
            "the run exited with {:?}: {stderr}",
            output.status.code()
        )];
    }
    let summary: Value = match serde_json::from_slice(&output.stdout) {
        Ok(summary) => summary,
        Err(error) => return vec![format!("the run printed no JSON summary ({error})")],
    };
    summary["pipelines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["failed"].as_u64() != Some(0))
        .map(|p| {
            format!(
                "the run failed records of {} ({}): {p}",
                p["pipeline"], p["direction"]
            )
        })
        .collect()
}

/// How a record of each side is named in an end state: its entity and its key fields.
struct Side {
    /// The pipeline whose links join the two.
    pipeline: &'static str,
    salesforce: &'static str,
    halo: Entity,
}

const SIDES: [Side; 4] = [
    Side {
        pipeline: "accounts",
        salesforce: "Account",
        halo: Entity::Client,
    },
    Side {
        pipeline: "contacts",
        salesforce: "Contact",
        halo: Entity::Users,
    },
    Side {
        pipeline: "opportunities",
        salesforce: "Opportunity",
        halo: Entity::Tickets,
    },
    Side {
        pipeline: "cases",
        salesforce: "Case",
        halo: Entity::Tickets,
    },
];

fn text(record: &Map<String, Value>, field: &str) -> String {
    match record.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A Salesforce record's key: what a person would call it (accounts and opportunities by name,
/// contacts by email and name).
fn salesforce_key(object: &str, record: &Map<String, Value>) -> String {
    match object {
        "Contact" => format!(
            "Contact {} <{}>",
            text(record, "LastName"),
            text(record, "Email")
        ),
        "Case" => format!("Case {}", text(record, "Subject")),
        _ => format!("{object} {}", text(record, "Name")),
    }
}

/// A Halo row's key, by the fields the example pipelines write.
fn halo_key(entity: Entity, row: &Map<String, Value>) -> String {
    match entity {
        Entity::Client => format!("Client {}", text(row, "name")),
        Entity::Users => format!(
            "User {} <{}>",
            text(row, "surname"),
            text(row, "emailaddress")
        ),
        Entity::Tickets => format!(
            "Ticket {} (type {})",
            text(row, "summary"),
            text(row, "tickettype_id")
        ),
        other => format!("{other:?} {}", text(row, "name")),
    }
}

/// Both systems after a run, by key: how many records carry each key, and the links of the id
/// map as `pipeline: salesforce key ⇄ halo key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndState {
    pub records: BTreeMap<String, usize>,
    pub links: BTreeMap<String, usize>,
}

impl EndState {
    /// Reads both sandboxes, and the id map of the project's staging file.
    pub fn read(sandbox: &Running, root: &Path) -> EndState {
        Self::read_from(sandbox, Some(root))
    }

    /// Reads both sandboxes only (no links).
    pub fn read_records(sandbox: &Running) -> EndState {
        Self::read_from(sandbox, None)
    }

    fn read_from(sandbox: &Running, root: Option<&Path>) -> EndState {
        let mut records = BTreeMap::new();
        let mut salesforce_keys: HashMap<String, String> = HashMap::new();
        let mut halo_keys: HashMap<(String, String), String> = HashMap::new();
        {
            let state = sandbox.salesforce_state();
            let state = state.lock().unwrap_or_else(|p| p.into_inner());
            for side in &SIDES {
                for record in state.org.records(side.salesforce) {
                    if record.get("IsDeleted") == Some(&Value::Bool(true)) {
                        continue;
                    }
                    let key = salesforce_key(side.salesforce, record);
                    salesforce_keys.insert(text(record, "Id"), key.clone());
                    *records.entry(key).or_default() += 1;
                }
            }
        }
        {
            let state = sandbox.halo_state();
            let state = etl::sandbox::halo::state::lock(&state);
            for side in &SIDES {
                for (id, row) in &state.store.table(side.halo).rows {
                    let key = halo_key(side.halo, row);
                    halo_keys.insert((side.pipeline.to_string(), id.to_string()), key);
                }
            }
            // Each Halo table once (opportunities and cases are both tickets).
            for entity in [Entity::Client, Entity::Users, Entity::Tickets] {
                for row in state.store.table(entity).rows.values() {
                    *records.entry(halo_key(entity, row)).or_default() += 1;
                }
            }
            let tickets = &state.store.table(Entity::Tickets).rows;
            for row in state.store.table(Entity::Attachment).rows.values() {
                let ticket = Store::int(row, "ticket_id")
                    .and_then(|id| tickets.get(&(id as u64)))
                    .map(|t| text(t, "summary"))
                    .unwrap_or_default();
                let key = format!("Attachment {} on {ticket}", text(row, "filename"));
                *records.entry(key).or_default() += 1;
            }
        }
        let mut links = BTreeMap::new();
        let rows = match root {
            Some(root) if root.join(".etl/staging.duckdb").exists() => support::staging_rows(
                root,
                "select pipeline, source_id, target_id::VARCHAR as target_id from id_map",
            ),
            _ => Vec::new(),
        };
        for row in rows {
            let pipeline = row["pipeline"].as_str().unwrap_or_default().to_string();
            let source = row["source_id"].as_str().unwrap_or_default();
            let target = row["target_id"].as_str().unwrap_or_default();
            let link = match (
                salesforce_keys.get(source),
                halo_keys.get(&(pipeline.clone(), target.to_string())),
            ) {
                (Some(from), Some(to)) => format!("{pipeline}: {from} ⇄ {to}"),
                // Links of other kinds (attachments copied) are counted per pipeline; a link
                // to a record gone from either side is named as such.
                _ if pipeline.contains(':') => format!("{pipeline}: a link"),
                (from, to) => format!(
                    "{pipeline}: {} ⇄ {} (dangling)",
                    from.map_or(source, String::as_str),
                    to.map_or(target, String::as_str)
                ),
            };
            *links.entry(link).or_default() += 1;
        }
        EndState { records, links }
    }

    /// What differs from `expected`: duplicates (more records or links with a key than
    /// expected) and missing ones (fewer). Empty when the two are the same.
    pub fn differences(&self, expected: &EndState) -> Vec<String> {
        let mut found = Vec::new();
        for (what, actual, wanted) in [
            ("record", &self.records, &expected.records),
            ("link", &self.links, &expected.links),
        ] {
            let keys: std::collections::BTreeSet<&String> =
                actual.keys().chain(wanted.keys()).collect();
            for key in keys {
                let (have, want) = (
                    actual.get(key).copied().unwrap_or(0),
                    wanted.get(key).copied().unwrap_or(0),
                );
                if have > want {
                    found.push(format!(
                        "duplicate {what} ({have} instead of {want}): {key}"
                    ));
                } else if have < want {
                    found.push(format!("missing {what} ({have} instead of {want}): {key}"));
                }
            }
        }
        found
    }

    pub fn record_count(&self) -> usize {
        self.records.values().sum()
    }

    pub fn link_count(&self) -> usize {
        self.links.values().sum()
    }
}

/// SplitMix64: a tiny seeded generator, so the kill points and fault seeds of a failing run
/// can be replayed from the seed the suite prints.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

/// The seed from the environment variable `name`, else one drawn from the clock.
pub fn seed_from_env(name: &str) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007),
    }
}
