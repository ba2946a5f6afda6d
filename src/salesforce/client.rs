//! The request service every Salesforce call goes through. It adds the bearer token, reads
//! `Sforce-Limit-Info` after each answer, refreshes the session once and replays the call on a
//! 401 `INVALID_SESSION_ID`, retries with exponential backoff and jitter on 5xx,
//! `REQUEST_LIMIT_EXCEEDED`, `UNABLE_TO_LOCK_ROW` and broken connections, turns Salesforce's
//! error bodies into `Error::Api` with its own `errorCode` and message, counts the calls it
//! makes, and refuses to make one that would take the org past `max_api_usage_percent`.
//!
//! It is `Sync`: writers share one client across threads, and a refresh by one thread is seen
//! by the others (they notice the token changed and replay without refreshing again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::auth::flows;
use super::auth::{StoredTokens, TokenStore};
use super::{random, Error};
use crate::config::model::{SalesforceConnection, SalesforceFlow};

/// Knobs of the connector; `for_connection` takes the ones `etl.yaml` sets.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// First backoff; it doubles per try, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Whole-call timeout.
    pub timeout: Duration,
    /// `Sforce-Query-Options: batchSize` for REST queries (200–2,000; Salesforce's default 2,000).
    pub query_batch_size: Option<u32>,
    /// Queries expected to return at least this many records run as Bulk API 2.0 jobs.
    pub bulk_query_threshold: u64,
    /// Rows per Bulk query results page (`maxRecords`).
    pub bulk_page_size: u64,
    /// Writes of at least this many records go through Bulk API 2.0 ingest.
    pub bulk_write_threshold: usize,
    /// sObject Collections calls, and the attachment listings of a page of records, in flight
    /// at once.
    pub writes_in_flight: usize,
    /// How often to look at a Bulk job that is still running, at most.
    pub bulk_poll_max: Duration,
}

impl ClientOptions {
    /// The defaults, with what `etl.yaml` sets for this connection.
    pub fn for_connection(connection: &SalesforceConnection) -> ClientOptions {
        let defaults = ClientOptions::default();
        ClientOptions {
            bulk_query_threshold: connection
                .bulk_query_threshold
                .unwrap_or(defaults.bulk_query_threshold),
            bulk_write_threshold: connection
                .bulk_write_threshold
                .map_or(defaults.bulk_write_threshold, |n| n as usize),
            ..defaults
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            query_batch_size: None,
            bulk_query_threshold: 100_000,
            bulk_page_size: 50_000,
            bulk_write_threshold: 10_000,
            writes_in_flight: 4,
            bulk_poll_max: Duration::from_secs(10),
        }
    }
}

/// Daily API usage as the org last reported it (`Sforce-Limit-Info: api-usage=used/limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsage {
    /// Parses `api-usage=18/5000` out of a `Sforce-Limit-Info` header (other parts ignored).
    pub fn parse(header: &str) -> Option<ApiUsage> {
        let part = header
            .split([';', ','])
            .find_map(|p| p.trim().strip_prefix("api-usage="))?;
        let (used, limit) = part.split_once('/')?;
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            limit: limit.trim().parse().ok()?,
        })
    }

    pub fn percent(&self) -> f64 {
        if self.limit == 0 {
            return 100.0;
        }
        self.used as f64 * 100.0 / self.limit as f64
    }
}

/// When a failed call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The call changes nothing or changes it the same way twice (reads, updates, upserts).
    Always,
    /// Only when Salesforce surely did nothing: 503, `REQUEST_LIMIT_EXCEEDED`,
    /// `UNABLE_TO_LOCK_ROW`. A lost answer or a 500 comes back to the caller, who must find
    /// out what happened before sending again (a create).
    Refusals,
}

/// One call: a method, a URL (absolute, `/services/...` on the instance, or relative to
/// `/services/data/vXX.X/`), optional body and extra headers.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub body: Option<(&'static str, Vec<u8>)>,
    pub headers: Vec<(&'static str, String)>,
    pub retry: Retry,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Request {
        Request {
            method: "GET",
            url: url.into(),
            body: None,
            headers: Vec::new(),
            retry: Retry::Always,
        }
    }

    pub fn json(method: &'static str, url: impl Into<String>, body: &Value) -> Request {
        Request {
            method,
            url: url.into(),
            body: Some(("application/json", body.to_string().into_bytes())),
            headers: Vec::new(),
            retry: Retry::Always,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub fn retry(mut self, retry: Retry) -> Request {
        self.retry = retry;
        self
    }
}

/// A successful (2xx/3xx) answer, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, Error> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Protocol(format!("a {} answer is not JSON: {e}", self.status)))
    }
}

/// A successful answer whose body is read as it arrives.
pub struct Streamed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ureq::BodyReader<'static>,
}

