//! Provisional content on PostgreSQL: the [`ContentClaims`] of [`PostgresStore`], with the
//! rules of `claims.rs` (which decides when content is abandoned).

use std::collections::HashMap;

use cairn_protocol::{Digest, RecordId};
use sqlx::Row as _;

use super::records::{insert_content, list_blobs, release_waiting};
use super::PostgresStore;
use crate::claims::{abandoned, Claim};
use crate::contract::ContentClaims;
use crate::records::{ContentRow, StoreError};

/// The claims on `digest` (every content's when `None`), with their records' status.
async fn claims_of(
    connection: &mut sqlx::PgConnection,
    digest: Option<&str>,
) -> Result<HashMap<String, Vec<Claim>>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.digest, c.seq, c.since, r.status FROM content_claims c
         LEFT JOIN records r ON r.seq = c.seq WHERE $1::text IS NULL OR c.digest = $1",
    )
    .bind(digest)
    .fetch_all(connection)
    .await?;
    let mut claims: HashMap<String, Vec<Claim>> = HashMap::new();
    for row in rows {
        claims
            .entry(row.try_get("digest")?)
            .or_default()
            .push(Claim {
                seq: row.try_get("seq")?,
                since: row.try_get("since")?,
                status: row.try_get("status")?,
            });
    }
    Ok(claims)
}

#[async_trait::async_trait]
impl ContentClaims for PostgresStore {
    async fn blob_is_published(&self, blob: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM content_blobs b WHERE b.blob = $1 AND NOT EXISTS \
             (SELECT 1 FROM content_claims c WHERE c.digest = b.digest))",
        )
        .bind(blob)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn provisional_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0)::bigint FROM contents \
             WHERE digest IN (SELECT digest FROM content_claims)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn content_uploaded(
        &self,
        content: &ContentRow,
        now: i64,
    ) -> Result<Vec<RecordId>, StoreError> {
        let digest = content.digest.to_string();
        let mut tx = self.pool.begin().await?;
        let inserted = insert_content(&mut tx, content).await?;
        if inserted {
            list_blobs(&mut tx, &digest).await?;
        }
        let provisional = inserted
            || sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM content_claims WHERE digest = $1)",
            )
            .bind(&digest)
            .fetch_one(&mut *tx)
            .await?;
        let ready = release_waiting(&mut tx, &digest, provisional.then_some(now)).await?;
        tx.commit().await?;
        Ok(ready)
    }

    async fn abandoned_contents(&self, cutoff: i64) -> Result<Vec<Digest>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        let claims = claims_of(&mut connection, None).await?;
        claims
            .into_iter()
            .filter(|(_, claims)| abandoned(claims, cutoff))
            .map(|(digest, _)| {
                digest
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("{digest:?}: {e}")))
            })
            .collect()
    }

    async fn withdraw_content(
        &self,
        digest: &Digest,
        cutoff: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let digest = digest.to_string();
        let mut tx = self.pool.begin().await?;
        // The content's row, locked: a concurrent upload of the same content (on another
        // node) waits for this withdrawal and then stores it anew.
        let present = sqlx::query("SELECT 1 FROM contents WHERE digest = $1 FOR UPDATE")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?;
        if present.is_none() {
            return Ok(None);
        }
        let claims = claims_of(&mut tx, Some(&digest))
            .await?
            .remove(&digest)
            .unwrap_or_default();
        if !abandoned(&claims, cutoff) {
            return Ok(None);
        }
        let sourcing: Vec<i64> = claims
            .iter()
            .filter(|c| c.status.as_deref() == Some("sourcing"))
            .map(|c| c.seq)
            .collect();
        sqlx::query(
            "INSERT INTO missing_content (record_id, digest) \
             SELECT record_id, $1 FROM records WHERE seq = ANY($2) ON CONFLICT DO NOTHING",
        )
        .bind(&digest)
        .bind(&sourcing)
        .execute(&mut *tx)
        .await?;
        let unshared: Vec<String> = sqlx::query_scalar(
            "SELECT blob FROM content_blobs mine WHERE digest = $1 AND NOT EXISTS \
             (SELECT 1 FROM content_blobs other WHERE other.blob = mine.blob AND other.digest <> $1)",
        )
        .bind(&digest)
        .fetch_all(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM content_claims WHERE digest = $1",
            "DELETE FROM content_blobs WHERE digest = $1",
            "DELETE FROM contents WHERE digest = $1",
        ] {
            sqlx::query(statement)
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(unshared))
    }
}
