//! Records, logs, checkpoints and content manifests in SQL.
//!
//! The schema and every query use only SQL that SQLite and PostgreSQL both run (`$n`
//! placeholders, `BIGINT`, `TEXT`; the one difference, the byte type, is in the schema only),
//! apart from SQLite's own housekeeping (pragmas, `sqlite_master`, the rowid). Record ids are
//! looked up in memory, not in the table (see `RecordIds`).
//!
//! A record's life: `sourcing` (waiting for content) or `pending` (queued) when accepted;
//! then `validated` (with its registry index) or `rejected` (with a reason), decided by the
//! sequencer and committed in one transaction together with the checkpoint that covers it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cairn_protocol::{Digest, LogId, PackageName, RecordId, SignedCheckpoint};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use crate::contract::{RecordStore, SequencerLease};
use crate::rows::{checkpoint_row, record_row, CHECKPOINT_COLUMNS, RECORD_COLUMNS};

/// The SQLite store's lease: its process is the only one writing.
struct SoleWriter;

#[async_trait::async_trait]
impl SequencerLease for SoleWriter {
    async fn held(&self) -> bool {
        true
    }
}

use tokio::sync::{mpsc, oneshot};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The disk (or the user's quota on it) is full: nothing of the write was kept, and the
    /// same write can succeed once there is room.
    #[error("the disk is full: {0}")]
    DiskFull(String),
    /// A commit reached the database, but the sync that makes it survive a power loss failed
    /// ([`SqliteStore::sync_commits`] finishes it).
    #[error("the commit could not be made durable: {message}")]
    NotDurable {
        /// Why.
        message: String,
        /// Whether because the disk is full.
        disk_full: bool,
    },
    /// Stored data does not parse: the database was changed outside cairn.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A write failed together with others committed in the same transaction.
    #[error("store write failed: {0}")]
    Failed(String),
    /// A write failed because the transaction it shared with others failed, for a reason of
    /// this kind.
    #[error("store write failed: {message}")]
    FailedTogether {
        /// Why the transaction failed.
        message: String,
        /// The kind of that failure.
        kind: StoreErrorKind,
    },
    /// A publisher account of this name exists already.
    #[error("a publisher account named `{0}` exists already (names stay taken after a revoke)")]
    PublisherExists(String),
    /// A sequencer's commit decided against a log another sequencer has extended since: none
    /// of it was kept, and the node must catch up before it decides anything again.
    #[error(
        "another sequencer committed first: this round was decided at log length {expected}, \
         the stored log is at {found}"
    )]
    Fenced {
        /// The length the round was decided against.
        expected: u64,
        /// The newest stored checkpoint's length.
        found: u64,
    },
    /// Another package already has this name in another case.
    #[error("package name {requested} conflicts with the existing package {existing}")]
    NameConflict {
        /// The name asked for.
        requested: String,
        /// The name already registered.
        existing: String,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // SQLite reports a write that found no room as SQLITE_FULL (13), whatever the file;
        // PostgreSQL as disk_full (53100).
        let full = match &error {
            sqlx::Error::Database(database) => {
                matches!(database.code().as_deref(), Some("13" | "53100"))
            }
            sqlx::Error::Io(io) => is_disk_full(io),
            _ => false,
        };
        if full {
            StoreError::DiskFull(error.to_string())
        } else {
            StoreError::Database(error)
        }
    }
}

/// Whether an I/O error says the disk (or the user's quota on it) is full.
pub fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(
        error.raw_os_error(),
        Some(28 /* ENOSPC */) | Some(122 /* EDQUOT */)
    )
}

impl StoreError {
    /// Whether the disk was full (the same write can succeed later).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::DiskFull(_)
                | StoreError::NotDurable {
                    disk_full: true,
                    ..
                }
        )
    }

    /// This error, for each of several callers whose writes failed together.
    pub(crate) fn shared(&self) -> StoreError {
        match self {
            StoreError::DiskFull(message) => StoreError::DiskFull(message.clone()),
            other => StoreError::FailedTogether {
                message: other.to_string(),
                kind: other.kind(),
            },
        }
    }

    /// What the failure means for the request that met it.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::DiskFull(_) => StoreErrorKind::DiskFull,
            StoreError::NotDurable { disk_full, .. } => match disk_full {
                true => StoreErrorKind::DiskFull,
                false => StoreErrorKind::Retryable,
            },
            StoreError::Database(error) if is_busy(error) => StoreErrorKind::Retryable,
            StoreError::Database(_) | StoreError::Corrupt(_) | StoreError::Failed(_) => {
                StoreErrorKind::Fault
            }
            StoreError::FailedTogether { kind, .. } => *kind,
            StoreError::PublisherExists(_)
            | StoreError::NameConflict { .. }
            | StoreError::Fenced { .. } => StoreErrorKind::Conflict,
        }
    }
}

/// What a store failure means for the request that met it, whatever the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No room: nothing of the write was kept, and it can succeed once there is room.
    DiskFull,
    /// The database was busy, or could not make the write durable: the same request can
    /// succeed when sent again.
    Retryable,
    /// The request names something that conflicts with what is stored (a name taken).
    Conflict,
    /// The database failed otherwise, or stored data does not parse: the operator's to
    /// look into.
    Fault,
}

/// Whether the database answered that it was busy, or could not be reached for a moment: a
/// lock held by another connection (SQLite's `SQLITE_BUSY`, `SQLITE_LOCKED` and their
/// extended codes; PostgreSQL's serialization failures, deadlocks and lock timeouts), no
/// connection free in time, or a database server restarting or out of reach (PostgreSQL's
/// connection exceptions and shutdowns, or the connection failing).
fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database)
            if database.code().is_some_and(|code| {
                code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
            }) =>
        {
            true
        }
        sqlx::Error::Database(database) => {
            let code = database.code();
            let code = code.as_deref().unwrap_or("");
            let sqlite_busy = code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            sqlite_busy || matches!(code, "40001" | "40P01" | "55P03")
        }
        _ => false,
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse<T: FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| corrupt(format!("{text:?}: {e}")))
}

