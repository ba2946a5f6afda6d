//! `etl validate`: load every file, print every problem, exit 2 if any is an error. With
//! `--online`, also check every pipeline against the org's describe (exit 3 when the org cannot
//! be reached), starting the sandbox first when etl.yaml points at it and nothing answers.

use std::path::{Path, PathBuf};

use super::{DiagnosticFormat, EXIT_CONFIG};
use crate::config::{self, Severity};
use crate::salesforce::describe::OrgDescribes;
use crate::salesforce::{ClientOptions, SalesforceClient};

pub fn run(project: &Path, paths: &[PathBuf], format: DiagnosticFormat, online: bool) -> i32 {
    let mut workspace = config::load(project, paths, &config::process_env);
    if online && !workspace.pipelines.is_empty() {
        // As `etl run` does: an etl.yaml that points at the sandbox gets one while it checks.
        let _sandbox = match super::run::start_sandbox_if_needed(&workspace) {
            Ok(sandbox) => sandbox,
            Err(code) => return code,
        };
        if let Err(code) = check_online(project, &mut workspace) {
            return code;
        }
    }
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

/// Adds the org's verdict on every loaded pipeline; a problem already reported offline at the
/// same place is not repeated.
fn check_online(project: &Path, workspace: &mut config::Workspace) -> Result<(), i32> {
    let (connection, store) = super::auth::salesforce_settings(project)?;
    let client = SalesforceClient::connect(&connection, store, ClientOptions::default()).map_err(
        |error| {
            eprintln!("error: {error}");
            error.exit_code()
        },
    )?;
    let mut describes = OrgDescribes::new(&client);
    let mut found = Vec::new();
    for loaded in &workspace.pipelines {
        config::rules::check_pipeline_online(
            &loaded.source,
            &loaded.tree,
            &loaded.pipeline,
            &mut describes,
            &mut found,
        );
    }
    if let Some(error) = describes.failure {
        eprintln!("error: cannot describe the org: {error}");
        return Err(error.exit_code().max(3));
    }
    for loaded in &workspace.pipelines {
        let checked = crate::salesforce::describe::check_pipeline_soql(
            &client,
            loaded,
            &workspace.diagnostics,
            &mut found,
        );
        if let Err(error) = checked {
            eprintln!("error: cannot check the pipelines' SOQL with the org: {error}");
            return Err(error.exit_code().max(3));
        }
    }
    for diagnostic in found {
        let known = workspace.diagnostics.iter().any(|d| {
            d.file == diagnostic.file && d.line == diagnostic.line && d.column == diagnostic.column
        });
        if !known {
            workspace.diagnostics.push(diagnostic);
        }
    }
    Ok(())
}
