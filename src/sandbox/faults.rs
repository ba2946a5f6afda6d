//! Fault injection for the sandbox servers, from a YAML file: per route (a path glob and
//! optional methods), a probability and a kind — added latency, a 500/503, a request-limit or
//! row-lock error, an early session expiry, or a connection dropped mid-response. Decisions are
//! reproducible: they hash the seed, the rule and how many requests the rule has seen.
//!
//! ```yaml
//! seed: 7
//! faults:
//!   - { route: "/services/data/*/query*", kind: latency, latency_ms: 50 }
//!   - { route: "/services/data/*/composite/*", methods: [POST, PATCH], probability: 0.1, kind: unable_to_lock_row }
//!   - { route: "*", probability: 0.05, kind: status, status: 503 }
//! ```

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Wait `latency_ms` before answering normally.
    Latency,
    /// Answer `status` (500 or 503) with the API's own error body.
    Status,
    /// Answer as if the daily API limit were spent.
    RequestLimit,
    /// Refuse a write because a row is locked (reads pass).
    UnableToLockRow,
    /// End the caller's session now: 401 and the token stops working.
    SessionExpired,
    /// Send half of the response, then close the connection.
    DropConnection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Path glob: `*` matches any run of characters.
    pub route: String,
    /// HTTP methods the rule applies to (default: all).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Share of matching requests that get the fault (default 1).
    #[serde(default = "always")]
    pub probability: f64,
    pub kind: FaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

fn always() -> f64 {
    1.0
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
}

impl FaultPlan {
    /// Reads a fault file, with the file and position in any error.
    pub fn load(path: &Path) -> Result<FaultPlan, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let plan: FaultPlan =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, rule) in plan.faults.iter().enumerate() {
            if !(0.0..=1.0).contains(&rule.probability) {
                return Err(format!(
                    "{}: faults[{i}].probability must be between 0 and 1",
                    path.display()
                ));
            }
            if rule.kind == FaultKind::Latency && rule.latency_ms.is_none() {
                return Err(format!(
                    "{}: faults[{i}] is a latency fault without latency_ms",
                    path.display()
                ));
            }
            if rule.kind == FaultKind::Status && !matches!(rule.status, Some(500 | 502 | 503 | 504))
            {
                return Err(format!(
                    "{}: faults[{i}] needs status: 500, 502, 503 or 504",
                    path.display()
                ));
            }
        }
        Ok(plan)
    }
}

/// How an API words its errors, so injected faults look like the real thing.
pub trait ErrorStyle: Send + Sync {
    fn error(&self, kind: FaultKind, status: StatusCode) -> Response;
    /// Ends the session of the request's bearer token, if the API has sessions.
    fn expire_session(&self, request: &Request);
}

/// The plan with its per-rule counters, shared by the middleware.
pub struct Injector {
    plan: FaultPlan,
    seen: Vec<AtomicU64>,
    style: Box<dyn ErrorStyle>,
}

impl Injector {
    pub fn new(plan: FaultPlan, style: Box<dyn ErrorStyle>) -> Arc<Injector> {
        let seen = plan.faults.iter().map(|_| AtomicU64::new(0)).collect();
        Arc::new(Injector { plan, seen, style })
    }

    /// The first rule that fires for this request, if any.
    fn pick(&self, method: &str, path: &str) -> Option<&FaultRule> {
        for (i, rule) in self.plan.faults.iter().enumerate() {
            let method_ok = rule.methods.is_empty()
                || rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
            if !method_ok || !glob(&rule.route, path) {
                continue;
            }
            let n = self.seen[i].fetch_add(1, Ordering::Relaxed);
            let mut hasher = DefaultHasher::new();
            (self.plan.seed, i, n).hash(&mut hasher);
            let roll = (hasher.finish() % 1_000_000) as f64 / 1_000_000.0;
            if roll < rule.probability {
                return Some(rule);
            }
        }
        None
    }
}

/// `*` matches any run of characters (including `/`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The middleware: applies the first firing rule, or passes the request on.
pub async fn inject(
    State(injector): State<Arc<Injector>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let Some(rule) = injector.pick(&method, &path).cloned() else {
        return next.run(request).await;
    };
    match rule.kind {
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(rule.latency_ms.unwrap_or(0))).await;
            next.run(request).await
        }
        FaultKind::Status => {
            let status = StatusCode::from_u16(rule.status.unwrap_or(503))
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            injector.style.error(FaultKind::Status, status)
        }
        FaultKind::RequestLimit => injector
            .style
            .error(FaultKind::RequestLimit, StatusCode::FORBIDDEN),
        FaultKind::UnableToLockRow if method != "GET" => injector
            .style
            .error(FaultKind::UnableToLockRow, StatusCode::BAD_REQUEST),
        FaultKind::UnableToLockRow => next.run(request).await,
        FaultKind::SessionExpired => {
            injector.style.expire_session(&request);
            injector
                .style
                .error(FaultKind::SessionExpired, StatusCode::UNAUTHORIZED)
        }
        FaultKind::DropConnection => {
            let response = next.run(request).await;
            let (mut parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fault injected: connection dropped",
                )),
            ];
            if let Ok(length) = HeaderValue::from_str(&bytes.len().to_string()) {
                parts.headers.insert(header::CONTENT_LENGTH, length);
            }
            let body = Body::from_stream(futures_util::stream::iter(chunks));
            (parts, body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("*", "/anything"));
        assert!(glob(
            "/services/data/*/query*",
            "/services/data/v62.0/query/01g-2000"
        ));
        assert!(!glob(
            "/services/data/*/query*",
            "/services/data/v62.0/sobjects"
        ));
        assert!(glob("/api/*", "/api/Client"));
        assert!(!glob("/api", "/api/Client"));
    }
}
