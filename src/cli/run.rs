//! `etl run` and `etl plan`: load the pipelines, sign in to both systems (starting the sandbox
//! in-process when `etl.yaml` points at it and nothing answers there), run each pipeline in
//! `depends_on` order through the engine, print the review table (plan) or the summary (run).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::progress::StderrProgress;
use super::summary::{
    estimated_salesforce_calls, print_attachment_failures, print_attachments, print_conflicts,
    print_failures_and_drift, print_review, print_summary,
};
use super::EXIT_CONFIG;
use crate::config::{self, model::ImportMode, rules};
use crate::engine::progress::ProgressReporter;
use crate::engine::{run_both_ways, EngineError, Mode, PipelineSummary, RunOptions, Systems};
use crate::halo::{ClientOptions as HaloOptions, HaloClient, HaloSource, HaloTarget};
use crate::salesforce::auth::{store_path, TokenStore};
use crate::salesforce::source::SalesforceSource;
use crate::salesforce::target::SalesforceTarget;
use crate::salesforce::{ClientOptions as SalesforceOptions, SalesforceClient};
use crate::sandbox::server::{self as sandbox_server, Running};
use crate::staging::Store;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Pipeline files or folders (default: `pipelines:` from etl.yaml).
    pub paths: Vec<PathBuf>,
    /// Load only these Salesforce Ids; or, with a space or operator in it, only records whose
    /// staged extract matches this SQL condition (e.g. `"Industry = 'Retail'"`). Repeatable.
    #[arg(long, value_name = "ID|SQL")]
    pub select: Vec<String>,
    /// Never load these Salesforce Ids. Repeatable.
    #[arg(long, value_name = "ID")]
    pub exclude: Vec<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Never start the sandbox, even when etl.yaml points at it and nothing answers.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Read every record, also for pipelines with `salesforce.incremental` (which otherwise
    /// read only what changed since their last run); their watermark starts again.
    #[arg(long)]
    pub full: bool,
    /// Only these pipelines (set by `etl apply` to the reviewed plan's).
    #[arg(skip)]
    pub only: Vec<String>,
    /// Only these source ids, per pipeline (`etl retry`: the records that failed); takes the
    /// place of `select` for the pipelines named.
    #[arg(skip)]
    pub select_by_pipeline: std::collections::BTreeMap<String, Vec<String>>,
    /// The command recorded in `runs` (default `run`, `plan` or `apply`).
    #[arg(skip)]
    pub command: Option<&'static str>,
    /// Print nothing but errors and failed records (`etl watch` prints its own health line).
    #[arg(skip)]
    pub quiet: bool,
}

/// What a run did, for commands that run pipelines and report on them in their own way.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// `None` when the run stopped before it began (configuration, sign-in).
    pub run_id: Option<String>,
    pub status: String,
    pub summaries: Vec<PipelineSummary>,
}

/// A URL's host and port when it names this machine (the sandbox's home), and whether it is
/// `https://`.
fn local_address(url: &str) -> Option<(SocketAddr, bool)> {
    let (rest, tls) = match url.strip_prefix("https://") {
        Some(rest) => (rest, true),
        None => (url.strip_prefix("http://")?, false),
    };
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    if !matches!(host, "127.0.0.1" | "localhost") {
        return None;
    }
    let address = (host, port.parse::<u16>().ok()?)
        .to_socket_addrs()
        .ok()?
        .next()?;
    Some((address, tls))
}

fn answers(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_millis(300)).is_ok()
}

