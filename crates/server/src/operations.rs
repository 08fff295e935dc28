//! The routes for operators and their tools: `/healthz` (the process answers), `/readyz` (the
//! database and the content store answer; whether this node is the sequencer) and `/metrics`
//! (the Prometheus text format, [`crate::metrics`]).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::{read_state, AppState};
use crate::error::ApiError;
use crate::metrics::StateFigures;

/// How long the content totals of `/metrics` are reused: they read every manifest.
const TOTALS_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The operations routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `GET /healthz`: 200 while the process serves requests.
async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "ok\n",
    )
        .into_response()
}

/// The answer of `/readyz`.
#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    database: String,
    content: String,
    sequencer: bool,
}

/// `GET /readyz`: 200 when the database and the content store answer, else 503; each part
/// says `ok` or what failed.
async fn readyz(State(app): State<AppState>) -> Response {
    let database = match app.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(error) => error.to_string(),
    };
    let blobs = app.blobs.clone();
    let content = match tokio::task::spawn_blocking(move || blobs.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    let ready = database == "ok" && content == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let readiness = Readiness {
        ready,
        database,
        content,
        sequencer: app.metrics.is_sequencer(),
    };
    (status, Json(readiness)).into_response()
}

/// `GET /metrics`.
async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let pending_records = app.store.pending_count().await?;
    let content = match app.metrics.cached_totals(TOTALS_FOR) {
        Some(totals) => totals,
        None => {
            let totals = app.store.content_totals().await?;
            app.metrics.keep_totals(totals);
            totals
        }
    };
    let (log_length, checkpoint_age_seconds) = {
        let state = read_state(&app);
        let checkpoint = state.latest_checkpoint();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        (
            checkpoint.map_or(0, |c| c.contents.log_length),
            checkpoint.map(|c| (now - c.contents.timestamp as f64).max(0.0)),
        )
    };
    let text = app.metrics.render(&StateFigures {
        pending_records,
        log_length,
        checkpoint_age_seconds,
        content,
        sequencer: app.metrics.is_sequencer(),
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}
