//! Stored rows read into values, the same on either database: each column read by its name,
//! and a text that does not parse (the database changed outside cairn) is
//! [`StoreError::Corrupt`]. `SqliteRow` and `PgRow` are both a [`StoredRow`].

use cairn_protocol::{SignedCheckpoint, TimestampedCheckpoint};

use crate::oci::OciManifestRow;
use crate::records::{RecordRow, RecordStatus, StoreError};

/// A row of either database, read by column name.
pub(crate) trait StoredRow {
    /// A text column.
    fn text(&self, column: &str) -> Result<&str, StoreError>;
    /// A text column that may be `NULL`.
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// An integer column.
    fn integer(&self, column: &str) -> Result<i64, StoreError>;
    /// An integer column that may be `NULL`.
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A byte column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;

    /// A text column parsed into `T`.
    fn parsed<T: std::str::FromStr>(&self, column: &str) -> Result<T, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text(column)?;
        text.parse()
            .map_err(|e: T::Err| StoreError::Corrupt(format!("{column} {text:?}: {e}")))
    }
}

impl<R> StoredRow for R
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<&str, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn integer(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

/// The columns [`record_row`] reads.
pub(crate) const RECORD_COLUMNS: &str =
    "seq, record_id, log_id, envelope, status, reason, registry_index";

/// A record from its columns ([`RECORD_COLUMNS`]).
pub(crate) fn record_row(row: &impl StoredRow) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        seq: row.integer("seq")?,
        record_id: row.parsed("record_id")?,
        log_id: row.parsed("log_id")?,
        envelope: row.bytes("envelope")?,
        status: RecordStatus::parse(row.text("status")?)?,
        reason: row.optional_text("reason")?,
        registry_index: row.optional_integer("registry_index")?.map(|i| i as u64),
    })
}

/// The columns [`checkpoint_row`] reads.
pub(crate) const CHECKPOINT_COLUMNS: &str =
    "log_length, log_root, map_root, timestamp, key_id, signature";

/// A checkpoint from its columns ([`CHECKPOINT_COLUMNS`]).
pub(crate) fn checkpoint_row(row: &impl StoredRow) -> Result<SignedCheckpoint, StoreError> {
    Ok(SignedCheckpoint {
        contents: TimestampedCheckpoint {
            log_root: row.parsed("log_root")?,
            log_length: row.integer("log_length")? as u64,
            map_root: row.parsed("map_root")?,
            timestamp: row.integer("timestamp")? as u64,
        },
        key_id: row.parsed("key_id")?,
        signature: row.parsed("signature")?,
    })
}

/// The columns [`manifest_row`] reads.
pub(crate) const MANIFEST_COLUMNS: &str =
    "repository, digest, media_type, bytes, subject, artifact_type";

/// An OCI manifest from its columns ([`MANIFEST_COLUMNS`]).
pub(crate) fn manifest_row(row: &impl StoredRow) -> Result<OciManifestRow, StoreError> {
    Ok(OciManifestRow {
        repository: row.text("repository")?.to_owned(),
        digest: row.text("digest")?.to_owned(),
        media_type: row.text("media_type")?.to_owned(),
        bytes: row.bytes("bytes")?,
        subject: row.optional_text("subject")?,
        artifact_type: row.optional_text("artifact_type")?,
    })
}
