//! Receiving uploads without trusting them: a body is streamed to a temporary file, hashed as
//! it arrives, refused as soon as its declared or received length passes the limit, and
//! dropped when it stalls; blobs uploaded for a record wait in that record's staging folder
//! until the record's content is complete.
//!
//! Everything here lives under `<data>/uploads`, on the data directory's file system:
//! `tmp/` holds bodies being received (each removed when its request ends, whatever
//! happened, and all of them at start), `records/<recordId>/<blob>` the staged blobs. Staged
//! blobs count against a cap per record and a cap for the whole registry, and a record's
//! folder is removed once its content is stored, or once it has waited past the deadline.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use cairn_protocol::RecordId;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

/// How much may wait in uploads, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// How long uploaded blobs wait for their record's content to be completed.
    pub deadline: Duration,
    /// The most bytes staged and being received, over all records.
    pub max_pending_bytes: u64,
    /// How long a body may send nothing before the upload is dropped.
    pub stall_timeout: Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            deadline: Duration::from_secs(3600),
            max_pending_bytes: 4 << 30,
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// Why an upload was not received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The body is, or says it is, larger than allowed.
    #[error("the upload is larger than the registry accepts ({max} bytes)")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// Uploads waiting for their records already fill the space set aside for them.
    #[error("the registry holds too many unfinished uploads; try again later")]
    Full,
    /// A record has as many blobs staged as any content can have.
    #[error("the record has {max} blobs uploaded already, as many as any content can have")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The body sent nothing for the stall timeout.
    #[error("the upload sent nothing for {0:?}")]
    Stalled(Duration),
    /// The body broke off.
    #[error("the upload could not be read: {0}")]
    Unreadable(String),
    /// Writing it failed.
    #[error("cannot store the upload: {0}")]
    Io(#[from] io::Error),
}

/// The uploads folder and the bytes it holds.
#[derive(Debug, Clone)]
pub struct Uploads {
    tmp: PathBuf,
    records: PathBuf,
    limits: UploadLimits,
    /// Bytes staged or being received now.
    pending: Arc<AtomicU64>,
    /// A counter that makes temporary names unique within the process.
    next: Arc<AtomicU64>,
    /// What each record folder in use holds, so that staging a blob does not list its folder.
    tallies: Arc<Mutex<HashMap<PathBuf, Tally>>>,
}

/// What a record's staging folder holds.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    bytes: u64,
    blobs: usize,
}

impl Tally {
    /// Counts the folder's files (none if it does not exist).
    fn of(folder: &Path) -> io::Result<Tally> {
        let mut tally = Tally::default();
        let entries = match std::fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(tally),
            Err(error) => return Err(error),
        };
        for entry in entries {
            tally.bytes += entry?.metadata()?.len();
            tally.blobs += 1;
        }
        Ok(tally)
    }
}

/// A share of the pending bytes, given back when dropped.
#[derive(Debug)]
struct Reservation {
    pending: Arc<AtomicU64>,
    bytes: u64,
}

impl Reservation {
    fn grow(&mut self, bytes: u64, max: u64) -> bool {
        let grown = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                total.checked_add(bytes).filter(|&total| total <= max)
            })
            .is_ok();
        if grown {
            self.bytes += bytes;
        }
        grown
    }

    /// Keeps the bytes counted after this reservation ends (they became a staged blob).
    fn keep(&mut self) {
        self.bytes = 0;
    }

    /// Gives back what is reserved beyond `bytes`.
    fn shrink_to(&mut self, bytes: u64) {
        if self.bytes > bytes {
            self.pending.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A received body: a temporary file, removed when this is dropped.
#[derive(Debug)]
pub struct Received {
    path: PathBuf,
    /// Its size.
    pub size: u64,
    /// The SHA-256 of its bytes.
    pub sha256: [u8; 32],
    reservation: Reservation,
}

impl Received {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file (for a validation that needs it in memory).
    pub fn read(&self) -> io::Result<Vec<u8>> {
        std::fs::read(&self.path)
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %error, "cannot remove an upload's temporary file");
            }
        }
    }
}

