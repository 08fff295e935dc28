//! Records the registry signs for publisher accounts: a release (with the package's `init`
//! first when the package is new) or a yank, signed with the key the registry keeps for the
//! account, accepted like any client's record, and followed until the log publishes or
//! rejects it.
//!
//! The registry never signs for a package whose log does not grant the account's key: a new
//! package's `init` names that key as its owner; an existing package must have granted it
//! `release` (or `yank`) with an ordinary signed record of its owner.

use std::path::PathBuf;
use std::time::Duration;

use cairn_protocol::{
    Digest, Envelope, HashAlgorithm, PackageEntry, PackageName, PackagePermission, Record,
    RecordId, Timestamp,
};
use cairn_store::{Publisher, RecordStatus};
use semver::Version;

use crate::app::AppState;
use crate::content;
use crate::error::ApiError;

/// How long a push waits for its record to be published before it gives up answering.
const PUBLISH_WAIT: Duration = Duration::from_secs(120);

/// How often a record whose `prev` another publish overtook is signed again.
const HEAD_RACES: usize = 3;

/// What a signed change asks of a package.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Release `version` with the file `content`, whose bytes (when the registry does not
    /// store them yet) are in `file`.
    Release {
        version: Version,
        content: Digest,
        file: Option<PathBuf>,
    },
    /// Yank `version`.
    Yank { version: Version },
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    /// The package exists and does not grant the account's key the permission.
    #[error("package `{package}` does not grant publisher `{publisher}` permission to {permission}; an owner of the package can run `cairn publish grant {package} {key} --permission {permission}`")]
    NotGranted {
        package: PackageName,
        publisher: String,
        key: String,
        permission: PackagePermission,
    },
    /// The package does not exist (for a yank).
    #[error("package `{0}` has no release to yank")]
    NoPackage(PackageName),
    /// The file is not WebAssembly.
    #[error("the layer is not a valid WebAssembly component or module: {0}")]
    InvalidWasm(String),
    /// The log refused the record.
    #[error("the registry's log rejected the record: {0}")]
    Rejected(String),
    /// The record is accepted but not published yet.
    #[error(
        "the record {0} is accepted but not yet published; push again later to see the outcome"
    )]
    StillPending(RecordId),
    /// Anything else.
    #[error("{}", api_message(.0))]
    Api(ApiError),
}

impl From<ApiError> for ChangeError {
    fn from(error: ApiError) -> Self {
        ChangeError::Api(error)
    }
}

/// What an API error says to a person.
fn api_message(error: &ApiError) -> String {
    match error {
        ApiError::Message(_, message) => message.clone(),
        _ => "the registry failed; its log says why".to_owned(),
    }
}

/// A change the log published.
#[derive(Debug)]
pub(crate) struct Published {
    /// The record.
    pub record_id: RecordId,
    /// Its index in the registry log.
    pub registry_index: u64,
}

