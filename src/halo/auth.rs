//! Signing in to Halo with an API application's client credentials: `POST <auth_url>/token`
//! with a form, the tenant (hosted Halo) both in the query string, where Halo's own clients put
//! it, and in the form, where others do. The token is cached and renewed shortly before it
//! expires; a 401 from the API drops it so the next call signs in again. The client secret and
//! the tokens never leave this file except as the `Authorization` header.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::Agent;

use super::backoff::RetryPolicy;
use super::error::{halo_message, HaloError};
use super::service::form_encode;

/// The token endpoint and what to post to it.
pub struct TokenSource {
    token_url: String,
    form: String,
    cached: Mutex<Option<Token>>,
    fetches: AtomicU64,
}

struct Token {
    bearer: String,
    renew_at: Instant,
}

/// Assumed when Halo's answer has no `expires_in`; a 401 renews earlier if it was shorter.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);

impl TokenSource {
    pub fn new(
        auth_url: &str,
        tenant: Option<&str>,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> TokenSource {
        crate::logging::redact::register(client_secret);
        let mut token_url = format!("{}/token", auth_url.trim_end_matches('/'));
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", scope),
        ];
        if let Some(tenant) = tenant.filter(|tenant| !tenant.is_empty()) {
            token_url.push_str(&format!("?{}", form_encode(&[("tenant", tenant)])));
            form.push(("tenant", tenant));
        }
        TokenSource {
            token_url,
            form: form_encode(&form),
            cached: Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times a token was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The `Authorization` header value, signing in first when there is no live token.
    pub fn bearer(&self, agent: &Agent, retry: &RetryPolicy) -> Result<String, HaloError> {
        // Held across the fetch so that threads sharing a client sign in once, not each.
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(token.bearer.clone());
            }
        }
        let token = self.fetch(agent, retry)?;
        let bearer = token.bearer.clone();
        *cached = Some(token);
        Ok(bearer)
    }

    /// Drops the token the API just refused, unless another call has already replaced it.
    pub fn refused(&self, bearer: &str) {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cached.as_ref().is_some_and(|token| token.bearer == bearer) {
            *cached = None;
        }
    }

    fn fetch(&self, agent: &Agent, retry: &RetryPolicy) -> Result<Token, HaloError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.fetches.fetch_add(1, Ordering::Relaxed);
            let sent = agent
                .post(&self.token_url)
                .content_type("application/x-www-form-urlencoded")
                .send(self.form.as_bytes());
            // Asking for a token twice is harmless, so every passing failure is retried.
            let (wait, last) = match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_string);
                    let body = response.body_mut().read_to_string().unwrap_or_default();
                    match status {
                        200..=299 => return self.read_token(&body, status),
                        429 => (
                            retry.after_rate_limit(retry_after.as_deref(), attempt),
                            (Some(status), halo_message(&body)),
                        ),
                        500..=599 => (retry.backoff(attempt), (Some(status), halo_message(&body))),
                        _ => return Err(self.refusal(Some(status), halo_message(&body))),
                    }
                }
                // A refused certificate stays refused: asking again cannot help.
                Err(error) if crate::http_agent::certificate_refusal(&error).is_some() => {
                    let message = crate::http_agent::certificate_refusal(&error);
                    return Err(self.refusal(None, message.unwrap_or_default()));
                }
                Err(
                    error @ (ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::Protocol(_)),
                ) => (
                    retry.backoff(attempt),
                    (None, format!("cannot reach it: {error}")),
                ),
                // A bad URL, an https URL without TLS: asking again cannot help.
                Err(error) => return Err(self.refusal(None, error.to_string())),
            };
            if attempt >= retry.max_attempts {
                let (status, message) = last;
                return Err(self.refusal(
                    status,
                    format!("{message} (gave up after {attempt} attempts)"),
                ));
            }
            tracing::warn!(
                status = last.0,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Halo sign-in failed; trying again"
            );
            std::thread::sleep(wait);
        }
    }

    fn read_token(&self, body: &str, status: u16) -> Result<Token, HaloError> {
        let value: Value = serde_json::from_str(body)
            .map_err(|_| self.refusal(Some(status), "the token answer is not JSON".to_string()))?;
        let access_token = value
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                self.refusal(Some(status), "the answer has no access_token".to_string())
            })?;
        crate::logging::redact::register(access_token);
        let lifetime = value
            .get("expires_in")
            .and_then(|seconds| {
                seconds
                    .as_f64()
                    .or_else(|| seconds.as_str().and_then(|text| text.parse().ok()))
            })
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(ASSUMED_LIFETIME);
        tracing::info!(
            fetches = self.fetches(),
            lifetime_s = lifetime.as_secs(),
            "Halo token obtained"
        );
        Ok(Token {
            bearer: format!("Bearer {access_token}"),
            renew_at: Instant::now() + lifetime - renewal_margin(lifetime),
        })
    }

    fn refusal(&self, status: Option<u16>, message: String) -> HaloError {
        HaloError::Auth {
            token_url: self.token_url.clone(),
            status,
            message,
        }
    }
}

/// How long before expiry a token is replaced: a tenth of its life, at most a minute, so a call
/// never leaves with a token that dies in flight and short test lifetimes still get used.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

impl fmt::Debug for TokenSource {
    // The form holds the client secret and the cache holds the token: neither is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_goes_in_query_and_form() {
        let source = TokenSource::new(
            "https://auth.example.com/",
            Some("acme co"),
            "id",
            "s&cret",
            "all",
        );
        assert_eq!(
            source.token_url,
            "https://auth.example.com/token?tenant=acme+co"
        );
        assert_eq!(
            source.form,
            "grant_type=client_credentials&client_id=id&client_secret=s%26cret&scope=all&tenant=acme+co"
        );
        let debug = format!("{source:?}");
        assert!(!debug.contains("cret"), "{debug}");
    }

    #[test]
    fn no_tenant_no_query() {
        let source = TokenSource::new("http://h/auth", None, "id", "secret", "all");
        assert_eq!(source.token_url, "http://h/auth/token");
        assert!(!source.form.contains("tenant"));
    }

    #[test]
    fn reads_the_token_answer() {
        let source = TokenSource::new("http://h/auth", None, "id", "secret", "all");
        let token = source
            .read_token(
                r#"{"scope":"all","token_type":"Bearer","access_token":"abc","expires_in":3600}"#,
                200,
            )
            .unwrap();
        assert_eq!(token.bearer, "Bearer abc");
        assert!(token.renew_at > Instant::now() + Duration::from_secs(3500));
        let Err(missing) = source.read_token(r#"{"token_type":"Bearer"}"#, 200) else {
            panic!("a token answer without access_token was accepted");
        };
        assert!(missing.to_string().contains("no access_token"), "{missing}");
    }

    #[test]
    fn renewal_margin_scales_with_lifetime() {
        assert_eq!(
            renewal_margin(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
    }
}
