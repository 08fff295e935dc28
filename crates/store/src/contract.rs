//! The store's contract: the operations the server reaches the database through, whatever
//! the database. [`SqliteStore`](crate::SqliteStore) (one file, the default) and
//! [`PostgresStore`](crate::PostgresStore) (a server, shared by several nodes) implement
//! every trait here, and the same test suite runs against both. What is durable when, and
//! what a reader may see, is written in `docs/storage.md` ("The record store's contract").
//!
//! The traits are object-safe (through `async_trait`), so the server holds one
//! `Arc<dyn Store>` and names no concrete store; [`open`] makes one from a [`Database`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_protocol::{Digest, LogId, RecordId, SignedCheckpoint};

use crate::oci::OciManifestRow;
use crate::publishers::{NewPublisher, Publisher};
use crate::records::{
    CommitBatch, ContentRow, InsertOutcome, NewRecord, RecordRow, StoreError, StoredLogRecord,
};
use crate::stats::ContentTotals;

/// Records, logs, checkpoints and content manifests. Every method is one transaction.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Inserts a record (and its log, if new), or returns the one already there.
    async fn insert_record(&self, record: NewRecord<'_>) -> Result<InsertOutcome, StoreError>;
    /// A record by id.
    async fn record(&self, record_id: &RecordId) -> Result<Option<RecordRow>, StoreError>;
    /// The content a sourcing record still waits for.
    async fn missing_content(&self, record_id: &RecordId) -> Result<Vec<Digest>, StoreError>;
    /// Notes that `digest` is now stored; returns the records that no longer wait for anything.
    async fn content_arrived(&self, digest: &Digest) -> Result<Vec<RecordId>, StoreError>;
    /// Records of one log not yet sequenced (sourcing or pending) that were inserted as
    /// beginning with an init entry, in arrival order.
    async fn unsequenced_inits(&self, log_id: &LogId) -> Result<Vec<RecordRow>, StoreError>;
    /// Pending records in arrival order.
    async fn pending(&self, limit: u32) -> Result<Vec<RecordRow>, StoreError>;
    /// Commits one round of the sequencer: the records it validated and rejected and the
    /// checkpoint covering them, all or nothing. A checkpoint at a length the store holds
    /// already, or a validated record that is not pending any more, fails the whole commit.
    async fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError>;
    /// Makes every commit so far durable (power-loss safe): after a commit that failed with
    /// [`StoreError::NotDurable`], this is what is left to do.
    async fn sync_commits(&self) -> Result<(), StoreError>;
    /// The validated records with registry index in `from..below`, in order.
    async fn validated_range(&self, from: u64, below: u64) -> Result<Vec<RecordRow>, StoreError>;
    /// Every checkpoint, by increasing length.
    async fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError>;
    /// What a replay of the log needs: every checkpoint, and the validated records the newest
    /// covers, in order. Consistent while another node commits: the checkpoints are read
    /// first, and records committed after them are left for the next catch-up.
    async fn committed(&self) -> Result<(Vec<RecordRow>, Vec<SignedCheckpoint>), StoreError> {
        let checkpoints = self.checkpoints().await?;
        let length = checkpoints.last().map_or(0, |c| c.contents.log_length);
        let records = self.validated_range(0, length).await?;
        Ok((records, checkpoints))
    }
    /// The checkpoints longer than `length`, by increasing length.
    async fn checkpoints_after(&self, length: u64) -> Result<Vec<SignedCheckpoint>, StoreError>;
    /// Whether other processes (other nodes) write to this store too: then records arrive
    /// that no local notice announces, and checkpoints that another node committed.
    fn shared(&self) -> bool;
    /// Takes the sequencer's lease if no one holds it: `None` when another node is the
    /// sequencer. The lease lasts as long as the value (and, on a shared store, as long as
    /// its connection to the database).
    async fn sequencer_lease(&self) -> Result<Option<Box<dyn SequencerLease>>, StoreError>;
    /// Records of one log with index in `(after, below)`, in order, at most `limit`.
    async fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        below: u64,
        limit: u32,
    ) -> Result<Vec<StoredLogRecord>, StoreError>;
    /// Whether the log exists, and its package name (`None` for the operator log).
    async fn log_name(&self, log_id: &LogId) -> Result<Option<Option<String>>, StoreError>;
    /// The package names of `log_ids` (the operator log and unknown logs have none).
    async fn log_names(&self, log_ids: &[LogId]) -> Result<HashMap<LogId, String>, StoreError>;
    /// Stores a content row (no-op if present).
    async fn put_content(&self, content: &ContentRow) -> Result<(), StoreError>;
    /// A content row by digest (not provisional content: see [`ContentClaims`]).
    async fn content(&self, digest: &Digest) -> Result<Option<ContentRow>, StoreError>;
    /// Closes the store's connections, flushing everything.
    async fn close(&self);
}