impl Streamed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The live session: the token calls carry and where they go.
struct Session {
    access_token: String,
    instance_url: String,
    identity_url: String,
    /// The web-server flow's stored sign-in, kept in step with the file.
    stored: Option<StoredTokens>,
}

/// A signed-in connection to one org.
pub struct SalesforceClient {
    connection: SalesforceConnection,
    options: ClientOptions,
    agent: ureq::Agent,
    store: TokenStore,
    session: Mutex<Session>,
    usage: Mutex<Option<ApiUsage>>,
    calls: AtomicU64,
    retries: AtomicU64,
    refreshes: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SalesforceClient {
    /// Signs in as `etl.yaml` says: the stored web-server sign-in (no network yet), or a fresh
    /// token for a headless flow.
    pub fn connect(
        connection: &SalesforceConnection,
        store: TokenStore,
        options: ClientOptions,
    ) -> Result<SalesforceClient, Error> {
        // `private_key_file` is relative to etl.yaml: resolved once here, so every later
        // assertion (one per expired token) reads the same file.
        for secret in [&connection.client_secret, &connection.password]
            .into_iter()
            .flatten()
        {
            crate::logging::redact::register(secret);
        }
        let mut connection = connection.clone();
        if let (Some(root), Some(key)) =
            (store.project_root(), connection.private_key_file.as_deref())
        {
            let resolved = crate::salesforce::auth::project_path(root, key);
            connection.private_key_file = Some(resolved.to_string_lossy().into_owned());
        }
        let session = match connection.flow {
            SalesforceFlow::WebServer => {
                let stored = store.load()?.ok_or(Error::NotLoggedIn)?;
                if stored.login_url.trim_end_matches('/')
                    != connection.login_url.trim_end_matches('/')
                    || stored.client_id != connection.client_id
                {
                    return Err(Error::LoginExpired {
                        description:
                            "the stored sign-in was made with another login_url or client_id".into(),
                    });
                }
                Session {
                    access_token: stored.access_token.clone(),
                    instance_url: stored.instance_url.clone(),
                    identity_url: stored.identity_url.clone(),
                    stored: Some(stored),
                }
            }
            SalesforceFlow::ClientCredentials
            | SalesforceFlow::Password
            | SalesforceFlow::JwtBearer => {
                let granted = flows::headless(&connection)?;
                Session {
                    access_token: granted.access_token,
                    instance_url: granted.instance_url,
                    identity_url: granted.identity_url,
                    stored: None,
                }
            }
        };
        let agent = crate::http_agent::config(
            connection.trust_certificate.as_deref(),
            "connections.salesforce.trust_certificate",
        )
        .map_err(Error::Config)?
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(options.timeout))
        .build()
        .into();
        Ok(SalesforceClient {
            connection,
            options,
            agent,
            store,
            session: Mutex::new(session),
            usage: Mutex::new(None),
            calls: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    pub fn connection(&self) -> &SalesforceConnection {
        &self.connection
    }

    /// API calls this client has sent (tries included; each one counts against the org).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls that were tries again after a retryable failure.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Sessions refreshed after an `INVALID_SESSION_ID`.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The org's daily API usage after the last call.
    pub fn usage(&self) -> Option<ApiUsage> {
        *lock(&self.usage)
    }

    /// The stored sign-in (web-server flow), as it is now.
    pub fn stored_tokens(&self) -> Option<StoredTokens> {
        lock(&self.session).stored.clone()
    }

    pub fn instance_url(&self) -> String {
        lock(&self.session).instance_url.clone()
    }

    /// `/services/data/vXX.X`
    pub fn api_path(&self) -> String {
        format!("/services/data/v{}", self.connection.api_version)
    }

    fn resolve(&self, url: &str, instance: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else if url.starts_with('/') {
            format!("{}{url}", instance.trim_end_matches('/'))
        } else {
            format!(
                "{}{}/{url}",
                instance.trim_end_matches('/'),
                self.api_path()
            )
        }
    }

    /// `GET` returning JSON.
    pub fn get_json(&self, url: &str) -> Result<Value, Error> {
        self.send(Request::get(url))?.json()
    }

    /// Who the token belongs to (the identity URL's answer).
    pub fn identity(&self) -> Result<Value, Error> {
        let url = lock(&self.session).identity_url.clone();
        self.get_json(&url)
    }

    /// API calls a run is expected to use, for the plan: REST query pages (or, at the Bulk
    /// threshold, a job's create, a poll or two, the describe and its result pages), a
    /// `COUNT()` first, and writes at 200 records per Collections call (or one ingest job's
    /// create, upload, close, poll and two result reads). Retries and refreshes come on top.
    pub fn estimate_calls(&self, records_to_read: u64, records_to_write: u64) -> u64 {
        let options = &self.options;
        let read = if records_to_read >= options.bulk_query_threshold {
            4 + records_to_read.div_ceil(options.bulk_page_size.max(1))
        } else {
            let page = u64::from(options.query_batch_size.unwrap_or(2000).clamp(200, 2000));
            records_to_read.div_ceil(page).max(1)
        };
        let write = if records_to_write == 0 {
            0
        } else if records_to_write >= options.bulk_write_threshold as u64 {
            7
        } else {
            records_to_write.div_ceil(super::collections::CHUNK as u64)
        };
        1 + read + write
    }

    /// `GET /limits`: the org's limits (`DailyApiRequests`, …).
    pub fn limits(&self) -> Result<Value, Error> {
        self.get_json("limits")
    }

    /// Refuses a call that would take the org past `max_api_usage_percent`.
    fn check_budget(&self) -> Result<(), Error> {
        let Some(max) = self.connection.max_api_usage_percent else {
            return Ok(());
        };
        if let Some(usage) = self.usage() {
            // The next call counts too: stop when it would pass the line.
            if (usage.used + 1) * 100 > u64::from(max) * usage.limit {
                return Err(Error::QuotaReached {
                    used: usage.used,
                    limit: usage.limit,
                    max_percent: max,
                });
            }
        }
        Ok(())
    }

    /// Sleeps before try `attempt + 1`: exponential, with jitter; counts the retry.
    pub(crate) fn backoff(&self, attempt: u32) {
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = self
            .options
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.options.max_delay);
        let half = ceiling.as_millis() as u64 / 2;
        // "Equal jitter": never less than half the ceiling, so tries really do slow down, and
        // spread so that writers in flight do not come back in lockstep.
        let wait = half + random::below(half + 1);
        tracing::debug!(
            attempt,
            wait_ms = wait,
            "Salesforce call backing off before trying again"
        );
        self.retries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(wait));
    }

    /// Sends a call with the session's token, refreshing and retrying as the module says, and
    /// reads the whole answer.
    pub fn send(&self, request: Request) -> Result<Response, Error> {
        self.dispatch(&request, |status, headers, mut body| {
            let body = body
                .with_config()
                .limit(1 << 31)
                .read_to_vec()
                .map_err(|e| format!("the answer broke off: {e}"))?;
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }

    /// Like `send`, but hands over a successful answer's body unread, to be parsed as it
    /// arrives (Bulk result CSVs). A body that breaks off later is the caller's to handle.
    pub fn open(&self, request: Request) -> Result<Streamed, Error> {
        self.dispatch(&request, |status, headers, body| {
            Ok(Streamed {
                status,
                headers,
                body: body.into_reader(),
            })
        })
    }

    /// The loop behind `send` and `open`: budget, token, one HTTP exchange, usage, refresh on
    /// 401, retries. `accept` takes a successful (< 400) answer; its `Err` is a transport
    /// failure, retried like one.
    fn dispatch<T>(
        &self,
        request: &Request,
        mut accept: impl FnMut(u16, Vec<(String, String)>, ureq::Body) -> Result<T, String>,
    ) -> Result<T, Error> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            self.check_budget()?;
            let (token, instance) = {
                let session = lock(&self.session);
                (session.access_token.clone(), session.instance_url.clone())
            };
            let url = self.resolve(&request.url, &instance);
            attempt += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let path = crate::logging::path_of(&url);
            let transport_failure = |detail: String| {
                if request.retry == Retry::Always && attempt < self.options.max_attempts {
                    tracing::warn!(method = request.method, path, attempt, error = %detail, "Salesforce call failed in transit; trying again");
                    self.backoff(attempt);
                    Ok(())
                } else {
                    Err(Error::Connection {
                        url: url.clone(),
                        detail,
                    })
                }
            };
            let response = match self.execute(request, &url, &token) {
                Ok(response) => response,
                Err(error) => {
                    // A refused certificate stays refused: trying again cannot help.
                    if let Some(detail) = crate::http_agent::certificate_refusal(&error) {
                        return Err(Error::Connection { url, detail });
                    }
                    transport_failure(error.to_string())?;
                    continue;
                }
            };
            let status = response.status().as_u16();
            tracing::debug!(
                method = request.method,
                path,
                status,
                attempt,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Salesforce request"
            );
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            if let Some(usage) = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Sforce-Limit-Info"))
                .and_then(|(_, v)| ApiUsage::parse(v))
            {
                *lock(&self.usage) = Some(usage);
            }
            let mut body = response.into_body();
            if status < 400 {
                match accept(status, headers, body) {
                    Ok(value) => return Ok(value),
                    Err(detail) => {
                        transport_failure(detail)?;
                        continue;
                    }
                }
            }
            let text = match body.with_config().limit(1 << 20).read_to_vec() {
                Ok(text) => text,
                Err(e) => {
                    transport_failure(format!("the answer broke off: {e}"))?;
                    continue;
                }
            };
            let answer = Response {
                status,
                headers,
                body: text,
            };
            let error = api_error(&answer);
            if status == 401 && (!refreshed || attempt < self.options.max_attempts) {
                // The first refresh is free; a fresh token refused again (its session ended
                // at once) costs a try, so an org that refuses every token ends the loop.
                self.refresh(&token)?;
                if !refreshed {
                    attempt -= 1;
                }
                refreshed = true;
                continue;
            }
            if attempt < self.options.max_attempts && retryable(&error, request.retry) {
                tracing::warn!(
                    method = request.method,
                    path,
                    status,
                    attempt,
                    "Salesforce call failed; trying again"
                );
                self.backoff(attempt);
                continue;
            }
            return Err(error);
        }
    }

    /// One HTTP exchange up to the answer's headers; `Err` is a transport failure.
    fn execute(
        &self,
        request: &Request,
        url: &str,
        token: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept-Encoding", "identity");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match &request.body {
            Some((content_type, bytes)) => self.agent.run(
                builder
                    .header("Content-Type", *content_type)
                    .body(bytes.clone())?,
            ),
            None => self.agent.run(builder.body(())?),
        }
    }

