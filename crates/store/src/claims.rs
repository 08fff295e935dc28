//! Content uploaded for records that are not published yet: kept only if one of them is.
//!
//! Content uploaded for records is stored at once (split into blobs), but *provisionally*:
//! each record waiting for it holds a claim (`content_claims`, by the record's `seq`). A
//! provisional content is invisible to readers and to publishers ([`SqliteStore::content`]
//! does not return it, so a new record that names it uploads it again and claims it too). The
//! sequencer's commit that validates a claimant drops every claim on that content in the same
//! transaction, so a published release's content is always kept, and kept content is never
//! removed. Content no claimant can publish any more (every claimant rejected, or the claims
//! older than the upload deadline with no claimant pending) is withdrawn: its row goes, the
//! records still waiting wait for it again, and its blobs that no other content names are
//! returned for the caller to delete.
//!
//! `content_blobs` lists each content's blobs (from its manifest), so that a withdrawal can
//! tell which blobs no other content shares.

use std::collections::HashMap;

use cairn_protocol::{Digest, RecordId};
use sqlx::Row as _;

use crate::contract::ContentClaims;
use crate::records::{ContentRow, SqliteStore, StoreError};

/// The statements that make the tables, run at every open.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS content_claims (
        digest TEXT NOT NULL,
        seq INTEGER NOT NULL,
        since BIGINT NOT NULL,
        PRIMARY KEY (digest, seq)
    )",
    "CREATE INDEX IF NOT EXISTS content_claims_by_seq ON content_claims (seq)",
    "CREATE TABLE IF NOT EXISTS content_blobs (
        blob TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (blob, digest)
    )",
    "CREATE INDEX IF NOT EXISTS content_blobs_by_digest ON content_blobs (digest)",
    // Contents stored before this table existed (or whose rows were lost): their blobs, from
    // their manifests.
    "INSERT INTO content_blobs (blob, digest)
     SELECT DISTINCT json_extract(b.value, '$.digest'), c.digest
     FROM contents c, json_each(c.manifest, '$.blobs') b
     WHERE NOT EXISTS (SELECT 1 FROM content_blobs WHERE content_blobs.digest = c.digest)
     ON CONFLICT DO NOTHING",
];

/// Lists the blobs of content `digest` (already in `contents`) in `content_blobs`.
pub(crate) async fn list_blobs(
    connection: &mut sqlx::SqliteConnection,
    digest: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO content_blobs (blob, digest)
         SELECT DISTINCT json_extract(b.value, '$.digest'), c.digest
         FROM contents c, json_each(c.manifest, '$.blobs') b WHERE c.digest = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(digest)
    .execute(connection)
    .await?;
    Ok(())
}

/// Drops the claims on every content that one of the records `seqs` (now validated)
/// claims: that content is kept from now on. Part of the sequencer's commit.
pub(crate) async fn keep_claimed(
    connection: &mut sqlx::SqliteConnection,
    seqs: &[i64],
) -> Result<(), StoreError> {
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM content_claims)")
        .fetch_one(&mut *connection)
        .await?;
    if !any {
        return Ok(());
    }
    for chunk in seqs.chunks(512) {
        let mut delete = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "DELETE FROM content_claims WHERE digest IN \
             (SELECT digest FROM content_claims WHERE seq IN (",
        );
        let mut list = delete.separated(", ");
        for seq in chunk {
            list.push_bind(*seq);
        }
        delete.push("))");
        delete.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// A claim and where its record stands.
pub(crate) struct Claim {
    pub(crate) seq: i64,
    pub(crate) since: i64,
    /// The record's status (`None` if the record is not stored).
    pub(crate) status: Option<String>,
}

/// Whether no claimant can publish the content any more: none pending or validated, and
/// every one rejected (or gone), or the newest claim older than `cutoff`.
pub(crate) fn abandoned(claims: &[Claim], cutoff: i64) -> bool {
    let live = claims
        .iter()
        .any(|c| matches!(c.status.as_deref(), Some("pending" | "validated")));
    let all_rejected = claims
        .iter()
        .all(|c| matches!(c.status.as_deref(), None | Some("rejected")));
    let newest = claims.iter().map(|c| c.since).max().unwrap_or(i64::MIN);
    !claims.is_empty() && !live && (all_rejected || newest < cutoff)
}