/// Starts the sandbox when both systems are configured on this machine and neither answers.
pub(super) fn start_sandbox_if_needed(
    workspace: &config::Workspace,
) -> Result<Option<Running>, i32> {
    let connections = &workspace.project.connections;
    let (Some(salesforce), Some(halo)) = (&connections.salesforce, &connections.halo) else {
        return Ok(None);
    };
    let (Some((sf, sf_tls)), Some((h, halo_tls))) = (
        local_address(&salesforce.login_url),
        local_address(&halo.base_url),
    ) else {
        return Ok(None);
    };
    if sf_tls != halo_tls {
        // One sandbox serves both the same way; a mixed pair is not this sandbox.
        return Ok(None);
    }
    if answers(sf) || answers(h) {
        return Ok(None);
    }
    let data = workspace.root.join(".etl/sandbox");
    let options = sandbox_server::Options {
        data_dir: Some(data.clone()),
        salesforce_port: sf.port(),
        halo_port: h.port(),
        // Over HTTPS its certificate is `.etl/sandbox/sandbox-cert.pem`, for `trust_certificate`.
        tls: sf_tls,
        ..sandbox_server::Options::default()
    };
    match sandbox_server::start(options) {
        Ok(running) => {
            tracing::info!(
                salesforce = %running.salesforce_url,
                halo = %running.halo_url,
                data = %data.display(),
                "sandbox started"
            );
            if !crate::logging::progress_lines() {
                return Ok(Some(running));
            }
            eprintln!(
                "started the sandbox (Salesforce {}, Halo {}; data in {}) because etl.yaml points at it",
                running.salesforce_url,
                running.halo_url,
                data.display()
            );
            Ok(Some(running))
        }
        Err(error) => {
            eprintln!("error: etl.yaml points at the sandbox, which could not start: {error}");
            Err(3)
        }
    }
}

fn connect_salesforce(workspace: &config::Workspace) -> Result<SalesforceClient, i32> {
    let Some(connection) = workspace.project.connections.salesforce.as_ref() else {
        eprintln!("error: etl.yaml has no connections.salesforce section");
        return Err(EXIT_CONFIG);
    };
    let store = TokenStore::new(store_path(
        &workspace.root,
        workspace.project.staging.as_deref(),
        connection.token_store.as_deref(),
    ));
    let options = SalesforceOptions {
        // The same share of requests in flight as the attachment copies.
        writes_in_flight: workspace
            .project
            .defaults
            .in_flight
            .map_or(4, |n| n.max(1) as usize),
        ..SalesforceOptions::for_connection(connection)
    };
    SalesforceClient::connect(connection, store, options).map_err(|error| {
        eprintln!("error: Salesforce: {error}");
        error.exit_code()
    })
}

fn connect_halo(workspace: &config::Workspace) -> Result<HaloClient, i32> {
    let Some(connection) = workspace.project.connections.halo.as_ref() else {
        eprintln!("error: etl.yaml has no connections.halo section");
        return Err(EXIT_CONFIG);
    };
    let defaults = &workspace.project.defaults;
    let mut options = HaloOptions::default()
        .with_batch_size(defaults.batch_size)
        .with_in_flight(defaults.in_flight);
    match connection.rate_limit.as_deref().map(str::trim) {
        None => {}
        Some("off") => options.rate_limit = None,
        Some(text) => match rules::parse_rate(text) {
            Some((requests, seconds)) => {
                options.rate_limit = Some(crate::halo::RateLimit {
                    requests,
                    window: Duration::from_secs(seconds),
                })
            }
            None => {
                eprintln!("error: connections.halo.rate_limit in etl.yaml is `{text}`: write REQUESTS/WINDOW, e.g. 300/5m, or off");
                return Err(EXIT_CONFIG);
            }
        },
    }
    HaloClient::new(connection, options).map_err(|error| {
        eprintln!("error: Halo: {error}");
        EXIT_CONFIG
    })
}

/// `etl apply <run-id>`: what to load and whether to load it although the source moved on.
#[derive(Debug, Clone, Default)]
pub struct Apply {
    pub run_id: String,
    pub force: bool,
}

pub fn run(project: &Path, args: RunArgs, mode: Mode) -> i32 {
    run_with(project, args, mode, None)
}

