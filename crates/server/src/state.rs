//! The registry's verifiable state in memory: the registry log, the map, a map snapshot and
//! a signed checkpoint for every advertised log length, and the validators' state of every
//! log.
//!
//! It is rebuilt at start-up by replaying the validated records from the store, in
//! registry-index order, and checked against every stored checkpoint ([`RegistryState::replay`]);
//! `cairn audit` runs the same replay. Nothing here is a source of truth: the store is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cairn_log::{KeyPath, Map, MapValue, RegistryLog};
use cairn_protocol::api::{EnvelopeBody, PublishedRecord};
use cairn_protocol::{
    prefix, Checkpoint, Digest, LogId, OperatorEnvelope, OperatorLogState, PackageEnvelope,
    PackageLogState, RecordId, SignedCheckpoint, ValidationError, VerifiedSignature,
};
use cairn_store::RecordRow;

/// Why the stored state does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A stored record does not decode.
    #[error("stored record {record_id} does not decode: {message}")]
    Undecodable {
        /// The record.
        record_id: RecordId,
        /// Why.
        message: String,
    },
    /// A stored record does not validate against the state before it.
    #[error("stored record {record_id} at index {index} does not validate: {error}")]
    Invalid {
        /// The record.
        record_id: RecordId,
        /// Its index.
        index: u64,
        /// Why.
        error: ValidationError,
    },
    /// Registry indices are not 0, 1, 2, ...
    #[error("registry index {found} where {expected} was expected")]
    Gap {
        /// The index expected next.
        expected: u64,
        /// The index found.
        found: u64,
    },
    /// A stored checkpoint does not match the replayed roots, or its signature fails.
    #[error("checkpoint at length {length} does not match the replayed log: {why}")]
    Checkpoint {
        /// Its length.
        length: u64,
        /// What is wrong.
        why: String,
    },
}

/// The verifiable state.
#[derive(Debug, Clone, Default)]
pub struct RegistryState {
    log: RegistryLog,
    /// `(log id, record id)` of every leaf, by registry index.
    leaves: Vec<(LogId, RecordId)>,
    map: Map,
    /// The map at every checkpointed length.
    snapshots: BTreeMap<u64, Map>,
    checkpoints: BTreeMap<u64, SignedCheckpoint>,
    operator: OperatorLogState,
    packages: HashMap<LogId, PackageLogState>,
    /// Every log's records as `fetch/logs` serves them (JSON), in index order.
    published: HashMap<LogId, Vec<PublishedJson>>,
    /// The registry index of every record, by id (fetch tokens).
    indices: HashMap<RecordId, u64>,
}

/// One record, serialised once as `fetch/logs` returns it.
#[derive(Debug, Clone)]
pub struct PublishedJson {
    /// Its registry index.
    pub registry_index: u64,
    /// `{"contentBytes", "keyId", "signature", "registryIndex", "fetchToken"}`.
    pub json: Arc<serde_json::value::RawValue>,
}

/// Signatures checked when their records were accepted, by record id, so the sequencer does
/// not check them again. Bounded: when full it is emptied, and the sequencer verifies what it
/// finds no proof for, as it does after a restart.
#[derive(Default)]
pub struct VerifiedSignatures(
    std::sync::Mutex<std::collections::HashMap<RecordId, VerifiedSignature>>,
);

impl VerifiedSignatures {
    /// Most proofs kept.
    const LIMIT: usize = 100_000;

    /// Remembers a proof.
    pub fn remember(&self, proof: VerifiedSignature) {
        let mut map = self.0.lock().expect("proofs lock poisoned");
        // Proofs of records that never reach the sequencer (waiting for content that never
        // comes) would pile up: when full, start over; the sequencer verifies what it lacks.
        if map.len() >= Self::LIMIT {
            map.clear();
        }
        map.insert(*proof.record_id(), proof);
    }

    /// Takes the proof for `record_id`, if one is remembered.
    pub fn take(&self, record_id: &RecordId) -> Option<VerifiedSignature> {
        self.0
            .lock()
            .expect("proofs lock poisoned")
            .remove(record_id)
    }
}

/// A stored record decoded into its envelope, on its way into the log: the signature and the
/// log's rules are checked when it is appended (`RegistryState::validate_and_append`).
#[derive(Debug, Clone)]
pub enum DecodedRecord {
    /// A package record.
    Package(PackageEnvelope),
    /// An operator record.
    Operator(OperatorEnvelope),
}

impl DecodedRecord {
    /// Decodes a stored record of `log_id`.
    pub fn decode(row: &RecordRow) -> Result<Self, String> {
        if row.log_id == LogId::operator_log() {
            OperatorEnvelope::from_protobuf(&row.envelope)
                .map(DecodedRecord::Operator)
                .map_err(|e| e.to_string())
        } else {
            PackageEnvelope::from_protobuf(&row.envelope)
                .map(DecodedRecord::Package)
                .map_err(|e| e.to_string())
        }
    }

    /// The record's id.
    pub fn record_id(&self) -> RecordId {
        match self {
            DecodedRecord::Package(e) => *e.record_id(),
            DecodedRecord::Operator(e) => *e.record_id(),
        }
    }
}