async fn claims_of(
    connection: &mut sqlx::SqliteConnection,
    digest: Option<&str>,
) -> Result<HashMap<String, Vec<Claim>>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.digest, c.seq, c.since, r.status FROM content_claims c
         LEFT JOIN records r ON r.seq = c.seq WHERE $1 IS NULL OR c.digest = $1",
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
impl ContentClaims for SqliteStore {
    /// Whether `blob` (`sha256:<hex>`) belongs to content that is kept (not provisional).
    async fn blob_is_published(&self, blob: &str) -> Result<bool, StoreError> {
        let published = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM content_blobs b WHERE b.blob = $1 AND NOT EXISTS \
             (SELECT 1 FROM content_claims c WHERE c.digest = b.digest))",
        )
        .bind(blob)
        .fetch_one(&self.pool)
        .await?;
        Ok(published)
    }

    /// The bytes of provisional content (uploaded for records none of which is published).
    async fn provisional_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0) FROM contents \
             WHERE digest IN (SELECT digest FROM content_claims)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    /// Stores content uploaded for the records waiting for it, and returns the records that
    /// no longer wait for anything. Content not kept already is stored provisionally, claimed
    /// (since `now`, Unix seconds) by each record that waited for it.
    async fn content_uploaded(
        &self,
        content: &ContentRow,
        now: i64,
    ) -> Result<Vec<RecordId>, StoreError> {
        let digest = content.digest.to_string();
        let _turn = self.write_turn().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO contents (digest, size, tree_digest, manifest) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&digest)
        .bind(content.size as i64)
        .bind(&content.tree_digest)
        .bind(&content.manifest)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
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
        let claim_since = provisional.then_some(now);
        let ready =
            crate::records::release_waiting(&mut tx, &self.ids, &digest, claim_since).await?;
        tx.commit().await?;
        Ok(ready)
    }

    /// Provisional contents that no claimant can publish any more: every claimant rejected,
    /// or the newest claim older than `cutoff` (Unix seconds) with no claimant pending.
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

    /// Withdraws provisional content `digest` if it is still abandoned (see
    /// [`SqliteStore::abandoned_contents`]): removes its row and claims, and makes the records
    /// that still wait for other content (`sourcing`) wait for it again. Returns the blobs of
    /// its manifest that no other content names (the caller deletes them, making sure no
    /// content is being stored meanwhile), or `None` if it was not withdrawn.
    async fn withdraw_content(
        &self,
        digest: &Digest,
        cutoff: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let digest = digest.to_string();
        let _turn = self.write_turn().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let claims = claims_of(&mut tx, Some(&digest))
            .await?
            .remove(&digest)
            .unwrap_or_default();
        if !abandoned(&claims, cutoff) {
            return Ok(None);
        }
        for claim in claims
            .iter()
            .filter(|c| c.status.as_deref() == Some("sourcing"))
        {
            sqlx::query(
                "INSERT INTO missing_content (record_id, digest) \
                 SELECT record_id, $1 FROM records WHERE seq = $2 ON CONFLICT DO NOTHING",
            )
            .bind(&digest)
            .bind(claim.seq)
            .execute(&mut *tx)
            .await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(status: Option<&str>, since: i64) -> Claim {
        Claim {
            seq: 0,
            since,
            status: status.map(str::to_owned),
        }
    }

    #[test]
    fn content_is_abandoned_only_when_no_claimant_can_publish_it() {
        // Every claimant rejected: at once.
        assert!(abandoned(&[claim(Some("rejected"), 100)], 0));
        // A claimant waiting for other content: only after the deadline.
        assert!(!abandoned(&[claim(Some("sourcing"), 100)], 50));
        assert!(abandoned(&[claim(Some("sourcing"), 100)], 150));
        // A claimant pending or validated: never.
        for live in ["pending", "validated"] {
            assert!(!abandoned(
                &[claim(Some(live), 100), claim(Some("rejected"), 100)],
                i64::MAX
            ));
        }
        // The newest claim counts.
        assert!(!abandoned(
            &[claim(Some("sourcing"), 100), claim(Some("sourcing"), 200)],
            150
        ));
        assert!(!abandoned(&[], i64::MAX));
    }
}