/// `etl apply`: loads the plan of a reviewed `etl plan` run, refusing one the source has moved
/// away from (unless `--force`); deselections made in the plan still hold.
pub fn apply(project: &Path, run_id: &str, force: bool, json: bool) -> i32 {
    let store = match super::open_store(project) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let found = store.connection().query_row(
        "SELECT command, array_to_string(pipelines, ','), status FROM runs WHERE run_id = ?",
        [run_id],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        },
    );
    let (command, pipelines, status) = match found {
        Ok(found) => found,
        Err(_) => {
            eprintln!("error: no run {run_id} in the staging file: `etl runs` lists them");
            return EXIT_CONFIG;
        }
    };
    if command != "plan" {
        eprintln!("error: run {run_id} is an `etl {command}`, not a plan: apply the id that `etl plan` printed");
        return EXIT_CONFIG;
    }
    // A plan that stopped part-way (an error, or killed while `running`) planned only some of
    // its pipelines or records: applying it would load what nobody reviewed as a whole.
    if status == "error" || status == "running" {
        eprintln!(
            "error: plan {run_id} did not finish (status {status}): `etl runs show {run_id}` \
             says why; fix that, run `etl plan` again and apply the new plan"
        );
        return EXIT_CONFIG;
    }
    let mut exclude = Vec::new();
    for pipeline in pipelines.split(',').filter(|p| !p.is_empty()) {
        let sql = format!(
            "SELECT source_id FROM \"{pipeline}_changes\" WHERE run_id = ? AND reason = 'deselected'"
        );
        if let Ok(mut statement) = store.connection().prepare(&sql) {
            if let Ok(ids) = statement.query_map([run_id], |row| row.get::<_, String>(0)) {
                exclude.extend(ids.flatten());
            }
        }
    }
    drop(store);
    let workspace_paths = Vec::new();
    let args = RunArgs {
        paths: workspace_paths,
        select: Vec::new(),
        exclude,
        json,
        no_sandbox: false,
        only: pipelines.split(',').map(str::to_string).collect(),
        ..RunArgs::default()
    };
    run_with(
        project,
        args,
        Mode::Load,
        Some(Apply {
            run_id: run_id.to_string(),
            force,
        }),
    )
}

fn run_with(project: &Path, args: RunArgs, mode: Mode, apply: Option<Apply>) -> i32 {
    run_reporting(project, args, mode, apply, &mut Report::default())
}