impl Uploads {
    /// Opens `<dir>`, creating it; removes the temporary files a previous process left, and
    /// counts the staged blobs.
    pub fn open(dir: &Path, limits: UploadLimits) -> io::Result<Self> {
        let tmp = dir.join("tmp");
        let records = dir.join("records");
        if tmp.exists() {
            let mut removed = 0u64;
            for entry in std::fs::read_dir(&tmp)? {
                std::fs::remove_file(entry?.path())?;
                removed += 1;
            }
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed the temporary files of interrupted uploads"
                );
            }
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(&records)?;
        let mut staged = 0;
        for folder in std::fs::read_dir(&records)? {
            for blob in std::fs::read_dir(folder?.path())? {
                staged += blob?.metadata()?.len();
            }
        }
        Ok(Uploads {
            tmp,
            records,
            limits,
            pending: Arc::new(AtomicU64::new(staged)),
            next: Arc::default(),
            tallies: Arc::default(),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &UploadLimits {
        &self.limits
    }

    /// Bytes staged or being received now.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Streams `body` to a temporary file. Refuses it at once if `declared` (its
    /// `Content-Length`) passes `max`, and as soon as the bytes received do.
    pub async fn receive(
        &self,
        body: Body,
        declared: Option<u64>,
        max: u64,
    ) -> Result<Received, ReceiveError> {
        if declared.is_some_and(|length| length > max) {
            return Err(ReceiveError::TooLarge { max });
        }
        let mut reservation = Reservation {
            pending: self.pending.clone(),
            bytes: 0,
        };
        if !reservation.grow(declared.unwrap_or(0), self.limits.max_pending_bytes) {
            return Err(ReceiveError::Full);
        }
        let path = self.tmp.join(format!(
            "{}-{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        ));
        let file = tokio::fs::File::create(&path).await?;
        // From here on the file is removed whatever happens.
        let mut received = Received {
            path,
            size: 0,
            sha256: [0; 32],
            reservation,
        };
        let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Sha256::new();
        let mut stream = body.into_data_stream();
        let stall = self.limits.stall_timeout;
        loop {
            let chunk = match tokio::time::timeout(stall, stream.next()).await {
                Err(_) => return Err(ReceiveError::Stalled(stall)),
                Ok(None) => break,
                Ok(Some(Err(error))) => return Err(ReceiveError::Unreadable(error.to_string())),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let size = received.size + chunk.len() as u64;
            if size > max {
                return Err(ReceiveError::TooLarge { max });
            }
            let beyond_declared = size.saturating_sub(received.reservation.bytes);
            if beyond_declared > 0
                && !received
                    .reservation
                    .grow(beyond_declared, self.limits.max_pending_bytes)
            {
                return Err(ReceiveError::Full);
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            received.size = size;
        }
        file.flush().await?;
        received.reservation.shrink_to(received.size);
        received.sha256 = hasher.finalize().into();
        Ok(received)
    }

    fn record_folder(&self, record_id: &RecordId) -> PathBuf {
        self.records
            .join(hex::encode(record_id.digest().as_bytes()))
    }

    /// The staged blob `digest` of `record_id`, if there is one.
    pub fn staged(&self, record_id: &RecordId, digest: &cairn_split::BlobId) -> Option<PathBuf> {
        let path = self
            .record_folder(record_id)
            .join(digest.to_string().replace(':', "-"));
        path.is_file().then_some(path)
    }

    /// Keeps `blob` (whose digest the caller checked) as blob `digest` of `record_id`, if the
    /// record's staged blobs stay within `per_record` bytes.
    pub fn stage(
        &self,
        record_id: &RecordId,
        digest: &cairn_split::BlobId,
        blob: Received,
        per_record: u64,
    ) -> Result<(), ReceiveError> {
        let folder = self.record_folder(record_id);
        let target = folder.join(digest.to_string().replace(':', "-"));
        // One staging at a time: the tally of the record's folder is read (from disk, the
        // first time) and updated together with the file.
        let mut tallies = self.tallies.lock().expect("tally lock poisoned");
        if target.is_file() {
            return Ok(());
        }
        let tally = match tallies.get(&folder) {
            Some(tally) => *tally,
            None => Tally::of(&folder)?,
        };
        if tally.bytes + blob.size > per_record {
            return Err(ReceiveError::TooLarge { max: per_record });
        }
        if tally.blobs >= cairn_split::limits::MAX_BLOBS {
            return Err(ReceiveError::TooMany {
                max: cairn_split::limits::MAX_BLOBS,
            });
        }
        std::fs::create_dir_all(&folder)?;
        let mut blob = blob;
        std::fs::rename(&blob.path, &target)?;
        // The file moved (dropping `blob` finds nothing to remove); its bytes stay counted
        // until the record's folder is removed.
        blob.reservation.keep();
        tallies.insert(
            folder,
            Tally {
                bytes: tally.bytes + blob.size,
                blobs: tally.blobs + 1,
            },
        );
        Ok(())
    }

    /// Removes what was staged for `record_id`.
    pub fn discard(&self, record_id: &RecordId) {
        self.remove_folder(&self.record_folder(record_id));
    }

    fn remove_folder(&self, folder: &Path) {
        self.tallies
            .lock()
            .expect("tally lock poisoned")
            .remove(folder);
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        for entry in entries.flatten() {
            let size = entry.metadata().map_or(0, |m| m.len());
            if std::fs::remove_file(entry.path()).is_ok() {
                self.pending.fetch_sub(size, Ordering::AcqRel);
            }
        }
        let _ = std::fs::remove_dir(folder);
    }

    /// Removes the staged blobs of records that have waited past the deadline; returns how
    /// many records' blobs were removed.
    pub fn sweep(&self) -> usize {
        let Ok(folders) = std::fs::read_dir(&self.records) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for folder in folders.flatten() {
            let expired = folder
                .metadata()
                .and_then(|m| m.created().or_else(|_| m.modified()))
                .ok()
                .and_then(|born| now.duration_since(born).ok())
                .is_some_and(|age| age > self.limits.deadline);
            if expired {
                self.remove_folder(&folder.path());
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                records = removed,
                "removed blobs uploaded for records that were not completed in time"
            );
        }
        removed
    }
}
