//! OAuth 2.0 endpoints of the emulated org: the web-server flow's authorize page (with PKCE),
//! the token endpoint's grants, revoke, and the identity URL — with Salesforce's exact success
//! fields and error bodies.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
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
            let refresh = state.issue_refresh_token(&grant.user_id);
            token_response(
                &mut state,
                &grant.user_id,
                Some(refresh.clone()),
                Some(refresh),
                "api refresh_token full",
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
