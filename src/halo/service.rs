//! The request service every Halo call goes through: it waits for the rate limiter, signs the
//! request with the bearer token, counts the call, and deals with the answers that are not the
//! caller's business — a 401 renews the token and replays the call (a fresh token refused
//! again counts as an attempt), a 429 waits as long as `Retry-After` says, 5xx answers and
//! lost connections back off with jitter and try again.
//! A 429 holds back every thread sharing the client, not only the one refused: Halo counts
//! refused calls too, so hammering it during the wait only makes the wait longer.
//!
//! A call whose answer was lost is only resent when resending cannot do harm: reads, deletes
//! and updates. A create is not, because Halo may already have saved it and a second POST would
//! make a duplicate; the caller gets [`HaloError::Ambiguous`] and the engine's next run matches
//! the record instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::{Method, Request, Response};
use ureq::{Agent, Body, Timeout};

use super::auth::TokenSource;
use super::backoff::RetryPolicy;
use super::error::{halo_message, HaloError};
use super::limiter::RateLimiter;

/// The largest JSON answer read (a page of 1,000 wide tickets is a few MB).
const JSON_LIMIT: u64 = 512 * 1024 * 1024;

/// One API call, described before it is sent so that it can be sent again.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// The entity, as the caller named it (for errors).
    pub entity: String,
    /// Path under `/api/`, e.g. `Users` or `Users/12`.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Vec<u8>>,
    /// Whether the call may be resent when its answer was lost (see the module docs).
    pub replay_safe: bool,
    /// The `Accept` header: JSON, except for attachment bytes.
    pub accept: &'static str,
}

impl Call {
    pub fn get(entity: &str, path: String, query: Vec<(String, String)>) -> Call {
        Call {
            method: Method::GET,
            entity: entity.to_string(),
            path,
            query,
            body: None,
            replay_safe: true,
            accept: "application/json",
        }
    }

    /// A POST of a JSON body to `/api/<entity>`.
    pub fn post(entity: &str, body: Vec<u8>, replay_safe: bool) -> Call {
        Call {
            method: Method::POST,
            body: Some(body),
            replay_safe,
            ..Call::get(entity, entity.to_string(), Vec::new())
        }
    }

    /// A DELETE, which Halo may safely receive twice.
    pub fn delete(entity: &str, path: String) -> Call {
        Call {
            method: Method::DELETE,
            ..Call::get(entity, path, Vec::new())
        }
    }
}

/// An error answer that the caller may want to read itself (a write's 400 names the failing
/// elements).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    pub body: String,
}

impl Rejection {
    pub fn into_error(self, entity: &str) -> HaloError {
        HaloError::Api {
            entity: entity.to_string(),
            record: None,
            status: self.status,
            message: halo_message(&self.body),
        }
    }
}

/// Why reading an answer failed: a lost connection may be tried again (when the call is
/// replay-safe); anything else is final.
pub enum ReadFailure {
    Lost(String),
    Final(HaloError),
}

/// The shared machinery of one client.
#[derive(Debug)]
pub struct Service {
    agent: Agent,
    api_base: String,
    tokens: TokenSource,
    limiter: Option<RateLimiter>,
    /// No call leaves before this, set by a 429's wait.
    resume_at: Mutex<Option<Instant>>,
    retry: RetryPolicy,
    api_calls: AtomicU64,
}

impl Service {
    pub fn new(
        api_base: String,
        tokens: TokenSource,
        limiter: Option<RateLimiter>,
        retry: RetryPolicy,
        timeout: Duration,
        trust_certificate: Option<&str>,
    ) -> Result<Service, HaloError> {
        let agent: Agent =
            crate::http_agent::config(trust_certificate, "connections.halo.trust_certificate")
                .map_err(HaloError::Settings)?
                // Error statuses are answers to read (Halo's message, Retry-After), not failures.
                .http_status_as_error(false)
                .timeout_connect(Some(timeout))
                .timeout_recv_response(Some(timeout))
                .timeout_per_read(Some(timeout))
                .user_agent(concat!("etl/", env!("CARGO_PKG_VERSION")))
                .build()
                .into();
        Ok(Service {
            agent,
            api_base,
            tokens,
            limiter,
            resume_at: Mutex::new(None),
            retry,
            api_calls: AtomicU64::new(0),
        })
    }

