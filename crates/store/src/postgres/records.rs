//! Records, logs, checkpoints and content manifests on PostgreSQL: the [`RecordStore`] of
//! [`PostgresStore`]. Each insert is its own transaction (several nodes insert at once, and
//! PostgreSQL groups their commits' WAL flushes itself); a record id is unique, so an insert
//! sent twice, to one node or two, finds the first.

use std::collections::HashMap;

use cairn_protocol::{Digest, LogId, RecordId, SignedCheckpoint};
use sqlx::postgres::PgRow;
use sqlx::Row as _;

use super::PostgresStore;
use crate::contract::{RecordStore, SequencerLease};
use crate::records::{
    CommitBatch, ContentRow, InsertOutcome, NewRecord, RecordRow, RecordStatus, StoreError,
    StoredLogRecord,
};
use crate::rows::{checkpoint_row, record_row, StoredRow as _, CHECKPOINT_COLUMNS, RECORD_COLUMNS};

/// Most records one sequencer update statement names.
const COMMIT_CHUNK: usize = 1024;

/// The row of a record just inserted (`inserted` holds its `seq`).
fn new_row(
    record: &NewRecord<'_>,
    status: RecordStatus,
    inserted: &PgRow,
) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        seq: inserted.try_get("seq")?,
        ..new_row_without_seq(record, status)
    })
}

fn new_row_without_seq(record: &NewRecord<'_>, status: RecordStatus) -> RecordRow {
    RecordRow {
        seq: 0,
        record_id: record.record_id,
        log_id: record.log_id,
        envelope: record.envelope.to_vec(),
        status,
        reason: None,
        registry_index: None,
    }
}

/// Most inserts committed together.
pub(crate) const GROUP_COMMIT: usize = 512;

/// A record whose content is stored, waiting for the group commit; the answer is its `seq`,
/// or `None` if a record with its id was stored already, or the refusal of its log's name.
pub(crate) struct QueuedInsert {
    record_id: String,
    log_id: String,
    /// For a log not known to exist: `Some` with its package name (`None` for the operator
    /// log), to create it unless the name is taken in another case.
    new_log: Option<Option<String>>,
    envelope: Vec<u8>,
    is_init: bool,
    reply: tokio::sync::oneshot::Sender<Result<Option<i64>, StoreError>>,
}

/// The group commit: takes every insert waiting and writes them together, then answers each:
/// the new logs in one statement and their names checked in another, in a transaction with
/// the records; a batch of known logs only is the one statement that inserts the records,
/// committed on its own. Each record is written once, pending, and a record whose id is stored
/// already (or twice in one batch) is answered `None`, for its caller to read back.
pub(crate) async fn group_commit(
    pool: sqlx::PgPool,
    mut queue: tokio::sync::mpsc::Receiver<QueuedInsert>,
) {
    while let Some(first) = queue.recv().await {
        // Let the handlers that are ready run first, so that their inserts join this batch.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT {
            match queue.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let written = write_batch(&pool, &batch).await;
        match written {
            Ok((mut seqs, mut refused)) => {
                for queued in batch {
                    if let Some(refusal) = refused.remove(&queued.record_id) {
                        let _ = queued.reply.send(Err(refusal));
                        continue;
                    }
                    // The first of two sends of one id in a batch takes the seq; the second
                    // reads the row back.
                    let seq = seqs.remove(&queued.record_id);
                    let _ = queued.reply.send(Ok(seq));
                }
            }
            Err(error) => {
                for queued in batch {
                    let _ = queued.reply.send(Err(error.shared()));
                }
            }
        }
    }
}

/// The `seq` of each record inserted, and the refusal of each record whose log's name is
/// taken, by record id.
type Written = (HashMap<String, i64>, HashMap<String, StoreError>);

