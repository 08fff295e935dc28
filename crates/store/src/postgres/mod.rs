//! The PostgreSQL store: the registry's database on a server that several `cairn serve`
//! nodes share (`--database postgres://USER@HOST:PORT/DB`).
//!
//! The tables are SQLite's (`records.rs`, `claims.rs`, `oci.rs`, `publishers.rs`) with
//! PostgreSQL's types and the indexes a shared writer needs: SQLite keeps record ids in
//! memory because one process writes, while here any node may insert, so record ids are a
//! unique column and an insert's idempotence is the database's (`ON CONFLICT`). Every commit
//! is durable when it returns (`synchronous_commit` at its default, `on`).

mod claims;
mod figures;
mod lease;
mod oci;
mod records;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::records::StoreError;

/// The registry's tables on PostgreSQL, created if missing at every start (an upgrade that
/// changes them adds its statements here, each safe to run again).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS logs (
        log_id TEXT PRIMARY KEY,
        name TEXT,
        name_lower TEXT UNIQUE
    )",
    "CREATE TABLE IF NOT EXISTS records (
        seq BIGSERIAL PRIMARY KEY,
        record_id TEXT NOT NULL UNIQUE,
        log_id TEXT NOT NULL REFERENCES logs (log_id),
        envelope BYTEA NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        registry_index BIGINT,
        is_init BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX IF NOT EXISTS records_pending ON records (seq) WHERE status = 'pending'",
    "CREATE UNIQUE INDEX IF NOT EXISTS records_by_registry_index ON records (registry_index) \
     WHERE registry_index IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS records_by_log ON records (log_id, registry_index) \
     WHERE status = 'validated'",
    "CREATE INDEX IF NOT EXISTS records_unsequenced_inits ON records (log_id, seq) \
     WHERE is_init AND status IN ('pending', 'sourcing')",
    "CREATE TABLE IF NOT EXISTS missing_content (
        record_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (record_id, digest)
    )",
    "CREATE INDEX IF NOT EXISTS missing_by_digest ON missing_content (digest)",
    "CREATE TABLE IF NOT EXISTS checkpoints (
        log_length BIGINT PRIMARY KEY,
        log_root TEXT NOT NULL,
        map_root TEXT NOT NULL,
        timestamp BIGINT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS contents (
        digest TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        tree_digest TEXT NOT NULL,
        manifest TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS content_claims (
        digest TEXT NOT NULL,
        seq BIGINT NOT NULL,
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
    "CREATE TABLE IF NOT EXISTS oci_blobs (
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repository, digest)
    )",
    "CREATE INDEX IF NOT EXISTS oci_blobs_by_digest ON oci_blobs (digest)",
    "CREATE TABLE IF NOT EXISTS oci_manifests (
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        bytes BYTEA NOT NULL,
        subject TEXT,
        artifact_type TEXT,
        PRIMARY KEY (repository, digest)
    )",
    "CREATE INDEX IF NOT EXISTS oci_manifests_by_subject ON oci_manifests (repository, subject)",
    "CREATE TABLE IF NOT EXISTS oci_tags (
        repository TEXT NOT NULL,
        tag TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repository, tag)
    )",
];

/// The advisory lock key under which a node creates or upgrades the tables, so that nodes
/// starting together do not race on `CREATE ... IF NOT EXISTS` (which is not safe against a
/// concurrent twin). The bytes of "cairnsch".
const SCHEMA_LOCK: i64 = 0x6361_6972_6e73_6368;

/// The transaction-level advisory lock every sequencer commit takes first (the fence, see
/// `commit`). The bytes of "cairnfen".
pub(crate) const COMMIT_LOCK: i64 = 0x6361_6972_6e66_656e;

/// The session-level advisory lock the sequencer holds on a connection of its own: whoever
/// holds it is the one sequencer. The bytes of "cairnseq".
pub(crate) const SEQUENCER_LOCK: i64 = 0x6361_6972_6e73_6571;

/// A registry's database on a PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    /// Logs known to exist (logs are never deleted): an insert into one of them need not
    /// make sure of it again. One entry per package, never per record.
    pub(crate) known_logs:
        std::sync::Arc<std::sync::RwLock<std::collections::HashSet<cairn_protocol::LogId>>>,
    /// How to connect, for the connections kept outside the pool (the sequencer's lease).
    options: PgConnectOptions,
    /// The group commit of the usual inserts (`records.rs`).
    pub(crate) releases: tokio::sync::mpsc::Sender<records::QueuedInsert>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`, with the usual
    /// `PG*` variables for what it leaves out) and creates or upgrades the tables.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let mut connection = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *connection)
            .await?;
        let mut created = Ok(());
        for statement in SCHEMA.iter().chain(crate::publishers::SCHEMA) {
            if let Err(error) = sqlx::query(statement).execute(&mut *connection).await {
                created = Err(error);
                break;
            }
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *connection)
            .await?;
        created?;
        let (releases, queue) = tokio::sync::mpsc::channel(4 * records::GROUP_COMMIT);
        tokio::spawn(records::group_commit(pool.clone(), queue));
        Ok(PostgresStore {
            pool,
            known_logs: Default::default(),
            options,
            releases,
        })
    }
}

/// `url` with its password, if any, replaced by `***`, for logs and messages.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact_password("postgres://cairn:secret@db:5432/reg"),
            "postgres://cairn:***@db:5432/reg"
        );
        assert_eq!(
            redact_password("postgres://cairn@db:5432/reg"),
            "postgres://cairn@db:5432/reg"
        );
        assert_eq!(
            redact_password("postgres://db/reg?user=a"),
            "postgres://db/reg?user=a"
        );
    }
}
