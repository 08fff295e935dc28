//! Copying a registry's SQLite database into an empty PostgreSQL database
//! (`cairn admin migrate`): every table, row for row, with each record's arrival order
//! (`seq`) kept, in one PostgreSQL transaction, so that a copy that fails leaves the target
//! as empty as it found it.

use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;

use crate::records::StoreError;
use crate::{PostgresStore, SqliteStore};

/// Rows read from SQLite and written to PostgreSQL at a time.
const PAGE: i64 = 5_000;

/// A column's type on both databases.
#[derive(Clone, Copy)]
enum Kind {
    /// `TEXT`, possibly `NULL`.
    Text,
    /// `BIGINT` (SQLite `INTEGER`), possibly `NULL`.
    Int,
    /// `BYTEA` (SQLite `BLOB`).
    Bytes,
    /// `BOOLEAN` (SQLite `0`/`1`).
    Bool,
}

/// One table to copy: the columns, and the SQLite query that reads a page of them after a
/// rowid (`$1`, the rowid of the last row read; `$2`, the page size), with the rowid first.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    select: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "logs",
        columns: &[("log_id", Kind::Text), ("name", Kind::Text), ("name_lower", Kind::Text)],
        select: "SELECT rowid, log_id, name, name_lower FROM logs WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "records",
        columns: &[
            ("seq", Kind::Int),
            ("record_id", Kind::Text),
            ("log_id", Kind::Text),
            ("envelope", Kind::Bytes),
            ("status", Kind::Text),
            ("reason", Kind::Text),
            ("registry_index", Kind::Int),
            ("is_init", Kind::Bool),
        ],
        select: "SELECT seq, seq, record_id, log_id, envelope, status, reason, registry_index, \
                 EXISTS (SELECT 1 FROM init_records i WHERE i.seq = records.seq) \
                 FROM records WHERE seq > $1 ORDER BY seq LIMIT $2",
    },
    Table {
        name: "missing_content",
        columns: &[("record_id", Kind::Text), ("digest", Kind::Text)],
        select: "SELECT rowid, record_id, digest FROM missing_content WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "checkpoints",
        columns: &[
            ("log_length", Kind::Int),
            ("log_root", Kind::Text),
            ("map_root", Kind::Text),
            ("timestamp", Kind::Int),
            ("key_id", Kind::Text),
            ("signature", Kind::Text),
        ],
        select: "SELECT rowid, log_length, log_root, map_root, timestamp, key_id, signature \
                 FROM checkpoints WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "contents",
        columns: &[
            ("digest", Kind::Text),
            ("size", Kind::Int),
            ("tree_digest", Kind::Text),
            ("manifest", Kind::Text),
        ],
        select: "SELECT rowid, digest, size, tree_digest, manifest FROM contents \
                 WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "content_claims",
        columns: &[("digest", Kind::Text), ("seq", Kind::Int), ("since", Kind::Int)],
        select: "SELECT rowid, digest, seq, since FROM content_claims WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "content_blobs",
        columns: &[("blob", Kind::Text), ("digest", Kind::Text)],
        select: "SELECT rowid, blob, digest FROM content_blobs WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "oci_blobs",
        columns: &[("repository", Kind::Text), ("digest", Kind::Text)],
        select: "SELECT rowid, repository, digest FROM oci_blobs WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "oci_manifests",
        columns: &[
            ("repository", Kind::Text),
            ("digest", Kind::Text),
            ("media_type", Kind::Text),
            ("bytes", Kind::Bytes),
            ("subject", Kind::Text),
            ("artifact_type", Kind::Text),
        ],
        select: "SELECT rowid, repository, digest, media_type, bytes, subject, artifact_type \
                 FROM oci_manifests WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "oci_tags",
        columns: &[("repository", Kind::Text), ("tag", Kind::Text), ("digest", Kind::Text)],
        select: "SELECT rowid, repository, tag, digest FROM oci_tags WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
    Table {
        name: "publishers",
        columns: &[
            ("name", Kind::Text),
            ("token_sha256", Kind::Text),
            ("public_key", Kind::Text),
            ("scopes", Kind::Text),
            ("created", Kind::Int),
            ("revoked", Kind::Int),
        ],
        select: "SELECT rowid, name, token_sha256, public_key, scopes, created, revoked \
                 FROM publishers WHERE rowid > $1 ORDER BY rowid LIMIT $2",
    },
];

