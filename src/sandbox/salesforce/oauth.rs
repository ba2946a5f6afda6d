//! OAuth 2.0 endpoints of the emulated org: the web-server flow's authorize page (with PKCE),
//! the token endpoint's grants (the JWT bearer grant verified against the connected app's
//! certificate), revoke, and the identity URL — with Salesforce's exact success fields and
//! error bodies.

use std::collections::HashMap;
use std::path::Path as FilePath;
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{api_call, json_response, lock, Shared};
use super::state::{random_token, CodeGrant, State, ALPHANUMERIC};
use crate::civil;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// base64url(SHA-256(verifier)) without padding: the PKCE S256 challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `GET /services/oauth2/authorize`: checks the client and callback, then redirects with a code
/// (auto-approve) or shows an approve page.
pub async fn authorize(
    Extract(shared): Extract<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let state = lock(&shared);
    if params.get("client_id") != Some(&state.config.client_id) {
        // Salesforce does not redirect for an unknown client: it answers in the browser.
        return (
            StatusCode::BAD_REQUEST,
            "error=invalid_client_id&error_description=client%20identifier%20invalid",
        )
            .into_response();
    }
    if params.get("redirect_uri") != Some(&state.config.redirect_uri) {
        return (StatusCode::BAD_REQUEST, "error=redirect_uri_mismatch&error_description=redirect_uri%20must%20match%20configuration").into_response();
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        let target = format!(
            "{}?error=unsupported_response_type&error_description=response%20type%20not%20supported{}",
            state.config.redirect_uri,
            params.get("state").map(|s| format!("&state={}", url_encode(s))).unwrap_or_default()
        );
        return (StatusCode::FOUND, [(header::LOCATION, target)]).into_response();
    }
    if state.config.auto_approve {
        drop(state);
        return approve_redirect(&shared, &params);
    }
    let hidden: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Allow access?</title><h1>Allow access?</h1>\
         <p>The app <b>{}</b> asks to access the sandbox org as <b>{}</b>.</p>\
         <form method=\"post\" action=\"/services/oauth2/authorize/approve\">{hidden}\
         <button name=\"decision\" value=\"allow\">Allow</button> <button name=\"decision\" value=\"deny\">Deny</button></form>",
        html_escape(&state.config.client_id),
        html_escape(&state.config.username)
    ))
    .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The scopes the sandbox's connected app has, granted when a sign-in names none.
const APP_SCOPES: &str = "api refresh_token full";

/// `POST /services/oauth2/authorize/approve`: the approve page's answer.
pub async fn approve(
    Extract(shared): Extract<Shared>,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    {
        let state = lock(&shared);
        if params.get("client_id") != Some(&state.config.client_id)
            || params.get("redirect_uri") != Some(&state.config.redirect_uri)
        {
            return (
                StatusCode::BAD_REQUEST,
                "error=invalid_client_id&error_description=client%20identifier%20invalid",
            )
                .into_response();
        }
        if params.get("decision").map(String::as_str) != Some("allow") {
            let target = format!(
                "{}?error=access_denied&error_description=end-user+denied+authorization{}",
                state.config.redirect_uri,
                params
                    .get("state")
                    .map(|s| format!("&state={}", url_encode(s)))
                    .unwrap_or_default()
            );
            return (StatusCode::FOUND, [(header::LOCATION, target)]).into_response();
        }
    }
    approve_redirect(&shared, &params)
}

fn approve_redirect(shared: &Shared, params: &HashMap<String, String>) -> Response {
    let mut state = lock(shared);
    let code = format!("aPrx{}==", random_token(40, ALPHANUMERIC));
    let user_id = state.user_id.clone();
    let redirect_uri = state.config.redirect_uri.clone();
    state.codes.insert(
        code.clone(),
        CodeGrant {
            redirect_uri: redirect_uri.clone(),
            code_challenge: params.get("code_challenge").cloned(),
            scope: params
                .get("scope")
                .filter(|scope| !scope.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| APP_SCOPES.to_string()),
            user_id,
            expires: Instant::now() + Duration::from_secs(15 * 60),
        },
    );
    let mut target = format!("{redirect_uri}?code={}", url_encode(&code));
    if let Some(s) = params.get("state") {
        target.push_str(&format!("&state={}", url_encode(s)));
    }
    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
}