/// The right to sequence, held by one node at a time (see [`RecordStore::sequencer_lease`]).
/// Commits are fenced as well (see [`RecordStore::commit`]): a node that lost its lease
/// without noticing can never commit over another's checkpoint.
#[async_trait::async_trait]
pub trait SequencerLease: Send + Sync {
    /// Whether the lease is still held (on a shared store: its connection still answers).
    async fn held(&self) -> bool;
}

/// Content uploaded for records that are not published yet: kept only if one of them is
/// (`claims.rs` says how).
#[async_trait::async_trait]
pub trait ContentClaims: Send + Sync + 'static {
    /// Whether `blob` (`sha256:<hex>`) belongs to content that is kept (not provisional).
    async fn blob_is_published(&self, blob: &str) -> Result<bool, StoreError>;
    /// The bytes of provisional content (uploaded for records none of which is published).
    async fn provisional_bytes(&self) -> Result<u64, StoreError>;
    /// Stores content uploaded for the records waiting for it, and returns the records that
    /// no longer wait for anything. Content not kept already is stored provisionally, claimed
    /// (since `now`, Unix seconds) by each record that waited for it.
    async fn content_uploaded(
        &self,
        content: &ContentRow,
        now: i64,
    ) -> Result<Vec<RecordId>, StoreError>;
    /// Provisional contents that no claimant can publish any more: every claimant rejected,
    /// or the newest claim older than `cutoff` (Unix seconds) with no claimant pending.
    async fn abandoned_contents(&self, cutoff: i64) -> Result<Vec<Digest>, StoreError>;
    /// Withdraws provisional content `digest` if it is still abandoned: removes its row and
    /// claims, and makes the records that still wait for other content wait for it again.
    /// Returns the blobs of its manifest that no other content names (the caller deletes
    /// them, making sure no content is being stored meanwhile), or `None` if it was not
    /// withdrawn.
    async fn withdraw_content(
        &self,
        digest: &Digest,
        cutoff: i64,
    ) -> Result<Option<Vec<String>>, StoreError>;
}

/// What OCI pushes leave behind in scratch repositories (repositories that are not warg
/// packages): which blobs each holds, its manifests (the exact bytes pushed) and its tags.
#[async_trait::async_trait]
pub trait OciMetadata: Send + Sync + 'static {
    /// Records that `repository` holds the blob `digest`.
    async fn oci_add_blob(&self, repository: &str, digest: &str) -> Result<(), StoreError>;
    /// Whether `repository` holds the blob `digest`.
    async fn oci_has_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError>;
    /// Removes the blob `digest` from `repository`; whether it was there.
    async fn oci_remove_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError>;
    /// Stores a manifest (again: the same digest is the same bytes) and points each of `tags`
    /// at it, all in one transaction.
    async fn oci_put_manifest(
        &self,
        manifest: &OciManifestRow,
        tags: &[&str],
    ) -> Result<(), StoreError>;
    /// A manifest of `repository` by digest.
    async fn oci_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<OciManifestRow>, StoreError>;
    /// The digest a tag points at.
    async fn oci_tag(&self, repository: &str, tag: &str) -> Result<Option<String>, StoreError>;
    /// The tags of `repository`, in lexical order.
    async fn oci_tags(&self, repository: &str) -> Result<Vec<String>, StoreError>;
    /// The manifests of `repository` whose subject is `subject`.
    async fn oci_referrers(
        &self,
        repository: &str,
        subject: &str,
    ) -> Result<Vec<OciManifestRow>, StoreError>;
    /// Deletes a manifest and every tag pointing at it; whether it was there.
    async fn oci_delete_manifest(&self, repository: &str, digest: &str)
        -> Result<bool, StoreError>;
    /// Deletes a tag; whether it was there.
    async fn oci_delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError>;
    /// Whether any repository holds the blob `digest`.
    async fn oci_blob_anywhere(&self, digest: &str) -> Result<bool, StoreError>;
    /// Every scratch repository with a manifest, in lexical order.
    async fn oci_repositories(&self) -> Result<Vec<String>, StoreError>;
    /// Whether `repository` holds anything.
    async fn oci_repository_exists(&self, repository: &str) -> Result<bool, StoreError>;
}