/// Where a record stands in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// Accepted; waiting for content uploads.
    Sourcing,
    /// Accepted; waiting for the sequencer.
    Pending,
    /// Refused by the sequencer.
    Rejected,
    /// In the registry log.
    Validated,
}

impl RecordStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Sourcing => "sourcing",
            RecordStatus::Pending => "pending",
            RecordStatus::Rejected => "rejected",
            RecordStatus::Validated => "validated",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "sourcing" => RecordStatus::Sourcing,
            "pending" => RecordStatus::Pending,
            "rejected" => RecordStatus::Rejected,
            "validated" => RecordStatus::Validated,
            other => return Err(corrupt(format!("record status {other:?}"))),
        })
    }
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// Arrival order.
    pub seq: i64,
    /// The record's id.
    pub record_id: RecordId,
    /// Its log.
    pub log_id: LogId,
    /// The protobuf `Envelope` (contents, key id, signature).
    pub envelope: Vec<u8>,
    /// Its state.
    pub status: RecordStatus,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Its leaf index, once validated.
    pub registry_index: Option<u64>,
}

/// A record to insert.
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    /// The record's id.
    pub record_id: RecordId,
    /// Its log.
    pub log_id: LogId,
    /// The package's name (`None` for the operator log).
    pub package_name: Option<&'a PackageName>,
    /// The protobuf `Envelope`.
    pub envelope: &'a [u8],
    /// Content digests the record needs that the registry lacks.
    pub missing_content: &'a [Digest],
    /// Whether the record begins with an init entry, so that it can be found by its log
    /// while it waits to be sequenced ([`RecordStore::unsequenced_inits`]).
    pub is_init: bool,
}

/// What inserting a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The record is new.
    Inserted(RecordRow),
    /// A record with this id was there already (publishing is idempotent).
    AlreadyThere(RecordRow),
}

/// One record of a log as `fetch/logs` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogRecord {
    /// Its leaf index.
    pub registry_index: u64,
    /// Its id (the fetch token).
    pub record_id: RecordId,
    /// The protobuf `Envelope`.
    pub envelope: Vec<u8>,
}

/// What the sequencer decided in one round, committed at once.
#[derive(Debug, Clone, Default)]
pub struct CommitBatch {
    /// For a sequencer's round, the log's length it decided against: the length of the
    /// newest checkpoint it had committed (0 before the first). The commit is fenced on it:
    /// if the store holds another newest checkpoint, another sequencer committed meanwhile,
    /// and the whole batch is refused with [`StoreError::Fenced`]. `None` for a refusal made
    /// outside the sequencer (content refused by policy), which depends on no log length.
    pub log_length_before: Option<u64>,
    /// Records now in the log, with their indices.
    pub validated: Vec<SequencedRecord>,
    /// Records refused, with the reason.
    pub rejected: Vec<RejectedRecord>,
    /// The checkpoint covering the validated records, if any were.
    pub checkpoint: Option<SignedCheckpoint>,
}

/// A record the sequencer refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// Its arrival order (the row it updates).
    pub seq: i64,
    /// Its id (checked against the row).
    pub record_id: RecordId,
    /// Why.
    pub reason: String,
}

/// A record the sequencer put into the registry log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencedRecord {
    /// Its arrival order (the row it updates).
    pub seq: i64,
    /// Its id (checked against the row).
    pub record_id: RecordId,
    /// Its leaf index.
    pub registry_index: u64,
}

/// Stored content: its size, tree digest and split manifest (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRow {
    /// SHA-256 of the whole file.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its tree digest.
    pub tree_digest: String,
    /// The split manifest, as JSON.
    pub manifest: String,
}

/// The columns of the records table. What each insert writes is kept to the row itself and
/// the pending index: no index on record ids (see `RecordIds`); registry indices are unique
/// in a partial index, which records get only once sequenced; and `seq` is the rowid without
/// `AUTOINCREMENT`, whose counter is a row of its own written by every insert (rows are
/// never deleted, so new rowids still only grow).
macro_rules! records_columns {
    () => {
        "(
        seq INTEGER PRIMARY KEY,
        record_id TEXT NOT NULL,
        log_id TEXT NOT NULL REFERENCES logs (log_id),
        envelope BLOB NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        registry_index BIGINT
    )"
    };
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS logs (
        log_id TEXT PRIMARY KEY,
        name TEXT,
        name_lower TEXT UNIQUE
    )",
    // No index on `record_id`: see `RecordIds`.
    concat!("CREATE TABLE IF NOT EXISTS records ", records_columns!()),
    // Records waiting to be sequenced, in arrival order. A partial index: a record leaves
    // it once sequenced, so it stays small and cheap to update, unlike indexes over every
    // record (dropped here from databases of earlier versions).
    "DROP INDEX IF EXISTS records_by_log",
    "DROP INDEX IF EXISTS records_by_status",
    "CREATE INDEX IF NOT EXISTS records_pending ON records (seq) WHERE status = 'pending'",
    "CREATE UNIQUE INDEX IF NOT EXISTS records_by_registry_index ON records (registry_index) \
     WHERE registry_index IS NOT NULL",
    // The records that begin a log (an init entry), by log: a publish to a package whose
    // init is not sequenced yet looks its key up here. Only these records are indexed by
    // log, because an index entry for every record costs each insert a page write at a
    // random place in the index (in the publish benchmark, about a tenth of the records/s).
    "CREATE TABLE IF NOT EXISTS init_records (
        log_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (log_id, seq)
    )",
    // Databases of earlier versions kept no such table (every init since gets a row that
    // stays): when it is empty, the records waiting are all kept as possible inits (the
    // store cannot tell an init from its envelope).
    "INSERT INTO init_records (log_id, seq) SELECT log_id, seq FROM records \
     WHERE status IN ('pending', 'sourcing') AND NOT EXISTS (SELECT 1 FROM init_records) \
     ON CONFLICT DO NOTHING",
    "DROP INDEX IF EXISTS records_unsequenced_by_log",
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
    "CREATE TABLE IF NOT EXISTS oci_blobs (
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repository, digest)
    )",
    "CREATE TABLE IF NOT EXISTS oci_manifests (
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        bytes BLOB NOT NULL,
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