/// Client id and secret from the form or from HTTP Basic.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
    {
        if let Some((id, secret)) = basic.split_once(':') {
            return (Some(id.to_string()), Some(secret.to_string()));
        }
    }
    (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    )
}

fn check_client(
    state: &State,
    id: Option<&str>,
    secret: Option<&str>,
    secret_required: bool,
) -> Result<(), Response> {
    if id != Some(state.config.client_id.as_str()) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    match secret {
        Some(s) if s == state.config.client_secret => Ok(()),
        None if !secret_required => Ok(()),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "invalid client credentials",
        )),
    }
}

/// The token response Salesforce sends, with `signature` = base64(HMAC-SHA256(id + issued_at)).
/// `refresh` is returned in the body; `linked` is the refresh token the session hangs off.
fn token_response(
    state: &mut State,
    user_id: &str,
    refresh: Option<String>,
    linked: Option<String>,
    scope: &str,
) -> Response {
    let access_token = state.issue_access_token(user_id, linked);
    let issued_at = civil::now_millis().to_string();
    let id = state.identity_url(user_id);
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.client_secret.as_bytes())
        .expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut body = json!({
        "access_token": access_token,
        "signature": signature,
        "scope": scope,
        "instance_url": state.base_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let Some(refresh) = refresh {
        body.as_object_mut()
            .expect("object")
            .insert("refresh_token".into(), Value::String(refresh));
    }
    json_response(StatusCode::OK, &body)
}

/// The connected app's certificate as the JWT bearer grant needs it: its RSA public key, and
/// the file it came from (for `etl sandbox`'s description).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtCertificate {
    pub file: String,
    pub key: RsaPublicKey,
}

/// The JWT bearer grant's `grant_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How far ahead an assertion's `exp` may be (Salesforce wants about 3 minutes; a little more
/// allows for clock skew).
const JWT_MAX_AHEAD_SECONDS: i64 = 5 * 60;

impl JwtCertificate {
    /// Reads an X.509 certificate (`BEGIN CERTIFICATE`, as a connected app takes it), a public
    /// key (`BEGIN PUBLIC KEY`) or a PKCS#1 RSA public key (`BEGIN RSA PUBLIC KEY`).
    pub fn load(path: &FilePath) -> Result<JwtCertificate, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("JWT certificate {}: {e}", path.display()))?;
        let key = public_key_from_pem(&text)
            .map_err(|why| format!("JWT certificate {}: {why}", path.display()))?;
        Ok(JwtCertificate {
            file: path.display().to_string(),
            key,
        })
    }

    /// The same from PEM text already read.
    pub fn from_pem(text: &str, file: &str) -> Result<JwtCertificate, String> {
        let key =
            public_key_from_pem(text).map_err(|why| format!("JWT certificate {file}: {why}"))?;
        Ok(JwtCertificate {
            file: file.to_string(),
            key,
        })
    }
}

fn public_key_from_pem(text: &str) -> Result<RsaPublicKey, String> {
    let label = text
        .lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
        })
        .ok_or("no `-----BEGIN … -----` line: expected a PEM certificate or public key")?
        .to_string();
    match label.as_str() {
        "PUBLIC KEY" => RsaPublicKey::from_public_key_pem(text)
            .map_err(|e| format!("not an RSA public key ({e})")),
        "RSA PUBLIC KEY" => {
            RsaPublicKey::from_pkcs1_pem(text).map_err(|e| format!("not an RSA public key ({e})"))
        }
        "CERTIFICATE" => {
            let der = pem_body(text, "CERTIFICATE")?;
            let spki = certificate_spki(&der)
                .ok_or("not a DER X.509 certificate (no SubjectPublicKeyInfo found)")?;
            RsaPublicKey::from_public_key_der(spki)
                .map_err(|e| format!("the certificate's key is not RSA ({e})"))
        }
        other if other.contains("PRIVATE KEY") => Err(format!(
            "holds a `{other}`: give the sandbox the connected app's certificate or public key \
             (the private key stays with etl.yaml's private_key_file)"
        )),
        other => Err(format!(
            "holds a `{other}`; expected `CERTIFICATE`, `PUBLIC KEY` or `RSA PUBLIC KEY`"
        )),
    }
}

