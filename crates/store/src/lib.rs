//! cairn's persistence.
//!
//! * [`RecordStore`]: records, their states, logs (package names), checkpoints and the split
//!   manifests of content, in SQL. [`SqliteStore`] is the embedded default; the SQL is written
//!   to run on PostgreSQL as well.
//! * Content uploaded for records that are not published yet is provisional until one of them
//!   is, and withdrawn if none can be (`claims.rs`, [`SqliteStore::content_uploaded`]).
//! * [`PublisherStore`]: publisher accounts, reached beside a running server.
//! * [`FsContentStore`]: content blobs (the fragments and skeletons of the canonical split),
//!   each stored once, named by its digest, on the filesystem; [`OciContentStore`] keeps them
//!   as blobs of a repository in an OCI registry instead; [`ContentLocation`] names either,
//!   and is recorded in the data directory at first start.
//!
//! Durability: every write that the server acknowledges is committed (SQLite in WAL mode with
//! `synchronous=FULL`) or fsynced (blobs, and their directory) before the call returns, with
//! one exception: the group commits of accepted records run with `synchronous=NORMAL`. They
//! are in the WAL before the call returns, so they survive the process being killed, and
//! they become power-loss safe with the next synced commit; a record is published only by
//! the sequencer's commit, after which the WAL file is fsynced (outside SQLite's write lock).

#![forbid(unsafe_code)]

mod claims;
mod content;
mod contract;
mod location;
mod migrate;
mod oci;
mod oci_content;
mod postgres;
mod publishers;
mod records;
mod rows;
mod s3_content;
mod stats;
mod store_runtime;

pub use content::{BlobDigest, BlobDigestError, BlobStore, FsContentStore};
pub use contract::{
    open, ContentClaims, Database, DatabaseUrlError, OciMetadata, PublisherAccounts, RecordStore,
    SequencerLease, Store, StoreFigures,
};
pub use location::{
    record_content_location, recorded_content_location, resolve_content_location, ContentLocation,
    ContentLocationError, CONTENT_LOCATION_FILE,
};
pub use migrate::{MigrationError, MigrationReport};
pub use oci::OciManifestRow;
pub use oci_content::{
    Credentials, OciContentStore, OciLocation, OciLocationError, Transport, CONTENT_PASSWORD_ENV,
    CONTENT_USERNAME_ENV,
};
pub use postgres::PostgresStore;
pub use publishers::{NewPublisher, Publisher, PublisherScope, PublisherStore};
pub use records::{
    is_disk_full, CommitBatch, ContentRow, InsertOutcome, NewRecord, RecordRow, RecordStatus,
    RejectedRecord, SequencedRecord, SqliteStore, StoreError, StoreErrorKind, StoredLogRecord,
};
pub use s3_content::{S3ContentStore, S3Location, S3LocationError};
pub use stats::ContentTotals;