/// The embedded store: one SQLite file in WAL mode.
///
/// Two connections write: the group-commit task's own (accepted records, see
/// [`insert_batches`]) and a pool of one for everything else. SQLite lets one of them write at
/// a time; the other waits (`busy_timeout`). Every write transaction of several statements
/// starts with `BEGIN IMMEDIATE`, taking the write lock before it reads, so that none fails
/// with `SQLITE_BUSY` for having read a snapshot the other writer changed. Reads use their
/// own pool and run beside the writers (WAL).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) writer: SqlitePool,
    inserts: mpsc::Sender<InsertRequest>,
    /// The database's write-ahead log: SQLite's own name for the file, `<file>-wal`.
    wal: PathBuf,
    /// Taken around every write, by the group commit and by the pooled writer's users (this
    /// first, then the connection): the two writing connections take turns here, in order
    /// and woken as soon as the other is done, instead of in SQLite's busy handler, which
    /// polls with growing sleeps and gives up after `busy_timeout`.
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// Every record's `seq`, by id.
    pub(crate) ids: Arc<RecordIds>,
    /// Whether a background WAL checkpoint is running.
    checkpointing: Arc<std::sync::atomic::AtomicBool>,
}

/// Every stored record's `seq`, by record id, in memory: the records table has no index on
/// the id. Record ids are hashes, so an index on them takes each insert's write at a random
/// page of the index, which in the publish benchmark cost about 15% of the records accepted
/// per second. The map is complete because the group commit is the only writer of records:
/// it adds each batch's ids once the batch is committed, before it answers any caller, and
/// after a failed batch it reads back whatever of it was committed nonetheless; and because
/// one store at a time has the database open (`cairn` locks its data directory).
#[derive(Debug, Default)]
pub(crate) struct RecordIds(std::sync::RwLock<KnownIds>);

#[derive(Debug, Default)]
struct KnownIds {
    seqs: HashMap<RecordId, i64>,
    /// The highest `seq` known: rows are inserted in `seq` order, so every row above it is
    /// one the map lacks.
    last: i64,
}

impl RecordIds {
    pub(crate) fn seq(&self, record_id: &RecordId) -> Option<i64> {
        self.0
            .read()
            .expect("record ids lock poisoned")
            .seqs
            .get(record_id)
            .copied()
    }

    fn add(&self, records: impl IntoIterator<Item = (RecordId, i64)>) {
        let mut known = self.0.write().expect("record ids lock poisoned");
        for (record_id, seq) in records {
            known.last = known.last.max(seq);
            // A record id stored twice (by a version without this map's care) answers as
            // its first row.
            known.seqs.entry(record_id).or_insert(seq);
        }
    }

