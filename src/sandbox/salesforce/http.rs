//! Response helpers shared by the org's endpoints: Salesforce's JSON content type, error bodies,
//! the `Sforce-Limit-Info` header, and the bearer-token check that every API call passes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::state::State;

pub type Shared = Arc<Mutex<State>>;

/// Locks the state; a handler that panicked while holding it leaves the data as it was.
pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub const JSON_TYPE: &str = "application/json;charset=UTF-8";

/// A JSON response with Salesforce's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    response
}

/// `[{"message": …, "errorCode": …}]`, the REST error format.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!([{"message": message, "errorCode": code}]))
}

/// Adds `Sforce-Limit-Info: api-usage=n/limit`.
pub fn with_limit_info(mut response: Response, used: u64, limit: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={used}/{limit}")) {
        response.headers_mut().insert("Sforce-Limit-Info", value);
    }
    response
}

/// The user of a valid bearer token, counting the call against the daily limit; or the 401 /
/// 403 response Salesforce gives.
pub fn authenticate(state: &mut State, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim);
    let session = token.and_then(|t| state.sessions.get(t)).cloned();
    let Some(session) = session.filter(|s| s.expires > Instant::now()) else {
        if let Some(token) = token {
            state.sessions.remove(token);
        }
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
    };
    state.api_used += 1;
    if state.api_used > state.config.daily_limit {
        let response = error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
        return Err(with_limit_info(
            response,
            state.api_used,
            state.config.daily_limit,
        ));
    }
    Ok(session.user_id)
}

/// The API version in a path segment such as `v62.0`, if this org serves it.
pub fn version(segment: &str) -> Option<String> {
    let number = segment.strip_prefix('v')?;
    let value: f64 = number.parse().ok()?;
    ((20.0..=66.0).contains(&value) && number.contains('.')).then(|| number.to_string())
}

pub fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}
