//! The HTTP routes: every warg v1 endpoint, static content, discovery, and cairn's split
//! extensions (documented in `docs/api.md`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cairn_protocol::api::{
    ConsistencyRequest, ConsistencyResponse, ContentSource, ContentSourcesResponse, ErrorId,
    FetchLogsRequest, FetchNamesRequest, FetchNamesResponse, InclusionRequest, InclusionResponse,
    LedgerSource, LedgerSourcesResponse, MissingContent, OciEndpoint, PackageRecordResponse,
    ProofFailure, PublishRecordRequest, RecordState, UploadEndpoint, Verification,
    VerifyCheckpointResponse, WargEndpoint, WellKnownRegistry, LEDGER_PACKED_MEDIA_TYPE,
};
use cairn_protocol::{
    Digest, LogId, NamespaceState, PackageEntry, PackageEnvelope, PackageName, RecordId,
    SignedCheckpoint,
};
use cairn_split::Manifest;
use cairn_store::{RecordRow, RecordStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::app::{accept_record, content_stored, read_state, served_length, AppState};
use crate::blob_routes;
use crate::content::{self, ByteRange};
use crate::error::ApiError;
use crate::state::RegistryState;

/// The media type of split manifests.
const MANIFEST_MEDIA_TYPE: &str = cairn_split::manifest::MANIFEST_MEDIA_TYPE;

/// The routes of the warg API, cairn's split extensions, static content and discovery.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/fetch/checkpoint", get(fetch_checkpoint))
        .route("/v1/fetch/logs", post(fetch_logs))
        .route("/v1/fetch/names", post(fetch_names))
        .route("/v1/package/{log_id}/record", post(publish))
        .route("/v1/package/{log_id}/record/{record_id}", get(get_record))
        .route(
            "/v1/package/{log_id}/record/{record_id}/content/{digest}",
            post(upload_content),
        )
        .route(
            "/v1/package/{log_id}/record/{record_id}/content/{digest}/manifest",
            post(upload_content_manifest),
        )
        .route(
            "/v1/package/{log_id}/record/{record_id}/blobs/{blob}",
            put(upload_blob),
        )
        .route("/v1/content/{digest}", get(content_sources))
        .route("/v1/proof/consistency", post(proof_consistency))
        .route("/v1/proof/inclusion", post(proof_inclusion))
        .route("/v1/verify/checkpoint", post(verify_checkpoint))
        .route("/v1/ledger", get(ledger))
        .route("/v1/ledger/records/{start}", get(ledger_records))
        .route("/v1/cairn/content/{digest}/manifest", get(content_manifest))
        .route("/v1/cairn/content/{digest}/sources", get(content_locations))
        .route("/v1/cairn/blobs/missing", post(blob_routes::missing_blobs))
        .route("/v1/cairn/blobs/{blob}", get(blob_routes::get_blob))
        .route("/v1/cairn/blobs/{blob}/patch", get(blob_routes::get_patch))
        .route("/v1/{*rest}", axum::routing::any(v1_not_found))
        .route("/content/{file}", get(serve_content))
        .route("/.well-known/wasm-pkg/registry.json", get(well_known))
}

/// The largest split manifest an upload may send (as the other JSON bodies).
const MAX_MANIFEST_BODY: usize = 2 << 20;

/// How long a JSON request body (at most 2 MiB) may take to arrive.
pub const JSON_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// 408 for a request body that did not arrive within [`JSON_BODY_TIMEOUT`].
fn body_too_slow() -> ApiError {
    ApiError::Message(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body did not arrive within {JSON_BODY_TIMEOUT:?}; send it again"),
    )
}

/// A JSON request body, with the reference's error statuses: 415 without a JSON content
/// type, 400 for bad syntax, 422 for a body of the wrong shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::Message(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = tokio::time::timeout(JSON_BODY_TIMEOUT, Bytes::from_request(request, state))
            .await
            .map_err(|_| body_too_slow())?
            .map_err(|e| ApiError::Message(StatusCode::PAYLOAD_TOO_LARGE, e.body_text()))?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let status = match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::Message(
                status,
                format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        })
    }
}

fn path_param<T: FromStr>(text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| ApiError::bad_request(format!("Invalid URL: {e}")))
}

async fn v1_not_found() -> ApiError {
    ApiError::Message(
        StatusCode::NOT_FOUND,
        "the requested resource was not found".into(),
    )
}

// ---------------------------------------------------------------------------------------
// Fetch.

async fn fetch_checkpoint(State(app): State<AppState>) -> Result<Json<SignedCheckpoint>, ApiError> {
    read_state(&app)
        .latest_checkpoint()
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            ApiError::Message(
                StatusCode::SERVICE_UNAVAILABLE,
                "the registry has no checkpoint yet".into(),
            )
        })
}