/// `run_with`, also filling in `report` with the run's id, status and summaries.
pub(super) fn run_reporting(
    project: &Path,
    args: RunArgs,
    mode: Mode,
    apply: Option<Apply>,
    report: &mut Report,
) -> i32 {
    let mut workspace = config::load(project, &args.paths, &config::process_env);
    if !args.only.is_empty() {
        workspace
            .pipelines
            .retain(|p| args.only.contains(&p.pipeline.pipeline));
    }
    for diagnostic in workspace.diagnostics.iter().filter(|d| d.is_error()) {
        eprintln!("{}", diagnostic.render(None));
    }
    if workspace.has_errors() {
        return EXIT_CONFIG;
    }
    if workspace.pipelines.is_empty() {
        eprintln!("no pipelines found: pass files or folders, e.g. `etl run pipelines/`");
        return EXIT_CONFIG;
    }
    let _sandbox = if args.no_sandbox {
        None
    } else {
        match start_sandbox_if_needed(&workspace) {
            Ok(sandbox) => sandbox,
            Err(code) => return code,
        }
    };
    let store = match Store::open(&workspace.staging_path()) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_CONFIG;
        }
    };
    let salesforce = match connect_salesforce(&workspace) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let halo = match connect_halo(&workspace) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let source = SalesforceSource::new(&salesforce);
    let target = HaloTarget::new(&halo);
    let halo_reader = HaloSource::new(&halo);
    let salesforce_writer = SalesforceTarget::new(&salesforce);
    let systems = Systems {
        source: &source,
        target: &target,
        target_reader: Some(&halo_reader),
        source_writer: Some(&salesforce_writer),
    };

    let pipelines: Vec<&config::Pipeline> =
        workspace.pipelines.iter().map(|p| &p.pipeline).collect();
    let owned: Vec<config::Pipeline> = pipelines.iter().map(|p| (*p).clone()).collect();
    let order = rules::run_order(&owned);
    let names: Vec<String> = order.iter().map(|&i| owned[i].pipeline.clone()).collect();
    let command = match (mode, &apply, args.command) {
        (Mode::Plan, _, _) => "plan",
        (Mode::Load, Some(_), _) => "apply",
        (Mode::Load, None, Some(command)) => command,
        (Mode::Load, None, None) => "run",
    };
    let run_id = match store.begin_run(command, &names) {
        Ok(id) => id,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_CONFIG;
        }
    };
    let span = tracing::info_span!("run", run_id = %run_id, command);
    let _in_run = span.enter();
    let run_started = std::time::Instant::now();
    tracing::info!(pipelines = ?names, mode = ?mode, "run started");
    let (select, select_where): (Vec<String>, Vec<String>) = args
        .select
        .iter()
        .cloned()
        .partition(|s| !s.contains(|c: char| c.is_whitespace() || "=<>'".contains(c)));
    // Progress on stderr, redrawn in place on a terminal.
    let progress = (!args.quiet && crate::logging::progress_lines()).then(|| {
        use std::io::IsTerminal;
        Arc::new(StderrProgress::new(std::io::stderr().is_terminal()))
    });
    let options = RunOptions {
        progress: progress
            .clone()
            .map(|sink| ProgressReporter::new(sink))
            .unwrap_or_default(),
        run_id: run_id.clone(),
        mode,
        batch_size: workspace.project.defaults.batch_size.unwrap_or(200) as usize,
        default_import: workspace
            .project
            .defaults
            .import
            .unwrap_or(ImportMode::Upsert),
        select,
        select_where: (!select_where.is_empty()).then(|| select_where.join(") AND (")),
        exclude: args.exclude.clone(),
        reviewed: apply.as_ref().map(|a| a.run_id.clone()),
        force: apply.as_ref().is_some_and(|a| a.force),
        default_attachments: workspace.project.defaults.attachments.unwrap_or(false),
        in_flight: workspace
            .project
            .defaults
            .in_flight
            .unwrap_or(config::model::DEFAULT_IN_FLIGHT) as usize,
        full_extract: args.full,
    };
    let mut summaries: Vec<PipelineSummary> = Vec::new();
    let mut stopped: Option<EngineError> = None;
    for &index in &order {
        let pipeline = &owned[index];
        if !args.json && !args.quiet && crate::logging::progress_lines() {
            eprintln!(
                "{}: extracting {} …",
                pipeline.pipeline, pipeline.salesforce.object
            );
        }
        let started = std::time::Instant::now();
        let selected;
        let pipeline_options = match args.select_by_pipeline.get(&pipeline.pipeline) {
            Some(ids) => {
                selected = RunOptions {
                    select: ids.clone(),
                    ..options.clone()
                };
                &selected
            }
            None => &options,
        };
        let outcome = run_both_ways(pipeline, &systems, &store, pipeline_options);
        if let Some(progress) = &progress {
            progress.finish();
        }
        match outcome {
            Ok(done) => {
                let seconds = started.elapsed().as_secs_f64();
                for summary in done {
                    if !args.json && !args.quiet && crate::logging::progress_lines() {
                        eprintln!(
                            "{} ({}): {} extracted, {} created, {} updated, {} unchanged, {} skipped, {} failed, {} conflicts in {seconds:.1} s ({:.0} records/s)",
                            summary.pipeline,
                            summary.direction,
                            summary.extracted,
                            summary.created,
                            summary.updated,
                            summary.unchanged,
                            summary.skipped,
                            summary.failed,
                            summary.conflicts.len(),
                            summary.extracted as f64 / seconds.max(0.001)
                        );
                    }
                    summaries.push(summary)
                }
            }
            Err(error) => {
                let said = error.to_string();
                // The text line below says it to people; a log shipper gets the event.
                if !crate::logging::human_stderr() {
                    tracing::error!(pipeline = %pipeline.pipeline, error = %said, "pipeline stopped");
                }
                if said.starts_with(&format!("pipeline {}:", pipeline.pipeline)) {
                    eprintln!("error: {said}");
                } else {
                    eprintln!("error: pipeline {}: {said}", pipeline.pipeline);
                }
                let loaded = &workspace.pipelines[index];
                if let Some(place) = place_in_pipeline(loaded, &error.to_string(), &workspace.root)
                {
                    eprintln!("  --> {place}");
                }
                stopped = Some(error);
                break;
            }
        }
    }
    // A record whose attachments could not be copied counts as failed too.
    let failed: u64 = summaries
        .iter()
        .map(|s| s.failed + s.attachments_failed)
        .sum();
    let status = match (&stopped, failed) {
        (Some(_), _) => "error",
        (None, 0) => "ok",
        (None, _) => "failed records",
    };
    let mut summary = json!({
        "run_id": run_id,
        "command": command,
        "status": status,
        "pipelines": summaries,
    });
    let estimate = (mode == Mode::Plan)
        .then(|| estimated_salesforce_calls(&owned, options.default_attachments, &summaries));
    if let Some(estimate) = estimate {
        summary["estimated_salesforce_calls"] = json!(estimate);
    }
    tracing::info!(
        status,
        failed,
        error = stopped.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        elapsed_ms = run_started.elapsed().as_millis() as u64,
        "run finished"
    );
    // Before the run is finished: finishing checkpoints the file, and what is written after
    // that waits in the log for the next run.
    let _ = store.record_api_calls(
        &run_id,
        summaries.iter().map(|s| s.source_api_calls).sum(),
        summaries.iter().map(|s| s.target_api_calls).sum(),
    );
    let _ = store.finish_run(&run_id, status, &summary);
    report.run_id = Some(run_id.clone());
    report.status = status.to_string();
    report.summaries = summaries.clone();
    if args.quiet {
        // An unattended run still says what needs a person: failures and schema drift.
        for summary in &summaries {
            print_failures_and_drift(summary, &run_id);
        }
    } else if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        if mode == Mode::Plan {
            print_review(&store, &run_id, &summaries);
        }
        print_summary(&summaries, mode);
        if let Some(estimate) = estimate.filter(|_| crate::logging::progress_lines()) {
            eprintln!(
                "applying this plan will use about {estimate} Salesforce API calls (retries and sign-ins on top)"
            );
        }
        // Under JSON logs these lines are log events already (record failed, schema drift,
        // conflict, attachment failed).
        for summary in summaries.iter().filter(|_| crate::logging::human_stderr()) {
            print_failures_and_drift(summary, &run_id);
            print_conflicts(summary, &run_id);
            if crate::logging::progress_lines() {
                print_attachments(summary, mode, &run_id);
            } else {
                // -q: of the attachments, only what failed.
                print_attachment_failures(summary, &run_id);
            }
        }
        if crate::logging::progress_lines() {
            eprintln!(
            "run {run_id}: inspect it with `etl sql \"SELECT action, count(*) FROM <pipeline>_changes WHERE run_id = '{run_id}' GROUP BY 1\"`"
            );
        }
    }
    match (stopped, failed) {
        (Some(error), _) => error.exit_code(),
        (None, 0) => 0,
        (None, _) => 1,
    }
}

