//! The OAuth 2.0 grants Salesforce's token endpoint takes: authorization code (with the PKCE
//! verifier when one was sent), refresh token, client credentials, username-password and the
//! JWT bearer grant (its assertion is built in `jwt.rs`); the authorize URL of the web-server
//! flow; revoke.

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jwt;
use super::store::StoredTokens;
use crate::civil;
use crate::config::model::{SalesforceConnection, SalesforceFlow};
use crate::salesforce::{random, Error};

/// A PKCE pair: the verifier kept by us, the S256 challenge sent in the authorize URL.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        // 64 unreserved characters: inside RFC 7636's 43..128.
        let verifier = random::url_safe_string(64);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// Percent-encoding of a query or form value (RFC 3986 unreserved characters kept).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn login_base(connection: &SalesforceConnection) -> &str {
    connection.login_url.trim_end_matches('/')
}

/// The scopes the web-server flow asks for when `scope` is not set: the REST API, and a
/// refresh token so runs sign in without a person.
pub const DEFAULT_SCOPE: &str = "api refresh_token";

/// The web-server flow's authorize URL.
pub fn authorize_url(
    connection: &SalesforceConnection,
    state: &str,
    pkce: Option<&Pkce>,
) -> String {
    let mut url = format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}",
        login_base(connection),
        encode(&connection.client_id),
        encode(&connection.redirect_uri),
        encode(connection.scope.as_deref().unwrap_or(DEFAULT_SCOPE)),
        encode(state)
    );
    if let Some(pkce) = pkce {
        url.push_str(&format!(
            "&code_challenge={}&code_challenge_method=S256",
            pkce.challenge
        ));
    }
    url
}

/// What the token endpoint answers on success.
#[derive(Clone)]
pub struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub instance_url: String,
    pub identity_url: String,
    pub issued_at_ms: i64,
}

impl Granted {
    /// The store entry for a fresh sign-in.
    pub fn into_stored(self, connection: &SalesforceConnection) -> StoredTokens {
        StoredTokens {
            access_token: self.access_token,
            refresh_token: self.refresh_token,
            instance_url: self.instance_url,
            identity_url: self.identity_url,
            issued_at_ms: self.issued_at_ms,
            signed_in_at_ms: self.issued_at_ms,
            login_url: connection.login_url.clone(),
            client_id: connection.client_id.clone(),
        }
    }
}

/// The token endpoint's agent, trusting what the connection says (see `http_agent`).
pub(crate) fn agent(connection: &SalesforceConnection) -> Result<ureq::Agent, Error> {
    Ok(crate::http_agent::config(
        connection.trust_certificate.as_deref(),
        "connections.salesforce.trust_certificate",
    )
    .map_err(Error::Config)?
    .http_status_as_error(false)
    .max_redirects(0)
    .timeout_global(Some(std::time::Duration::from_secs(60)))
    .build()
    .into())
}

