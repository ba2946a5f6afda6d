//! `etl retry [PIPELINE...] --failed`: sends again only the records that failed in the last
//! run. It reads the newest loading run (`run`, `apply`, `retry` or `watch`; of the named
//! pipelines when some are named) from `runs`, collects the source ids whose write failed from
//! `<p>_results` (Salesforce Ids, import) and `<p>_back_results` (Halo ids, sync back), and runs
//! exactly those pipelines through `etl run`'s path with only those records selected, so the
//! plan, the id map and per-batch checkpoints apply as in any run. With nothing to retry it says
//! so and exits 0 without running.

use std::collections::BTreeMap;
use std::path::Path;

use super::run::{self, RunArgs};
use super::{open_staging, staging_path, EXIT_CONFIG};
use crate::engine::Mode;
use crate::staging::Store;

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// Pipelines to retry (default: every pipeline of the last run).
    pub pipelines: Vec<String>,
    /// Send again the records whose write failed in the last run (the one kind of retry).
    #[arg(long, required = true)]
    pub failed: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Never start the sandbox, even when etl.yaml points at it and nothing answers.
    #[arg(long)]
    pub no_sandbox: bool,
}

/// Commands whose runs write, and so can leave failed records behind.
const LOADING: &[&str] = &["run", "apply", "retry", "watch"];

pub fn run(project: &Path, args: RetryArgs) -> i32 {
    let workspace = crate::config::load(project, &[], &crate::config::process_env);
    if !workspace.has_errors() {
        let known: Vec<&str> = workspace
            .pipelines
            .iter()
            .map(|p| p.pipeline.pipeline.as_str())
            .collect();
        if let Some(unknown) = args
            .pipelines
            .iter()
            .find(|name| !known.contains(&name.as_str()))
        {
            eprintln!(
                "error: no pipeline named `{unknown}` in this project (pipelines: {})",
                known.join(", ")
            );
            return EXIT_CONFIG;
        }
    }
    let staging = match staging_path(project) {
        Ok(path) => path,
        Err(code) => return code,
    };
    // Without a staging file nothing has run (and none is made to say so).
    let store = match staging.exists() {
        true => match open_staging(&staging) {
            Ok(store) => Some(store),
            Err(code) => return code,
        },
        false => None,
    };
    let last = match store.as_ref().map(|s| last_run(s, &args.pipelines)) {
        Some(Ok(last)) => last.zip(store),
        Some(Err(message)) => {
            eprintln!("error: {message}");
            return EXIT_CONFIG;
        }
        None => None,
    };
    let Some(((run_id, pipelines), store)) = last else {
        let of = if args.pipelines.is_empty() {
            String::new()
        } else {
            format!(" of {}", args.pipelines.join(", "))
        };
        nothing_to_retry(&args, None, &format!("no run{of} yet: nothing to retry"));
        return 0;
    };
    let mut selected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts: Vec<String> = Vec::new();
    for pipeline in &pipelines {
        if !args.pipelines.is_empty() && !args.pipelines.contains(pipeline) {
            continue;
        }
        for (direction, table) in [
            ("import", format!("{pipeline}_results")),
            ("sync back", format!("{pipeline}_back_results")),
        ] {
            let ids = match failed_ids(&store, &table, &run_id) {
                Ok(ids) => ids,
                Err(message) => {
                    eprintln!("error: {message}");
                    return EXIT_CONFIG;
                }
            };
            if !ids.is_empty() {
                counts.push(format!("{pipeline} ({direction}) {}", ids.len()));
                selected.entry(pipeline.clone()).or_default().extend(ids);
            }
        }
    }
    drop(store);
    if selected.is_empty() {
        nothing_to_retry(
            &args,
            Some(&run_id),
            &format!("no records failed in the last run, {run_id}: nothing to retry"),
        );
        return 0;
    }
    if !args.json {
        eprintln!(
            "retrying the records that failed in run {run_id}: {}",
            counts.join(", ")
        );
    }
    let run_args = RunArgs {
        json: args.json,
        no_sandbox: args.no_sandbox,
        only: selected.keys().cloned().collect(),
        select_by_pipeline: selected,
        command: Some("retry"),
        ..RunArgs::default()
    };
    run::run_reporting(
        project,
        run_args,
        Mode::Load,
        None,
        &mut run::Report::default(),
    )
}

fn nothing_to_retry(args: &RetryArgs, last_run: Option<&str>, message: &str) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "run_id": null,
                "command": "retry",
                "status": "nothing to retry",
                "last_run": last_run,
                "pipelines": [],
            })
        );
    } else {
        println!("{message}");
    }
}

/// The newest run that loaded (of one of `names`, when some are given), with its pipelines.
fn last_run(store: &Store, names: &[String]) -> Result<Option<(String, Vec<String>)>, String> {
    let runs = store.runs().map_err(|e| e.to_string())?;
    for run in runs {
        if !LOADING.contains(&run.command.as_str()) {
            continue;
        }
        let pipelines: Vec<String> = run
            .pipelines
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if names.is_empty() || pipelines.iter().any(|p| names.contains(p)) {
            return Ok(Some((run.run_id, pipelines)));
        }
    }
    Ok(None)
}

/// The source ids whose write failed in `run_id`, from a results table (none when the table
/// does not exist: the pipeline never ran that way).
fn failed_ids(store: &Store, table: &str, run_id: &str) -> Result<Vec<String>, String> {
    let exists: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
            [table],
            |row| row.get(0),
        )
        .map_err(|e| format!("reading the staging file: {e}"))?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT source_id FROM \"{}\" WHERE run_id = ? AND status = 'failed' ORDER BY source_id",
        table.replace('"', "\"\"")
    );
    let mut statement = store
        .connection()
        .prepare(&sql)
        .map_err(|e| format!("reading {table}: {e}"))?;
    let ids = statement
        .query_map([run_id], |row| row.get::<_, String>(0))
        .map_err(|e| format!("reading {table}: {e}"))?;
    ids.collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading {table}: {e}"))
}