const DEFAULT_FETCH_LIMIT: u16 = 100;
const MAX_FETCH_LIMIT: u16 = 1000;
/// The most package logs one `fetch/names` request names (more are ignored, as by the
/// reference).
pub const MAX_NAMES: usize = 1000;
/// The most package logs one `fetch/logs` request may name.
pub const MAX_FETCH_PACKAGES: usize = 10_000;
/// The most records one `fetch/logs` answer carries, over all its logs.
pub const MAX_FETCH_RECORDS: usize = 10_000;

/// The registry index after which a fetch token's log continues; the token must name a record
/// of `log_id` below `below`.
fn resolve_token(
    state: &RegistryState,
    log_id: &LogId,
    token: Option<&str>,
    below: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let not_found = || ApiError::not_found("fetchToken", token);
    let record_id: RecordId = token.parse().map_err(|_| not_found())?;
    let index = state
        .index_of(&record_id)
        .filter(|&index| index < below)
        .ok_or_else(not_found)?;
    match state.leaf(index) {
        Some((found, _)) if found == log_id => Ok(Some(index)),
        _ => Err(not_found()),
    }
}

/// `fetch/logs`' answer with each record's JSON written once, when it entered the log.
#[derive(Serialize)]
struct FetchLogsJson {
    more: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    operator: Vec<Arc<serde_json::value::RawValue>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    packages: BTreeMap<LogId, Vec<Arc<serde_json::value::RawValue>>>,
}

async fn fetch_logs(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<FetchLogsRequest>,
) -> Result<Json<FetchLogsJson>, ApiError> {
    let length = request.log_length;
    let limit = request.limit.unwrap_or(DEFAULT_FETCH_LIMIT);
    let state = read_state(&app);
    if state.checkpoint(length).is_none() {
        return Err(ApiError::not_found_number("logLength", length));
    }
    if limit == 0 || limit > MAX_FETCH_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_FETCH_LIMIT}"
        )));
    }
    let limit = usize::from(limit);
    let operator = LogId::operator_log();
    let after = resolve_token(&state, &operator, request.operator.as_deref(), length)?;
    let records = state.published(&operator, after, length, limit);
    let mut response = FetchLogsJson {
        more: records.len() == limit,
        operator: records.into_iter().map(|r| r.json).collect(),
        packages: BTreeMap::new(),
    };
    let packages = request.packages.unwrap_or_default();
    if packages.len() > MAX_FETCH_PACKAGES {
        return Err(ApiError::bad_request(format!(
            "too many packages: {} named, at most {MAX_FETCH_PACKAGES} per request",
            packages.len()
        )));
    }
    // One answer carries at most this many records in all; logs past the budget get an
    // empty list and `more`, and the client asks again from the same tokens.
    let mut budget = MAX_FETCH_RECORDS.saturating_sub(response.operator.len());
    for (log_id, token) in packages {
        if state.package(&log_id).is_none() {
            return Err(ApiError::not_found("log", log_id));
        }
        let after = resolve_token(&state, &log_id, token.as_deref(), length)?;
        let records = state.published(&log_id, after, length, limit.min(budget));
        response.more |= records.len() == limit || records.len() == budget;
        budget -= records.len();
        response
            .packages
            .insert(log_id, records.into_iter().map(|r| r.json).collect());
    }
    Ok(Json(response))
}

async fn fetch_names(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<FetchNamesRequest>,
) -> Result<Json<FetchNamesResponse>, ApiError> {
    // As the reference does, only the first 1000 are named; each once.
    let wanted: std::collections::BTreeSet<LogId> =
        request.packages.into_iter().take(MAX_NAMES).collect();
    let mut packages = BTreeMap::new();
    for log_id in wanted {
        match app.store.log_name(&log_id).await? {
            None => return Err(ApiError::not_found("log", log_id)),
            Some(name) => {
                let name = name
                    .map(|n| n.parse())
                    .transpose()
                    .map_err(|e: cairn_protocol::NameError| ApiError::Internal(e.to_string()))?;
                packages.insert(log_id, name);
            }
        }
    }
    Ok(Json(FetchNamesResponse { packages }))
}

// ---------------------------------------------------------------------------------------
// Publishing.

fn record_response(app: &AppState, row: &RecordRow, missing: Vec<Digest>) -> PackageRecordResponse {
    let state = match row.status {
        RecordStatus::Sourcing => RecordState::Sourcing {
            missing_content: missing
                .into_iter()
                .map(|digest| {
                    let url = format!(
                        "v1/package/{}/record/{}/content/{digest}",
                        row.log_id, row.record_id
                    );
                    let upload = UploadEndpoint::Http {
                        method: "POST".into(),
                        url,
                        headers: BTreeMap::new(),
                    };
                    (
                        digest,
                        MissingContent {
                            upload: vec![upload],
                        },
                    )
                })
                .collect(),
        },
        RecordStatus::Pending => RecordState::Processing,
        RecordStatus::Rejected => RecordState::Rejected {
            reason: row.reason.clone().unwrap_or_default(),
        },
        RecordStatus::Validated => match row.registry_index {
            Some(index) if index < served_length(app) => RecordState::Published {
                registry_index: index,
            },
            _ => RecordState::Processing,
        },
    };
    PackageRecordResponse {
        record_id: row.record_id,
        state,
    }
}