/// POSTs a grant to the token endpoint. Connection errors and 5xx are tried again a few times:
/// a token request changes nothing that a repeat could duplicate.
fn post_token(connection: &SalesforceConnection, form: &[(&str, &str)]) -> Result<Granted, Error> {
    for (key, value) in form {
        if SECRET_FIELDS.contains(key) {
            register_secret(value);
        }
    }
    let grant = form
        .iter()
        .find(|(key, _)| *key == "grant_type")
        .map_or("?", |(_, value)| *value);
    let url = format!("{}/services/oauth2/token", login_base(connection));
    let agent = agent(connection)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let result = agent.post(&url).send_form(form.iter().copied());
        if let Ok(response) = &result {
            tracing::debug!(
                grant,
                status = response.status().as_u16(),
                attempt,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Salesforce token request"
            );
        }
        let (status, body) = match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .unwrap_or_default();
                (status, body)
            }
            // A refused certificate stays refused: say so at once instead of trying again.
            Err(e) if crate::http_agent::certificate_refusal(&e).is_some() => {
                return Err(Error::Connection {
                    url,
                    detail: crate::http_agent::certificate_refusal(&e).unwrap_or_default(),
                })
            }
            Err(e) if attempt < 4 => {
                let wait = std::time::Duration::from_millis(200 << attempt);
                tracing::warn!(grant, attempt, wait_ms = wait.as_millis() as u64, error = %e, "Salesforce token endpoint unreachable; trying again");
                std::thread::sleep(wait);
                continue;
            }
            Err(e) => {
                return Err(Error::Connection {
                    url,
                    detail: e.to_string(),
                })
            }
        };
        if status >= 500 && attempt < 4 {
            let wait = std::time::Duration::from_millis(200 << attempt);
            tracing::warn!(
                grant,
                status,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Salesforce token endpoint failed; trying again"
            );
            std::thread::sleep(wait);
            continue;
        }
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            Error::Protocol(format!(
                "the token endpoint answered {status} with a body that is not JSON"
            ))
        })?;
        if status != 200 {
            return Err(Error::OAuth {
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown_error")
                    .to_string(),
                description: value["error_description"]
                    .as_str()
                    .unwrap_or("no description")
                    .to_string(),
            });
        }
        let text = |key: &str| value[key].as_str().map(str::to_string);
        let (Some(access_token), Some(instance_url), Some(identity_url)) =
            (text("access_token"), text("instance_url"), text("id"))
        else {
            return Err(Error::Protocol(
                "the token response lacks access_token, instance_url or id".into(),
            ));
        };
        register_secret(&access_token);
        if let Some(refresh_token) = text("refresh_token") {
            register_secret(&refresh_token);
        }
        tracing::info!(grant, "Salesforce token obtained");
        // `issued_at` is a string of epoch milliseconds.
        let issued_at_ms = text("issued_at")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(civil::now_millis);
        return Ok(Granted {
            access_token,
            refresh_token: text("refresh_token"),
            instance_url,
            identity_url,
            issued_at_ms,
        });
    }
}

/// The form fields of a grant that are secrets (masked in logs from the moment they are sent).
const SECRET_FIELDS: [&str; 6] = [
    "client_secret",
    "password",
    "refresh_token",
    "code",
    "code_verifier",
    "assertion",
];

/// Masks a secret in the logs; for an access token also the part after the org prefix
/// (`00D…!`), which is the secret half and may be shown without it.
pub fn register_secret(secret: &str) {
    crate::logging::redact::register(secret);
    if let Some((_, rest)) = secret.split_once('!') {
        crate::logging::redact::register(rest);
    }
}

fn secret(connection: &SalesforceConnection) -> Option<&str> {
    connection
        .client_secret
        .as_deref()
        .filter(|s| !s.is_empty())
}

/// Exchanges an authorization code (web-server flow).
pub fn exchange_code(
    connection: &SalesforceConnection,
    code: &str,
    verifier: Option<&str>,
) -> Result<Granted, Error> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", connection.client_id.as_str()),
        ("redirect_uri", connection.redirect_uri.as_str()),
    ];
    if let Some(secret) = secret(connection) {
        form.push(("client_secret", secret));
    }
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    post_token(connection, &form)
}

/// A new access token from a refresh token. A dead refresh token (`invalid_grant`) becomes
/// `Error::LoginExpired`, which tells the user to sign in again.
pub fn refresh(connection: &SalesforceConnection, refresh_token: &str) -> Result<Granted, Error> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", connection.client_id.as_str()),
    ];
    if let Some(secret) = secret(connection) {
        form.push(("client_secret", secret));
    }
    post_token(connection, &form).map_err(|e| match e {
        Error::OAuth { error, description } if error == "invalid_grant" => {
            Error::LoginExpired { description }
        }
        other => other,
    })
}