    /// Resource-server calls sent so far, retries and replays included.
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    /// Token requests sent so far.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetches()
    }

    /// Sends a call and reads a JSON answer (`Value::Null` for an empty body); any error status
    /// becomes a [`HaloError::Api`] with Halo's message.
    pub fn json(&self, call: &Call) -> Result<Value, HaloError> {
        match self.json_or_rejection(call)? {
            Ok(value) => Ok(value),
            Err(rejection) => Err(rejection.into_error(&call.entity)),
        }
    }

    /// Like [`Service::json`], but hands 4xx answers back for the caller to read.
    pub fn json_or_rejection(&self, call: &Call) -> Result<Result<Value, Rejection>, HaloError> {
        let entity = call.entity.clone();
        self.exchange(call, |mut response| {
            let text = response
                .body_mut()
                .with_config()
                .limit(JSON_LIMIT)
                .read_to_string()
                .map_err(|error| match error {
                    ureq::Error::BodyExceedsLimit(_) => ReadFailure::Final(HaloError::Unexpected {
                        entity: entity.clone(),
                        message: format!("the answer is larger than {JSON_LIMIT} bytes"),
                    }),
                    other => ReadFailure::Lost(other.to_string()),
                })?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(&text).map_err(|error| {
                ReadFailure::Final(HaloError::Unexpected {
                    entity: entity.clone(),
                    message: format!("not JSON ({error})"),
                })
            })
        })
    }

    /// Sends a call until it gets an answer worth giving back: a success read by `read`, or an
    /// error status other than 401 (after the renewals), 429 and 5xx (after the retries).
    pub fn exchange<T>(
        &self,
        call: &Call,
        mut read: impl FnMut(Response<Body>) -> Result<T, ReadFailure>,
    ) -> Result<Result<T, Rejection>, HaloError> {
        let url = self.url(call);
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            self.wait_for_resume();
            if let Some(limiter) = &self.limiter {
                limiter.acquire();
            }
            let bearer = self.tokens.bearer(&self.agent, &self.retry)?;
            self.api_calls.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let wait = match self.send_once(call, &url, &bearer) {
                Ok(response) => {
                    let status = response.status().as_u16();
                    tracing::debug!(
                        method = %call.method,
                        path = %call.path,
                        status,
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "Halo request"
                    );
                    match status {
                        200..=299 => match read(response) {
                            Ok(value) => return Ok(Ok(value)),
                            Err(ReadFailure::Final(error)) => return Err(error),
                            Err(ReadFailure::Lost(message)) => {
                                self.may_resend(call, &url, attempt, &message)?;
                                tracing::warn!(method = %call.method, path = %call.path, attempt, error = %message, "Halo answer lost; trying again");
                                self.retry.backoff(attempt)
                            }
                        },
                        401 if !renewed || attempt < self.retry.max_attempts => {
                            // Expired or revoked: sign in again and replay at once. The first
                            // renewal is free; a fresh token refused again (its session ended
                            // again) counts as an attempt, so only a token refused on every
                            // attempt stops the run as a permissions problem.
                            tracing::info!(path = %call.path, attempt, "Halo refused the token; signing in again");
                            self.tokens.refused(&bearer);
                            if !renewed {
                                attempt -= 1;
                            }
                            renewed = true;
                            continue;
                        }
                        401 => {
                            let message = halo_message(&read_text(response));
                            return Err(HaloError::Api {
                                entity: call.entity.clone(),
                                record: None,
                                status,
                                message: format!(
                                    "the API refused a freshly issued token ({message}); check the application's permissions"
                                ),
                            });
                        }
                        429 => {
                            let retry_after = header(&response, "retry-after");
                            let message = read_text(response);
                            if attempt >= self.retry.max_attempts {
                                return Err(HaloError::RateLimited {
                                    entity: call.entity.clone(),
                                    attempts: attempt,
                                    message: halo_message(&message),
                                });
                            }
                            let wait = self.retry.after_rate_limit(retry_after.as_deref(), attempt);
                            tracing::warn!(
                                method = %call.method,
                                path = %call.path,
                                attempt,
                                retry_after = retry_after.as_deref().unwrap_or(""),
                                wait_ms = wait.as_millis() as u64,
                                "Halo rate limit reached (429); pausing every call of this client"
                            );
                            self.hold_back(wait);
                            wait
                        }
                        500..=599 => {
                            let message = halo_message(&read_text(response));
                            // 502/503/504 come from before Halo's code ran; a 500 may come after
                            // it saved, so only replay-safe calls are resent.
                            let unprocessed = matches!(status, 502..=504);
                            if !(unprocessed || call.replay_safe) {
                                return Err(HaloError::Api {
                                    entity: call.entity.clone(),
                                    record: None,
                                    status,
                                    message,
                                });
                            }
                            if attempt >= self.retry.max_attempts {
                                return Err(HaloError::Api {
                                    entity: call.entity.clone(),
                                    record: None,
                                    status,
                                    message: format!("{message} (after {attempt} attempts)"),
                                });
                            }
                            let wait = self.retry.backoff(attempt);
                            tracing::warn!(
                                method = %call.method,
                                path = %call.path,
                                status,
                                attempt,
                                wait_ms = wait.as_millis() as u64,
                                "Halo server error; trying again"
                            );
                            wait
                        }
                        _ => {
                            return Ok(Err(Rejection {
                                status,
                                body: read_text(response),
                            }))
                        }
                    }
                }
                Err(error) => {
                    // A refused certificate stays refused: trying again cannot help.
                    if let Some(message) = crate::http_agent::certificate_refusal(&error) {
                        return Err(self.transport(call, &url, message));
                    }
                    let message = error.to_string();
                    match error {
                        // Nothing was sent: always safe to try again.
                        ureq::Error::ConnectionFailed
                        | ureq::Error::HostNotFound
                        | ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => {
                            if attempt >= self.retry.max_attempts {
                                return Err(self.transport(call, &url, message));
                            }
                        }
                        // Sent, perhaps received: the answer was lost.
                        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::Protocol(_) => {
                            self.may_resend(call, &url, attempt, &message)?
                        }
                        // A bad URL, an https URL without TLS: trying again cannot help.
                        _ => return Err(self.transport(call, &url, message)),
                    }
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(
                        method = %call.method,
                        path = %call.path,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %message,
                        "Halo call failed in transit; trying again"
                    );
                    wait
                }
            };
            std::thread::sleep(wait);
        }
    }

    /// Sleeps while a 429 holds the client back.
    fn wait_for_resume(&self) {
        let resume_at = *self
            .resume_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(resume_at) = resume_at {
            let now = Instant::now();
            if resume_at > now {
                tracing::debug!(
                    wait_ms = (resume_at - now).as_millis() as u64,
                    "waiting out Halo's rate limit"
                );
                std::thread::sleep(resume_at - now);
            }
        }
    }

    /// Holds every call of this client back for `wait` (or longer, if already held).
    fn hold_back(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut resume_at = self
            .resume_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if resume_at.is_none_or(|current| current < until) {
            *resume_at = Some(until);
        }
    }

    /// Whether a call whose answer was lost may go again; the error to give back if not.
    fn may_resend(
        &self,
        call: &Call,
        url: &str,
        attempt: u32,
        message: &str,
    ) -> Result<(), HaloError> {
        if !call.replay_safe {
            return Err(HaloError::Ambiguous {
                entity: call.entity.clone(),
                message: message.to_string(),
            });
        }
        if attempt >= self.retry.max_attempts {
            return Err(self.transport(call, url, message.to_string()));
        }
        Ok(())
    }

    fn transport(&self, call: &Call, url: &str, message: String) -> HaloError {
        HaloError::Transport {
            entity: call.entity.clone(),
            url: url.to_string(),
            message,
        }
    }

    fn url(&self, call: &Call) -> String {
        let mut url = format!("{}/{}", self.api_base, call.path);
        if !call.query.is_empty() {
            let pairs: Vec<(&str, &str)> = call
                .query
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str()))
                .collect();
            url.push('?');
            url.push_str(&form_encode(&pairs));
        }
        url
    }

    fn send_once(
        &self,
        call: &Call,
        url: &str,
        bearer: &str,
    ) -> Result<Response<Body>, ureq::Error> {
        let request = Request::builder()
            .method(call.method.clone())
            .uri(url)
            .header("Authorization", bearer)
            .header("Accept", call.accept);
        match &call.body {
            Some(body) => {
                let request = request
                    .header("Content-Type", "application/json")
                    .body(body.as_slice())?;
                self.agent.run(request)
            }
            None => self.agent.run(request.body(())?),
        }
    }
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// An error answer's text; a body that cannot be read is read as empty (the status still
/// speaks).
fn read_text(mut response: Response<Body>) -> String {
    response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default()
}

/// `application/x-www-form-urlencoded`, for token forms and query strings.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode_component(key), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[
                ("lastupdatefromdate", "2026-08-01T06:30:00"),
                ("search", "a b&c")
            ]),
            "lastupdatefromdate=2026-08-01T06%3A30%3A00&search=a+b%26c"
        );
        assert_eq!(form_encode(&[("name", "Zoë")]), "name=Zo%C3%AB");
    }
}