/// Writes one batch of the group commit.
async fn write_batch(pool: &sqlx::PgPool, batch: &[QueuedInsert]) -> Result<Written, StoreError> {
    let mut refused = HashMap::new();
    let new_logs: Vec<&QueuedInsert> = batch.iter().filter(|q| q.new_log.is_some()).collect();
    let mut tx = None;
    if !new_logs.is_empty() {
        let mut open = pool.begin().await?;
        let names: Vec<Option<&str>> = new_logs
            .iter()
            .map(|q| q.new_log.as_ref().and_then(|n| n.as_deref()))
            .collect();
        let lowers: Vec<Option<String>> = names.iter().map(|n| n.map(str::to_lowercase)).collect();
        let ids: Vec<&str> = new_logs.iter().map(|q| q.log_id.as_str()).collect();
        // Any conflict leaves the row that was there: this log (made by an earlier batch or
        // another node) or another log of the same name in another case, told apart below.
        sqlx::query(
            "INSERT INTO logs (log_id, name, name_lower) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&lowers)
        .execute(&mut *open)
        .await?;
        let holders =
            sqlx::query("SELECT log_id, name, name_lower FROM logs WHERE name_lower = ANY($1)")
                .bind(&lowers)
                .fetch_all(&mut *open)
                .await?;
        let mut holder_of: HashMap<String, (String, String)> = HashMap::new();
        for row in holders {
            holder_of.insert(
                row.try_get("name_lower")?,
                (row.try_get("log_id")?, row.try_get("name")?),
            );
        }
        for (queued, (name, lower)) in new_logs.iter().zip(names.iter().zip(&lowers)) {
            let (Some(name), Some(lower)) = (name, lower) else {
                continue;
            };
            if let Some((holder, existing)) = holder_of.get(lower) {
                if *holder != queued.log_id {
                    refused.insert(
                        queued.record_id.clone(),
                        StoreError::NameConflict {
                            requested: (*name).to_owned(),
                            existing: existing.clone(),
                        },
                    );
                }
            }
        }
        tx = Some(open);
    }
    let kept: Vec<&QueuedInsert> = batch
        .iter()
        .filter(|q| !refused.contains_key(&q.record_id))
        .collect();
    let ids: Vec<&str> = kept.iter().map(|q| q.record_id.as_str()).collect();
    let logs: Vec<&str> = kept.iter().map(|q| q.log_id.as_str()).collect();
    let envelopes: Vec<&[u8]> = kept.iter().map(|q| q.envelope.as_slice()).collect();
    let inits: Vec<bool> = kept.iter().map(|q| q.is_init).collect();
    let insert = sqlx::query(
        "INSERT INTO records (record_id, log_id, envelope, status, is_init) \
             SELECT id, log, envelope, 'pending', init \
             FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::boolean[]) \
               AS r(id, log, envelope, init) \
             ON CONFLICT (record_id) DO NOTHING RETURNING seq, record_id",
    )
    .bind(&ids)
    .bind(&logs)
    .bind(&envelopes)
    .bind(&inits);
    let rows = match tx {
        Some(mut open) => {
            let rows = insert.fetch_all(&mut *open).await?;
            open.commit().await?;
            rows
        }
        None => insert.fetch_all(pool).await?,
    };
    let mut seqs = HashMap::new();
    for row in &rows {
        seqs.insert(
            row.try_get::<String, _>("record_id")?,
            row.try_get::<i64, _>("seq")?,
        );
    }
    Ok((seqs, refused))
}

/// Makes sure the record's log exists, unless its package name clashes (case-insensitively)
/// with another log's: the outer error is the database's, the inner one the refusal.
async fn ensure_log(
    tx: &mut sqlx::PgConnection,
    record: &NewRecord<'_>,
) -> Result<Result<(), StoreError>, StoreError> {
    let log_id = record.log_id.to_string();
    let name = record.package_name.map(|n| n.to_string());
    let lower = name.as_ref().map(|n| n.to_lowercase());
    // Any conflict leaves the row that was there: either this log (another node created it
    // meanwhile) or another log of the same name in another case, told apart below.
    sqlx::query(
        "INSERT INTO logs (log_id, name, name_lower) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&log_id)
    .bind(&name)
    .bind(&lower)
    .execute(&mut *tx)
    .await?;
    let Some(lower) = lower else {
        return Ok(Ok(()));
    };
    let holder = sqlx::query("SELECT log_id, name FROM logs WHERE name_lower = $1")
        .bind(&lower)
        .fetch_one(&mut *tx)
        .await?;
    let holder_id: String = holder.try_get("log_id")?;
    if holder_id == log_id {
        return Ok(Ok(()));
    }
    Ok(Err(StoreError::NameConflict {
        requested: name.unwrap_or_default(),
        existing: holder.try_get("name")?,
    }))
}

/// Content `digest` is stored: the records waiting for it no longer do, and those that wait
/// for nothing else become `pending` (returned). With `claim_since`, each record that waited
/// also claims the content, since that time (Unix seconds).
pub(super) async fn release_waiting(
    tx: &mut sqlx::PgConnection,
    digest: &str,
    claim_since: Option<i64>,
) -> Result<Vec<RecordId>, StoreError> {
    let waiting = sqlx::query(
        "DELETE FROM missing_content m USING records r \
         WHERE m.digest = $1 AND r.record_id = m.record_id RETURNING r.seq, r.record_id",
    )
    .bind(digest)
    .fetch_all(&mut *tx)
    .await?;
    let mut ready = Vec::new();
    for row in waiting {
        let seq: i64 = row.try_get("seq")?;
        let record_id: RecordId = row.parsed("record_id")?;
        if let Some(since) = claim_since {
            sqlx::query(
                "INSERT INTO content_claims (digest, seq, since) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(digest)
            .bind(seq)
            .bind(since)
            .execute(&mut *tx)
            .await?;
        }
        let released = sqlx::query(
            "UPDATE records SET status = 'pending' WHERE seq = $1 AND status = 'sourcing' \
             AND NOT EXISTS (SELECT 1 FROM missing_content WHERE record_id = $2)",
        )
        .bind(seq)
        .bind(record_id.to_string())
        .execute(&mut *tx)
        .await?;
        if released.rows_affected() == 1 {
            ready.push(record_id);
        }
    }
    Ok(ready)
}

/// Lists the blobs of content `digest` (from its manifest) in `content_blobs`.
pub(super) async fn list_blobs(
    tx: &mut sqlx::PgConnection,
    digest: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO content_blobs (blob, digest)
         SELECT DISTINCT b.value ->> 'digest', c.digest
         FROM contents c, jsonb_array_elements(c.manifest::jsonb -> 'blobs') AS b(value)
         WHERE c.digest = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(digest)
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl RecordStore for PostgresStore {
    async fn insert_record(&self, record: NewRecord<'_>) -> Result<InsertOutcome, StoreError> {
        let status = if record.missing_content.is_empty() {
            RecordStatus::Pending
        } else {
            RecordStatus::Sourcing
        };
        let known_log = self
            .known_logs
            .read()
            .expect("known logs lock poisoned")
            .contains(&record.log_id);
        // A record whose content is stored (a release, an init) goes into the group commit:
        // a statement or two for all the records waiting.
        if record.missing_content.is_empty() {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let queued = QueuedInsert {
                record_id: record.record_id.to_string(),
                log_id: record.log_id.to_string(),
                new_log: (!known_log).then(|| record.package_name.map(|n| n.to_string())),
                envelope: record.envelope.to_vec(),
                is_init: record.is_init,
                reply,
            };
            self.releases
                .send(queued)
                .await
                .map_err(|_| StoreError::Failed("the store is closed".into()))?;
            let seq = answer
                .await
                .map_err(|_| StoreError::Failed("the store's group commit stopped".into()))??;
            if !known_log {
                self.known_logs
                    .write()
                    .expect("known logs lock poisoned")
                    .insert(record.log_id);
            }
            return match seq {
                Some(seq) => Ok(InsertOutcome::Inserted(RecordRow {
                    seq,
                    ..new_row_without_seq(&record, status)
                })),
                None => {
                    let row = sqlx::query(&format!(
                        "SELECT {RECORD_COLUMNS} FROM records WHERE record_id = $1"
                    ))
                    .bind(record.record_id.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(InsertOutcome::AlreadyThere(record_row(&row)?))
                }
            };
        }
        let mut tx = self.pool.begin().await?;
        // The database's error, or this record's refusal (a name taken in another case).
        ensure_log(&mut tx, &record).await??;
        let inserted = sqlx::query(
            "INSERT INTO records (record_id, log_id, envelope, status, is_init) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (record_id) DO NOTHING RETURNING seq",
        )
        .bind(record.record_id.to_string())
        .bind(record.log_id.to_string())
        .bind(record.envelope)
        .bind(status.as_str())
        .bind(record.is_init)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(inserted) = inserted else {
            // Stored already (by this node or another): read back as it stands.
            let row = sqlx::query(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE record_id = $1"
            ))
            .bind(record.record_id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(InsertOutcome::AlreadyThere(record_row(&row)?));
        };
        if !record.missing_content.is_empty() {
            let digests: Vec<String> = record
                .missing_content
                .iter()
                .map(|d| d.to_string())
                .collect();
            sqlx::query(
                "INSERT INTO missing_content (record_id, digest) \
                 SELECT $1, digest FROM UNNEST($2::text[]) AS d(digest) ON CONFLICT DO NOTHING",
            )
            .bind(record.record_id.to_string())
            .bind(&digests)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.known_logs
            .write()
            .expect("known logs lock poisoned")
            .insert(record.log_id);
        Ok(InsertOutcome::Inserted(new_row(
            &record, status, &inserted,
        )?))
    }

    async fn record(&self, record_id: &RecordId) -> Result<Option<RecordRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE record_id = $1"
        ))
        .bind(record_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_row).transpose()
    }

    async fn missing_content(&self, record_id: &RecordId) -> Result<Vec<Digest>, StoreError> {
        let rows =
            sqlx::query("SELECT digest FROM missing_content WHERE record_id = $1 ORDER BY digest")
                .bind(record_id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|row| row.parsed("digest")).collect()
    }

    async fn content_arrived(&self, digest: &Digest) -> Result<Vec<RecordId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ready = release_waiting(&mut tx, &digest.to_string(), None).await?;
        tx.commit().await?;
        Ok(ready)
    }

    async fn unsequenced_inits(&self, log_id: &LogId) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE log_id = $1 AND is_init \
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
        let mut tx = self.pool.begin().await?;
        // The fence. Commits take turns under a transaction-level lock, and each statement
        // after it sees every commit made before the lock was granted: so the newest stored
        // checkpoint is exactly where the log stands, and a sequencer that decided against
        // an older one (a former sequencer, paused or cut off) commits nothing.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::COMMIT_LOCK)
            .execute(&mut *tx)
            .await?;
        let found: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(log_length), 0)::bigint FROM checkpoints")
                .fetch_one(&mut *tx)
                .await?;
        if let Some(expected) = batch.log_length_before.filter(|&l| l != found as u64) {
            return Err(StoreError::Fenced {
                expected,
                found: found as u64,
            });
        }
        for chunk in batch.validated.chunks(COMMIT_CHUNK) {
            let seqs: Vec<i64> = chunk.iter().map(|r| r.seq).collect();
            let indices: Vec<i64> = chunk.iter().map(|r| r.registry_index as i64).collect();
            let ids: Vec<String> = chunk.iter().map(|r| r.record_id.to_string()).collect();
            let done = sqlx::query(
                "UPDATE records SET status = 'validated', registry_index = v.registry_index \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) \
                   AS v(seq, registry_index, record_id) \
                 WHERE records.seq = v.seq AND records.record_id = v.record_id \
                 AND records.status = 'pending'",
            )
            .bind(&seqs)
            .bind(&indices)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != chunk.len() as u64 {
                return Err(StoreError::Failed(format!(
                    "{} of {} validated records were not pending",
                    chunk.len() as u64 - done.rows_affected(),
                    chunk.len()
                )));
            }
        }
        // Content a validated record claimed is kept from now on, in the same transaction.
        let validated: Vec<i64> = batch.validated.iter().map(|r| r.seq).collect();
        if !validated.is_empty() {
            sqlx::query(
                "DELETE FROM content_claims WHERE digest IN \
                 (SELECT digest FROM content_claims WHERE seq = ANY($1))",
            )
            .bind(&validated)
            .execute(&mut *tx)
            .await?;
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

    async fn sync_commits(&self) -> Result<(), StoreError> {
        // A commit is durable when PostgreSQL acknowledges it.
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
                    record_id: row.parsed("record_id")?,
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
        Ok(row.map(|row| row.try_get("name")).transpose()?)
    }

    async fn log_names(&self, log_ids: &[LogId]) -> Result<HashMap<LogId, String>, StoreError> {
        let ids: Vec<String> = log_ids.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "SELECT log_id, name FROM logs WHERE name IS NOT NULL AND log_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.parsed("log_id")?, row.try_get("name")?)))
            .collect()
    }

    async fn put_content(&self, content: &ContentRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let digest = content.digest.to_string();
        insert_content(&mut tx, content).await?;
        list_blobs(&mut tx, &digest).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn content(&self, digest: &Digest) -> Result<Option<ContentRow>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, size, tree_digest, manifest FROM contents WHERE digest = $1 \
             AND NOT EXISTS (SELECT 1 FROM content_claims WHERE content_claims.digest = $1)",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ContentRow {
                digest: row.parsed("digest")?,
                size: row.try_get::<i64, _>("size")? as u64,
                tree_digest: row.try_get("tree_digest")?,
                manifest: row.try_get("manifest")?,
            })
        })
        .transpose()
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn shared(&self) -> bool {
        true
    }

    async fn sequencer_lease(&self) -> Result<Option<Box<dyn SequencerLease>>, StoreError> {
        super::lease::take(&self.options).await
    }
}

/// Inserts a content row unless it is there; whether it was inserted.
pub(super) async fn insert_content(
    tx: &mut sqlx::PgConnection,
    content: &ContentRow,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO contents (digest, size, tree_digest, manifest) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(content.digest.to_string())
    .bind(content.size as i64)
    .bind(&content.tree_digest)
    .bind(&content.manifest)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
