//! The Halo instance's settings (API application credentials, tenant, token lifetime, the
//! hosted rate limit) and its mutable state: the data, issued tokens, and the request times
//! the rolling rate-limit window counts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::store::Store;

/// Hosted Halo's limit: `requests` per rolling `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl RateLimit {
    /// 300 requests per rolling 5 minutes, as hosted instances enforce.
    pub const HOSTED: RateLimit = RateLimit {
        requests: 300,
        window: Duration::from_secs(300),
    };
}

#[derive(Debug, Clone)]
pub struct Config {
    pub client_id: String,
    pub client_secret: String,
    /// A request may leave the tenant out (self-hosted style); a wrong one is refused.
    pub tenant: String,
    pub token_lifetime: Duration,
    /// `None`: no limit, as on a self-hosted instance.
    pub rate_limit: Option<RateLimit>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_id: "etl-sandbox-client".into(),
            client_secret: "etl-sandbox-secret".into(),
            tenant: "sandbox".into(),
            token_lifetime: Duration::from_secs(3600),
            rate_limit: None,
        }
    }
}

pub struct State {
    pub config: Config,
    pub store: Store,
    pub base_url: String,
    /// Access token → when it stops working.
    pub tokens: HashMap<String, Instant>,
    /// Times of the API requests inside the current rate-limit window.
    pub recent: VecDeque<Instant>,
    /// Requests served, for tests and benchmarks that count calls.
    pub requests: u64,
    pub issued: u64,
    /// Moves on with every write; list results cached for paging are valid for one version.
    pub version: u64,
    /// The ids the last list query matched: (query, version, ids).
    pub list_cache: Option<(String, u64, Arc<Vec<u64>>)>,
    /// Unsaved changes.
    pub dirty: bool,
}

impl State {
    pub fn new(config: Config, store: Store, base_url: String) -> State {
        State {
            config,
            store,
            base_url,
            tokens: HashMap::new(),
            recent: VecDeque::new(),
            requests: 0,
            issued: 0,
            version: 0,
            list_cache: None,
            dirty: false,
        }
    }
}

pub type Shared = Arc<Mutex<State>>;

/// Locks the state; a handler that panicked while holding it leaves the data as it was.
pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
