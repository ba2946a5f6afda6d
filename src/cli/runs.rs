//! `etl runs`: run history from the staging file.

use std::path::Path;

use super::output::print_result;
use super::{open_store, TableFormat, EXIT_CONFIG};
use crate::staging::ResultTable;
use duckdb::types::Value;

pub fn run(project: &Path, format: TableFormat) -> i32 {
    let store = match open_store(project) {
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
