//! One node of a registry, beside others on the same database: whether it sequences, and
//! how it follows the checkpoints another node commits.
//!
//! Every node accepts records and serves reads. At most one sequences: the one holding the
//! store's sequencer lease (on PostgreSQL an advisory lock on a connection of its own; on
//! SQLite, whose file one process has open, always this one). The others follow: every
//! [`FOLLOW_INTERVAL`] they read the checkpoints committed since their own, replay the
//! records those cover through the same validation as the sequencer, and serve a checkpoint
//! only once its log root and map root match their own replay and its signature checks, so a
//! node never serves a checkpoint it cannot prove. Every [`LEASE_RETRY`] a follower tries to
//! take the lease; the node that gets it first catches up on the store, then sequences.
//!
//! A sequencer that loses its lease, is fenced (another node committed first) or meets a
//! failing store stops sequencing, rebuilds its state from the store (its in-memory log ran
//! one round ahead of it) and follows again. On a store only this process writes to, a
//! failure stops the server instead, as there is no one else to carry on.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cairn_store::{Store, StoreError};
use tokio::sync::watch;

use crate::sequencer::{Sequencer, SequencerError};
use crate::state::{RegistryState, ReplayError};

/// How often a follower looks for new checkpoints.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// How often a follower tries to take the sequencer's lease.
pub const LEASE_RETRY: Duration = Duration::from_millis(500);

/// Validated records read from the store at a time while following.
const FOLLOW_PAGE: u64 = 10_000;

/// Records replayed per hold of the state's write lock, so that reads wait little.
const FOLLOW_CHUNK: usize = 64;

/// Why a node could not follow the store.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's records do not replay to its checkpoint.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A checkpoint covers records the store does not return.
    #[error("the store holds a checkpoint at length {length} but no validated record {missing}")]
    Missing {
        /// The checkpoint's length.
        length: u64,
        /// The first index missing.
        missing: u64,
    },
    /// The in-memory log is ahead of its newest checkpoint (a round that did not commit).
    #[error("the in-memory log ({log}) is ahead of its checkpoint ({served})")]
    Ahead {
        /// The log's length.
        log: u64,
        /// The served checkpoint's length.
        served: u64,
    },
}

/// Catches a node's state up with the checkpoints other nodes commit, one catch-up at a
/// time (the node's own loop and request handlers that met a name this node had not seen
/// yet may ask at once).
pub struct Follower {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The node's state.
    pub state: Arc<RwLock<RegistryState>>,
    /// Rung for every checkpoint this node starts serving.
    pub rounds: Arc<watch::Sender<u64>>,
    /// Taken by each catch-up and rebuild.
    turn: tokio::sync::Mutex<()>,
}

