//! The emulated org's server state: configuration (the connected app and its user), the data,
//! issued tokens and codes, open query cursors and API usage.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ids;
use super::org::Org;
use super::query::Execution;

/// The connected app and user the sandbox accepts, and its limits.
#[derive(Debug, Clone)]
pub struct Config {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub username: String,
    pub password: String,
    /// How long an access token lives before calls answer 401 `INVALID_SESSION_ID`.
    pub token_lifetime: Duration,
    /// API calls allowed per day (`Sforce-Limit-Info`, `REQUEST_LIMIT_EXCEEDED`).
    pub daily_limit: u64,
    /// Approve authorize requests without showing the approve page.
    pub auto_approve: bool,
    /// How long an idle query cursor (`nextRecordsUrl`) stays valid.
    pub locator_lifetime: Duration,
    /// Child rows per page of a child subquery's result in a REST query: a parent with more
    /// children gets the first this many, `done: false` and the result's own `nextRecordsUrl`.
    pub child_batch_size: usize,
    /// The connected app's certificate (its RSA public key) that verifies JWT bearer
    /// assertions; without one the jwt-bearer grant is refused.
    pub jwt_certificate: Option<super::oauth::JwtCertificate>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_id: "etl-sandbox-client".into(),
            client_secret: "etl-sandbox-secret".into(),
            redirect_uri: "http://localhost:1717/oauth/callback".into(),
            username: "integration@sandbox.example".into(),
            password: "sandbox-password".into(),
            token_lifetime: Duration::from_secs(2 * 3600),
            daily_limit: 1_000_000,
            auto_approve: false,
            locator_lifetime: Duration::from_secs(15 * 60),
            // Salesforce documents no size; recorded child pages end near 200 and 500 rows.
            child_batch_size: 200,
            jwt_certificate: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub expires: Instant,
    /// The refresh token it came from, so revoking that revokes this.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    /// The scopes the authorize request asked for (the app's own when it named none).
    pub scope: String,
    pub user_id: String,
    pub expires: Instant,
}

#[derive(Debug, Clone)]
pub struct Cursor {
    /// Shared, so that serving a page does not copy the whole result's Ids.
    pub execution: std::sync::Arc<Execution>,
    pub version: String,
    pub batch_size: usize,
    pub last_used: Instant,
}

pub struct State {
    pub config: Config,
    pub org: Org,
    /// `http://127.0.0.1:port`, the instance and login URL.
    pub base_url: String,
    pub user_id: String,
    pub sessions: HashMap<String, Session>,
    pub refresh_tokens: HashMap<String, String>,
    pub codes: HashMap<String, CodeGrant>,
    pub cursors: HashMap<String, Cursor>,
    /// Bulk API 2.0 jobs by Id.
    pub jobs: HashMap<String, super::bulk::Job>,
    jobs_created: u64,
    pub api_used: u64,
    /// Set by every write, cleared when the data folder is saved.
    pub dirty: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// An unguessable token of `len` characters from `alphabet`: randomly keyed SipHash over a
/// counter and the clock. Enough for a local emulator; not a cryptographic generator.
pub fn random_token(len: usize, alphabet: &[u8]) -> String {
    let keys = std::collections::hash_map::RandomState::new();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let mut value = hasher.finish();
        for _ in 0..8 {
            if out.len() == len {
                break;
            }
            out.push(alphabet[(value % alphabet.len() as u64) as usize] as char);
            value /= alphabet.len() as u64;
        }
    }
    out
}

pub const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl State {
    pub fn new(config: Config, org: Org, base_url: String) -> State {
        let user_id = ids::make("005", 1);
        State {
            config,
            org,
            base_url,
            user_id,
            sessions: HashMap::new(),
            refresh_tokens: HashMap::new(),
            codes: HashMap::new(),
            cursors: HashMap::new(),
            jobs: HashMap::new(),
            jobs_created: 0,
            api_used: 0,
            dirty: false,
        }
    }

    /// A new access token `<15-char org id>!<opaque>`.
    pub fn issue_access_token(&mut self, user_id: &str, refresh_token: Option<String>) -> String {
        let token = format!(
            "{}!{}",
            &self.org.org_id[..15],
            random_token(
                96,
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"
            )
        );
        self.sessions.insert(
            token.clone(),
            Session {
                user_id: user_id.to_string(),
                expires: Instant::now() + self.config.token_lifetime,
                refresh_token,
            },
        );
        token
    }

    pub fn issue_refresh_token(&mut self, user_id: &str) -> String {
        let token = format!("5Aep861{}", random_token(80, ALPHANUMERIC));
        self.refresh_tokens
            .insert(token.clone(), user_id.to_string());
        token
    }

    /// A fresh Bulk job Id (`750…`).
    pub fn next_job_id(&mut self) -> String {
        self.jobs_created += 1;
        ids::make("750", self.jobs_created)
    }

    /// Forgets cursors idle for longer than their lifetime.
    pub fn expire_cursors(&mut self) {
        let lifetime = self.config.locator_lifetime;
        self.cursors.retain(|_, c| c.last_used.elapsed() < lifetime);
    }

    /// The identity URL of a user: `<login>/id/<org id>/<user id>`.
    pub fn identity_url(&self, user_id: &str) -> String {
        format!("{}/id/{}/{}", self.base_url, self.org.org_id, user_id)
    }
}
