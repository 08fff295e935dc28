//! What OCI pushes leave behind in scratch repositories (repositories that are not warg
//! packages): which blobs each repository holds, its manifests (the exact bytes pushed) and
//! its tags. The blobs themselves live in the content store, keyed by SHA-256.
//!
//! The SQL is plain enough for PostgreSQL as well (`$n` parameters, `ON CONFLICT`).

use sqlx::Row;

use crate::contract::OciMetadata;
use crate::records::{SqliteStore, StoreError};
use crate::rows::{manifest_row, MANIFEST_COLUMNS};

/// A manifest pushed to a scratch repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciManifestRow {
    /// `ns/name`.
    pub repository: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// The bytes exactly as pushed.
    pub bytes: Vec<u8>,
    /// The digest of the manifest's `subject`, if it has one.
    pub subject: Option<String>,
    /// `artifactType`, or the config's media type.
    pub artifact_type: Option<String>,
}

#[async_trait::async_trait]
impl OciMetadata for SqliteStore {
    /// Records that `repository` holds the blob `digest`.
    async fn oci_add_blob(&self, repository: &str, digest: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO oci_blobs (repository, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repository)
        .bind(digest)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Whether `repository` holds the blob `digest`.
    async fn oci_has_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM oci_blobs WHERE repository = $1 AND digest = $2")
            .bind(repository)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Removes the blob `digest` from `repository`; whether it was there.
    async fn oci_remove_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM oci_blobs WHERE repository = $1 AND digest = $2")
            .bind(repository)
            .bind(digest)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a manifest (again: the same digest is the same bytes) and points each of `tags`
    /// at it, all in one transaction.
    async fn oci_put_manifest(
        &self,
        manifest: &OciManifestRow,
        tags: &[&str],
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(&format!(
            "INSERT INTO oci_manifests ({MANIFEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(&manifest.repository)
        .bind(&manifest.digest)
        .bind(&manifest.media_type)
        .bind(&manifest.bytes)
        .bind(&manifest.subject)
        .bind(&manifest.artifact_type)
        .execute(&mut *tx)
        .await?;
        for tag in tags {
            sqlx::query(
                "INSERT INTO oci_tags (repository, tag, digest) VALUES ($1, $2, $3) \
                 ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest",
            )
            .bind(&manifest.repository)
            .bind(tag)
            .bind(&manifest.digest)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A manifest of `repository` by digest.
    async fn oci_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<OciManifestRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM oci_manifests WHERE repository = $1 AND digest = $2"
        ))
        .bind(repository)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(manifest_row).transpose()
    }

    /// The digest a tag of `repository` points at.
    async fn oci_tag(&self, repository: &str, tag: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT digest FROM oci_tags WHERE repository = $1 AND tag = $2")
            .bind(repository)
            .bind(tag)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("digest")).transpose()?)
    }

    /// The tags of `repository`, in lexical order.
    async fn oci_tags(&self, repository: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT tag FROM oci_tags WHERE repository = $1 ORDER BY tag")
            .bind(repository)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("tag"))
            .collect::<Result<_, _>>()?)
    }

    /// The manifests of `repository` whose subject is `subject`, by digest.
    async fn oci_referrers(
        &self,
        repository: &str,
        subject: &str,
    ) -> Result<Vec<OciManifestRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM oci_manifests \
             WHERE repository = $1 AND subject = $2 ORDER BY digest"
        ))
        .bind(repository)
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(manifest_row).collect()
    }

    /// Deletes a manifest of `repository` and the tags pointing at it; whether it was there.
    async fn oci_delete_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("DELETE FROM oci_manifests WHERE repository = $1 AND digest = $2")
            .bind(repository)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oci_tags WHERE repository = $1 AND digest = $2")
            .bind(repository)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a tag of `repository` (the manifest stays); whether it was there.
    async fn oci_delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM oci_tags WHERE repository = $1 AND tag = $2")
            .bind(repository)
            .bind(tag)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether any scratch repository holds the blob `digest` (for mounts that name no source).
    async fn oci_blob_anywhere(&self, digest: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM oci_blobs WHERE digest = $1 LIMIT 1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Every scratch repository that holds a blob or a manifest, in lexical order.
    async fn oci_repositories(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT repository FROM oci_blobs UNION SELECT repository FROM oci_manifests \
             ORDER BY repository",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("repository"))
            .collect::<Result<_, _>>()?)
    }

    /// Whether `repository` holds any blob or manifest.
    async fn oci_repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM oci_blobs WHERE repository = $1 \
             UNION ALL SELECT 1 FROM oci_manifests WHERE repository = $1 LIMIT 1",
        )
        .bind(repository)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}