async fn publish(
    State(app): State<AppState>,
    Path(log_id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PublishRecordRequest>,
) -> Result<(StatusCode, Json<PackageRecordResponse>), ApiError> {
    let log_id: LogId = path_param(&log_id)?;
    let name = &request.package_name;
    if name.log_id() != log_id {
        return Err(ApiError::bad_request(format!(
            "package log id {log_id} does not match package name `{name}`"
        )));
    }
    if app.settings.require_publisher_token {
        publisher_may_publish(&app, &headers, name).await?;
    }
    let envelope: PackageEnvelope = request
        .record
        .to_envelope()
        .map_err(|e| ApiError::bad_request(format!("the record could not be decoded: {e}")))?;
    let time = envelope.record().time;
    if !time.fits_rfc3339() {
        return Err(ApiError::bad_request(format!(
            "the record's time ({} s, {} ns after 1970) is outside what RFC 3339 can write \
             (years 0000 to 9999); sign the record with a real time",
            time.seconds, time.nanos
        )));
    }
    if !request.content_sources.is_empty() {
        return Err(ApiError::Message(
            StatusCode::NOT_IMPLEMENTED,
            "specifying content sources is not supported".into(),
        ));
    }
    // A node that follows another's checkpoints may not have seen the namespace, package or
    // key yet: it catches up once before it refuses.
    let key = match signing_key(&app, name, &log_id, &envelope).await {
        Err(_) if crate::app::catch_up(&app).await => {
            signing_key(&app, name, &log_id, &envelope).await?
        }
        found => found?,
    };
    let row = accept_record(&app, name, envelope, &key).await?;
    // Publishing the same record again is idempotent: the insert finds it and its current
    // state is the answer.
    if row.status == RecordStatus::Pending {
        app.wake.notify_one();
    }
    let (row, missing) = with_missing_content(&app, row).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(record_response(&app, &row, missing)),
    ))
}

/// The key that may sign `envelope` for package `name`: from its log's state, or from its
/// init when that is accepted but not sequenced yet. Refuses a namespace this registry does
/// not host (or imports) and an unknown key.
async fn signing_key(
    app: &AppState,
    name: &PackageName,
    log_id: &LogId,
    envelope: &PackageEnvelope,
) -> Result<cairn_protocol::PublicKey, ApiError> {
    let key = {
        let state = read_state(app);
        match state.operator().namespace(name.namespace()) {
            None => return Err(ApiError::not_found("namespace", name.namespace())),
            Some(NamespaceState::Imported { .. }) => {
                return Err(ApiError::Typed(
                    StatusCode::CONFLICT,
                    "namespaceImport",
                    ErrorId::Text(name.namespace().to_owned()),
                ))
            }
            Some(NamespaceState::Defined) => {}
        }
        match state.package(log_id) {
            Some(package) => package.keys().get(envelope.key_id()).cloned(),
            None => init_key(envelope),
        }
    };
    // A package whose init is accepted but not yet sequenced: its init key may sign the
    // records that follow, so clients can publish without waiting for the init.
    let key = match key {
        Some(key) => Some(key),
        None if read_state(app).package(log_id).is_none() => {
            let mut found = None;
            for row in app.store.unsequenced_inits(log_id).await? {
                if let Ok(earlier) = PackageEnvelope::from_protobuf(&row.envelope) {
                    found =
                        init_key(&earlier).filter(|key| key.fingerprint() == *envelope.key_id());
                }
                if found.is_some() {
                    break;
                }
            }
            found
        }
        None => None,
    };
    key.ok_or_else(|| {
        ApiError::Message(
            StatusCode::UNAUTHORIZED,
            format!("unknown key id `{}`", envelope.key_id()),
        )
    })
}

/// On a registry that requires publisher tokens: checks that the request carries, as its
/// bearer token, the token of an active account that may publish `name`.
async fn publisher_may_publish(
    app: &AppState,
    headers: &HeaderMap,
    name: &PackageName,
) -> Result<(), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return Err(ApiError::Message(
            StatusCode::UNAUTHORIZED,
            format!(
                "this registry publishes only for its publisher accounts, and the request \
                 carries no token: log in with the token the registry's operator gave you \
                 (`warg login` or `cairn login`), then publish `{name}` again"
            ),
        ));
    };
    let publisher = app.accounts.by_token(token).await?.ok_or_else(|| {
        ApiError::Message(
            StatusCode::UNAUTHORIZED,
            "the publisher token is not one of this registry's active accounts (revoked, or \
             mistyped): log in again with a current token"
                .to_owned(),
        )
    })?;
    if !publisher.covers(name.namespace(), name.name()) {
        return Err(ApiError::Message(
            StatusCode::FORBIDDEN,
            format!(
                "publisher `{}` may not publish `{name}`; it may publish to {}",
                publisher.name,
                crate::publishers::describe_scopes(&publisher)
            ),
        ));
    }
    Ok(())
}

