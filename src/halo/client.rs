//! The Halo client the engine holds: built from a project's `HaloConnection` and a few options
//! (rate limit, retries, page and batch sizes), it owns the request service and offers the
//! calls that need no module of their own — one record by id, a delete, the call counters.
//! Listing, writing, custom fields and attachments add their methods in their own files.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::auth::TokenSource;
use super::backoff::RetryPolicy;
use super::error::HaloError;
use super::limiter::{RateLimit, RateLimiter};
use super::service::{Call, Service};
use crate::config::model::{HaloConnection, DEFAULT_IN_FLIGHT};

/// How the client behaves; `ClientOptions::default()` suits hosted Halo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Client-side limit on API calls; `None` turns the limiter off (Halo still answers 429).
    pub rate_limit: Option<RateLimit>,
    /// Retries on 429, 5xx and lost connections.
    pub retry: RetryPolicy,
    /// Records per page when listing. 100 by default: Halo caps tickets there, and lists that
    /// answer without a count can only be ended by a short page.
    pub page_size: u32,
    /// Records per POST when writing.
    pub batch_size: usize,
    /// Pages of one list requested at once, once its first page has said how many records
    /// there are (the project's `defaults.in_flight`).
    pub pages_in_flight: usize,
    /// Longest wait for a connection, for an answer to start, and between two reads.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            rate_limit: Some(RateLimit::default()),
            retry: RetryPolicy::default(),
            page_size: 100,
            batch_size: 50,
            pages_in_flight: DEFAULT_IN_FLIGHT as usize,
            timeout: Duration::from_secs(60),
        }
    }
}

impl ClientOptions {
    /// Takes the project's `defaults.batch_size` when it sets one.
    pub fn with_batch_size(mut self, batch_size: Option<u32>) -> ClientOptions {
        if let Some(size) = batch_size {
            self.batch_size = size.max(1) as usize;
        }
        self
    }

    /// Takes the project's `defaults.in_flight` when it sets one.
    pub fn with_in_flight(mut self, in_flight: Option<u32>) -> ClientOptions {
        if let Some(in_flight) = in_flight {
            self.pages_in_flight = in_flight.max(1) as usize;
        }
        self
    }
}

/// A connection to one Halo instance. Synchronous; share it between threads by reference.
pub struct HaloClient {
    pub(crate) service: Service,
    pub(crate) options: ClientOptions,
    base_url: String,
}

impl HaloClient {
    /// Checks the settings and prepares the client; it signs in on its first call.
    pub fn new(
        connection: &HaloConnection,
        options: ClientOptions,
    ) -> Result<HaloClient, HaloError> {
        let base_url = connection.base_url.trim().trim_end_matches('/').to_string();
        check_url("base_url", &base_url)?;
        let auth_url = match connection.auth_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
            _ => format!("{base_url}/auth"),
        };
        check_url("auth_url", &auth_url)?;
        if connection.client_id.trim().is_empty() {
            return Err(HaloError::Settings("client_id is empty".into()));
        }
        let tokens = TokenSource::new(
            &auth_url,
            connection.tenant.as_deref(),
            &connection.client_id,
            &connection.client_secret,
            &connection.scope,
        );
        let options = ClientOptions {
            page_size: options.page_size.max(1),
            batch_size: options.batch_size.max(1),
            ..options
        };
        let service = Service::new(
            format!("{base_url}/api"),
            tokens,
            options.rate_limit.map(RateLimiter::new),
            options.retry,
            options.timeout,
            connection.trust_certificate.as_deref(),
        )?;
        Ok(HaloClient {
            service,
            options,
            base_url,
        })
    }

    /// The instance's base URL (without `/api`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// API calls sent so far (retries and replays included; token requests not).
    pub fn api_calls(&self) -> u64 {
        self.service.api_calls()
    }

    /// Token requests sent so far.
    pub fn token_fetches(&self) -> u64 {
        self.service.token_fetches()
    }

    /// One record by id (Halo includes its custom fields); `None` when Halo has no such record.
    pub fn get(&self, entity: &str, id: u64) -> Result<Option<Value>, HaloError> {
        check_entity(entity)?;
        let call = Call::get(entity, format!("{entity}/{id}"), Vec::new());
        match self.service.json_or_rejection(&call)? {
            Ok(value) if value.is_object() => Ok(Some(value)),
            Ok(other) => Err(HaloError::Unexpected {
                entity: entity.to_string(),
                message: format!("expected one record for id {id}, got {}", kind_of(&other)),
            }),
            Err(rejection) if rejection.status == 404 => Ok(None),
            Err(rejection) => Err(rejection.into_error(entity).with_record(format!("id {id}"))),
        }
    }

    /// Deletes one record; Halo answers with the record as it was.
    pub fn delete(&self, entity: &str, id: u64) -> Result<Value, HaloError> {
        check_entity(entity)?;
        let call = Call::delete(entity, format!("{entity}/{id}"));
        self.service
            .json(&call)
            .map_err(|error| error.with_record(format!("id {id}")))
    }
}

impl fmt::Debug for HaloClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HaloClient")
            .field("base_url", &self.base_url)
            .field("options", &self.options)
            .field("api_calls", &self.api_calls())
            .finish_non_exhaustive()
    }
}

fn check_url(setting: &str, url: &str) -> Result<(), HaloError> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if !scheme_ok || host.is_empty() || url.contains('?') || url.contains('#') {
        return Err(HaloError::Settings(format!(
            "{setting} `{url}` is not an http(s) URL of a Halo instance, e.g. https://acme.halopsa.com"
        )));
    }
    Ok(())
}

/// Entity names go into URL paths: letters, digits and `_` only.
pub(crate) fn check_entity(entity: &str) -> Result<(), HaloError> {
    if entity.is_empty()
        || !entity
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(HaloError::Settings(format!(
            "`{entity}` is not a Halo entity name (e.g. Client, Users, Tickets)"
        )));
    }
    Ok(())
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(base_url: &str) -> HaloConnection {
        HaloConnection {
            base_url: base_url.into(),
            auth_url: None,
            tenant: None,
            client_id: "id".into(),
            client_secret: "top-secret".into(),
            scope: "all".into(),
            rate_limit: None,
            trust_certificate: None,
        }
    }

    #[test]
    fn refuses_bad_settings_clearly() {
        let error =
            HaloClient::new(&connection("acme.halopsa.com"), ClientOptions::default()).unwrap_err();
        assert!(
            error.to_string().contains("base_url `acme.halopsa.com`"),
            "{error}"
        );
        assert!(check_entity("Users/../Client").is_err());
        assert!(check_entity("Users").is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let client =
            HaloClient::new(&connection("http://127.0.0.1:9/"), ClientOptions::default()).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
        let debug = format!("{client:?}");
        assert!(!debug.contains("top-secret"), "{debug}");
    }

    #[test]
    fn batch_size_from_project_defaults() {
        assert_eq!(
            ClientOptions::default()
                .with_batch_size(Some(200))
                .batch_size,
            200
        );
        assert_eq!(
            ClientOptions::default().with_batch_size(None).batch_size,
            50
        );
    }
}
