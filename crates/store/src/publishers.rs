//! Publisher accounts: the people and machines that may publish over OCI (and, on a registry
//! that requires it, publish at all), each with a token (kept only as its SHA-256), the public
//! half of the signing key the registry holds for it, and the namespaces and packages it may
//! publish to.
//!
//! Accounts live in their own table of the registry's database and are reached through
//! [`PublisherStore`], which has its own connections: `cairn admin publisher` changes
//! accounts while the server runs, and the server reads them at every request that presents
//! a token, so a new or revoked account takes effect at once.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::contract::PublisherAccounts;
use crate::records::StoreError;

pub(crate) const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS publishers (
        name TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        public_key TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created BIGINT NOT NULL,
        revoked BIGINT
    )"];

/// What an account may publish to: a whole namespace, or one package of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublisherScope {
    /// The namespace.
    pub namespace: String,
    /// The package's name within the namespace; `None` for every package of it.
    pub name: Option<String>,
}

impl PublisherScope {
    /// Whether the scope covers package `namespace:name`.
    pub fn covers(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name.as_deref().is_none_or(|n| n == name)
    }
}

impl std::fmt::Display for PublisherScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{name}", self.namespace),
            None => f.write_str(&self.namespace),
        }
    }
}

impl std::str::FromStr for PublisherScope {
    type Err = String;

    /// `NS` or `NS:NAME`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (namespace, name) = match text.split_once(':') {
            Some((namespace, name)) => (namespace, Some(name)),
            None => (text, None),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !valid(namespace) || name.is_some_and(|name| !valid(name)) {
            return Err(format!(
                "`{text}` is not a namespace or a package (like `example` or `example:hello`)"
            ));
        }
        Ok(PublisherScope {
            namespace: namespace.to_owned(),
            name: name.map(str::to_owned),
        })
    }
}

/// A publisher account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The account's name.
    pub name: String,
    /// The public key (`ecdsa-p256:...`) of the signing key the registry keeps for it.
    pub public_key: String,
    /// Where it may publish.
    pub scopes: Vec<PublisherScope>,
    /// When it was created, in Unix seconds.
    pub created: i64,
    /// When it was revoked, in Unix seconds; a revoked account's token is worth nothing.
    pub revoked: Option<i64>,
}

impl Publisher {
    /// Whether the account may publish package `namespace:name`.
    pub fn covers(&self, namespace: &str, name: &str) -> bool {
        self.revoked.is_none() && self.scopes.iter().any(|s| s.covers(namespace, name))
    }
}

/// A new account, as `cairn admin publisher add` makes it.
#[derive(Debug, Clone)]
pub struct NewPublisher<'a> {
    /// The account's name.
    pub name: &'a str,
    /// Lowercase hex SHA-256 of the token.
    pub token_sha256: &'a str,
    /// The public key the registry signs the account's records with.
    pub public_key: &'a str,
    /// Where it may publish.
    pub scopes: &'a [PublisherScope],
    /// Now, in Unix seconds.
    pub created: i64,
}

/// The publisher accounts of a registry's database.
#[derive(Debug, Clone)]
pub struct PublisherStore {
    pool: SqlitePool,
}

/// An account from a row of `publishers` (`COLUMNS`), on either database.
pub(crate) fn publisher_row<'r, R: sqlx::Row>(row: &'r R) -> Result<Publisher, StoreError>
where
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let scopes: String = row.try_get("scopes")?;
    let scopes = scopes
        .split_whitespace()
        .map(|s| s.parse().map_err(StoreError::Corrupt))
        .collect::<Result<_, _>>()?;
    Ok(Publisher {
        name: row.try_get("name")?,
        public_key: row.try_get("public_key")?,
        scopes,
        created: row.try_get("created")?,
        revoked: row.try_get("revoked")?,
    })
}

pub(crate) const COLUMNS: &str = "name, public_key, scopes, created, revoked";

impl PublisherStore {
    /// Opens the accounts of the database file at `path` (created if missing), beside any
    /// other process that has it open.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(PublisherStore { pool })
    }

    /// The accounts reached through `pool`, a pool of the database whose tables exist.
    pub(crate) fn on(pool: SqlitePool) -> Self {
        PublisherStore { pool }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl PublisherAccounts for PublisherStore {
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
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM publishers ORDER BY name"))
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
        let row = sqlx::query("SELECT 1 FROM publishers WHERE revoked IS NULL LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

/// The registry's own store reaches the accounts in its database file through its reading
/// pool (accounts change seldom, and `cairn admin publisher` writes them from another process
/// anyway).
#[async_trait::async_trait]
impl PublisherAccounts for crate::SqliteStore {
    async fn add_publisher(&self, account: &NewPublisher<'_>) -> Result<(), StoreError> {
        PublisherStore::on(self.pool.clone())
            .add_publisher(account)
            .await
    }
    async fn publishers(&self) -> Result<Vec<Publisher>, StoreError> {
        PublisherStore::on(self.pool.clone()).publishers().await
    }
    async fn publisher(&self, name: &str) -> Result<Option<Publisher>, StoreError> {
        PublisherStore::on(self.pool.clone()).publisher(name).await
    }
    async fn publisher_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<Publisher>, StoreError> {
        PublisherStore::on(self.pool.clone())
            .publisher_by_token(token_sha256)
            .await
    }
    async fn revoke_publisher(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        PublisherStore::on(self.pool.clone())
            .revoke_publisher(name, now)
            .await
    }
    async fn any_active_publisher(&self) -> Result<bool, StoreError> {
        PublisherStore::on(self.pool.clone())
            .any_active_publisher()
            .await
    }
}
