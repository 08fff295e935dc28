//! What OCI pushes leave behind in scratch repositories, on PostgreSQL: the
//! [`OciMetadata`] of [`PostgresStore`] (the same tables and answers as `oci.rs`).

use super::PostgresStore;
use crate::contract::OciMetadata;
use crate::oci::OciManifestRow;
use crate::records::StoreError;
use crate::rows::{manifest_row, MANIFEST_COLUMNS};

#[async_trait::async_trait]
impl OciMetadata for PostgresStore {
    async fn oci_add_blob(&self, repository: &str, digest: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oci_blobs (repository, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repository)
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn oci_has_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE repository = $1 AND digest = $2)",
        )
        .bind(repository)
        .bind(digest)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn oci_remove_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oci_blobs WHERE repository = $1 AND digest = $2")
            .bind(repository)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn oci_put_manifest(
        &self,
        manifest: &OciManifestRow,
        tags: &[&str],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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

    async fn oci_tag(&self, repository: &str, tag: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT digest FROM oci_tags WHERE repository = $1 AND tag = $2")
                .bind(repository)
                .bind(tag)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn oci_tags(&self, repository: &str) -> Result<Vec<String>, StoreError> {
        // Byte order, as SQLite sorts: whatever the database's collation.
        Ok(sqlx::query_scalar(
            "SELECT tag FROM oci_tags WHERE repository = $1 ORDER BY tag COLLATE \"C\"",
        )
        .bind(repository)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn oci_referrers(
        &self,
        repository: &str,
        subject: &str,
    ) -> Result<Vec<OciManifestRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM oci_manifests \
             WHERE repository = $1 AND subject = $2 ORDER BY digest COLLATE \"C\""
        ))
        .bind(repository)
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(manifest_row).collect()
    }

    async fn oci_delete_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
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

    async fn oci_delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oci_tags WHERE repository = $1 AND tag = $2")
            .bind(repository)
            .bind(tag)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn oci_blob_anywhere(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE digest = $1)")
                .bind(digest)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn oci_repositories(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT repository FROM (SELECT repository FROM oci_blobs \
             UNION SELECT repository FROM oci_manifests) AS held ORDER BY repository COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn oci_repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE repository = $1) \
             OR EXISTS (SELECT 1 FROM oci_manifests WHERE repository = $1)",
        )
        .bind(repository)
        .fetch_one(&self.pool)
        .await?)
    }
}
