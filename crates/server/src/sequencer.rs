//! The sequencer: the one task that turns accepted records into registry-log leaves, map
//! updates and signed checkpoints. See `docs/sequencer.md` for every step and what a crash
//! between any two of them leaves behind.
//!
//! One round:
//! 1. read pending records from the store, in arrival order;
//! 2. validate each against its log's state (in memory); append a leaf for each valid one;
//! 3. apply the map updates (to a new map; the served one is unchanged) and sign a checkpoint
//!    over the new log and map;
//! 4. commit, in one transaction, every record's new status (validated with its index, or
//!    rejected with the reason) and the checkpoint;
//! 5. only then serve the new checkpoint and map snapshot.
//!
//! A record is reported `published` once its index is below the served checkpoint's length,
//! so it is durable and covered by a checkpoint clients can fetch. If a commit fails because
//! the disk is full, the same batch is tried again until it commits; if it fails otherwise
//! (or is fenced: another node committed first), the in-memory log has run ahead of the
//! store, and the round's caller rebuilds it (`node.rs`). Rounds run at most once per
//! checkpoint interval, and only while this node holds the sequencer's lease.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_protocol::{LogId, PrivateKey, TimestampedCheckpoint};
use cairn_store::{CommitBatch, RejectedRecord, SequencedRecord, Store};
use tokio::sync::{watch, Notify};

use crate::record_events::{self, Decided};
use crate::state::{DecodedRecord, RegistryState, VerifiedSignatures};

/// Most records one round takes.
const ROUND_LIMIT: u32 = 20_000;

/// Records validated per hold of the state's write lock: small, so that request handlers,
/// which read the state, wait little.
const VALIDATION_CHUNK: usize = 8;

/// What the sequencer needs.
pub struct Sequencer {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The shared state.
    pub state: Arc<RwLock<RegistryState>>,
    /// The operator's signing key.
    pub operator_key: PrivateKey,
    /// Rings when records become pending.
    pub wake: Arc<Notify>,
    /// The shortest time between two checkpoints.
    pub interval: Duration,
    /// Signatures already checked at acceptance.
    pub verified: Arc<VerifiedSignatures>,
    /// Counts committed rounds, for those waiting for a record to be published.
    pub rounds: Arc<watch::Sender<u64>>,
    /// Counts records published and rejected.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Why the sequencer stopped.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// The store failed; the in-memory state must be rebuilt from the store. (Not a
    /// `source`: the message says it already.)
    #[error("the store failed during a sequencer round: {0}")]
    Store(cairn_store::StoreError),
    /// Another node committed first: this node's round was decided against an old log.
    #[error("{0}; this node stops sequencing")]
    Fenced(cairn_store::StoreError),
    /// The sequencer's lease was lost (its connection to the database failed).
    #[error("this node lost the sequencer's lease")]
    LeaseLost,
}

impl From<cairn_store::StoreError> for SequencerError {
    fn from(error: cairn_store::StoreError) -> Self {
        SequencerError::Store(error)
    }
}

/// How often a sequencing node checks that it still holds the lease.
const LEASE_CHECK: Duration = Duration::from_secs(1);

/// How often an idle sequencer looks for records on a store other nodes write to (records
/// they accept ring no bell here).
const SHARED_IDLE_POLL: Duration = Duration::from_millis(25);

/// How often an idle sequencer looks for records on a store only this process writes to
/// (each accepted record rings `wake`; this is a safety net).
const SOLE_IDLE_POLL: Duration = Duration::from_secs(5);

