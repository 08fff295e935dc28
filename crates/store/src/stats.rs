//! Figures about what the store holds, for the server's metrics and readiness: whether the
//! database answers, how many records wait for the sequencer, and the bytes of the content
//! kept against the bytes of its distinct blobs (what sharing saves).

use crate::contract::StoreFigures;
use crate::{SqliteStore, StoreError};

/// The content the registry keeps (not content uploaded for records none of which is
/// published yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentTotals {
    /// Contents (whole files).
    pub contents: u64,
    /// Their bytes, each file counted whole.
    pub content_bytes: u64,
    /// The bytes of their distinct blobs, each blob counted once however many files hold it:
    /// what the split store holds, before compression.
    pub blob_bytes: u64,
}

#[async_trait::async_trait]
impl StoreFigures for SqliteStore {
    /// Whether the database answers a query.
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many records wait for the sequencer.
    async fn pending_count(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM records WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The kept content's totals. Reads every kept manifest (with SQLite's JSON functions;
    /// PostgreSQL's would be `jsonb_array_elements`): callers cache the answer.
    async fn content_totals(&self) -> Result<ContentTotals, StoreError> {
        let (contents, content_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM contents \
             WHERE digest NOT IN (SELECT digest FROM content_claims)",
        )
        .fetch_one(&self.pool)
        .await?;
        let blob_bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0) FROM ( \
               SELECT json_extract(blob.value, '$.digest') AS digest, \
                      MAX(json_extract(blob.value, '$.size')) AS size \
               FROM contents, json_each(contents.manifest, '$.blobs') AS blob \
               WHERE contents.digest NOT IN (SELECT digest FROM content_claims) \
               GROUP BY 1)",
        )
        .fetch_one(&self.pool)
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(ContentTotals {
            contents: count(contents),
            content_bytes: count(content_bytes),
            blob_bytes: count(blob_bytes),
        })
    }
}