impl Follower {
    /// A follower of `store` into `state`.
    pub fn new(
        store: Arc<dyn Store>,
        state: Arc<RwLock<RegistryState>>,
        rounds: Arc<watch::Sender<u64>>,
    ) -> Self {
        Follower {
            store,
            state,
            rounds,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn served_length(&self) -> u64 {
        self.state
            .read()
            .expect("state lock poisoned")
            .served_length()
    }

    /// Catches up with the checkpoints the store holds beyond the served one. Returns whether
    /// it served a new one.
    pub async fn follow(&self) -> Result<bool, FollowError> {
        let _turn = self.turn.lock().await;
        let (served, log) = {
            let state = self.state.read().expect("state lock poisoned");
            (state.served_length(), state.log().len())
        };
        if log != served {
            return Err(FollowError::Ahead { log, served });
        }
        let checkpoints = self.store.checkpoints_after(served).await?;
        if checkpoints.is_empty() {
            return Ok(false);
        }
        let mut from = served;
        for checkpoint in checkpoints {
            let length = checkpoint.contents.log_length;
            let mut updates = Vec::new();
            while from < length {
                let rows = self
                    .store
                    .validated_range(from, length.min(from + FOLLOW_PAGE))
                    .await?;
                if rows.is_empty() {
                    return Err(FollowError::Missing {
                        length,
                        missing: from,
                    });
                }
                // Validation checks signatures: a few records per hold of the lock.
                let state = self.state.clone();
                let chunk_updates = tokio::task::spawn_blocking(move || {
                    let mut updates = Vec::with_capacity(rows.len());
                    for chunk in rows.chunks(FOLLOW_CHUNK) {
                        let mut state = state.write().expect("state lock poisoned");
                        for row in chunk {
                            updates.push(state.append_committed(row)?);
                        }
                    }
                    Ok::<_, ReplayError>(updates)
                })
                .await
                .expect("replaying records panicked")?;
                from += chunk_updates.len() as u64;
                updates.extend(chunk_updates);
            }
            let state = self.state.clone();
            tokio::task::spawn_blocking(move || {
                let map = state
                    .read()
                    .expect("state lock poisoned")
                    .map()
                    .extend(updates);
                state
                    .write()
                    .expect("state lock poisoned")
                    .add_committed_checkpoint(map, checkpoint)
            })
            .await
            .expect("checking a checkpoint panicked")?;
            self.rounds.send_modify(|rounds| *rounds += 1);
        }
        Ok(true)
    }

    /// Replaces the in-memory state with a replay of the store, trying until it works.
    async fn rebuild(&self, warned_at: &mut Option<Instant>) {
        let _turn = self.turn.lock().await;
        loop {
            let replayed = async {
                let (records, checkpoints) = self.store.committed().await?;
                Ok::<_, FollowError>(RegistryState::replay(&records, &checkpoints)?)
            }
            .await;
            match replayed {
                Ok(state) => {
                    *self.state.write().expect("state lock poisoned") = state;
                    self.rounds.send_modify(|rounds| *rounds += 1);
                    return;
                }
                Err(error) => {
                    warn_now_and_then(
                        &format!("cannot rebuild the state from the store: {error}"),
                        warned_at,
                    );
                    tokio::time::sleep(LEASE_RETRY).await;
                }
            }
        }
    }

    /// After a failure to follow: the state may hold a partial replay, so it is rebuilt.
    async fn after_failure(&self, what: &str, warned_at: &mut Option<Instant>) {
        warn_now_and_then(what, warned_at);
        let ahead = {
            let state = self.state.read().expect("state lock poisoned");
            state.log().len() != state.served_length()
        };
        if ahead {
            self.rebuild(warned_at).await;
        }
    }
}

/// A node: the sequencer it may become, and its follower.
pub struct Node {
    /// The sequencer, run while this node holds the lease.
    pub sequencer: Sequencer,
    /// Its follower, shared with the request handlers.
    pub follower: Arc<Follower>,
}

impl Node {
    /// Follows and sequences, as the lease decides, until `shutdown` turns true. Returns an
    /// error only when a store no other node shares fails (the server then stops).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), SequencerError> {
        let follower = &self.follower;
        let shared = follower.store.shared();
        let mut next_lease_try = Instant::now();
        let mut warned_at: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if let Err(error) = follower.follow().await {
                follower
                    .after_failure(&error.to_string(), &mut warned_at)
                    .await;
            }
            if Instant::now() >= next_lease_try {
                next_lease_try = Instant::now() + LEASE_RETRY;
                match follower.store.sequencer_lease().await {
                    Ok(Some(lease)) => {
                        // Request handlers stop asking to catch up; whatever the former
                        // sequencer committed comes first.
                        self.sequencer.metrics.set_sequencer(true);
                        if let Err(error) = follower.follow().await {
                            self.sequencer.metrics.set_sequencer(false);
                            follower
                                .after_failure(&error.to_string(), &mut warned_at)
                                .await;
                            continue;
                        }
                        if shared {
                            tracing::info!(
                                log_length = follower.served_length(),
                                "this node is the sequencer now"
                            );
                        }
                        let outcome = self.sequencer.run(&*lease, shutdown.clone()).await;
                        self.sequencer.metrics.set_sequencer(false);
                        drop(lease);
                        match outcome {
                            Ok(()) => return Ok(()),
                            Err(error) if !shared => return Err(error),
                            Err(error) => {
                                tracing::warn!(%error, "this node stopped sequencing; it follows the store again");
                                follower.rebuild(&mut warned_at).await;
                            }
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        warn_now_and_then(
                            &format!("cannot ask for the sequencer's lease: {error}"),
                            &mut warned_at,
                        );
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Logs a warning, at most one every ten seconds (a database that is down fails every
/// attempt).
fn warn_now_and_then(what: &str, warned_at: &mut Option<Instant>) {
    if warned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
        tracing::warn!("{what}");
        *warned_at = Some(Instant::now());
    }
}