/// A record's row with the content it still waits for. Content may arrive between reading
/// the row and reading what it misses: a `sourcing` row that misses nothing any more is read
/// again, so an answer never says `sourcing` with nothing to upload.
async fn with_missing_content(
    app: &AppState,
    row: RecordRow,
) -> Result<(RecordRow, Vec<Digest>), ApiError> {
    if row.status != RecordStatus::Sourcing {
        return Ok((row, Vec::new()));
    }
    let missing = app.store.missing_content(&row.record_id).await?;
    if !missing.is_empty() {
        return Ok((row, missing));
    }
    let again = app
        .store
        .record(&row.record_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("record {} vanished", row.record_id)))?;
    Ok((again, Vec::new()))
}

/// The key an init entry at the start of `envelope` names, if it signed the record.
fn init_key(envelope: &PackageEnvelope) -> Option<cairn_protocol::PublicKey> {
    match envelope.record().entries.first() {
        Some(PackageEntry::Init { key, .. }) if key.fingerprint() == *envelope.key_id() => {
            Some(key.clone())
        }
        _ => None,
    }
}

async fn record_of_log(
    app: &AppState,
    log_id: &str,
    record_id: &str,
) -> Result<RecordRow, ApiError> {
    let log_id: LogId = path_param(log_id)?;
    let record_id: RecordId = path_param(record_id)?;
    if read_state(app).package(&log_id).is_none() && app.store.log_name(&log_id).await?.is_none() {
        return Err(ApiError::not_found("log", log_id));
    }
    match app.store.record(&record_id).await? {
        Some(row) if row.log_id == log_id => Ok(row),
        _ => Err(ApiError::not_found("record", record_id)),
    }
}

async fn get_record(
    State(app): State<AppState>,
    Path((log_id, record_id)): Path<(String, String)>,
) -> Result<Json<PackageRecordResponse>, ApiError> {
    let row = record_of_log(&app, &log_id, &record_id).await?;
    // Validated by another node under a checkpoint this node has not checked yet: it catches
    // up now rather than at its next poll, so that the publisher hears at once.
    if row.status == RecordStatus::Validated
        && row.registry_index.unwrap_or(u64::MAX) >= served_length(&app)
    {
        crate::app::catch_up(&app).await;
    }
    let (row, missing) = with_missing_content(&app, row).await?;
    Ok(Json(record_response(&app, &row, missing)))
}

/// 413 for content above the size limit.
fn content_too_large() -> ApiError {
    ApiError::Message(
        StatusCode::PAYLOAD_TOO_LARGE,
        "content is larger than the registry accepts".into(),
    )
}

/// Checks that `digest` is content the sourcing record `row` still needs.
async fn needed_content(app: &AppState, row: &RecordRow, digest: &str) -> Result<Digest, ApiError> {
    let digest: Digest = path_param(digest)?;
    // The row as it is once what it misses is read (content may just have arrived).
    let (row, missing) = with_missing_content(app, row.clone()).await?;
    if row.status != RecordStatus::Sourcing {
        return Err(ApiError::Status(StatusCode::METHOD_NOT_ALLOWED));
    }
    if !missing.contains(&digest) {
        return Err(ApiError::bad_request(format!(
            "content digest `{digest}` is not required for package record `{}`",
            row.record_id
        )));
    }
    Ok(digest)
}

async fn reject_for_content(
    app: &AppState,
    row: &RecordRow,
    digest: &Digest,
    error: content::ContentError,
) -> ApiError {
    let reason = format!("content with digest `{digest}` was rejected by policy: {error}");
    let batch = cairn_store::CommitBatch {
        rejected: vec![cairn_store::RejectedRecord {
            seq: row.seq,
            record_id: row.record_id,
            reason: reason.clone(),
        }],
        ..Default::default()
    };
    if let Err(e) = app.store.commit(&batch).await {
        return ApiError::from(e);
    }
    app.metrics
        .record_rejected(crate::metrics::Rejection::ContentRefused);
    ApiError::Message(StatusCode::UNPROCESSABLE_ENTITY, reason)
}