/// The base64 body between `BEGIN label` and `END label`, decoded.
fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or("no BEGIN line")? + begin.len();
    let stop = text[start..].find(&end).ok_or("no END line")? + start;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("bad base64 in the PEM body ({e})"))
}

/// One DER element: its tag, its whole encoding, its content, and what follows it.
type DerElement<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The DER element `bytes` starts with.
fn der_element(bytes: &[u8]) -> Option<DerElement<'_>> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)? as usize;
    let (length, header) = if first < 0x80 {
        (first, 2)
    } else {
        let count = first & 0x7f;
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..count {
            length = (length << 8) | *bytes.get(2 + i)? as usize;
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    if end > bytes.len() {
        return None;
    }
    Some((tag, &bytes[..end], &bytes[header..end], &bytes[end..]))
}

/// The SubjectPublicKeyInfo of a certificate: Certificate → tbsCertificate → [version],
/// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    let (0x30, _, certificate, _) = der_element(der)? else {
        return None;
    };
    let (0x30, _, tbs, _) = der_element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after; // the explicit [0] version
    }
    for _ in 0..5 {
        // serialNumber, signature, issuer, validity, subject
        rest = der_element(rest)?.3;
    }
    let (0x30, spki, _, _) = der_element(rest)? else {
        return None;
    };
    Some(spki)
}

fn invalid_assertion() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "invalid assertion",
    )
}

/// The JWT bearer grant: checks the assertion as Salesforce does (client, signature against the
/// connected app's certificate, audience, expiry, user) and answers like `client_credentials`,
/// without a refresh token.
fn jwt_bearer(state: &mut State, form: &HashMap<String, String>) -> Response {
    let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return invalid_assertion();
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()
    };
    let json_of = |part: &str| decode(part).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let (Some(header_json), Some(claims), Some(signature)) =
        (json_of(header), json_of(claims), decode(signature))
    else {
        return invalid_assertion();
    };
    if header_json["alg"] != "RS256" {
        return invalid_assertion();
    }
    if claims["iss"].as_str() != Some(state.config.client_id.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        );
    }
    let Some(certificate) = &state.config.jwt_certificate else {
        // The connected app has no certificate: no assertion can be verified.
        return invalid_assertion();
    };
    let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
    if certificate
        .key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .is_err()
    {
        return invalid_assertion();
    }
    let audience = claims["aud"].as_str().unwrap_or("").trim_end_matches('/');
    let audiences = [
        state.base_url.trim_end_matches('/'),
        "https://login.salesforce.com",
        "https://test.salesforce.com",
    ];
    if !audiences.contains(&audience) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "audience is invalid",
        );
    }
    let now = civil::now_millis() / 1000;
    let Some(exp) = claims["exp"].as_i64() else {
        return invalid_assertion();
    };
    if exp <= now {
        // Salesforce's wording for an expired assertion.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "expired authorization code",
        );
    }
    if exp > now + JWT_MAX_AHEAD_SECONDS {
        return invalid_assertion();
    }
    // The integration user, by the configured name or its User record's; another user of the
    // org has not been pre-authorized for the app; an unknown one is not a user at all.
    let subject = claims["sub"].as_str().unwrap_or("");
    let user_of = |username: &str| {
        state
            .org
            .records("User")
            .iter()
            .find(|user| user.get("Username").and_then(Value::as_str) == Some(username))
            .and_then(|user| user.get("Id").and_then(Value::as_str))
            .map(str::to_string)
    };
    let found = user_of(subject);
    if subject != state.config.username && found.as_deref() != Some(state.user_id.as_str()) {
        return if found.is_some() {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "user hasn't approved this consumer",
            )
        } else {
            invalid_assertion()
        };
    }
    let user_id = state.user_id.clone();
    token_response(state, &user_id, None, None, "api")
}