/// A page of one column, as PostgreSQL takes it: an array.
enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bytes(Vec<Vec<u8>>),
    Bool(Vec<bool>),
}

impl Values {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text => Values::Text(Vec::new()),
            Kind::Int => Values::Int(Vec::new()),
            Kind::Bytes => Values::Bytes(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
        }
    }

    fn push(&mut self, row: &SqliteRow, index: usize) -> Result<(), StoreError> {
        match self {
            Values::Text(values) => values.push(row.try_get(index)?),
            Values::Int(values) => values.push(row.try_get(index)?),
            Values::Bytes(values) => values.push(row.try_get(index)?),
            Values::Bool(values) => values.push(row.try_get(index)?),
        }
        Ok(())
    }

    fn array_type(&self) -> &'static str {
        match self {
            Values::Text(_) => "text[]",
            Values::Int(_) => "bigint[]",
            Values::Bytes(_) => "bytea[]",
            Values::Bool(_) => "boolean[]",
        }
    }
}

/// What a migration copied, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// `(table, rows)`, in the order copied.
    pub tables: Vec<(String, u64)>,
}

/// Why a migration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The target holds a registry already (records, checkpoints or accounts).
    #[error(
        "the PostgreSQL database already holds a registry ({0}); migrate into an empty \
         database (createdb NAME), or drop this one first if it is a failed copy"
    )]
    TargetNotEmpty(String),
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PostgresStore {
    /// Copies every table of `source` into this database, which must hold no registry yet,
    /// in one transaction. `progress` hears of each table once it is copied.
    pub async fn copy_from_sqlite(
        &self,
        source: &SqliteStore,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<MigrationReport, MigrationError> {
        for table in ["records", "checkpoints", "publishers", "logs"] {
            let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::from)?;
            if any {
                return Err(MigrationError::TargetNotEmpty(format!(
                    "its {table} table has rows"
                )));
            }
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let mut report = MigrationReport::default();
        for table in TABLES {
            let mut after = i64::MIN;
            let mut copied = 0u64;
            loop {
                let rows = sqlx::query(table.select)
                    .bind(after)
                    .bind(PAGE)
                    .fetch_all(&source.pool)
                    .await
                    .map_err(StoreError::from)?;
                let Some(last) = rows.last() else { break };
                after = last.try_get(0).map_err(StoreError::from)?;
                let mut columns: Vec<Values> = table
                    .columns
                    .iter()
                    .map(|(_, kind)| Values::new(*kind))
                    .collect();
                for row in &rows {
                    for (i, values) in columns.iter_mut().enumerate() {
                        values.push(row, i + 1)?;
                    }
                }
                let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
                let arrays: Vec<String> = columns
                    .iter()
                    .enumerate()
                    .map(|(i, values)| format!("${}::{}", i + 1, values.array_type()))
                    .collect();
                let sql = format!(
                    "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
                    table.name,
                    names.join(", "),
                    arrays.join(", ")
                );
                let mut insert = sqlx::query(&sql);
                for values in columns {
                    insert = match values {
                        Values::Text(v) => insert.bind(v),
                        Values::Int(v) => insert.bind(v),
                        Values::Bytes(v) => insert.bind(v),
                        Values::Bool(v) => insert.bind(v),
                    };
                }
                insert.execute(&mut *tx).await.map_err(StoreError::from)?;
                copied += rows.len() as u64;
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
            progress(table.name, copied);
            report.tables.push((table.name.to_owned(), copied));
        }
        // New records continue after the copied ones.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('records', 'seq'), \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM records), false)",
        )
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(report)
    }
}
