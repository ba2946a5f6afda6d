//! Fault injection for the sandbox servers, from a YAML file: per route (a path glob, optional
//! methods and an optional glob over the URL's query parameters, such as a SOQL `q`), a
//! probability and a kind — added latency, a 500/503, a request-limit or row-lock error, an
//! early session expiry, a query that ran too long, or a connection dropped mid-response.
//! Decisions are reproducible: they hash the seed, the rule and how many requests the rule has
//! seen.
//!
//! ```yaml
//! seed: 7
//! faults:
//!   - { route: "/services/data/*/query*", kind: latency, latency_ms: 50 }
//!   - { route: "/services/data/*/composite/*", methods: [POST, PATCH], probability: 0.1, kind: unable_to_lock_row }
//!   - { route: "*", probability: 0.05, kind: status, status: 503 }
//!   - { route: "/services/data/*/query", query: "*FROM ContentDocumentLink*", kind: query_timeout }
//! ```

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
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
    /// Refuse a query as one that ran too long (Salesforce's `QUERY_TIMEOUT`).
    QueryTimeout,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Path glob: `*` matches any run of characters.
    pub route: String,
    /// HTTP methods the rule applies to (default: all).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Glob that one of the URL's query parameters, decoded, must match (default: any URL).
    #[serde(default)]
    pub query: Option<String>,
    /// Share of matching requests that get the fault (default 1).
    #[serde(default = "always")]
    pub probability: f64,
    pub kind: FaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Matching requests that pass before the rule may fire (default 0).
    #[serde(default)]
    pub after: u64,
    /// At most this many faults from the rule (default: no limit).
    #[serde(default)]
    pub times: Option<u64>,
}

fn always() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule that gives every request on `route` the fault `kind`, as a file's rule naming
    /// only those two would.
    pub fn new(route: &str, kind: FaultKind) -> FaultRule {
        FaultRule {
            route: route.to_string(),
            methods: Vec::new(),
            query: None,
            probability: always(),
            kind,
            status: None,
            latency_ms: None,
            after: 0,
            times: None,
        }
    }
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
    /// Requests each rule matched, and faults it injected.
    seen: Vec<AtomicU64>,
    fired: Vec<AtomicU64>,
    style: Box<dyn ErrorStyle>,
}

impl Injector {
    pub fn new(plan: FaultPlan, style: Box<dyn ErrorStyle>) -> Arc<Injector> {
        let counters = || plan.faults.iter().map(|_| AtomicU64::new(0)).collect();
        let (seen, fired) = (counters(), counters());
        Arc::new(Injector {
            plan,
            seen,
            fired,
            style,
        })
    }

    /// The first rule that fires for this request, if any.
    fn pick(&self, method: &str, uri: &Uri) -> Option<&FaultRule> {
        for (i, rule) in self.plan.faults.iter().enumerate() {
            let method_ok = rule.methods.is_empty()
                || rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
            if !method_ok || !glob(&rule.route, uri.path()) {
                continue;
            }
            if let Some(pattern) = &rule.query {
                let params = Query::<Vec<(String, String)>>::try_from_uri(uri)
                    .map(|Query(params)| params)
                    .unwrap_or_default();
                if !params.iter().any(|(_, value)| glob(pattern, value)) {
                    continue;
                }
            }
            let n = self.seen[i].fetch_add(1, Ordering::Relaxed);
            if n < rule.after {
                continue;
            }
            let mut hasher = DefaultHasher::new();
            (self.plan.seed, i, n).hash(&mut hasher);
            let roll = (hasher.finish() % 1_000_000) as f64 / 1_000_000.0;
            let spent = || {
                rule.times
                    .is_some_and(|times| self.fired[i].fetch_add(1, Ordering::Relaxed) >= times)
            };
            if roll < rule.probability && !spent() {
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
    let Some(rule) = injector.pick(&method, request.uri()).cloned() else {
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
        FaultKind::QueryTimeout => injector
            .style
            .error(FaultKind::QueryTimeout, StatusCode::BAD_REQUEST),
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
    use super::*;

    struct Plain;

    impl ErrorStyle for Plain {
        fn error(&self, _: FaultKind, status: StatusCode) -> Response {
            status.into_response()
        }
        fn expire_session(&self, _: &Request) {}
    }

    #[test]
    fn a_rule_fires_on_the_queries_it_names_after_those_it_lets_pass_and_as_often_as_told() {
        let rule = FaultRule {
            query: Some("*FROM ContentDocumentLink*".into()),
            after: 1,
            times: Some(2),
            ..FaultRule::new("/services/data/*/query", FaultKind::QueryTimeout)
        };
        let injector = Injector::new(
            FaultPlan {
                seed: 0,
                faults: vec![rule],
            },
            Box::new(Plain),
        );
        let links: Uri =
            "/services/data/v62.0/query?q=SELECT+Id+FROM+ContentDocumentLink%20WHERE+x"
                .parse()
                .unwrap();
        let accounts: Uri = "/services/data/v62.0/query?q=SELECT+Id+FROM+Account"
            .parse()
            .unwrap();
        let fired = |uri: &Uri| injector.pick("GET", uri).is_some();
        assert!(!fired(&accounts), "another query");
        assert!(!fired(&links), "the first is let pass");
        assert!(fired(&links));
        assert!(!fired(&accounts));
        assert!(fired(&links));
        assert!(!fired(&links), "two faults at most");
    }

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
