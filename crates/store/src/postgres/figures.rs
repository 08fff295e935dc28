//! Figures and publisher accounts on PostgreSQL: the [`StoreFigures`] and
//! [`PublisherAccounts`] of [`PostgresStore`].

use super::PostgresStore;
use crate::contract::{PublisherAccounts, StoreFigures};
use crate::publishers::{publisher_row, NewPublisher, Publisher, COLUMNS};
use crate::records::StoreError;
use crate::stats::ContentTotals;

#[async_trait::async_trait]
impl StoreFigures for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM records WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn content_totals(&self) -> Result<ContentTotals, StoreError> {
        let (contents, content_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(size), 0)::bigint FROM contents \
             WHERE digest NOT IN (SELECT digest FROM content_claims)",
        )
        .fetch_one(&self.pool)
        .await?;
        let blob_bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0)::bigint FROM ( \
               SELECT blob.value ->> 'digest', MAX((blob.value ->> 'size')::bigint) AS size \
               FROM contents, jsonb_array_elements(contents.manifest::jsonb -> 'blobs') AS blob(value) \
               WHERE contents.digest NOT IN (SELECT digest FROM content_claims) \
               GROUP BY 1) AS distinct_blobs",
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

#[async_trait::async_trait]
impl PublisherAccounts for PostgresStore {
    async fn add_publisher(&self, account: &NewPublisher<'_>) -> Result<(), StoreError> {
        let scopes: Vec<String> = account.scopes.iter().map(|s| s.to_string()).collect();
        let inserted = sqlx::query(
            "INSERT INTO publishers (name, token_sha256, public_key, scopes, created) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(account.name)
        .bind(account.token_sha256)
        .bind(account.public_key)
        .bind(scopes.join(" "))
        .bind(account.created)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::PublisherExists(account.name.to_owned()));
        }
        Ok(())
    }

    async fn publishers(&self) -> Result<Vec<Publisher>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM publishers ORDER BY name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(publisher_row).collect()
    }

    async fn publisher(&self, name: &str) -> Result<Option<Publisher>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM publishers WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(publisher_row).transpose()
    }

    async fn publisher_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<Publisher>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM publishers WHERE token_sha256 = $1 AND revoked IS NULL"
        ))
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(publisher_row).transpose()
    }

    async fn revoke_publisher(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE publishers SET revoked = $1 WHERE name = $2 AND revoked IS NULL")
                .bind(now)
                .bind(name)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn any_active_publisher(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM publishers WHERE revoked IS NULL)")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
