//! The connector's errors: what went wrong, worded for the person running `etl`, with
//! Salesforce's own `errorCode` and message when Salesforce said no, and which exit code the
//! CLI gives for it. No variant ever carries a token.

use thiserror::Error as ThisError;

#[derive(Debug, ThisError)]
pub enum Error {
    /// The project's Salesforce settings cannot work (exit 2).
    #[error("{0}")]
    Config(String),
    /// No stored sign-in for the web-server flow.
    #[error("not signed in to Salesforce: run `etl auth login salesforce` first")]
    NotLoggedIn,
    /// The refresh token is dead (revoked, expired, or the app's policy changed).
    #[error("Salesforce no longer accepts the stored sign-in ({description}): run `etl auth login salesforce` again")]
    LoginExpired { description: String },
    /// The token endpoint or the authorize redirect refused the sign-in.
    #[error("Salesforce sign-in failed: {error}: {description}")]
    OAuth { error: String, description: String },
    /// Salesforce answered with an error body (`[{"errorCode", "message", "fields"}]`).
    #[error("Salesforce answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        fields: Vec<String>,
    },
    /// The org could not be reached, or the connection broke before a full answer.
    #[error("cannot reach Salesforce ({url}): {detail}")]
    Connection { url: String, detail: String },
    /// `max_api_usage_percent` reached: the run stops before the org's daily limit.
    #[error("stopped before the org's API limit: {used} of {limit} daily calls used, max_api_usage_percent is {max_percent}%")]
    QuotaReached {
        used: u64,
        limit: u64,
        max_percent: u8,
    },
    /// Salesforce answered something this client does not understand.
    #[error("unexpected answer from Salesforce: {0}")]
    Protocol(String),
    /// The token store file cannot be read or written.
    #[error("token store {path}: {detail}")]
    Store { path: String, detail: String },
}

impl Error {
    /// The CLI's exit code: 2 for configuration problems, 3 for connection and sign-in ones.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Store { .. } => 2,
            Error::Api { code, .. } if is_query_error(code) => 2,
            _ => 3,
        }
    }

    /// Salesforce's errorCode, when Salesforce gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            Error::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Codes that mean the query or the mapping is wrong, not the connection.
fn is_query_error(code: &str) -> bool {
    matches!(
        code,
        "MALFORMED_QUERY" | "INVALID_FIELD" | "INVALID_TYPE" | "INVALID_QUERY_FILTER_OPERATOR"
    )
}