async fn upload_content(
    State(app): State<AppState>,
    Path((log_id, record_id, digest)): Path<(String, String, String)>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let row = record_of_log(&app, &log_id, &record_id).await?;
    let digest = needed_content(&app, &row, &digest).await?;
    let received = receive(&app, request, app.settings.max_content_size).await?;
    let actual = Digest::from_bytes(received.sha256);
    if actual != digest {
        return Err(ApiError::bad_request(format!(
            "content digest mismatch: expected `{digest}`, found `{actual}`"
        )));
    }
    within_pending_budget(&app).await?;
    // Validation and the split need the whole file in memory: a few at a time.
    let _turn = app.ingests.acquire().await?;
    let bytes = tokio::task::spawn_blocking(move || received.read())
        .await?
        .map_err(ApiError::from_io)?;
    accept_content(&app, &row, digest, bytes).await
}

/// Checks that `bytes` hash to `digest`, then validates, splits and stores them and queues
/// the records that waited for them. Invalid WebAssembly rejects `row`.
async fn accept_content(
    app: &AppState,
    row: &RecordRow,
    digest: Digest,
    bytes: Vec<u8>,
) -> Result<StatusCode, ApiError> {
    let actual = Digest::from_bytes(Sha256::digest(&bytes).into());
    if actual != digest {
        return Err(ApiError::bad_request(format!(
            "content digest mismatch: expected `{digest}`, found `{actual}`"
        )));
    }
    let blobs = app.blobs.clone();
    let ingested = tokio::task::spawn_blocking(move || {
        content::validate_wasm(bytes).and_then(|wasm| content::ingest(&*blobs, &digest, &wasm))
    })
    .await?;
    match ingested {
        Ok(content_row) => content_stored(app, content_row).await?,
        Err(error @ content::ContentError::Invalid(_)) => {
            return Err(reject_for_content(app, row, &digest, error).await)
        }
        Err(content::ContentError::Io(error)) => return Err(ApiError::from_io(error)),
    }
    Ok(StatusCode::CREATED)
}

pub(crate) fn blob_id(text: &str) -> Result<cairn_split::BlobId, ApiError> {
    if text.starts_with("bafk") {
        cairn_split::BlobId::from_cid(text)
            .map_err(|e| ApiError::bad_request(format!("Invalid URL: {e}")))
    } else {
        path_param(text)
    }
}