    /// A new access token after `stale` was refused. Several threads may see the same 401:
    /// only the first refreshes, the others find a newer token and just replay.
    fn refresh(&self, stale: &str) -> Result<(), Error> {
        let mut session = lock(&self.session);
        if session.access_token != stale {
            return Ok(());
        }
        let granted = match self.connection.flow {
            SalesforceFlow::WebServer => {
                let refresh_token = session
                    .stored
                    .as_ref()
                    .and_then(|s| s.refresh_token.clone())
                    .ok_or_else(|| Error::LoginExpired {
                        description: "the stored sign-in has no refresh token".into(),
                    })?;
                flows::refresh(&self.connection, &refresh_token)?
            }
            _ => flows::headless(&self.connection)?,
        };
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            refreshes = self.refreshes.load(Ordering::Relaxed),
            "Salesforce session renewed after the API refused the token"
        );
        session.access_token = granted.access_token.clone();
        session.instance_url = granted.instance_url.clone();
        session.identity_url = granted.identity_url.clone();
        if let Some(stored) = session.stored.as_mut() {
            stored.access_token = granted.access_token;
            stored.instance_url = granted.instance_url;
            stored.issued_at_ms = granted.issued_at_ms;
            // Salesforce rotates refresh tokens only when the app asks it to.
            if let Some(rotated) = granted.refresh_token {
                stored.refresh_token = Some(rotated);
            }
            self.store.save(stored)?;
        }
        Ok(())
    }

    /// Revokes the stored refresh token (which ends its access tokens) and deletes the store.
    /// Returns whether there was a sign-in to end.
    pub fn logout(connection: &SalesforceConnection, store: &TokenStore) -> Result<bool, Error> {
        let Some(stored) = store.load()? else {
            return Ok(false);
        };
        let token = stored
            .refresh_token
            .as_deref()
            .unwrap_or(&stored.access_token);
        flows::revoke(connection, token)?;
        store.delete()?;
        Ok(true)
    }
}