/// Signs `change` to `package` for `publisher`, submits it, and waits for the log's verdict.
pub(crate) async fn make(
    app: &AppState,
    publisher: &Publisher,
    package: &PackageName,
    change: &Change,
) -> Result<Published, ChangeError> {
    let key = app
        .accounts
        .signing_key(publisher)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let key_id = key.public_key().fingerprint();
    let mut races = 0;
    loop {
        // Content is validated and stored under an ingest turn, held until the record claims
        // it, so that the sweep of abandoned content never sees it unclaimed. A file that is
        // not WebAssembly is refused before anything is signed.
        let turn = app.ingests.acquire().await.map_err(ApiError::from)?;
        let wasm = match change {
            Change::Release {
                file: Some(file), ..
            } => Some(read_wasm(file.clone()).await?),
            _ => None,
        };
        let (prev, entries) = {
            let state = app.state.read().expect("state lock poisoned");
            let log = state.package(&package.log_id());
            let permission = match change {
                Change::Release { .. } => PackagePermission::Release,
                Change::Yank { .. } => PackagePermission::Yank,
            };
            let mut entries = Vec::new();
            match log {
                Some(log) => {
                    if !log.permissions(&key_id).contains(&permission) {
                        return Err(ChangeError::NotGranted {
                            package: package.clone(),
                            publisher: publisher.name.clone(),
                            key: key.public_key().to_string(),
                            permission,
                        });
                    }
                }
                None if matches!(change, Change::Yank { .. }) => {
                    return Err(ChangeError::NoPackage(package.clone()))
                }
                None => entries.push(PackageEntry::Init {
                    key: key.public_key().clone(),
                    hash_algorithm: HashAlgorithm::Sha256,
                }),
            }
            entries.push(match change {
                Change::Release {
                    version, content, ..
                } => PackageEntry::Release {
                    version: version.clone(),
                    content: *content,
                },
                Change::Yank { version } => PackageEntry::Yank {
                    version: version.clone(),
                },
            });
            (log.and_then(|log| log.head()).map(|h| h.record_id), entries)
        };
        let record = Record {
            prev,
            version: 0,
            time: Timestamp::now(),
            entries,
        };
        let envelope = Envelope::signed(record, &key);
        let record_id = *envelope.record_id();
        let row = crate::app::accept_record(app, package, envelope, key.public_key()).await?;
        if let (RecordStatus::Sourcing, Change::Release { content, .. }, Some(wasm)) =
            (row.status, change, wasm)
        {
            store_content(app, *content, wasm).await?;
        }
        drop(turn);
        if row.status == RecordStatus::Pending || row.status == RecordStatus::Sourcing {
            app.wake.notify_one();
        }
        match outcome(app, &record_id).await? {
            Outcome::Published(registry_index) => {
                return Ok(Published {
                    record_id,
                    registry_index,
                })
            }
            Outcome::Rejected(reason) => {
                // Another record of the package may have been published between reading the
                // head and the sequencer's turn: sign again on the new head.
                let head_moved = {
                    let state = app.state.read().expect("state lock poisoned");
                    state
                        .package(&package.log_id())
                        .and_then(|log| log.head())
                        .map(|h| h.record_id)
                        != prev
                };
                if head_moved && races < HEAD_RACES {
                    races += 1;
                    continue;
                }
                return Err(ChangeError::Rejected(reason));
            }
            Outcome::Pending => return Err(ChangeError::StillPending(record_id)),
        }
    }
}

/// Reads and validates the file at `file`. The caller holds an ingest turn.
async fn read_wasm(file: PathBuf) -> Result<content::ValidWasm, ChangeError> {
    tokio::task::spawn_blocking(move || std::fs::read(&file).map(content::validate_wasm))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from_io)?
        .map_err(|e| match e {
            content::ContentError::Invalid(reason) => ChangeError::InvalidWasm(reason),
            content::ContentError::Io(error) => ApiError::from_io(error).into(),
        })
}

/// Splits and stores `wasm` as `content`, and lets the records that wait for it go on. The
/// caller holds an ingest turn.
async fn store_content(
    app: &AppState,
    digest: Digest,
    wasm: content::ValidWasm,
) -> Result<(), ChangeError> {
    let blobs = app.blobs.clone();
    let ingested = tokio::task::spawn_blocking(move || content::ingest(&*blobs, &digest, &wasm))
        .await
        .map_err(ApiError::from)?;
    match ingested {
        Ok(row) => {
            crate::app::content_stored(app, row).await?;
            Ok(())
        }
        Err(content::ContentError::Invalid(reason)) => Err(ChangeError::InvalidWasm(reason)),
        Err(content::ContentError::Io(error)) => Err(ApiError::from_io(error).into()),
    }
}

/// Where a record ended up.
enum Outcome {
    Published(u64),
    Rejected(String),
    Pending,
}

/// Waits until `record_id` is published or rejected, or [`PUBLISH_WAIT`] passes.
async fn outcome(app: &AppState, record_id: &RecordId) -> Result<Outcome, ApiError> {
    let deadline = tokio::time::Instant::now() + PUBLISH_WAIT;
    let mut rounds = app.rounds.clone();
    loop {
        // Marked seen before the row is read, so that a round committed meanwhile wakes the
        // wait below.
        rounds.borrow_and_update();
        let row = app
            .store
            .record(record_id)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("record {record_id} vanished")))?;
        match row.status {
            RecordStatus::Rejected => {
                return Ok(Outcome::Rejected(row.reason.unwrap_or_default()));
            }
            RecordStatus::Validated => {
                if let Some(index) = row
                    .registry_index
                    .filter(|index| *index < crate::app::served_length(app))
                {
                    return Ok(Outcome::Published(index));
                }
            }
            RecordStatus::Pending | RecordStatus::Sourcing => {}
        }
        tokio::select! {
            changed = rounds.changed() => {
                if changed.is_err() {
                    // The sequencer is gone: the server is stopping.
                    return Ok(Outcome::Pending);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(Outcome::Pending),
        }
    }
}
