//! The state every route shares, and the registry's operations that both of its APIs (warg
//! and OCI) use: accepting a signed record, and knowing which content is stored.

use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use cairn_protocol::{Digest, LogId, PackageEntry, PackageEnvelope, PackageName};
use cairn_store::{BlobStore, InsertOutcome, NewRecord, RecordRow, RecordStatus, Store};
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::state::RegistryState;

/// Everything a handler needs. Cloned for every request (by the router and [`Front`]),
/// so it is one shared allocation: a clone is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl AppState {
    /// Shares `parts` among the handlers.
    pub fn new(parts: AppStateParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateParts;

    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct AppStateParts {
    /// Records, logs, checkpoints, content rows.
    pub store: Arc<dyn Store>,
    /// Blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// The verifiable state.
    pub state: Arc<RwLock<RegistryState>>,
    /// Wakes the sequencer.
    pub wake: Arc<Notify>,
    /// Settings.
    pub settings: Arc<ApiSettings>,
    /// Content digests known to be stored (content is never removed, so this only grows).
    pub stored_content: Arc<RwLock<std::collections::HashSet<Digest>>>,
    /// Signatures checked at acceptance, for the sequencer.
    pub verified: Arc<crate::state::VerifiedSignatures>,
    /// Uploads being received and blobs staged for records.
    pub uploads: crate::upload::Uploads,
    /// Turns to hold a whole upload in memory (to validate and split it), so that a burst
    /// of uploads cannot hold more than a few contents in memory at once.
    pub ingests: tokio::sync::Semaphore,
    /// Publisher accounts.
    pub accounts: Arc<crate::publishers::Accounts>,
    /// Counts the sequencer's committed rounds: changes once a round's records are published
    /// or rejected.
    pub rounds: tokio::sync::watch::Receiver<u64>,
    /// Patches between blobs, made on demand and kept.
    pub patches: Arc<crate::patches::Patches>,
    /// Turns to send an answer in gzip ([`crate::content::GZIP_STREAMS`]).
    pub gzip_turns: Arc<tokio::sync::Semaphore>,
    /// The metrics `/metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Catches this node up with checkpoints other nodes committed.
    pub follower: Arc<crate::node::Follower>,
}

/// Settings the routes need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The registry's own URL, e.g. `http://127.0.0.1:8090` (no trailing slash).
    pub base_url: String,
    /// Names under which clients may address this registry in a `Warg-Registry` header.
    pub registry_names: Vec<String>,
    /// The largest content upload, in bytes.
    pub max_content_size: u64,
    /// Whether every publish needs a publisher account's token.
    pub require_publisher_token: bool,
}

impl AppStateParts {
    /// A turn to send an answer in gzip, if one is free ([`crate::content::GZIP_STREAMS`]).
    pub(crate) fn gzip_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.gzip_turns.clone().try_acquire_owned().ok()
    }
}

/// The verifiable state, for reading.
pub(crate) fn read_state(app: &AppState) -> std::sync::RwLockReadGuard<'_, RegistryState> {
    app.state.read().expect("state lock poisoned")
}

pub(crate) fn served_length(app: &AppState) -> u64 {
    read_state(app).served_length()
}

/// On a store other nodes share, unless this node sequences: catches up with the checkpoints
/// other nodes committed, for a request that named something this node has not seen yet.
/// Returns whether it serves anything new.
pub(crate) async fn catch_up(app: &AppState) -> bool {
    if !app.store.shared() || app.metrics.is_sequencer() {
        return false;
    }
    app.follower.follow().await.unwrap_or(false)
}

/// Checks `envelope`'s signature by `key`, notes the content it waits for, and stores it
/// as accepted (or finds it stored already). Returns its row.
pub(crate) async fn accept_record(
    app: &AppState,
    name: &PackageName,
    envelope: PackageEnvelope,
    key: &cairn_protocol::PublicKey,
) -> Result<RecordRow, ApiError> {
    let log_id = name.log_id();
    let proof = envelope.verify_signature(key).map_err(|_| {
        ApiError::Message(
            StatusCode::UNAUTHORIZED,
            format!("signature `{}` verification failed", envelope.signature()),
        )
    })?;
    let mut missing = Vec::new();
    for entry in &envelope.record().entries {
        if let PackageEntry::Release { content, .. } = entry {
            if !missing.contains(content) && !content_is_stored(app, content).await? {
                missing.push(*content);
            }
        }
    }
    // Remembered before the insert, because the sequencer may take the record as soon as it
    // is committed; forgotten again unless this request inserted it.
    let record_id = *envelope.record_id();
    app.verified.remember(proof);
    let outcome = app
        .store
        .insert_record(NewRecord {
            record_id: *envelope.record_id(),
            log_id,
            package_name: Some(name),
            envelope: &envelope.to_protobuf(),
            missing_content: &missing,
            is_init: matches!(
                envelope.record().entries.first(),
                Some(PackageEntry::Init { .. })
            ),
        })
        .await
        .inspect_err(|_| {
            app.verified.take(&record_id);
        })?;
    match outcome {
        InsertOutcome::Inserted(row) => {
            app.metrics.record_accepted();
            if crate::record_events::enabled() {
                crate::record_events::accepted(
                    &name.to_string(),
                    &record_id,
                    &crate::record_events::package_entries(&envelope.record().entries),
                    envelope.key_id(),
                    row.status == RecordStatus::Sourcing,
                );
            }
            Ok(row)
        }
        InsertOutcome::AlreadyThere(row) => {
            app.verified.take(&record_id);
            if row.log_id != log_id {
                return Err(published_elsewhere(app, name, &row.log_id).await);
            }
            Ok(row)
        }
    }
}

/// 409 for a record already sent to another package's log: a record (its id is the hash of
/// its bytes) belongs to one log, so the same bytes cannot be published under a second name.
async fn published_elsewhere(app: &AppState, name: &PackageName, other: &LogId) -> ApiError {
    let other_name = match app.store.log_name(other).await {
        Ok(Some(Some(other_name))) => format!("`{other_name}`"),
        _ => format!("log `{other}`"),
    };
    ApiError::Message(
        StatusCode::CONFLICT,
        format!(
            "this record was already published to {other_name}, and a record belongs to one \
             package only; sign a new record for `{name}`"
        ),
    )
}

/// Whether content is stored, asking the store only until the answer is yes.
pub(crate) async fn content_is_stored(app: &AppState, digest: &Digest) -> Result<bool, ApiError> {
    if app
        .stored_content
        .read()
        .expect("content cache lock")
        .contains(digest)
    {
        return Ok(true);
    }
    let stored = app.store.content(digest).await?.is_some();
    if stored {
        app.stored_content
            .write()
            .expect("content cache lock")
            .insert(*digest);
    }
    Ok(stored)
}

/// Records content that is now stored (provisionally, until a record that waited for it is
/// published) and queues the records that waited for it.
pub(crate) async fn content_stored(
    app: &AppState,
    row: cairn_store::ContentRow,
) -> Result<(), ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if !app.store.content_uploaded(&row, now).await?.is_empty() {
        app.wake.notify_one();
    }
    Ok(())
}
