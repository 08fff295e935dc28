//! cairn's persistence.
//!
//! * [`RecordStore`]: records, their states, logs (package names), checkpoints and the split
//!   manifests of content, in SQL. [`SqliteStore`] is the embedded default; the SQL is written
//!   to run on PostgreSQL as well.
//! * [`FsContentStore`]: content blobs (the fragments and skeletons of the canonical split),
//!   each stored once, named by its digest, on the filesystem.
//!
//! Durability: every write that the server acknowledges is committed (SQLite in WAL mode with
//! `synchronous=FULL`) or fsynced (blobs, and their directory) before the call returns.

mod content;
mod oci;
mod records;

pub use content::{BlobDigest, BlobDigestError, BlobStore, FsContentStore};
pub use oci::OciManifestRow;
pub use records::{
    CommitBatch, ContentRow, InsertOutcome, NewRecord, RecordRow, RecordStatus, RecordStore,
    SqliteStore, StoreError, StoredLogRecord,
};