/// Figures for the server's metrics and readiness.
#[async_trait::async_trait]
pub trait StoreFigures: Send + Sync + 'static {
    /// Whether the database answers a query.
    async fn ping(&self) -> Result<(), StoreError>;
    /// How many records wait for the sequencer.
    async fn pending_count(&self) -> Result<u64, StoreError>;
    /// The kept content's totals (reads every kept manifest: callers cache the answer).
    async fn content_totals(&self) -> Result<ContentTotals, StoreError>;
}

/// Publisher accounts (`cairn admin publisher`), reached beside a running server.
#[async_trait::async_trait]
pub trait PublisherAccounts: Send + Sync + 'static {
    /// Adds an account; [`StoreError::PublisherExists`] if the name is taken (revoked
    /// accounts keep their names, so that the log's history stays unambiguous).
    async fn add_publisher(&self, account: &NewPublisher<'_>) -> Result<(), StoreError>;
    /// Every account, revoked ones included, by name.
    async fn publishers(&self) -> Result<Vec<Publisher>, StoreError>;
    /// The account named `name`, revoked or not.
    async fn publisher(&self, name: &str) -> Result<Option<Publisher>, StoreError>;
    /// The account whose token hashes to `token_sha256`, unless it is revoked.
    async fn publisher_by_token(&self, token_sha256: &str)
        -> Result<Option<Publisher>, StoreError>;
    /// Revokes the account `name` at `now`. Returns whether an active account was revoked.
    async fn revoke_publisher(&self, name: &str, now: i64) -> Result<bool, StoreError>;
    /// Whether any account is active.
    async fn any_active_publisher(&self) -> Result<bool, StoreError>;
}

/// Everything the server keeps in its database.
pub trait Store:
    RecordStore + ContentClaims + OciMetadata + StoreFigures + PublisherAccounts
{
}

impl<T> Store for T where
    T: RecordStore + ContentClaims + OciMetadata + StoreFigures + PublisherAccounts
{
}

/// Where a registry keeps its database: `--database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (the default: `<data>/cairn.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by connection URL (`postgres://USER@HOST:PORT/DB`).
    Postgres(String),
}

/// Why `--database` was not understood (naming only the URL's scheme, never a password in it).
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} is not a database this registry can use: give `postgres://USER@HOST:PORT/DB`, or \
     leave --database out to keep the registry in a SQLite file in its data directory"
)]
pub struct DatabaseUrlError(String);

impl Database {
    /// Parses a `--database` value: a `postgres://` or `postgresql://` URL, or
    /// `sqlite://PATH` (or a plain path) for a SQLite file.
    pub fn parse(text: &str) -> Result<Self, DatabaseUrlError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Database::Postgres(text.to_owned()));
        }
        if let Some(path) = text.strip_prefix("sqlite://") {
            if !path.is_empty() {
                return Ok(Database::Sqlite(PathBuf::from(path)));
            }
        } else if !text.contains("://") && !text.is_empty() {
            return Ok(Database::Sqlite(PathBuf::from(text)));
        }
        Err(DatabaseUrlError(match text.split_once("://") {
            Some((scheme, _)) => format!("a `{scheme}://` URL"),
            None => "an empty name".to_owned(),
        }))
    }

    /// The database named for people: a file's path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => crate::postgres::redact_password(url),
        }
    }
}

/// Opens the store (creating or upgrading its tables), on the runtime that will use it.
pub async fn open(database: &Database) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(crate::SqliteStore::open(path).await?),
        Database::Postgres(url) => Arc::new(crate::PostgresStore::open(url).await?),
    })
}