/// Where in its pipeline file a Salesforce refusal points: the mapping of the field Salesforce
/// names (`No such column 'Nmae'`), else the `where` or `query` it refused, as `file:line:col`.
fn place_in_pipeline(loaded: &rules::LoadedPipeline, message: &str, root: &Path) -> Option<String> {
    use rules::{node_at, Step};
    let mapping_at = |i: usize| {
        node_at(
            &loaded.tree,
            &[Step::Key("fields"), Step::Index(i), Step::Key("salesforce")],
        )
    };
    // The engine names a mapping it refuses as `(fields[3])`.
    let indexed = message
        .split("(fields[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(mapping_at);
    if indexed.is_none() && !message.contains("Salesforce refused the query") {
        return None;
    }
    let named = message
        .split("No such column '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next());
    let field_node = named.and_then(|name| {
        (0..loaded.pipeline.fields.len()).find_map(|i| {
            let node = mapping_at(i)?;
            let value = node.as_str()?;
            (value == name || value.split('.').next() == Some(name)).then_some(node)
        })
    });
    let node = indexed
        .or(field_node)
        .or_else(|| node_at(&loaded.tree, &[Step::Key("salesforce"), Step::Key("where")]))
        .or_else(|| node_at(&loaded.tree, &[Step::Key("salesforce"), Step::Key("query")]))?;
    let path = loaded
        .source
        .path
        .strip_prefix(root)
        .unwrap_or(&loaded.source.path);
    Some(format!(
        "{}:{}:{}",
        path.display(),
        node.loc.line,
        node.loc.column
    ))
}
