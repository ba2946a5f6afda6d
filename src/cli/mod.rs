//! The command line: clap definitions, dispatch to one file per command, and exit codes.
//!
//! Exit codes: 0 all good, 1 some records failed, 2 configuration or query error, 3 connection
//! or authentication error.

mod auth;
mod closed_pipe;
mod diff;
mod output;
mod progress;
mod retry;
mod run;
mod runs;
mod sandbox;
mod schema;
mod sql;
mod summary;
mod validate;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for configuration problems and bad queries.
pub const EXIT_CONFIG: i32 = 2;

/// Exit code for connection and authentication problems.
pub const EXIT_CONNECTION: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "etl",
    version,
    about = "Declarative Salesforce ⇄ Halo sync, staged in DuckDB"
)]
pub struct Cli {
    /// Project file; relative paths inside it start from its folder.
    #[arg(long, global = true, env = "ETL_PROJECT", default_value = "etl.yaml")]
    pub project: PathBuf,

    /// More log lines on stderr: -v info (runs, pipelines, stages), -vv debug (every HTTP
    /// request), -vvv trace. `RUST_LOG` replaces the level when set.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Errors only on stderr: no log lines below error and no progress lines (stdout output
    /// and failed records stay).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log lines as text for people or JSON lines (one object per line) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: counts per pipeline and action, duration, API calls, failed records.
    Show { run_id: String },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files and the project file; every problem with file:line:col and a hint.
    Validate {
        /// Files or folders (default: etl.yaml and the project's pipelines folder).
        paths: Vec<PathBuf>,
        /// Output for people (text) or machines (json).
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
        /// Also check every Salesforce field against the org's describe (needs a sign-in).
        #[arg(long)]
        online: bool,
    },
    /// Sign in to Salesforce, show the sign-in and API usage, or sign out.
    Auth {
        #[command(subcommand)]
        command: auth::AuthCommand,
    },
    /// Print the JSON Schema of pipeline or project files (or write both to a folder).
    Schema {
        /// Which schema to print.
        #[arg(value_enum, default_value_t = schema::Which::Pipeline)]
        which: schema::Which,
        /// Write pipeline.schema.json and project.schema.json into this folder instead.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Run SQL against the staging file; `-` reads the query from stdin.
    Sql {
        /// The query, or `-` for stdin.
        query: String,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Serve local emulators of a Salesforce org and a Halo instance (prints their URLs and
    /// credentials as one JSON line).
    Sandbox(sandbox::SandboxArgs),
    /// Extract, transform, plan and load pipelines (Salesforce → Halo), in depends_on order.
    Run(run::RunArgs),
    /// Extract, transform and plan without writing: what `etl run` would do.
    Plan(run::RunArgs),
    /// Load exactly the plan of an `etl plan` run, refusing one whose source moved on since.
    Apply {
        /// The run id `etl plan` printed.
        run_id: String,
        /// Load although planning again gives a different plan.
        #[arg(long)]
        force: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List run history from the staging file.
    Runs {
        #[arg(long, value_enum, default_value_t = TableFormat::Table, global = true)]
        format: TableFormat,
        #[command(subcommand)]
        show: Option<RunsCommand>,
    },
    /// Records added, removed and changed between two runs of a pipeline, field by field.
    Diff(diff::DiffArgs),
    /// Run the pipelines on a schedule (`--every 5m`), one health line per cycle; Ctrl-C or
    /// SIGTERM stops after the cycle under way.
    Watch(watch::WatchArgs),
    /// Send again only the records that failed in the last run (`--failed`).
    Retry(retry::RetryArgs),
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::logging::init(crate::logging::Settings {
        verbose: cli.verbose,
        quiet: cli.quiet,
        format: match cli.log_format {
            LogFormat::Text => crate::logging::Format::Text,
            LogFormat::Json => crate::logging::Format::Json,
        },
    });
    closed_pipe::quiet_on_closed_pipe(|| dispatch(cli))
}

/// Runs the command the command line names; its exit code.
fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate {
            paths,
            format,
            online,
        } => validate::run(&cli.project, &paths, format, online),
        Command::Auth { command } => auth::run(&cli.project, command),
        Command::Schema { which, write } => schema::run(which, write.as_deref()),
        Command::Sql { query, format } => sql::run(&cli.project, &query, format),
        Command::Runs { format, show: None } => runs::run(&cli.project, format),
        Command::Runs {
            format,
            show: Some(RunsCommand::Show { run_id }),
        } => runs::show(&cli.project, &run_id, format),
        Command::Diff(args) => diff::run(&cli.project, args),
        Command::Watch(args) => watch::run(&cli.project, args),
        Command::Retry(args) => retry::run(&cli.project, args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Run(args) => run::run(&cli.project, args, crate::engine::Mode::Load),
        Command::Plan(args) => run::run(&cli.project, args, crate::engine::Mode::Plan),
        Command::Apply {
            run_id,
            force,
            json,
        } => run::apply(&cli.project, &run_id, force, json),
    }
}

/// Opens the staging file the project names (made when missing), printing a clear error
/// (exit 2) when the project file is invalid or the staging file cannot be used.
fn open_store(project: &std::path::Path) -> Result<crate::staging::Store, i32> {
    open_staging(&staging_path(project)?)
}

/// Opens the staging file the project names when it exists: commands that only read what
/// runs left (`runs`, `diff`, `retry`) make no staging file in a folder where nothing has run,
/// and say so (exit 2).
fn open_made_store(project: &std::path::Path) -> Result<crate::staging::Store, i32> {
    let path = staging_path(project)?;
    if !path.exists() {
        eprintln!(
            "error: no staging file at {}: nothing has run in this project yet (`etl run` or \
             `etl plan` makes it; `--project` names another project file)",
            path.display()
        );
        return Err(EXIT_CONFIG);
    }
    open_staging(&path)
}

fn open_staging(path: &std::path::Path) -> Result<crate::staging::Store, i32> {
    crate::staging::Store::open(path).map_err(|error| {
        eprintln!("error: {error}");
        EXIT_CONFIG
    })
}

/// The staging file the project names (its default when there is no project file); a clear
/// error (exit 2) when the project file is invalid.
fn staging_path(project: &std::path::Path) -> Result<std::path::PathBuf, i32> {
    let mut problems = Vec::new();
    let mut workspace = crate::config::Workspace {
        root: crate::config::loader::project_root(project),
        ..Default::default()
    };
    if project.exists() {
        match crate::config::loader::load_project(
            project,
            &crate::config::process_env,
            &mut problems,
        ) {
            Some(loaded) => workspace.project = loaded,
            None => {
                for problem in problems.iter().filter(|p| p.is_error()) {
                    eprintln!("{}", problem.render(None));
                }
                return Err(EXIT_CONFIG);
            }
        }
    }
    Ok(workspace.staging_path())
}