impl RegistryState {
    /// Rebuilds the state from validated records (in index order) and checks every stored
    /// checkpoint against it: roots, and a signature by a key holding `commit` at that point.
    pub fn replay(
        records: &[RecordRow],
        checkpoints: &[SignedCheckpoint],
    ) -> Result<Self, ReplayError> {
        let mut state = RegistryState::default();
        let mut checkpoints = checkpoints.iter().peekable();
        // A checkpoint at length 0 would precede every record; there is none by construction.
        let mut pending_updates = Vec::new();
        for row in records {
            pending_updates.push(state.append_committed(row)?);
            while let Some(checkpoint) = checkpoints.peek() {
                if checkpoint.contents.log_length != state.log.len() {
                    break;
                }
                let map = state.map.extend(pending_updates.drain(..));
                state.add_committed_checkpoint(map, (*checkpoint).clone())?;
                checkpoints.next();
            }
        }
        state.map = state.map.extend(pending_updates.drain(..));
        if let Some(extra) = checkpoints.next() {
            return Err(ReplayError::Checkpoint {
                length: extra.contents.log_length,
                why: format!("only {} records are stored", state.log.len()),
            });
        }
        Ok(state)
    }

    /// Appends a record the store holds as validated (the next in the log), validating it
    /// again; returns its map update, for the caller to apply with the checkpoint that covers
    /// it ([`RegistryState::add_committed_checkpoint`]).
    pub fn append_committed(
        &mut self,
        row: &RecordRow,
    ) -> Result<(KeyPath, MapValue), ReplayError> {
        let index = row.registry_index.unwrap_or(u64::MAX);
        if index != self.log.len() {
            return Err(ReplayError::Gap {
                expected: self.log.len(),
                found: index,
            });
        }
        let record = DecodedRecord::decode(row).map_err(|message| ReplayError::Undecodable {
            record_id: row.record_id,
            message,
        })?;
        self.validate_and_append(&row.log_id, &record, None)
            .map_err(|error| ReplayError::Invalid {
                record_id: row.record_id,
                index,
                error,
            })
    }

    /// Takes `map` (the map with the updates of the records appended since the last
    /// checkpoint) and a stored checkpoint at the log's length, once both roots match it and
    /// it is signed by a key that may commit; after an error the state must be rebuilt.
    pub fn add_committed_checkpoint(
        &mut self,
        map: Map,
        checkpoint: SignedCheckpoint,
    ) -> Result<(), ReplayError> {
        self.map = map;
        let length = checkpoint.contents.log_length;
        let fail = |why: String| ReplayError::Checkpoint { length, why };
        let expected = self.checkpoint_now();
        if checkpoint.contents.checkpoint() != expected {
            return Err(fail(format!(
                "stored {:?}, replayed {:?}",
                checkpoint.contents.checkpoint(),
                expected
            )));
        }
        let key = self
            .operator
            .keys()
            .get(&checkpoint.key_id)
            .ok_or_else(|| {
                fail(format!(
                    "signer {} is not an operator key",
                    checkpoint.key_id
                ))
            })?;
        if !self.operator.can_commit(&checkpoint.key_id) {
            return Err(fail(format!(
                "signer {} does not hold `commit`",
                checkpoint.key_id
            )));
        }
        checkpoint.verify(key).map_err(|e| fail(e.to_string()))?;
        self.snapshots.insert(length, self.map.clone());
        self.checkpoints.insert(length, checkpoint);
        Ok(())
    }

    /// The checkpoint of the log and map as they are now.
    pub fn checkpoint_now(&self) -> Checkpoint {
        Checkpoint {
            log_root: self.log.root().into(),
            log_length: self.log.len(),
            map_root: self.map.root().into(),
        }
    }

    /// Validates `record` against its log's state and, if valid, appends its leaf and records
    /// it as `fetch/logs` serves it. Returns the map update to apply (the map itself is
    /// updated in batches by the caller).
    pub fn validate_and_append(
        &mut self,
        log_id: &LogId,
        record: &DecodedRecord,
        verified: Option<&VerifiedSignature>,
    ) -> Result<(KeyPath, MapValue), ValidationError> {
        let appended = self.append_valid(log_id, record, verified)?;
        let json = appended.published_json(record);
        self.add_published(log_id, json);
        Ok(appended.map_update)
    }

    /// Validates `record` against its log's state and, if valid, appends its leaf; the
    /// record is not served by `fetch/logs` until [`RegistryState::add_published`] adds its
    /// JSON (which the sequencer builds without holding the state's lock).
    pub fn append_valid(
        &mut self,
        log_id: &LogId,
        record: &DecodedRecord,
        verified: Option<&VerifiedSignature>,
    ) -> Result<Appended, ValidationError> {
        let record_id = record.record_id();
        match record {
            DecodedRecord::Operator(envelope) => {
                self.operator.validate_verified(envelope, verified)?
            }
            DecodedRecord::Package(envelope) => match self.packages.get_mut(log_id) {
                Some(package) => package.validate_verified(envelope, verified)?,
                // A new log exists only once its first record is valid.
                None => {
                    let mut package = PackageLogState::new();
                    package.validate_verified(envelope, verified)?;
                    self.packages.insert(*log_id, package);
                }
            },
        }
        self.log.append(&prefix::log_leaf(log_id, &record_id));
        self.leaves.push((*log_id, record_id));
        let registry_index = self.log.len() - 1;
        self.indices.insert(record_id, registry_index);
        Ok(Appended {
            registry_index,
            map_update: map_update(log_id, &record_id),
        })
    }

