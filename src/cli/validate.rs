//! `etl validate`: load every file, print every problem, exit 2 if any is an error.

use std::path::{Path, PathBuf};

use super::{DiagnosticFormat, EXIT_CONFIG};
use crate::config::{self, Severity};

pub fn run(project: &Path, paths: &[PathBuf], format: DiagnosticFormat) -> i32 {
    let workspace = config::load(project, paths, &config::process_env);
    let errors = workspace
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .count();
    let warnings = workspace
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    match format {
        DiagnosticFormat::Json => {
            let report = serde_json::json!({
                "valid": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "files": workspace.files,
                "diagnostics": workspace.diagnostics,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        DiagnosticFormat::Text => {
            for diagnostic in &workspace.diagnostics {
                eprintln!("{}", diagnostic.render(None));
            }
            let files = workspace.files.len();
            if files == 0 {
                eprintln!("no configuration files found: pass files or folders, e.g. `etl validate pipelines/`");
                return EXIT_CONFIG;
            }
            let noun = if files == 1 { "file" } else { "files" };
            if errors == 0 {
                println!(
                    "ok: {files} {noun} valid ({} pipelines{})",
                    workspace.pipelines.len(),
                    if warnings > 0 {
                        format!(", {warnings} warnings")
                    } else {
                        String::new()
                    }
                );
            } else {
                eprintln!("{errors} errors, {warnings} warnings in {files} {noun}");
            }
        }
    }
    if errors > 0 || workspace.files.is_empty() {
        EXIT_CONFIG
    } else {
        0
    }
}
