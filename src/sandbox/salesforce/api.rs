//! The org's HTTP routes: OAuth on the login host, the REST API under `/services/data`, and a
//! small admin route for tests that need to move a record's `SystemModstamp` like a real edit.

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};

use super::http::{lock, Shared};
use super::{bulk, collections, oauth, rest};

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/authorize/approve", post(oauth::approve))
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route("/services/data/{version}", get(rest::resources))
        .route("/services/data/{version}/", get(rest::resources))
        .route("/services/data/{version}/limits", get(rest::limits))
        .route("/services/data/{version}/limits/", get(rest::limits))
        .route("/services/data/{version}/query", get(rest::query))
        .route("/services/data/{version}/query/", get(rest::query))
        .route("/services/data/{version}/queryAll", get(rest::query_all))
        .route("/services/data/{version}/queryAll/", get(rest::query_all))
        .route(
            "/services/data/{version}/query/{next}",
            get(rest::query_more),
        )
        .route(
            "/services/data/{version}/queryAll/{next}",
            get(rest::query_more),
        )
        .route(
            "/services/data/{version}/sobjects",
            get(rest::global_describe),
        )
        .route(
            "/services/data/{version}/sobjects/",
            get(rest::global_describe),
        )
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(rest::sobject_root).post(rest::sobject_root),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(rest::sobject_record)
                .patch(rest::sobject_record)
                .delete(rest::sobject_record),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{first}/{second}",
            get(rest::sobject_field)
                .patch(rest::sobject_field)
                .post(rest::sobject_field),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::collection)
                .patch(collections::collection)
                .delete(collections::collection),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{key}",
            axum::routing::patch(collections::typed_collection),
        )
        .route(
            "/services/data/{version}/jobs/ingest",
            post(bulk::create_ingest),
        )
        .route(
            "/services/data/{version}/jobs/ingest/",
            post(bulk::create_ingest),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}",
            get(bulk::ingest_job)
                .patch(bulk::ingest_job)
                .delete(bulk::ingest_job),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/batches",
            axum::routing::put(bulk::upload),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/batches/",
            axum::routing::put(bulk::upload),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/{which}",
            get(bulk::ingest_results),
        )
        .route(
            "/services/data/{version}/jobs/ingest/{id}/{which}/",
            get(bulk::ingest_results),
        )
        .route(
            "/services/data/{version}/jobs/query",
            post(bulk::create_query),
        )
        .route(
            "/services/data/{version}/jobs/query/",
            post(bulk::create_query),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}",
            get(bulk::query_job).delete(bulk::query_job),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/results",
            get(bulk::query_results),
        )
        .route("/__sandbox/touch/{id}", post(touch))
        // axum refuses bodies over 2 MB by default; files and Bulk uploads are larger (a Bulk
        // upload may be 150 MB, the largest the org takes in one body here).
        .layer(DefaultBodyLimit::max(150 * 1024 * 1024))
        .with_state(shared)
}

/// `POST /__sandbox/touch/{id}` with a JSON object of fields: changes a record as a person
/// editing it in Salesforce would (new `SystemModstamp`, no API usage, no validation).
async fn touch(
    Extract(shared): Extract<Shared>,
    Path(id): Path<String>,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let changes: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
    let mut state = lock(&shared);
    let user = state.user_id.clone();
    let Some(id) = super::ids::normalize(&id) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if state.org.touch(&id, changes, &user) {
        state.dirty = true;
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