/// `POST /services/oauth2/token`
pub async fn token(
    Extract(shared): Extract<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = lock(&shared);
    let (id, secret) = client_credentials(&headers, &form);
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        "authorization_code" => {
            if let Err(r) = check_client(&state, id.as_deref(), secret.as_deref(), false) {
                return r;
            }
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(grant) = state
                .codes
                .remove(&code)
                .filter(|g| g.expires > Instant::now())
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "expired authorization code",
                );
            };
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = &grant.code_challenge {
                match form.get("code_verifier") {
                    None => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "invalid code verifier",
                        )
                    }
                    Some(verifier) if &pkce_challenge(verifier) != challenge => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_request",
                            "invalid code verifier",
                        );
                    }
                    Some(_) => {}
                }
            } else if secret.is_none() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    "invalid client credentials",
                );
            }
            // As Salesforce: a refresh token only when the sign-in asked for one.
            let offline = grant
                .scope
                .split_whitespace()
                .any(|s| s == "refresh_token" || s == "offline_access");
            let refresh = offline.then(|| state.issue_refresh_token(&grant.user_id));
            token_response(
                &mut state,
                &grant.user_id,
                refresh.clone(),
                refresh,
                &grant.scope,
            )
        }
        "refresh_token" => {
            if let Err(r) = check_client(&state, id.as_deref(), secret.as_deref(), false) {
                return r;
            }
            let refresh = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(user_id) = state.refresh_tokens.get(&refresh).cloned() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "expired access/refresh token",
                );
            };
            // Salesforce does not rotate refresh tokens by default: the response has none.
            token_response(
                &mut state,
                &user_id,
                None,
                Some(refresh),
                "api refresh_token full",
            )
        }
        "client_credentials" => {
            if let Err(r) = check_client(&state, id.as_deref(), secret.as_deref(), true) {
                return r;
            }
            let user_id = state.user_id.clone();
            token_response(&mut state, &user_id, None, None, "api")
        }
        "password" => {
            if let Err(r) = check_client(&state, id.as_deref(), secret.as_deref(), true) {
                return r;
            }
            let ok = form.get("username") == Some(&state.config.username)
                && form.get("password") == Some(&state.config.password);
            if !ok {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "authentication failure",
                );
            }
            let user_id = state.user_id.clone();
            token_response(&mut state, &user_id, None, None, "api")
        }
        JWT_BEARER => jwt_bearer(&mut state, &form),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        ),
    }
}

/// `POST /services/oauth2/revoke` (form `token=`); revoking a refresh token ends its sessions.
pub async fn revoke(
    Extract(shared): Extract<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = lock(&shared);
    let token = form.get("token").cloned().unwrap_or_default();
    if state.sessions.remove(&token).is_some() {
        return StatusCode::OK.into_response();
    }
    if state.refresh_tokens.remove(&token).is_some() {
        state
            .sessions
            .retain(|_, s| s.refresh_token.as_deref() != Some(token.as_str()));
        return StatusCode::OK.into_response();
    }
    oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "invalid token")
}

/// `GET /id/{org}/{user}`: who the token belongs to.
pub async fn identity(
    Extract(shared): Extract<Shared>,
    Path((org_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    api_call(&shared, &headers, |state, _| {
        let Some(user) = state
            .org
            .get(&user_id)
            .cloned()
            .filter(|_| org_id == state.org.org_id)
        else {
            return super::http::not_found();
        };
        let text = |k: &str| user.get(k).cloned().unwrap_or(Value::Null);
        let base = state.base_url.clone();
        let body = json!({
            "id": state.identity_url(&user_id),
            "asserted_user": true,
            "user_id": user_id,
            "organization_id": org_id,
            "username": text("Username"),
            "nick_name": text("Alias"),
            "display_name": text("Name"),
            "email": text("Email"),
            "first_name": text("FirstName"),
            "last_name": text("LastName"),
            "active": text("IsActive"),
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_GB",
            "utcOffset": 0,
            "urls": {
                "rest": format!("{base}/services/data/v{{version}}/"),
                "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
                "query": format!("{base}/services/data/v{{version}}/query/"),
                "limits": format!("{base}/services/data/v{{version}}/limits/"),
            },
        });
        json_response(StatusCode::OK, &body)
    })
}
