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

/// Runs `work` for an authenticated call (with the caller's user Id) and stamps the response
/// with the API usage.
pub fn api_call(
    shared: &Shared,
    headers: &HeaderMap,
    work: impl FnOnce(&mut State, &str) -> Response,
) -> Response {
    let mut state = lock(shared);
    let user = match authenticate(&mut state, headers) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let response = work(&mut state, &user);
    let (used, limit) = (state.api_used, state.config.daily_limit);
    with_limit_info(response, used, limit)
}

/// `api_call` under `/services/data/vXX.X/`: an unknown version is a 404, else `work` also gets
/// the version number.
pub fn versioned_call(
    shared: &Shared,
    headers: &HeaderMap,
    segment: &str,
    work: impl FnOnce(&mut State, &str, &str) -> Response,
) -> Response {
    let Some(v) = version(segment) else {
        return not_found();
    };
    api_call(shared, headers, |state, user| work(state, user, &v))
}

/// A JSON request body, or Salesforce's parser error.
pub fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("Unexpected character in the request body: {e}"),
        )
    })
}

pub fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// Injected faults worded as Salesforce words them.
pub struct SalesforceFaults(pub Shared);

impl crate::sandbox::faults::ErrorStyle for SalesforceFaults {
    fn error(&self, kind: crate::sandbox::faults::FaultKind, status: StatusCode) -> Response {
        use crate::sandbox::faults::FaultKind;
        match kind {
            FaultKind::RequestLimit => error(status, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
            FaultKind::UnableToLockRow => json_response(
                status,
                &json!([{"message": "unable to obtain exclusive access to this record or 1 records", "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}]),
            ),
            FaultKind::SessionExpired => error(status, "INVALID_SESSION_ID", "Session expired or invalid"),
            FaultKind::QueryTimeout => error(status, "QUERY_TIMEOUT", "Your query request was running for too long."),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => error(status, "SERVER_UNAVAILABLE", "Server temporarily unavailable"),
            _ => error(
                status,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 1742913655-28311 (-1432789012)",
            ),
        }
    }

    fn expire_session(&self, request: &axum::extract::Request) {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        if let Some(token) = token {
            lock(&self.0).sessions.remove(&token);
        }
    }
}
