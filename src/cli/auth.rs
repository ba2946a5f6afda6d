//! `etl auth login salesforce`, `etl auth status` and `etl auth logout`: signing in to the org
//! the project file names, showing who is signed in and how much of the org's daily API
//! allowance is used, and ending the sign-in. Tokens are never printed, only masked.

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use super::{EXIT_CONFIG, EXIT_CONNECTION};
use crate::civil;
use crate::config::model::{SalesforceConnection, SalesforceFlow};
use crate::salesforce::auth::{self, flows, LoginOptions, TokenStore};
use crate::salesforce::{ClientOptions, Error, SalesforceClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum System {
    Salesforce,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Sign in in a browser (OAuth web-server flow) and store the tokens (mode 0600).
    Login {
        /// The system to sign in to.
        #[arg(value_enum)]
        system: System,
        /// Print the URL to open instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Show the org, user, instance, token age (masked) and the org's API usage.
    Status,
    /// Revoke the stored sign-in at Salesforce and delete the local tokens.
    Logout,
}

/// The project's Salesforce connection and token store, or the exit code after saying why not.
pub fn salesforce_settings(project: &Path) -> Result<(SalesforceConnection, TokenStore), i32> {
    let mut problems = Vec::new();
    let loaded = if project.exists() {
        crate::config::loader::load_project(project, &crate::config::process_env, &mut problems)
    } else {
        eprintln!(
            "error: no project file {}: run etl in the project folder or pass --project",
            project.display()
        );
        return Err(EXIT_CONFIG);
    };
    let Some(loaded) = loaded else {
        for problem in problems.iter().filter(|p| p.is_error()) {
            eprintln!("{}", problem.render(None));
        }
        return Err(EXIT_CONFIG);
    };
    let Some(connection) = loaded.connections.salesforce.clone() else {
        eprintln!(
            "error: {} has no connections.salesforce section",
            project.display()
        );
        return Err(EXIT_CONFIG);
    };
    let root = crate::config::loader::project_root(project);
    let path = auth::store_path(
        &root,
        loaded.staging.as_deref(),
        connection.token_store.as_deref(),
    );
    Ok((connection, TokenStore::new(path)))
}

fn fail(error: &Error) -> i32 {
    eprintln!("error: {error}");
    error.exit_code()
}

pub fn run(project: &Path, command: AuthCommand) -> i32 {
    let (connection, store) = match salesforce_settings(project) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    match command {
        AuthCommand::Login {
            system: System::Salesforce,
            no_browser,
        } => login(&connection, &store, no_browser),
        AuthCommand::Status => status(&connection, store),
        AuthCommand::Logout => logout(&connection, &store),
    }
}

fn login(connection: &SalesforceConnection, store: &TokenStore, no_browser: bool) -> i32 {
    let options = LoginOptions {
        open_browser: !no_browser,
        ..LoginOptions::default()
    };
    let signed_in = auth::login(connection, store, &options, |url| {
        eprintln!("Open this URL in a browser to sign in to Salesforce:");
        println!("{url}");
        eprintln!(
            "Waiting for Salesforce to call back on {} …",
            connection.redirect_uri
        );
    });
    if let Err(error) = signed_in {
        return fail(&error);
    }
    let client =
        match SalesforceClient::connect(connection, store.clone(), ClientOptions::default()) {
            Ok(client) => client,
            Err(error) => return fail(&error),
        };
    match client.identity() {
        Ok(me) => {
            eprintln!(
                "Signed in to Salesforce as {} (org {}). Tokens stored in {} (mode 0600).",
                me["username"].as_str().unwrap_or("?"),
                me["organization_id"].as_str().unwrap_or("?"),
                store.path().display()
            );
            0
        }
        Err(error) => fail(&error),
    }
}

/// `3m`, `2h 5m`, `4d 1h`: how long ago, for people.
fn age(millis: i64) -> String {
    let seconds = (civil::now_millis() - millis).max(0) / 1000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s / 60 % 60),
        s => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

fn status(connection: &SalesforceConnection, store: TokenStore) -> i32 {
    let flow = flows::flow_name(connection.flow);
    let stored = match store.load() {
        Ok(stored) => stored,
        Err(error) => return fail(&error),
    };
    if connection.flow == SalesforceFlow::WebServer && stored.is_none() {
        eprintln!("not signed in to Salesforce: run `etl auth login salesforce`");
        return EXIT_CONNECTION;
    }
    let client =
        match SalesforceClient::connect(connection, store.clone(), ClientOptions::default()) {
            Ok(client) => client,
            Err(error) => return fail(&error),
        };
    let me = match client.identity() {
        Ok(me) => me,
        Err(error) => return fail(&error),
    };
    let text = |key: &str| me[key].as_str().unwrap_or("?").to_string();
    println!("flow:          {flow}");
    println!("org:           {}", text("organization_id"));
    println!("user:          {} ({})", text("username"), text("user_id"));
    println!("instance:      {}", client.instance_url());
    if let Some(tokens) = client.stored_tokens() {
        println!("signed in:     {} ago", age(tokens.signed_in_at_ms));
        println!(
            "access token:  {}, issued {} ago; Salesforce gives no expiry (the org's session timeout ends it) and etl refreshes it when refused",
            auth::mask(&tokens.access_token),
            age(tokens.issued_at_ms)
        );
        println!(
            "refresh token: {}",
            if tokens.refresh_token.is_some() {
                "stored"
            } else {
                "none"
            }
        );
        println!("token store:   {}", store.path().display());
    } else {
        println!("access token:  new for this command ({flow} signs in on every run)");
    }
    // The identity URL is not a REST resource and may not report usage: `/limits` does, in
    // its `Sforce-Limit-Info` header and its body.
    let limits = client.limits().ok();
    let usage = client.usage().or_else(|| {
        let daily = &limits.as_ref()?["DailyApiRequests"];
        let limit = daily["Max"].as_u64()?;
        Some(crate::salesforce::ApiUsage {
            used: limit.saturating_sub(daily["Remaining"].as_u64()?),
            limit,
        })
    });
    match usage {
        Some(usage) => println!(
            "API usage:     {} of {} daily calls ({:.1}%){}",
            usage.used,
            usage.limit,
            usage.percent(),
            connection
                .max_api_usage_percent
                .map(|m| format!("; runs stop at {m}%"))
                .unwrap_or_default()
        ),
        None => println!("API usage:     not reported"),
    }
    0
}

fn logout(connection: &SalesforceConnection, store: &TokenStore) -> i32 {
    match SalesforceClient::logout(connection, store) {
        Ok(true) => {
            eprintln!(
                "Signed out: the refresh token is revoked and {} deleted.",
                store.path().display()
            );
            0
        }
        Ok(false) => {
            eprintln!(
                "Not signed in: no token store at {}.",
                store.path().display()
            );
            0
        }
        Err(error) => fail(&error),
    }
}
