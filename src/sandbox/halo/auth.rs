//! The authorisation server: `POST /auth/token` (client credentials, tenant in the query
//! string or the form) with the token fields Halo clients read, its OAuth error bodies, and the
//! anonymous `GET /api/authinfo` discovery document.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::http::json_response;
use super::state::{lock, Shared};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    // The auth server appears to be OpenIddict, which adds `error_description` (inferred).
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

pub async fn token(
    Extract(shared): Extract<Shared>,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut state = lock(&shared);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The specified 'grant_type' is not supported.",
        );
    }
    let tenant = query.get("tenant").or_else(|| form.get("tenant"));
    if let Some(tenant) = tenant.filter(|t| !t.is_empty()) {
        if !tenant.eq_ignore_ascii_case(&state.config.tenant) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The specified tenant is not valid.",
            );
        }
    }
    if field("client_id") != state.config.client_id
        || field("client_secret") != state.config.client_secret
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The specified client credentials are invalid.",
        );
    }
    state.issued += 1;
    let mut hasher = Sha256::new();
    hasher.update(state.issued.to_le_bytes());
    hasher.update(crate::civil::now_millis().to_le_bytes());
    hasher.update(state.config.client_secret.as_bytes());
    let access_token: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let lifetime = state.config.token_lifetime;
    state
        .tokens
        .insert(access_token.clone(), Instant::now() + lifetime);
    let scope = Some(field("scope"))
        .filter(|s| !s.is_empty())
        .unwrap_or("all");
    json_response(
        StatusCode::OK,
        &json!({
            "scope": scope,
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": lifetime.as_secs(),
        }),
    )
}

/// `GET /api/authinfo`: where to get a token, for clients that discover it.
pub async fn authinfo(Extract(shared): Extract<Shared>) -> Response {
    let state = lock(&shared);
    json_response(
        StatusCode::OK,
        &json!({
            "auth_url": format!("{}/auth", state.base_url),
            "tenant_id": state.config.tenant,
        }),
    )
}