/// Salesforce's error body as an `Error::Api`: the REST array `[{"errorCode","message",
/// "fields"}]`, an OAuth-style object, or (when neither) the status and body text.
pub fn api_error(answer: &Response) -> Error {
    let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let first = match &value {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| first.get(*k).and_then(Value::as_str))
            .map(str::to_string)
    };
    let code = text(&["errorCode", "statusCode", "error"])
        .unwrap_or_else(|| format!("HTTP_{}", answer.status));
    let message = text(&["message", "error_description"]).unwrap_or_else(|| {
        let body = String::from_utf8_lossy(&answer.body);
        body.chars().take(300).collect()
    });
    let fields = first
        .get("fields")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Error::Api {
        status: answer.status,
        code,
        message,
        fields,
    }
}

/// Whether an error answer is worth another try.
fn retryable(error: &Error, retry: Retry) -> bool {
    let Error::Api { status, code, .. } = error else {
        return false;
    };
    let refusal = *status == 503
        || matches!(
            code.as_str(),
            "REQUEST_LIMIT_EXCEEDED" | "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE"
        );
    match retry {
        Retry::Always => refusal || *status >= 500,
        Retry::Refusals => refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::ApiUsage;

    #[test]
    fn reads_limit_info() {
        assert_eq!(
            ApiUsage::parse("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                limit: 5000
            })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=25/5000; per-app-api-usage=17/250(appName=x)"),
            Some(ApiUsage {
                used: 25,
                limit: 5000
            })
        );
        assert_eq!(ApiUsage::parse("nothing"), None);
    }
}