/// Extension: uploads one blob (fragment or skeleton) of content a sourcing record needs.
/// The blob waits in the record's staging folder until the record's manifest completes the
/// content (or the deadline passes); it never enters the content store by itself.
async fn upload_blob(
    State(app): State<AppState>,
    Path((log_id, record_id, blob)): Path<(String, String, String)>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let row = record_of_log(&app, &log_id, &record_id).await?;
    let digest = blob_id(&blob)?;
    let (row, missing) = with_missing_content(&app, row).await?;
    if row.status != RecordStatus::Sourcing || missing.is_empty() {
        return Err(ApiError::Status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let received = receive(&app, request, app.settings.max_content_size).await?;
    if cairn_split::BlobId::from_bytes(received.sha256) != digest {
        return Err(ApiError::bad_request(format!(
            "blob digest mismatch: the body does not hash to `{digest}`"
        )));
    }
    let uploads = app.uploads.clone();
    let per_record = staged_bytes_per_record(&app);
    tokio::task::spawn_blocking(move || {
        uploads.stage(&row.record_id, &digest, received, per_record)
    })
    .await?
    .map_err(|error| receive_error(&app, error))?;
    Ok(StatusCode::CREATED)
}

/// 507 if what waits for records to be published (content stored provisionally, blobs
/// staged, bodies being received) already fills `--max-pending-uploads`.
async fn within_pending_budget(app: &AppState) -> Result<(), ApiError> {
    let pending = app
        .store
        .provisional_bytes()
        .await?
        .saturating_add(app.uploads.pending_bytes());
    if pending > app.uploads.limits().max_pending_bytes {
        return Err(receive_error(app, crate::upload::ReceiveError::Full));
    }
    Ok(())
}

/// The most bytes of blobs one record may stage: its content's blobs add up to about the
/// content's size (skeletons are smaller than what they stand for), so twice the largest
/// content leaves room for any honest upload.
fn staged_bytes_per_record(app: &AppState) -> u64 {
    app.settings.max_content_size.saturating_mul(2)
}

/// Streams a request's body to a temporary file, within `max` bytes.
async fn receive(
    app: &AppState,
    request: Request,
    max: u64,
) -> Result<crate::upload::Received, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    app.uploads
        .receive(request.into_body(), declared, max)
        .await
        .map_err(|error| receive_error(app, error))
}

/// The answer to an upload that was not received; a limit being hit is logged.
fn receive_error(app: &AppState, error: crate::upload::ReceiveError) -> ApiError {
    use crate::connections::LimitLog;
    use crate::upload::ReceiveError;
    static FULL: LimitLog = LimitLog::new();
    static STALLED: LimitLog = LimitLog::new();
    let limits = app.uploads.limits();
    match &error {
        ReceiveError::Full => FULL.hit(
            "upload refused: unfinished uploads fill --max-pending-uploads",
            limits.max_pending_bytes,
        ),
        ReceiveError::Stalled(_) => STALLED.hit(
            "upload dropped: it sent nothing for --stall-timeout (seconds)",
            limits.stall_timeout.as_secs(),
        ),
        _ => {}
    }
    match error {
        ReceiveError::TooLarge { .. } | ReceiveError::TooMany { .. } => {
            ApiError::Message(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
        }
        ReceiveError::Full => {
            ApiError::Message(StatusCode::INSUFFICIENT_STORAGE, error.to_string())
        }
        ReceiveError::Stalled(_) => {
            ApiError::Message(StatusCode::REQUEST_TIMEOUT, error.to_string())
        }
        ReceiveError::Unreadable(_) => ApiError::bad_request(error.to_string()),
        ReceiveError::Io(io) => ApiError::from_io(io),
    }
}

/// Extension: completes a content upload from blobs already uploaded, given the split
/// manifest. The join verifies every blob, and the whole file must hash to the digest.
async fn upload_content_manifest(
    State(app): State<AppState>,
    Path((log_id, record_id, digest)): Path<(String, String, String)>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let row = record_of_log(&app, &log_id, &record_id).await?;
    let digest = needed_content(&app, &row, &digest).await?;
    // Read only once the record is known to need it, within the JSON body limits.
    let body = tokio::time::timeout(
        JSON_BODY_TIMEOUT,
        axum::body::to_bytes(request.into_body(), MAX_MANIFEST_BODY),
    )
    .await
    .map_err(|_| body_too_slow())?
    .map_err(|_| {
        ApiError::Message(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a split manifest is at most {MAX_MANIFEST_BODY} bytes"),
        )
    })?;
    let manifest = Manifest::from_json(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if manifest.size() > app.settings.max_content_size {
        return Err(content_too_large());
    }
    within_pending_budget(&app).await?;
    let _turn = app.ingests.acquire().await?;
    let blobs = app.blobs.clone();
    let uploads = app.uploads.clone();
    let record_id = row.record_id;
    let joined =
        tokio::task::spawn_blocking(move || -> Result<Result<Vec<u8>, String>, std::io::Error> {
            let mut source = content::RecordBlobs {
                store: &*blobs,
                uploads: &uploads,
                record_id,
            };
            if !source.has_all(&manifest)? {
                return Ok(Err(
                    "some blobs of the manifest have not been uploaded".into()
                ));
            }
            let mut bytes = Vec::with_capacity(manifest.size() as usize);
            Ok(cairn_split::join(&manifest, &mut source, &mut bytes)
                .map(|_| bytes)
                .map_err(|e| e.to_string()))
        })
        .await??
        .map_err(ApiError::bad_request)?;
    let accepted = accept_content(&app, &row, digest, joined).await;
    if accepted.is_ok() {
        let uploads = app.uploads.clone();
        tokio::task::spawn_blocking(move || uploads.discard(&record_id)).await?;
    }
    accepted
}

// ---------------------------------------------------------------------------------------
// Content.

async fn content_sources(
    State(app): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Json<ContentSourcesResponse>, ApiError> {
    let digest: Digest = path_param(&digest)?;
    let row = app
        .store
        .content(&digest)
        .await?
        .ok_or_else(|| ApiError::not_found("contentDigest", digest))?;
    let url = format!(
        "{}/content/sha256-{}",
        app.settings.base_url,
        hex::encode(digest.as_bytes())
    );
    let source = ContentSource::HttpGet {
        url,
        accept_ranges: Some(true),
        size: Some(row.size),
    };
    Ok(Json(ContentSourcesResponse {
        content_sources: BTreeMap::from([(digest, vec![source])]),
    }))
}

async fn manifest_of(app: &AppState, digest: &Digest) -> Result<Option<Manifest>, ApiError> {
    match app.store.content(digest).await? {
        None => Ok(None),
        Some(row) => Manifest::from_json(row.manifest.as_bytes())
            .map(Some)
            .map_err(|e| ApiError::Internal(e.to_string())),
    }
}

async fn serve_content(
    State(app): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::Status(StatusCode::NOT_FOUND);
    let hex_part = file.strip_prefix("sha256-").ok_or_else(not_found)?;
    let digest: Digest = format!("sha256:{hex_part}")
        .parse()
        .map_err(|_| not_found())?;
    let manifest = manifest_of(&app, &digest).await?.ok_or_else(not_found)?;
    let size = manifest.size();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(text) => match ByteRange::parse(text, size) {
            None => None,
            Some(Some(range)) => Some(range),
            Some(None) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{size}")),
                );
                return Ok(response);
            }
        },
    };
    // A range is of the file's bytes, so a request with one gets them as they are.
    let encoding = match range {
        Some(_) => content::WireEncoding::Identity,
        None => content::WireEncoding::negotiate(&headers),
    };
    let gzip_turn = match encoding {
        content::WireEncoding::Gzip => app.gzip_turn(),
        _ => None,
    };
    let (rx, encoding) = match (encoding, gzip_turn) {
        (content::WireEncoding::Zstd, _) => (
            content::stream_join_zstd(app.blobs.clone(), manifest),
            Some("zstd"),
        ),
        (content::WireEncoding::Gzip, Some(turn)) => (
            content::stream_join_gzip(app.blobs.clone(), manifest, turn),
            Some("gzip"),
        ),
        _ => (
            content::stream_join(app.blobs.clone(), manifest, range),
            None,
        ),
    };
    let mut response = Response::new(content::body_of(rx));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding {
        // Another representation, so another entity tag; its length is known once sent.
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        headers.insert(
            header::ETAG,
            header_value(&format!("\"{digest}+{encoding}\"")),
        );
    } else {
        headers.insert(header::ETAG, header_value(&format!("\"{digest}\"")));
        content::set_length_and_range(&mut response, size, range);
    }
    Ok(response)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("header values built here are ASCII")
}

async fn content_manifest(
    State(app): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest: Digest = path_param(&digest)?;
    let manifest = manifest_of(&app, &digest)
        .await?
        .ok_or_else(|| ApiError::not_found("contentDigest", digest))?;
    Ok((
        [(header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)],
        manifest.to_json(),
    )
        .into_response())
}

/// Where the whole file and each of its blobs can be fetched.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContentLocations {
    digest: Digest,
    size: u64,
    tree_digest: cairn_split::TreeDigest,
    /// The whole file.
    whole: Vec<Location>,
    /// Each blob of the split, in join order.
    blobs: Vec<BlobLocations>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BlobLocations {
    digest: cairn_split::BlobId,
    kind: cairn_split::BlobKind,
    size: u64,
    locations: Vec<Location>,
}

/// One place to fetch bytes from: `http` (a URL), `ipfs` (a raw CIDv1 over the same bytes).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Location {
    Http { url: String },
    Ipfs { cid: String },
}