    /// Adds every record stored after the last one known, a page at a time: at open, every
    /// record; after a failed batch of inserts, whatever of it was committed nonetheless (a
    /// batch's one `INSERT` commits on its own, before its rows are read back).
    async fn catch_up(&self, connection: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
        const PAGE: i64 = 10_000;
        loop {
            let after = self.0.read().expect("record ids lock poisoned").last;
            let rows = sqlx::query(
                "SELECT seq, record_id FROM records WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *connection)
            .await?;
            let page = rows
                .iter()
                .map(|row| {
                    Ok((
                        parse(row.try_get::<&str, _>("record_id")?)?,
                        row.try_get("seq")?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            self.add(page);
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`. Call it on the Tokio runtime
    /// that will use the store: its group-commit task is spawned there.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit syncs the WAL (power-loss safe), except the group commits of
            // accepted records, whose connection runs with NORMAL: they reach the WAL before
            // they are acknowledged (so they survive the process being killed) and become
            // power-loss safe with the next synced commit, the sequencer's at the latest.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(30))
            // 64 MiB of page cache per connection (the default is 2 MiB), and SQLite's own
            // WAL checkpoints every 40 MiB rather than every 4 MiB: they bound the WAL's size,
            // while the copying is mostly done beforehand in the background
            // (`checkpoint_in_background`).
            .pragma("cache_size", "-65536")
            .pragma("wal_autocheckpoint", "10000")
            // Statement journals (a multi-row insert inside a transaction keeps one) stay in
            // memory instead of spilling into temporary files.
            .pragma("temp_store", "memory")
            // Rows come back from the connection's thread in larger hand-offs, so that a
            // sequencer round reading thousands of records does not switch threads every
            // few dozen rows.
            .row_buffer_size(1024);
        // Connections to a local file do not go stale: no ping (a round trip to the
        // connection's thread) before each use.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            // The sequencer's commit switches its connection to NORMAL (see `commit`); every
            // connection goes back to the pool with FULL again, even when the task that
            // switched it was cancelled half-way, or it is closed.
            .after_release(|connection, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *connection)
                        .await?;
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await?;
        for statement in SCHEMA
            .iter()
            .chain(crate::claims::SCHEMA)
            .chain(crate::publishers::SCHEMA)
        {
            sqlx::query(statement).execute(&writer).await?;
        }
        if rebuild_records_table(&writer).await? {
            // The rebuild dropped the table's indexes with it.
            for statement in SCHEMA {
                sqlx::query(statement).execute(&writer).await?;
            }
        }
        let ids = Arc::new(RecordIds::default());
        ids.catch_up(&mut *writer.acquire().await?).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        // The group-commit task keeps a connection of its own rather than taking the pooled
        // writer for each batch: a pooled connection goes back to its pool through a task of
        // its own and a ping, which the next batch would wait for.
        let group_options = options.synchronous(SqliteSynchronous::Normal);
        let group_connection = {
            use sqlx::ConnectOptions as _;
            group_options.connect().await?
        };
        let (inserts, requests) = mpsc::channel(4 * INSERT_BATCH);
        // The group-commit task runs on the caller's runtime, beside the request handlers
        // whose inserts it gathers: handing records to it and answering them wakes no other
        // thread.
        let write_turn = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(insert_batches(
            group_connection,
            group_options,
            requests,
            write_turn.clone(),
            ids.clone(),
        ));
        // SQLite names the WAL after the database's full path, symbolic links resolved.
        let database: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&writer)
                .await?;
        let wal = PathBuf::from(format!("{database}-wal"));
        Ok(SqliteStore {
            pool,
            writer,
            inserts,
            wal,
            write_turn,
            ids,
            checkpointing: Arc::default(),
        })
    }

    /// Makes every commit so far power-loss safe: fsyncs the WAL file, outside SQLite's
    /// write lock. (Frames that a checkpoint copied into the database file were synced there
    /// before the WAL could be reused. While the store is open, the WAL file exists: missing,
    /// it is an error.)
    async fn sync_wal(&self) -> Result<(), StoreError> {
        let wal = self.wal.clone();
        let synced = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&wal)?
                .sync_data()
        })
        .await
        .map_err(|e| StoreError::Failed(format!("the WAL sync stopped: {e}")))?;
        synced.map_err(|e| StoreError::NotDurable {
            disk_full: is_disk_full(&e),
            message: format!("cannot sync {}: {e}", self.wal.display()),
        })
    }

    /// Copies the WAL into the database file in the background, on a reading connection
    /// (`PRAGMA wal_checkpoint(PASSIVE)`, which waits for no reader or writer), unless such a
    /// copy is running already. The checkpoint that SQLite runs itself once the WAL reaches
    /// `wal_autocheckpoint` pages runs inside a commit, with every publish waiting for it (in
    /// the publish benchmark about 35 ms every 40 MB of WAL); after these it finds little left
    /// to copy. It stays as the bound on the WAL's size: beside a steady stream of writes a
    /// checkpoint seldom copies the last frame, and only one that does lets the WAL start
    /// over from its beginning.
    fn checkpoint_in_background(&self) {
        use std::sync::atomic::Ordering;
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, running) = (self.pool.clone(), self.checkpointing.clone());
        tokio::spawn(async move {
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // The store closed meanwhile (the server stopping): nothing to do.
                Ok(_) | Err(sqlx::Error::PoolClosed) => {}
                Err(error) => tracing::warn!(%error, "a background WAL checkpoint failed"),
            }
            running.store(false, Ordering::Release);
        });
    }

    /// Waits for the turn to write (see `write_turn`).
    pub(crate) async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_turn.lock().await
    }
}

#[async_trait::async_trait]
impl RecordStore for SqliteStore {
    async fn sync_commits(&self) -> Result<(), StoreError> {
        self.sync_wal().await
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    fn shared(&self) -> bool {
        false
    }

    async fn sequencer_lease(&self) -> Result<Option<Box<dyn SequencerLease>>, StoreError> {
        // One process at a time has the file open (`cairn` locks its data directory).
        Ok(Some(Box::new(SoleWriter)))
    }

    async fn insert_record(&self, record: NewRecord<'_>) -> Result<InsertOutcome, StoreError> {
        let (reply, outcome) = oneshot::channel();
        let request = InsertRequest {
            record: OwnedNewRecord {
                record_id: record.record_id,
                log_id: record.log_id,
                package_name: record.package_name.map(|n| n.to_string()),
                envelope: record.envelope.to_vec(),
                missing_content: record.missing_content.to_vec(),
                is_init: record.is_init,
            },
            reply,
        };
        self.inserts
            .send(request)
            .await
            .map_err(|_| StoreError::Failed("the store is closed".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Failed("the store's writer stopped".into()))?
    }

    async fn record(&self, record_id: &RecordId) -> Result<Option<RecordRow>, StoreError> {
        let Some(seq) = self.ids.seq(record_id) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE seq = $1"
        ))
        .bind(seq)
        .fetch_one(&self.pool)
        .await?;
        let row = record_row(&row)?;
        if row.record_id != *record_id {
            return Err(corrupt(format!("row {seq} is not record {record_id}")));
        }
        Ok(Some(row))
    }

    async fn missing_content(&self, record_id: &RecordId) -> Result<Vec<Digest>, StoreError> {
        let rows =
            sqlx::query("SELECT digest FROM missing_content WHERE record_id = $1 ORDER BY digest")
                .bind(record_id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| parse(row.try_get::<&str, _>("digest")?))
            .collect()
    }

    async fn content_arrived(&self, digest: &Digest) -> Result<Vec<RecordId>, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let ready = release_waiting(&mut tx, &self.ids, &digest.to_string(), None).await?;
        tx.commit().await?;
        Ok(ready)
    }

    async fn unsequenced_inits(&self, log_id: &LogId) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records
             WHERE seq IN (SELECT seq FROM init_records WHERE log_id = $1)
             AND status IN ('pending', 'sourcing') ORDER BY seq"
        ))
        .bind(log_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_row).collect()
    }

    async fn pending(&self, limit: u32) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE status = 'pending' ORDER BY seq LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_row).collect()
    }

    async fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        // What a checkpoint publishes must survive power loss. The commit reaches the WAL
        // without an fsync, so that it holds SQLite's write lock only briefly (accepted
        // records keep being committed meanwhile); then the WAL file is fsynced, which makes
        // this commit and every earlier one durable before the caller serves the checkpoint.
        {
            let _turn = self.write_turn().await;
            let mut connection = self.writer.acquire().await?;
            // Back to FULL when the connection returns to the pool (`after_release`).
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *connection)
                .await?;
            if let Err(error) = commit_batch(&mut connection, batch).await {
                // After a failed write SQLite may or may not have rolled the transaction
                // back, and the driver's count of open transactions may be wrong: a fresh
                // connection takes this one's place.
                connection.close_on_drop();
                return Err(error);
            }
        }
        self.sync_wal().await?;
        self.checkpoint_in_background();
        Ok(())
    }

    async fn validated_range(&self, from: u64, below: u64) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE registry_index >= $1 \
             AND registry_index < $2 AND status = 'validated' ORDER BY registry_index"
        ))
        .bind(from as i64)
        .bind(below.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_row).collect()
    }

    async fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError> {
        self.checkpoints_after(0).await
    }

    async fn checkpoints_after(&self, length: u64) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE log_length > $1 ORDER BY log_length"
        ))
        .bind(length as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint_row).collect()
    }

    async fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        below: u64,
        limit: u32,
    ) -> Result<Vec<StoredLogRecord>, StoreError> {
        let after = after.map(|a| a as i64).unwrap_or(-1);
        let rows = sqlx::query(
            "SELECT registry_index, record_id, envelope FROM records
             WHERE log_id = $1 AND status = 'validated' AND registry_index > $2 AND registry_index < $3
             ORDER BY registry_index LIMIT $4",
        )
        .bind(log_id.to_string())
        .bind(after)
        .bind(below as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredLogRecord {
                    registry_index: row.try_get::<i64, _>("registry_index")? as u64,
                    record_id: parse(row.try_get::<&str, _>("record_id")?)?,
                    envelope: row.try_get("envelope")?,
                })
            })
            .collect()
    }

    async fn log_name(&self, log_id: &LogId) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query("SELECT name FROM logs WHERE log_id = $1")
            .bind(log_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            row.try_get::<Option<String>, _>("name")
                .map_err(StoreError::from)
        })
        .transpose()
    }

    async fn log_names(
        &self,
        log_ids: &[LogId],
    ) -> Result<std::collections::HashMap<LogId, String>, StoreError> {
        let mut names = std::collections::HashMap::new();
        let ids: Vec<String> = log_ids.iter().map(ToString::to_string).collect();
        for chunk in ids.chunks(1000) {
            let rows = sqlx::query(
                "SELECT log_id, name FROM logs \
                 WHERE name IS NOT NULL AND log_id IN (SELECT value FROM json_each($1))",
            )
            .bind(serde_json::to_string(chunk).expect("strings serialize"))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let log_id: String = row.try_get("log_id")?;
                let log_id = log_id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("log id {log_id:?}: {e}")))?;
                names.insert(log_id, row.try_get("name")?);
            }
        }
        Ok(names)
    }

    async fn put_content(&self, content: &ContentRow) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let digest = content.digest.to_string();
        sqlx::query(
            "INSERT INTO contents (digest, size, tree_digest, manifest) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&digest)
        .bind(content.size as i64)
        .bind(&content.tree_digest)
        .bind(&content.manifest)
        .execute(&mut *tx)
        .await?;
        crate::claims::list_blobs(&mut tx, &digest).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn content(&self, digest: &Digest) -> Result<Option<ContentRow>, StoreError> {
        // Content uploaded for records none of which is published yet is provisional
        // (`claims.rs`): not stored, as far as readers and publishers can tell.
        let row = sqlx::query(
            "SELECT digest, size, tree_digest, manifest FROM contents WHERE digest = $1 \
             AND NOT EXISTS (SELECT 1 FROM content_claims WHERE content_claims.digest = $1)",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ContentRow {
                digest: parse(row.try_get::<&str, _>("digest")?)?,
                size: row.try_get::<i64, _>("size")? as u64,
                tree_digest: row.try_get("tree_digest")?,
                manifest: row.try_get("manifest")?,
            })
        })
        .transpose()
    }
}

/// Content `digest` is stored: the records waiting for it no longer do, and those that wait
/// for nothing else become `pending` (returned). With `claim_since`, each record that waited
/// also claims the content (`claims.rs`), since that time (Unix seconds).
pub(crate) async fn release_waiting(
    connection: &mut sqlx::SqliteConnection,
    ids: &RecordIds,
    digest: &str,
    claim_since: Option<i64>,
) -> Result<Vec<RecordId>, StoreError> {
    let waiting: Vec<String> =
        sqlx::query_scalar("SELECT record_id FROM missing_content WHERE digest = $1")
            .bind(digest)
            .fetch_all(&mut *connection)
            .await?;
    sqlx::query("DELETE FROM missing_content WHERE digest = $1")
        .bind(digest)
        .execute(&mut *connection)
        .await?;
    let mut ready = Vec::new();
    for record_id in waiting {
        let record_id: RecordId = parse(&record_id)?;
        let Some(seq) = ids.seq(&record_id) else {
            tracing::warn!(%record_id, "content arrived for a record that is not stored");
            continue;
        };
        if let Some(since) = claim_since {
            sqlx::query(
                "INSERT INTO content_claims (digest, seq, since) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(digest)
            .bind(seq)
            .bind(since)
            .execute(&mut *connection)
            .await?;
        }
        let still = sqlx::query("SELECT 1 FROM missing_content WHERE record_id = $1 LIMIT 1")
            .bind(record_id.to_string())
            .fetch_optional(&mut *connection)
            .await?;
        if still.is_none() {
            sqlx::query(
                "UPDATE records SET status = 'pending' WHERE seq = $1 AND status = 'sourcing'",
            )
            .bind(seq)
            .execute(&mut *connection)
            .await?;
            ready.push(record_id);
        }
    }
    Ok(ready)
}

/// A record to insert, owned, on its way to the writer task.
struct OwnedNewRecord {
    record_id: RecordId,
    log_id: LogId,
    package_name: Option<String>,
    envelope: Vec<u8>,
    missing_content: Vec<Digest>,
    is_init: bool,
}

struct InsertRequest {
    record: OwnedNewRecord,
    reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// The statements of a sequencer commit, in one transaction on `connection`.
async fn commit_batch(
    connection: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    batch: &CommitBatch,
) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    // The fence: the log is still where the round found it (one writer holds the lock).
    let found: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(log_length), 0) FROM checkpoints")
        .fetch_one(&mut *tx)
        .await?;
    if let Some(expected) = batch.log_length_before.filter(|&l| l != found as u64) {
        return Err(StoreError::Fenced {
            expected,
            found: found as u64,
        });
    }

    // One statement per chunk of records: `UPDATE ... FROM (VALUES ...)`, the values table
    // joined to `records` by its primary key, `seq`, with the record id checked as well (SQL
    // that PostgreSQL runs too; both name the columns of a VALUES list column1, column2, ...).
    for chunk in batch.validated.chunks(COMMIT_CHUNK) {
        let mut update = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "UPDATE records SET status = 'validated', registry_index = v.column2 FROM (",
        );
        update.push_values(chunk, |mut values, record| {
            values
                .push_bind(record.seq)
                .push_bind(record.registry_index as i64)
                .push_bind(record.record_id.to_string());
        });
        update.push(
            ") AS v WHERE records.seq = v.column1 AND records.record_id = v.column3 \
             AND records.status = 'pending'",
        );
        let done = update.build().execute(&mut *tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Failed(format!(
                "{} of {} validated records were not found",
                chunk.len() as u64 - done.rows_affected(),
                chunk.len()
            )));
        }
    }
    // Content a validated record claimed is kept from now on (`claims.rs`), in the same
    // transaction: a published release's content is never provisional.
    let validated: Vec<i64> = batch.validated.iter().map(|record| record.seq).collect();
    if !validated.is_empty() {
        crate::claims::keep_claimed(&mut tx, &validated).await?;
    }
    for rejected in &batch.rejected {
        sqlx::query(
            "UPDATE records SET status = 'rejected', reason = $1 \
             WHERE seq = $2 AND record_id = $3 AND status IN ('pending', 'sourcing')",
        )
        .bind(&rejected.reason)
        .bind(rejected.seq)
        .bind(rejected.record_id.to_string())
        .execute(&mut *tx)
        .await?;
    }
    if let Some(checkpoint) = &batch.checkpoint {
        let c = &checkpoint.contents;
        sqlx::query(
            "INSERT INTO checkpoints (log_length, log_root, map_root, timestamp, key_id, signature)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.log_length as i64)
        .bind(c.log_root.to_string())
        .bind(c.map_root.to_string())
        .bind(c.timestamp as i64)
        .bind(checkpoint.key_id.to_string())
        .bind(checkpoint.signature.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Most rows of two bound values (missing content, inits) one statement inserts.
const PAIR_CHUNK: usize = 4096;

/// Most records one sequencer update statement names.
const COMMIT_CHUNK: usize = 256;

/// Most inserts committed together.
const INSERT_BATCH: usize = 512;

/// The writer task for inserts: takes every insert waiting, writes them in one transaction
/// with a few multi-row statements, commits once (group commit: one write to the WAL for the
/// lot, without an fsync: its connection runs with `synchronous = NORMAL`), and only then answers each caller.
async fn insert_batches(
    mut connection: sqlx::SqliteConnection,
    options: SqliteConnectOptions,
    mut requests: mpsc::Receiver<InsertRequest>,
    write_turn: Arc<tokio::sync::Mutex<()>>,
    ids: Arc<RecordIds>,
) {
    // Logs are never deleted, so a log seen once needs no lookup again.
    let mut known_logs: HashSet<LogId> = HashSet::new();
    while let Some(first) = requests.recv().await {
        // Let the handlers that are ready run first, so that their inserts join this batch
        // (fewer, larger commits: in the publish bench about 11% more records/s).
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < INSERT_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let written = insert_in_turn(&write_turn, &mut connection, &batch, &known_logs, &ids).await;
        if written.is_err() {
            renew(&mut connection, &options).await;
        }
        match written {
            Ok((outcomes, new_logs)) => {
                known_logs.extend(new_logs);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            // One record may have failed the whole statement: each on its own, so that only
            // that one fails.
            Err(_) if batch.len() > 1 => {
                for request in batch {
                    let single = std::slice::from_ref(&request);
                    let outcome = match insert_in_turn(
                        &write_turn,
                        &mut connection,
                        single,
                        &known_logs,
                        &ids,
                    )
                    .await
                    {
                        Ok((mut outcomes, new_logs)) => {
                            known_logs.extend(new_logs);
                            outcomes.pop().unwrap_or_else(|| {
                                Err(StoreError::Failed("no outcome for the insert".into()))
                            })
                        }
                        Err(error) => {
                            renew(&mut connection, &options).await;
                            Err(error)
                        }
                    };
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                for request in batch {
                    let _ = request.reply.send(Err(error.shared()));
                }
            }
        }
    }
}

/// Replaces the group commit's connection after a failed write: SQLite may or may not have
/// rolled its transaction back, and the driver's count of open transactions may be wrong. If
/// no new connection can be made (the disk is full), the old one stays, to be tried again.
async fn renew(connection: &mut sqlx::SqliteConnection, options: &SqliteConnectOptions) {
    use sqlx::ConnectOptions as _;
    match options.connect().await {
        Ok(fresh) => {
            let old = std::mem::replace(connection, fresh);
            let _ = sqlx::Connection::close(old).await;
        }
        Err(error) => tracing::warn!(%error, "cannot renew the group commit's connection"),
    }
}

/// [`insert_batch`], once it is the group commit's turn to write.
async fn insert_in_turn(
    write_turn: &tokio::sync::Mutex<()>,
    connection: &mut sqlx::SqliteConnection,
    batch: &[InsertRequest],
    known_logs: &HashSet<LogId>,
    ids: &RecordIds,
) -> Result<BatchOutcome, StoreError> {
    let _turn = write_turn.lock().await;
    let written = insert_batch(connection, batch, known_logs, ids).await;
    if written.is_err() {
        if let Err(error) = ids.catch_up(connection).await {
            tracing::error!(%error, "cannot read back the records of a failed batch");
        }
    }
    written
}

type BatchOutcome = (Vec<Result<InsertOutcome, StoreError>>, Vec<LogId>);

/// Inserts a batch: each new log (with its name checked against the others), then every
/// record not stored yet in one `INSERT ... RETURNING`, the ones stored already read back,
/// what the new ones wait for and which of them are inits in one more statement each. Once
/// committed, the new records' ids join `ids`. Returns each request's outcome, in order, and
/// the logs now known.
///
/// Only a batch that creates logs, waits for content, holds inits or records stored
/// already needs several statements, committed together in a transaction; the usual batch
/// (new releases of known packages with their content stored) is the one `INSERT`, which
/// commits on its own, in one round trip to the connection's thread instead of three.
async fn insert_batch(
    connection: &mut sqlx::SqliteConnection,
    batch: &[InsertRequest],
    known_logs: &HashSet<LogId>,
    ids: &RecordIds,
) -> Result<BatchOutcome, StoreError> {
    use sqlx::Connection as _;
    // Each record's `seq` if it is stored already, looked up once.
    let stored: Vec<Option<i64>> = batch
        .iter()
        .map(|request| ids.seq(&request.record.record_id))
        .collect();
    let several_statements = batch.iter().zip(&stored).any(|(request, stored)| {
        let record = &request.record;
        !known_logs.contains(&record.log_id)
            || !record.missing_content.is_empty()
            || record.is_init
            || stored.is_some()
    });
    let (outcomes, new_logs) = if several_statements {
        let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = insert_statements(&mut tx, batch, &stored, known_logs).await?;
        tx.commit().await?;
        outcome
    } else {
        insert_statements(connection, batch, &stored, known_logs).await?
    };
    ids.add(outcomes.iter().filter_map(|outcome| match outcome {
        Ok(InsertOutcome::Inserted(row)) => Some((row.record_id, row.seq)),
        _ => None,
    }));
    Ok((outcomes, new_logs))
}

/// The statements of [`insert_batch`], on `connection` (in a transaction when there are
/// several); `stored` holds each record's `seq` if it is stored already.
async fn insert_statements(
    connection: &mut sqlx::SqliteConnection,
    batch: &[InsertRequest],
    stored: &[Option<i64>],
    known_logs: &HashSet<LogId>,
) -> Result<BatchOutcome, StoreError> {
    let mut outcomes: Vec<Option<Result<InsertOutcome, StoreError>>> =
        (0..batch.len()).map(|_| None).collect();

    // New logs: rare (a package's first record), so one by one.
    let mut new_logs: Vec<LogId> = Vec::new();
    let mut refused_logs: HashMap<LogId, StoreError> = HashMap::new();
    for request in batch {
        let record = &request.record;
        if known_logs.contains(&record.log_id)
            || new_logs.contains(&record.log_id)
            || refused_logs.contains_key(&record.log_id)
        {
            continue;
        }
        match ensure_log(connection, record).await? {
            Ok(()) => new_logs.push(record.log_id),
            Err(refusal) => {
                refused_logs.insert(record.log_id, refusal);
            }
        }
    }
    for (i, request) in batch.iter().enumerate() {
        if let Some(refusal) = refused_logs.get(&request.record.log_id) {
            outcomes[i] = Some(Err(match refusal {
                StoreError::NameConflict {
                    requested,
                    existing,
                } => StoreError::NameConflict {
                    requested: requested.clone(),
                    existing: existing.clone(),
                },
                other => other.shared(),
            }));
        }
    }

    // The records, in arrival order (their `seq`), once each: the ones stored already, by an
    // earlier batch, are read back; the others are inserted.
    let mut first_of: HashMap<RecordId, usize> = HashMap::new();
    let (earlier, to_insert): (Vec<(usize, i64)>, Vec<usize>) = {
        let firsts: Vec<usize> = (0..batch.len())
            .filter(|&i| outcomes[i].is_none())
            .filter(|&i| match first_of.entry(batch[i].record.record_id) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                    true
                }
            })
            .collect();
        let mut earlier = Vec::new();
        let mut to_insert = Vec::new();
        for i in firsts {
            match stored[i] {
                Some(seq) => earlier.push((i, seq)),
                None => to_insert.push(i),
            }
        }
        (earlier, to_insert)
    };
    // The rows of records stored already, by id.
    let mut rows: HashMap<RecordId, RecordRow> = HashMap::new();
    if !earlier.is_empty() {
        let mut select = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE seq IN ("
        ));
        let mut list = select.separated(", ");
        for &(_, seq) in &earlier {
            list.push_bind(seq);
        }
        select.push(")");
        for row in select.build().fetch_all(&mut *connection).await? {
            let row = record_row(&row)?;
            rows.insert(row.record_id, row);
        }
    }
    if !to_insert.is_empty() {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO records (record_id, log_id, envelope, status) ",
        );
        insert.push_values(&to_insert, |mut values, &i| {
            let record = &batch[i].record;
            values
                .push_bind(record.record_id.to_string())
                .push_bind(record.log_id.to_string())
                .push_bind(record.envelope.as_slice())
                .push_bind(initial_status(record).as_str());
        });
        // Only the `seq` of each comes back (with its id: RETURNING rows come in no set
        // order); the rest of each row is the request's.
        insert.push(" RETURNING seq, record_id");
        let inserted = insert.build().fetch_all(&mut *connection).await?;
        if inserted.len() != to_insert.len() {
            return Err(StoreError::Failed(format!(
                "{} records inserted of {}",
                inserted.len(),
                to_insert.len()
            )));
        }
        // Which of the new ones begin their logs.
        let mut inits: Vec<(String, i64)> = Vec::new();
        for row in inserted {
            let record_id: RecordId = parse(row.try_get::<&str, _>("record_id")?)?;
            let &i = first_of.get(&record_id).ok_or_else(|| {
                StoreError::Failed(format!(
                    "the insert returned a record {record_id} it was not given"
                ))
            })?;
            let record = &batch[i].record;
            let row = RecordRow {
                seq: row.try_get("seq")?,
                record_id: record.record_id,
                log_id: record.log_id,
                envelope: record.envelope.clone(),
                status: initial_status(record),
                reason: None,
                registry_index: None,
            };
            if record.is_init {
                inits.push((record.log_id.to_string(), row.seq));
            }
            outcomes[i] = Some(Ok(InsertOutcome::Inserted(row)));
        }
        // What the new ones wait for.
        let missing: Vec<(String, String)> = to_insert
            .iter()
            .map(|&i| &batch[i].record)
            .flat_map(|record| {
                record
                    .missing_content
                    .iter()
                    .map(|digest| (record.record_id.to_string(), digest.to_string()))
            })
            .collect();
        // In chunks, well below the limit on bound values of one statement.
        for chunk in inits.chunks(PAIR_CHUNK) {
            let mut insert =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO init_records (log_id, seq) ");
            insert.push_values(chunk, |mut values, (log_id, seq)| {
                values.push_bind(log_id.as_str()).push_bind(*seq);
            });
            insert.build().execute(&mut *connection).await?;
        }
        for chunk in missing.chunks(PAIR_CHUNK) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO missing_content (record_id, digest) ",
            );
            insert.push_values(chunk, |mut values, (record_id, digest)| {
                values
                    .push_bind(record_id.as_str())
                    .push_bind(digest.as_str());
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *connection).await?;
        }
    }
    // Records stored already, and a record sent twice in one batch: the second finds the
    // first (which comes earlier, so its outcome is settled).
    let mut settled: Vec<Result<InsertOutcome, StoreError>> = Vec::with_capacity(batch.len());
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap_or_else(|| {
            let id = batch[i].record.record_id;
            let first = first_of
                .get(&id)
                .and_then(|&first| match settled.get(first) {
                    Some(Ok(InsertOutcome::Inserted(row) | InsertOutcome::AlreadyThere(row))) => {
                        Some(row)
                    }
                    _ => None,
                });
            rows.get(&id)
                .or(first)
                .cloned()
                .map(InsertOutcome::AlreadyThere)
                .ok_or_else(|| StoreError::Failed(format!("record {id} vanished")))
        });
        settled.push(outcome);
    }
    Ok((settled, new_logs))
}

/// Rebuilds the records table of a database of an earlier version, whose columns were
/// indexed on every insert (see `records_columns!`), as the table is now: in one transaction,
/// every row kept with its `seq`. Returns whether it did; the table's indexes went with the
/// old table.
async fn rebuild_records_table(writer: &SqlitePool) -> Result<bool, StoreError> {
    let current: String = sqlx::query_scalar(concat!(
        "SELECT 'CREATE TABLE records ' || ",
        "substr(sql, instr(sql, '(')) FROM sqlite_master WHERE type = 'table' AND name = 'records'"
    ))
    .fetch_one(writer)
    .await?;
    let wanted = concat!("CREATE TABLE records ", records_columns!());
    if current == wanted {
        return Ok(false);
    }
    tracing::info!("rebuilding the records table of an earlier version");
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let statements = [
        concat!("CREATE TABLE records_rebuilt ", records_columns!()),
        "INSERT INTO records_rebuilt (seq, record_id, log_id, envelope, status, reason, registry_index) \
         SELECT seq, record_id, log_id, envelope, status, reason, registry_index FROM records",
        "DROP TABLE records",
        "ALTER TABLE records_rebuilt RENAME TO records",
    ];
    for statement in statements {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A new record's status: `sourcing` while it misses content, else `pending`.
fn initial_status(record: &OwnedNewRecord) -> RecordStatus {
    if record.missing_content.is_empty() {
        RecordStatus::Pending
    } else {
        RecordStatus::Sourcing
    }
}

/// Makes sure the record's log exists: finds it, or creates it unless its name clashes
/// (case-insensitively) with another log's. The outer error is the database's; the inner
/// one is the refusal of this record.
async fn ensure_log(
    connection: &mut sqlx::SqliteConnection,
    record: &OwnedNewRecord,
) -> Result<Result<(), StoreError>, StoreError> {
    let log_id = record.log_id.to_string();
    let known = sqlx::query("SELECT name FROM logs WHERE log_id = $1")
        .bind(&log_id)
        .fetch_optional(&mut *connection)
        .await?;
    if known.is_some() {
        return Ok(Ok(()));
    }
    let name = record.package_name.clone();
    let lower = name.as_ref().map(|n| n.to_lowercase());
    if let Some(lower) = &lower {
        let clash = sqlx::query("SELECT name FROM logs WHERE name_lower = $1")
            .bind(lower)
            .fetch_optional(&mut *connection)
            .await?;
        if let Some(clash) = clash {
            return Ok(Err(StoreError::NameConflict {
                requested: name.unwrap_or_default(),
                existing: clash.try_get("name")?,
            }));
        }
    }
    sqlx::query("INSERT INTO logs (log_id, name, name_lower) VALUES ($1, $2, $3)")
        .bind(&log_id)
        .bind(&name)
        .bind(&lower)
        .execute(&mut *connection)
        .await?;
    Ok(Ok(()))
}