impl Sequencer {
    /// Runs rounds while `lease` is held, until `shutdown` turns true, then returns after
    /// finishing the current one.
    pub async fn run(
        &self,
        lease: &dyn cairn_store::SequencerLease,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SequencerError> {
        let idle_poll = if self.store.shared() {
            SHARED_IDLE_POLL
        } else {
            SOLE_IDLE_POLL
        };
        // (Not `now - interval`: the monotonic clock may have started less than an interval
        // ago, and on some systems an `Instant` before its start does not exist.)
        let mut last_round: Option<Instant> = None;
        let mut lease_checked = Instant::now();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if lease_checked.elapsed() >= LEASE_CHECK {
                if !lease.held().await {
                    return Err(SequencerError::LeaseLost);
                }
                lease_checked = Instant::now();
            }
            let wait = last_round.and_then(|last| self.interval.checked_sub(last.elapsed()));
            if let Some(wait) = wait {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => continue,
                }
            }
            // Rounds that find work are spaced start to start, so a round's own work does not
            // add to the wait of the records that arrive while it runs. A round that finds
            // nothing does not count: a record sent to an idle registry is sequenced at once.
            let started = Instant::now();
            let worked = self.round_until(Some(&shutdown)).await?;
            if worked {
                last_round = Some(started);
            } else {
                // Nothing pending: wait for a record (or poll now and then).
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(idle_poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Runs one round. Returns whether there was anything to do.
    pub async fn round(&self) -> Result<bool, SequencerError> {
        self.round_until(None).await
    }

    /// Runs one round; a commit waiting for room on a full disk gives up once `shutdown`
    /// turns true.
    async fn round_until(
        &self,
        shutdown: Option<&watch::Receiver<bool>>,
    ) -> Result<bool, SequencerError> {
        let pending = self.store.pending(ROUND_LIMIT).await?;
        if pending.is_empty() {
            return Ok(false);
        }
        // Validation, the map update and signing are CPU work: they run on a blocking
        // thread, so the runtime's workers keep serving requests meanwhile.
        let (state, verified, key) = (
            self.state.clone(),
            self.verified.clone(),
            self.operator_key.clone(),
        );
        let describe = record_events::enabled();
        let Sequenced {
            mut batch,
            map: new_map,
            checkpoint,
            decided,
            rejections,
        } = tokio::task::spawn_blocking(move || {
            sequence(&state, &verified, &key, &pending, describe)
        })
        .await
        .expect("the sequencing thread panicked");
        batch.checkpoint = checkpoint.clone();
        self.commit(&batch, shutdown).await?;
        self.metrics.records_published(batch.validated.len() as u64);
        for rejection in rejections {
            self.metrics.record_rejected(rejection);
        }
        if let (Some(map), Some(checkpoint)) = (new_map, checkpoint) {
            tracing::info!(
                log_length = checkpoint.contents.log_length,
                validated = batch.validated.len(),
                rejected = batch.rejected.len(),
                "checkpoint"
            );
            self.state
                .write()
                .expect("state lock poisoned")
                .commit_checkpoint(map, checkpoint);
        } else {
            tracing::info!(rejected = batch.rejected.len(), "round without new leaves");
        }
        self.rounds.send_modify(|rounds| *rounds += 1);
        if !decided.is_empty() {
            let log_ids: Vec<LogId> = decided.iter().map(|d| d.log_id).collect();
            // A log line without the package's name is better than none.
            let names = self.store.log_names(&log_ids).await.unwrap_or_default();
            record_events::decided(&decided, &names);
        }
        Ok(true)
    }
}

impl Sequencer {
    /// Commits a round's batch. While the disk is full the same batch is tried again, every
    /// [`DISK_FULL_RETRY`], until it commits: the in-memory state stays exactly one batch
    /// ahead of the store, and nothing new is served meanwhile. Any other failure stops the
    /// sequencer (and the server), and a restart replays the store.
    async fn commit(
        &self,
        batch: &CommitBatch,
        shutdown: Option<&watch::Receiver<bool>>,
    ) -> Result<(), SequencerError> {
        let mut waited = false;
        // Once the transaction is in, only its sync is left to retry.
        let mut written = false;
        loop {
            let attempt = if written {
                self.store.sync_commits().await
            } else {
                self.store.commit(batch).await
            };
            if matches!(attempt, Err(cairn_store::StoreError::NotDurable { .. })) {
                written = true;
            }
            match attempt {
                Ok(()) => {
                    if waited {
                        tracing::info!("there is room on the disk again; sequencing goes on");
                    }
                    return Ok(());
                }
                Err(error) if error.is_disk_full() => {
                    if !waited {
                        tracing::error!(
                            %error,
                            "the disk is full: no checkpoint can be committed until there is \
                             room; retrying"
                        );
                        waited = true;
                    }
                    if shutdown.is_some_and(|stop| *stop.borrow()) {
                        return Err(SequencerError::Store(error));
                    }
                    tokio::time::sleep(DISK_FULL_RETRY).await;
                }
                Err(error @ cairn_store::StoreError::Fenced { .. }) => {
                    return Err(SequencerError::Fenced(error));
                }
                Err(error) => {
                    tracing::error!(%error, "a sequencer commit failed");
                    return Err(error.into());
                }
            }
        }
    }
}

/// How often a commit refused for a full disk is tried again.
const DISK_FULL_RETRY: Duration = Duration::from_millis(500);

/// What a round decided, before it commits.
struct Sequenced {
    /// What the store commits.
    batch: CommitBatch,
    /// The map with the new leaves, when there are.
    map: Option<cairn_log::Map>,
    /// The checkpoint over them.
    checkpoint: Option<cairn_protocol::SignedCheckpoint>,
    /// The records decided, for the log lines (empty when those are off).
    decided: Vec<Decided>,
    /// Why each rejected record was, for the metrics.
    rejections: Vec<crate::metrics::Rejection>,
}

/// Validates `pending` in arrival order against the state (appending each valid record to
/// the log), then builds the map for the new leaves and signs a checkpoint over both.
fn sequence(
    state: &RwLock<RegistryState>,
    verified: &VerifiedSignatures,
    key: &PrivateKey,
    pending: &[cairn_store::RecordRow],
    describe: bool,
) -> Sequenced {
    use crate::metrics::Rejection;
    let mut batch = CommitBatch {
        log_length_before: Some(state.read().expect("state lock poisoned").log().len()),
        ..CommitBatch::default()
    };
    let mut decided = Vec::new();
    let mut rejections = Vec::new();
    // Decoding needs no lock; validation takes the write lock a chunk at a time, so that
    // readers (fetch, proofs, publish checks) are never held up for a whole round.
    let decoded: Vec<_> = pending
        .iter()
        .map(|row| (row, DecodedRecord::decode(row)))
        .collect();
    let mut appended = Vec::new();
    for chunk in decoded.chunks(VALIDATION_CHUNK) {
        let mut state = state.write().expect("state lock poisoned");
        for (row, record) in chunk {
            let result = record
                .as_ref()
                .map_err(|e| format!("the record could not be decoded: {e}"))
                .and_then(|record| {
                    state
                        .append_valid(&row.log_id, record, verified.take(&row.record_id).as_ref())
                        .map(|done| (row, record, done))
                        .map_err(|e| describe_rejection(&row.log_id, e))
                });
            if describe {
                decided.push(describe_record(
                    row,
                    record.as_ref().ok(),
                    result.as_ref().map(|(_, _, done)| done.registry_index),
                ));
            }
            match result {
                Ok(done) => appended.push(done),
                Err(reason) => {
                    rejections.push(if record.is_ok() {
                        Rejection::Invalid
                    } else {
                        Rejection::Undecodable
                    });
                    batch.rejected.push(RejectedRecord {
                        seq: row.seq,
                        record_id: row.record_id,
                        reason,
                    });
                }
            }
        }
    }
    if appended.is_empty() {
        return Sequenced {
            batch,
            map: None,
            checkpoint: None,
            decided,
            rejections,
        };
    }
    // What `fetch/logs` serves is built without the lock, then added in one short hold;
    // nothing past the served checkpoint is served, so it only has to be there before the
    // new checkpoint is.
    let published: Vec<_> = appended
        .iter()
        .map(|(row, record, done)| (row.log_id, done.published_json(record)))
        .collect();
    {
        let mut state = state.write().expect("state lock poisoned");
        for (log_id, json) in published {
            state.add_published(&log_id, json);
        }
    }
    let mut updates = Vec::with_capacity(appended.len());
    for (row, _, done) in appended {
        batch.validated.push(SequencedRecord {
            seq: row.seq,
            record_id: row.record_id,
            registry_index: done.registry_index,
        });
        updates.push(done.map_update);
    }
    let state = state.read().expect("state lock poisoned");
    let map = state.map().extend(updates);
    let previous = state
        .latest_checkpoint()
        .map(|c| c.contents.timestamp)
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let contents = TimestampedCheckpoint::new(
        cairn_protocol::Checkpoint {
            log_root: state.log().root().into(),
            log_length: state.log().len(),
            map_root: map.root().into(),
        },
        now.max(previous),
    );
    Sequenced {
        batch,
        map: Some(map),
        checkpoint: Some(contents.sign(key)),
        decided,
        rejections,
    }
}

/// The log line's view of a record the round decided on.
fn describe_record(
    row: &cairn_store::RecordRow,
    record: Option<&DecodedRecord>,
    outcome: Result<u64, &String>,
) -> Decided {
    let (entries, key) = match record {
        Some(DecodedRecord::Package(envelope)) => (
            record_events::package_entries(&envelope.record().entries),
            Some(*envelope.key_id()),
        ),
        Some(DecodedRecord::Operator(envelope)) => (
            record_events::operator_entries(&envelope.record().entries),
            Some(*envelope.key_id()),
        ),
        None => (String::new(), None),
    };
    Decided {
        log_id: row.log_id,
        record_id: row.record_id,
        entries,
        key,
        outcome: outcome.map_err(Clone::clone),
    }
}

fn describe_rejection(log_id: &LogId, error: cairn_protocol::ValidationError) -> String {
    if *log_id == LogId::operator_log() {
        format!("the operator record was invalid: {error}")
    } else {
        format!("the package record was invalid: {error}")
    }
}
