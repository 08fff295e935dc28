//! The audit of a stopped registry's data directory: every stored record is replayed through
//! the validators, the registry log and map are rebuilt and every stored checkpoint's roots
//! and signature checked; then every released content is joined again from the content store
//! the data directory records and hashed.

use std::path::{Path, PathBuf};

use cairn_protocol::Digest;
use cairn_store::{ContentLocationError, Database, StoreError};
use serde::Serialize;
use sha2::Digest as _;

use crate::content::StoreBlobs;
use crate::state::{RegistryState, ReplayError};

/// What an audit checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Records replayed.
    pub records: usize,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The registry log's length.
    pub log_length: u64,
    /// Its root.
    pub log_root: String,
    /// The map's root.
    pub map_root: String,
    /// Released contents joined and hashed.
    pub contents_checked: usize,
}

/// Why an audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The directory holds no registry.
    #[error("{0} has no registry database")]
    NoRegistry(PathBuf),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored records and checkpoints do not verify.
    #[error("the stored records and checkpoints do not verify: {0}")]
    Replay(#[from] ReplayError),
    /// The content store cannot be used.
    #[error(transparent)]
    ContentStore(#[from] ContentLocationError),
    /// A released content has no stored split.
    #[error("released content {0} is not stored")]
    ContentMissing(Digest),
    /// A stored split manifest does not parse.
    #[error("the stored split manifest of content {digest} does not parse: {reason}")]
    BadManifest {
        /// The content.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// A content does not join from its blobs.
    #[error("content {digest} does not join from {location}: {source}")]
    Join {
        /// The content.
        digest: Digest,
        /// The content store.
        location: String,
        /// Why.
        source: Box<cairn_split::JoinError>,
    },
    /// A content joins to other bytes.
    #[error("content {digest} joins to bytes with digest {actual}")]
    Mismatch {
        /// The content.
        digest: Digest,
        /// What its blobs join to.
        actual: Digest,
    },
}

/// Audits the registry in `data_dir` (its database in `database`, or the SQLite file in
/// `data_dir` when `None`); with `check_content`, also joins and hashes every released
/// content. No server may be using the registry meanwhile.
pub async fn audit(
    data_dir: &Path,
    database: Option<&Database>,
    check_content: bool,
) -> Result<AuditReport, AuditError> {
    let database = match database {
        Some(database) => database.clone(),
        None => {
            let file = data_dir.join(crate::DATABASE_FILE);
            if !file.is_file() {
                return Err(AuditError::NoRegistry(data_dir.to_owned()));
            }
            Database::Sqlite(file)
        }
    };
    let store = cairn_store::open(&database).await?;
    let (records, checkpoints) = store.committed().await?;
    let state = RegistryState::replay(&records, &checkpoints)?;
    let mut manifests = Vec::new();
    if check_content {
        for digest in state.released_contents() {
            let row = store
                .content(&digest)
                .await?
                .ok_or(AuditError::ContentMissing(digest))?;
            let manifest =
                cairn_split::Manifest::from_json(row.manifest.as_bytes()).map_err(|e| {
                    AuditError::BadManifest {
                        digest,
                        reason: e.to_string(),
                    }
                })?;
            manifests.push((digest, manifest));
        }
    }
    store.close().await;
    let checkpoint = state.checkpoint_now();
    let mut report = AuditReport {
        records: records.len(),
        checkpoints: checkpoints.len(),
        log_length: checkpoint.log_length,
        log_root: checkpoint.log_root.to_string(),
        map_root: checkpoint.map_root.to_string(),
        contents_checked: 0,
    };
    if check_content {
        // Blob stores block (an OCI store is an HTTP client): joined off the runtime.
        let data_dir = data_dir.to_owned();
        report.contents_checked =
            tokio::task::spawn_blocking(move || join_and_hash(&data_dir, &manifests))
                .await
                .expect("the content audit panicked")?;
    }
    Ok(report)
}

/// Joins every content of `manifests` from the content store `data_dir` records and checks
/// its digest; returns how many were checked.
fn join_and_hash(
    data_dir: &Path,
    manifests: &[(Digest, cairn_split::Manifest)],
) -> Result<usize, AuditError> {
    let location = cairn_store::resolve_content_location(data_dir, None, true)?;
    let blobs = location.open()?;
    for (digest, manifest) in manifests {
        let mut hasher = HashingSink::default();
        cairn_split::join(manifest, &mut StoreBlobs(blobs.as_ref()), &mut hasher).map_err(
            |source| AuditError::Join {
                digest: *digest,
                location: location.to_string(),
                source: Box::new(source),
            },
        )?;
        let actual = Digest::from_bytes(hasher.0.finalize().into());
        if actual != *digest {
            return Err(AuditError::Mismatch {
                digest: *digest,
                actual,
            });
        }
    }
    Ok(manifests.len())
}

/// Hashes what a join writes.
#[derive(Default)]
struct HashingSink(sha2::Sha256);

impl std::io::Write for HashingSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