/// Extension: every location of a content and of its blobs. The warg `content` endpoint can
/// only name HTTP sources of the whole file (the reference client refuses other kinds), so
/// the other kinds are listed here.
async fn content_locations(
    State(app): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Json<ContentLocations>, ApiError> {
    let digest: Digest = path_param(&digest)?;
    let manifest = manifest_of(&app, &digest)
        .await?
        .ok_or_else(|| ApiError::not_found("contentDigest", digest))?;
    let base = &app.settings.base_url;
    let whole = vec![Location::Http {
        url: format!("{base}/content/sha256-{}", hex::encode(digest.as_bytes())),
    }];
    let blobs = manifest
        .blobs()
        .iter()
        .map(|blob| BlobLocations {
            digest: blob.digest,
            kind: blob.kind,
            size: blob.size,
            locations: vec![
                Location::Http {
                    url: format!("{base}/v1/cairn/blobs/{}", blob.digest),
                },
                Location::Ipfs {
                    cid: blob.digest.to_cid(),
                },
            ],
        })
        .collect();
    Ok(Json(ContentLocations {
        digest,
        size: manifest.size(),
        tree_digest: manifest.tree_digest(),
        whole,
        blobs,
    }))
}

// ---------------------------------------------------------------------------------------
// Proofs, monitoring, ledger.

async fn proof_consistency(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<ConsistencyRequest>,
) -> Result<Json<ConsistencyResponse>, ApiError> {
    let ConsistencyRequest { from, to } = request;
    if from == 0 || from > to {
        return Err(ApiError::proof_failure(format!(
            "cannot prove consistency from {from} to {to}"
        )));
    }
    let state = read_state(&app);
    if state.checkpoint(to).is_none() {
        return Err(ApiError::not_found_number("logLength", to));
    }
    let bundle = state
        .log()
        .proof_bundle(to, &[from], &[])
        .map_err(|e| ApiError::proof_failure(e.to_string()))?;
    Ok(Json(ConsistencyResponse {
        proof: cairn_protocol::proofs::encode_log_bundle(&bundle),
    }))
}

/// The most leaves one inclusion request may name (a client names the head of each log it
/// follows, so this many logs are proven per request).
pub const MAX_INCLUSION_LEAFS: usize = 10_000;

async fn proof_inclusion(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<InclusionRequest>,
) -> Result<Json<InclusionResponse>, ApiError> {
    let length = request.log_length;
    if request.leafs.len() > MAX_INCLUSION_LEAFS {
        return Err(ApiError::bad_request(format!(
            "too many leafs: {} named, at most {MAX_INCLUSION_LEAFS} per request",
            request.leafs.len()
        )));
    }
    // A leaf named twice is proven once; the proofs follow the first mention of each.
    let mut seen = std::collections::HashSet::with_capacity(request.leafs.len());
    let leafs: Vec<u64> = request
        .leafs
        .into_iter()
        .filter(|leaf| seen.insert(*leaf))
        .collect();
    // Under the lock: the log bundle (a few hashes per leaf) and what the map proofs need;
    // the map proofs themselves are built from the snapshot, a cheap shared copy, after.
    let (bundle, snapshot, paths) = {
        let state = read_state(&app);
        let snapshot = state
            .snapshot(length)
            .ok_or_else(|| ApiError::not_found_number("logLength", length))?
            .clone();
        let mut paths = Vec::with_capacity(leafs.len());
        for &leaf in &leafs {
            let (log_id, _) = state
                .leaf(leaf)
                .filter(|_| leaf < length)
                .ok_or_else(|| ApiError::not_found_number("leaf", leaf))?;
            paths.push((
                *log_id,
                cairn_log::KeyPath::of_key(log_id.digest().as_bytes()),
            ));
        }
        let bundle = state
            .log()
            .proof_bundle(length, &[], &leafs)
            .map_err(|e| ApiError::proof_failure(e.to_string()))?;
        (bundle, snapshot, paths)
    };
    let mut map_proofs = Vec::with_capacity(paths.len());
    for (log_id, path) in &paths {
        if snapshot.get(path).is_none() {
            return Err(ApiError::Proof(ProofFailure::PackageNotIncluded {
                log_id: *log_id,
            }));
        }
        map_proofs.push(snapshot.prove(path));
    }
    Ok(Json(InclusionResponse {
        log: cairn_protocol::proofs::encode_log_bundle(&bundle),
        map: cairn_protocol::proofs::encode_map_bundle(&map_proofs),
    }))
}

/// Verifies a checkpoint for real: `checkpoint` says whether this registry made exactly it
/// (timestamp included); `signature` whether it verifies with an operator key that holds
/// `commit`.
async fn verify_checkpoint(
    State(app): State<AppState>,
    ApiJson(checkpoint): ApiJson<SignedCheckpoint>,
) -> Json<VerifyCheckpointResponse> {
    let state = read_state(&app);
    let ours = state
        .checkpoint(checkpoint.contents.log_length)
        .is_some_and(|c| c.contents == checkpoint.contents);
    let signed = state
        .operator()
        .keys()
        .get(&checkpoint.key_id)
        .filter(|_| state.operator().can_commit(&checkpoint.key_id))
        .is_some_and(|key| checkpoint.verify(key).is_ok());
    let verdict = |ok: bool| {
        if ok {
            Verification::Verified
        } else {
            Verification::Invalid
        }
    };
    Json(VerifyCheckpointResponse {
        checkpoint: verdict(ours),
        signature: verdict(signed),
        retry_after: None,
    })
}

const LEDGER_PAGE: u64 = 1000;

async fn ledger(State(app): State<AppState>) -> Json<LedgerSourcesResponse> {
    let length = served_length(&app);
    let sources = (0..length)
        .step_by(LEDGER_PAGE as usize)
        .map(|start| LedgerSource {
            first_registry_index: start,
            last_registry_index: (start + LEDGER_PAGE).min(length) - 1,
            url: format!("v1/ledger/records/{start}"),
            content_type: LEDGER_PACKED_MEDIA_TYPE.into(),
            accept_ranges: Some(false),
        })
        .collect();
    Json(LedgerSourcesResponse {
        hash_algorithm: "sha256".into(),
        sources,
    })
}

async fn ledger_records(
    State(app): State<AppState>,
    Path(start): Path<String>,
) -> Result<Response, ApiError> {
    let start: u64 = path_param(&start)?;
    let length = served_length(&app);
    let state = read_state(&app);
    let mut bytes = Vec::new();
    for index in start..(start.saturating_add(LEDGER_PAGE)).min(length) {
        if let Some((log_id, record_id)) = state.leaf(index) {
            bytes.extend_from_slice(log_id.digest().as_bytes());
            bytes.extend_from_slice(record_id.digest().as_bytes());
        }
    }
    Ok(([(header::CONTENT_TYPE, LEDGER_PACKED_MEDIA_TYPE)], bytes).into_response())
}

/// The discovery document. OCI is the preferred protocol: `wkg` (0.16 and later) speaks only
/// OCI. cairn serves OCI at its own host and port with no namespace prefix (`ns:name` is the
/// repository `ns/name`). There is no `wargUrl`: `wkg` 0.16.1 cannot parse a document that has
/// it, and the `warg` CLI then uses the URL it was given (see `docs/api.md`, "Discovery").
async fn well_known(State(app): State<AppState>) -> Json<WellKnownRegistry> {
    let url = app.settings.base_url.clone();
    let registry = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned();
    Json(WellKnownRegistry {
        warg_url: None,
        preferred_protocol: Some("oci".into()),
        warg: Some(WargEndpoint { url }),
        oci: Some(OciEndpoint {
            registry: registry.clone(),
            namespace_prefix: None,
        }),
        oci_registry: Some(registry),
        oci_namespace_prefix: None,
    })
}