/// A token for a headless flow (`client_credentials`, `password` or `jwt_bearer`), asked for
/// on every run and again whenever the token expires. For `jwt_bearer` `private_key_file` must
/// already be resolved against the project folder (`SalesforceClient::connect` does that).
pub fn headless(connection: &SalesforceConnection) -> Result<Granted, Error> {
    let needs_secret = || {
        secret(connection).ok_or_else(|| {
            Error::Config(format!(
                "flow {} needs connections.salesforce.client_secret",
                flow_name(connection.flow)
            ))
        })
    };
    match connection.flow {
        SalesforceFlow::ClientCredentials => post_token(
            connection,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", connection.client_id.as_str()),
                ("client_secret", needs_secret()?),
            ],
        ),
        SalesforceFlow::Password => {
            let secret = needs_secret()?;
            let (Some(username), Some(password)) = (
                connection.username.as_deref(),
                connection.password.as_deref(),
            ) else {
                return Err(Error::Config(
                    "flow password needs connections.salesforce.username and password".into(),
                ));
            };
            post_token(
                connection,
                &[
                    ("grant_type", "password"),
                    ("client_id", connection.client_id.as_str()),
                    ("client_secret", secret),
                    ("username", username),
                    ("password", password),
                ],
            )
        }
        SalesforceFlow::JwtBearer => {
            let assertion = jwt::signed_assertion(connection)?;
            post_token(
                connection,
                &[("grant_type", jwt::GRANT_TYPE), ("assertion", &assertion)],
            )
            .map_err(|e| match e {
                Error::OAuth { error, description } if error == "invalid_grant" => Error::OAuth {
                    description: format!(
                        "{description} (the connected app's certificate must match \
                         private_key_file, its consumer key must be client_id, and `{}` must be \
                         pre-authorized for the app)",
                        connection.username.as_deref().unwrap_or("?")
                    ),
                    error,
                },
                other => other,
            })
        }
        SalesforceFlow::WebServer => Err(Error::Config(
            "flow web_server signs in with `etl auth login salesforce`".into(),
        )),
    }
}

pub fn flow_name(flow: SalesforceFlow) -> &'static str {
    match flow {
        SalesforceFlow::WebServer => "web_server",
        SalesforceFlow::ClientCredentials => "client_credentials",
        SalesforceFlow::JwtBearer => "jwt_bearer",
        SalesforceFlow::Password => "password",
    }
}

/// Revokes a token (revoking a refresh token ends its access tokens too). A token Salesforce
/// no longer knows (`invalid_token`) counts as revoked.
pub fn revoke(connection: &SalesforceConnection, token: &str) -> Result<(), Error> {
    let url = format!("{}/services/oauth2/revoke", login_base(connection));
    let mut response = agent(connection)?
        .post(&url)
        .send_form([("token", token)])
        .map_err(|e| Error::Connection {
            url: url.clone(),
            detail: crate::http_agent::certificate_refusal(&e).unwrap_or_else(|| e.to_string()),
        })?;
    let status = response.status().as_u16();
    if status == 200 {
        return Ok(());
    }
    let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    let error = body["error"].as_str().unwrap_or("unknown_error");
    if error == "invalid_token" {
        return Ok(());
    }
    Err(Error::OAuth {
        error: error.to_string(),
        description: body["error_description"]
            .as_str()
            .unwrap_or("no description")
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(scope: Option<&str>) -> SalesforceConnection {
        serde_json::from_value(serde_json::json!({
            "login_url": "https://acme.my.salesforce.com",
            "client_id": "app",
            "scope": scope,
        }))
        .unwrap()
    }

    #[test]
    fn the_authorize_url_asks_for_the_configured_scopes() {
        let asked = |scope| {
            let url = authorize_url(&connection(scope), "s", None);
            let query = url.split_once('?').unwrap().1.to_string();
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("scope=").map(str::to_string))
                .unwrap()
        };
        assert_eq!(asked(None), encode(DEFAULT_SCOPE));
        assert_eq!(
            asked(Some("full refresh_token")),
            encode("full refresh_token")
        );
    }
}