    /// Serves a record appended by [`RegistryState::append_valid`] in `fetch/logs`. Records
    /// of one log are added in index order.
    pub fn add_published(&mut self, log_id: &LogId, json: PublishedJson) {
        self.published.entry(*log_id).or_default().push(json);
    }

    /// Applies a batch of map updates and records a signed checkpoint for the current length.
    pub fn commit_checkpoint(&mut self, map: Map, checkpoint: SignedCheckpoint) {
        self.map = map;
        let length = checkpoint.contents.log_length;
        self.snapshots.insert(length, self.map.clone());
        self.checkpoints.insert(length, checkpoint);
    }

    /// The registry log (possibly longer than the latest checkpoint while a round commits).
    pub fn log(&self) -> &RegistryLog {
        &self.log
    }

    /// The current map.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// The map at a checkpointed length.
    pub fn snapshot(&self, length: u64) -> Option<&Map> {
        self.snapshots.get(&length)
    }

    /// The checkpoint at a length.
    pub fn checkpoint(&self, length: u64) -> Option<&SignedCheckpoint> {
        self.checkpoints.get(&length)
    }

    /// The newest checkpoint.
    pub fn latest_checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.checkpoints.values().next_back()
    }

    /// `(log id, record id)` of the leaf at `index`.
    pub fn leaf(&self, index: u64) -> Option<&(LogId, RecordId)> {
        self.leaves.get(usize::try_from(index).ok()?)
    }

    /// Up to `limit` records of `log_id` with an index after `after` and below `below`.
    pub fn published(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        below: u64,
        limit: usize,
    ) -> Vec<PublishedJson> {
        let Some(records) = self.published.get(log_id) else {
            return Vec::new();
        };
        let start = match after {
            Some(after) => records.partition_point(|r| r.registry_index <= after),
            None => 0,
        };
        records[start..]
            .iter()
            .take_while(|r| r.registry_index < below)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The registry index of a record in the log.
    pub fn index_of(&self, record_id: &RecordId) -> Option<u64> {
        self.indices.get(record_id).copied()
    }

    /// The operator log's state.
    pub fn operator(&self) -> &OperatorLogState {
        &self.operator
    }

    /// The log length of the latest checkpoint: how much of the log is served (0 before the
    /// first checkpoint).
    pub fn served_length(&self) -> u64 {
        self.latest_checkpoint()
            .map(|c| c.contents.log_length)
            .unwrap_or(0)
    }

    /// Every content digest released (and not yanked) in any package, each once, in log order.
    pub fn released_contents(&self) -> Vec<Digest> {
        let mut digests = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for index in 0..self.log().len() {
            let Some((log_id, _)) = self.leaf(index) else {
                continue;
            };
            let Some(package) = self.package(log_id) else {
                continue;
            };
            for release in package.releases().values() {
                if let cairn_protocol::ReleaseState::Released { content } = release.state {
                    if seen.insert(content) {
                        digests.push(content);
                    }
                }
            }
        }
        digests
    }

    /// A package log's state.
    pub fn package(&self, log_id: &LogId) -> Option<&PackageLogState> {
        self.packages.get(log_id)
    }
}

/// A record [`RegistryState::append_valid`] put into the log.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Its leaf index.
    pub registry_index: u64,
    /// The map update it makes.
    pub map_update: (KeyPath, MapValue),
}

impl Appended {
    /// The record as `fetch/logs` serves it.
    pub fn published_json(&self, record: &DecodedRecord) -> PublishedJson {
        let envelope = match record {
            DecodedRecord::Operator(envelope) => EnvelopeBody::from(envelope),
            DecodedRecord::Package(envelope) => EnvelopeBody::from(envelope),
        };
        let published = PublishedRecord {
            envelope,
            registry_index: self.registry_index,
            fetch_token: record.record_id(),
        };
        let json = serde_json::value::to_raw_value(&published).expect("a record always serialises");
        PublishedJson {
            registry_index: self.registry_index,
            json: Arc::from(json),
        }
    }
}

/// The map update for a log whose head is now `record_id`.
pub fn map_update(log_id: &LogId, record_id: &RecordId) -> (KeyPath, MapValue) {
    (
        KeyPath::of_key(log_id.digest().as_bytes()),
        MapValue::new(&prefix::map_leaf(record_id)).expect("a map leaf is never empty"),
    )
}

/// The content digest as a split blob digest (same bytes).
pub fn blob_digest(digest: &Digest) -> cairn_split::BlobId {
    cairn_split::BlobId::from_bytes(*digest.as_bytes())
}
