//! Response helpers shared by the Halo endpoints: JSON bodies, ASP.NET model-state style 400s
//! keyed by element and field, the bearer check every `/api` call passes, the rolling-window
//! rate limit with Halo's own 429 wording, and how injected faults look on this API.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::state::{lock, Shared, State};
use crate::sandbox::faults::{ErrorStyle, FaultKind};

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A 400 keyed by model-state paths (`{"[1].site_id": "…"}`), the shape n8n's Halo node
/// parses. Which shape real Halo uses is uncertain in the reference; this one names the
/// element and field, which clients need to map a failure to its record.
pub fn bad_request(errors: &[(String, String)]) -> Response {
    let body: Map<String, Value> = errors
        .iter()
        .map(|(key, message)| (key.clone(), Value::String(message.clone())))
        .collect();
    json_response(StatusCode::BAD_REQUEST, &Value::Object(body))
}

/// 404 for a record or route that does not exist (wording inferred).
pub fn not_found(message: &str) -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({ "Message": message }))
}

/// 401 as ASP.NET's bearer handler gives it: no body, a `WWW-Authenticate` challenge.
pub fn unauthorized() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

/// Halo's 429 text, from real reports ("Rate Limit Reached - 300 Requests per rolling 5 minute
/// window"). `Retry-After` is sent; whether Halo sends it is uncertain, so clients must cope
/// without it too.
pub fn rate_limited(requests: u32, window_secs: u64, retry_after_secs: u64) -> Response {
    let window = if window_secs.is_multiple_of(60) {
        format!("{} minute", window_secs / 60)
    } else {
        format!("{window_secs} second")
    };
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        format!("Rate Limit Reached - {requests} Requests per rolling {window} window"),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Counts the request against the rate limit and checks its bearer token; the 429 or 401 to
/// answer otherwise.
pub fn admit(state: &mut State, headers: &HeaderMap) -> Result<(), Response> {
    let now = Instant::now();
    if let Some(limit) = state.config.rate_limit {
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.window)
        {
            state.recent.pop_front();
        }
        if state.recent.len() >= limit.requests as usize {
            let oldest = state.recent.front().copied().unwrap_or(now);
            let wait = limit.window.saturating_sub(now.duration_since(oldest));
            return Err(rate_limited(
                limit.requests,
                limit.window.as_secs(),
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            ));
        }
        state.recent.push_back(now);
    }
    state.requests += 1;
    let token = bearer(headers);
    let valid = token
        .and_then(|t| state.tokens.get(t))
        .is_some_and(|expires| *expires > now);
    if !valid {
        if let Some(token) = token {
            state.tokens.remove(token);
        }
        return Err(unauthorized());
    }
    Ok(())
}

/// How faults look on the Halo API.
pub struct HaloFaults(pub Shared);

impl ErrorStyle for HaloFaults {
    fn error(&self, kind: FaultKind, status: StatusCode) -> Response {
        match kind {
            FaultKind::RequestLimit => {
                let limit = lock(&self.0)
                    .config
                    .rate_limit
                    .unwrap_or(super::state::RateLimit::HOSTED);
                rate_limited(limit.requests, limit.window.as_secs(), 1)
            }
            FaultKind::SessionExpired => unauthorized(),
            // Halo has no row-lock error of its own; a deadlock surfaces as a server error.
            FaultKind::UnableToLockRow => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"ClassName": "System.Data.SqlClient.SqlException", "Message": "Transaction was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction."}),
            ),
            _ => json_response(
                status,
                &json!({"ClassName": "System.Exception", "Message": "An error has occurred."}),
            ),
        }
    }

    fn expire_session(&self, request: &Request) {
        if let Some(token) = bearer(request.headers()) {
            lock(&self.0).tokens.remove(token);
        }
    }
}
