//! `etl runs`: run history from the staging file.

use std::path::Path;

use super::output::print_result;
use super::{open_made_store, staging_path, TableFormat, EXIT_CONFIG};
use crate::staging::ResultTable;
use duckdb::types::Value;

pub fn run(project: &Path, format: TableFormat) -> i32 {
    match staging_path(project) {
        Ok(path) if !path.exists() && format == TableFormat::Table => {
            println!(
                "no runs yet: `etl run` records each run in {}",
                path.display()
            );
            return 0;
        }
        Ok(path) if !path.exists() => {
            // As for a staging file with no run: no rows.
            if format == TableFormat::Json {
                println!("[]");
            }
            return 0;
        }
        Err(code) => return code,
        Ok(_) => {}
    }
    let store = match open_made_store(project) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let runs = match store.runs() {
        Ok(runs) => runs,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_CONFIG;
        }
    };
    if runs.is_empty() && format == TableFormat::Table {
        println!("no runs yet: `etl run` records each run here");
        return 0;
    }
    let text = |s: &str| Value::Text(s.to_string());
    let table = ResultTable {
        columns: [
            "run_id",
            "command",
            "started_at",
            "finished_at",
            "status",
            "pipelines",
        ]
        .map(String::from)
        .to_vec(),
        rows: runs
            .iter()
            .map(|r| {
                vec![
                    text(&r.run_id),
                    text(&r.command),
                    text(&r.started_at),
                    r.finished_at.as_deref().map_or(Value::Null, text),
                    text(&r.status),
                    text(&r.pipelines),
                ]
            })
            .collect(),
    };
    print_result(&table, format);
    0
}

/// `etl runs show <run-id>`: one run's counts per pipeline and action, its duration, the API
/// calls on each side, and the records that failed with the API's message.
pub fn show(project: &Path, run_id: &str, format: TableFormat) -> i32 {
    let store = match open_made_store(project) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let found = store.connection().query_row(
        "SELECT command, status, strftime(started_at, '%Y-%m-%d %H:%M:%S'),
                coalesce(epoch_ms(finished_at) - epoch_ms(started_at), 0),
                coalesce(summary::VARCHAR, '{}'), coalesce(api_calls_source, 0), coalesce(api_calls_target, 0)
         FROM runs WHERE run_id = ?",
        [run_id],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        },
    );
    let Ok((command, status, started, millis, summary, source_calls, target_calls)) = found else {
        eprintln!("error: no run {run_id} in the staging file: `etl runs` lists them");
        return EXIT_CONFIG;
    };
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    let pipelines = summary["pipelines"].as_array().cloned().unwrap_or_default();
    let mut failures = Vec::new();
    for pipeline in &pipelines {
        let name = pipeline["pipeline"].as_str().unwrap_or_default();
        let direction = pipeline["direction"].as_str().unwrap_or("import");
        // Sync back stages into `<p>_back_*`.
        let tables = match direction {
            "sync back" => format!("{name}_back"),
            _ => name.to_string(),
        };
        let sql = format!(
            "SELECT source_id, coalesce(error_message, '') FROM \"{}_results\"
             WHERE run_id = ? AND status = 'failed' ORDER BY rowid LIMIT 100",
            tables.replace('"', "\"\"")
        );
        if let Ok(mut statement) = store.connection().prepare(&sql) {
            if let Ok(rows) = statement.query_map([run_id], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            }) {
                for (id, message) in rows.flatten() {
                    failures.push((name.to_string(), direction.to_string(), id, message));
                }
            }
        }
    }
    if format == TableFormat::Json {
        let report = serde_json::json!({
            "run_id": run_id,
            "command": command,
            "status": status,
            "started_at": started,
            "duration_ms": millis,
            "api_calls": {"source": source_calls, "target": target_calls},
            "pipelines": pipelines,
            "failed_records": failures.iter().map(|(p, d, id, m)| serde_json::json!({"pipeline": p, "direction": d, "source_id": id, "message": m})).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return 0;
    }
    println!(
        "run {run_id}: etl {command}, {status}, started {started}, took {:.1} s, API calls {source_calls} Salesforce / {target_calls} Halo",
        millis as f64 / 1000.0
    );
    let count = |p: &serde_json::Value, key: &str| p[key].as_u64().unwrap_or(0).to_string();
    // A plan wrote nothing: show what it planned.
    let planned = command == "plan";
    let (create, update) = if planned {
        ("planned_creates", "planned_updates")
    } else {
        ("created", "updated")
    };
    let table = ResultTable {
        columns: [
            "pipeline",
            "direction",
            "extracted",
            if planned { "create" } else { "created" },
            if planned { "update" } else { "updated" },
            "unchanged",
            "linked",
            "skipped",
            "failed",
        ]
        .map(String::from)
        .to_vec(),
        rows: pipelines
            .iter()
            .map(|p| {
                let mut row = vec![
                    Value::Text(p["pipeline"].as_str().unwrap_or_default().to_string()),
                    Value::Text(p["direction"].as_str().unwrap_or("import").to_string()),
                ];
                for key in [
                    "extracted",
                    create,
                    update,
                    "unchanged",
                    "linked",
                    "skipped",
                    "failed",
                ] {
                    row.push(Value::Text(count(p, key)));
                }
                row
            })
            .collect(),
    };
    print_result(&table, format);
    for (pipeline, direction, id, message) in &failures {
        println!("failed {pipeline} ({direction}) {id}: {message}");
    }
    0
}
