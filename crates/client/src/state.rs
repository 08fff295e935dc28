//! The trusted state: the last verified checkpoint, the operator log and every followed
//! package log, each as the records that were verified, and its persistence.
//!
//! The state lives in one JSON file, `trust.json`, in the storage directory, written
//! atomically (a temporary file, fsync, rename, fsync of the directory), so it is always
//! either the state before an update or the state after it, never a mix. Loading replays
//! every record through the protocol validators and re-verifies the checkpoint, so a state
//! file damaged or edited on disk is refused rather than trusted.
//!
//! Only verified data enters this state: updates build the next state on a copy and replace
//! the current one only when every check has passed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use cairn_protocol::api::{EnvelopeBody, PublishedRecord};
use cairn_protocol::{
    Envelope, LogId, LogKind, OperatorEntry, OperatorLogState, PackageEntry, PackageLogState,
    PackageName, SignedCheckpoint, ValidationError,
};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, SecurityError};

/// The file holding the trusted state, in the storage directory.
pub const STATE_FILE: &str = "trust.json";

/// The state file's format version.
const FORMAT: u32 = 1;

/// A verified record and its place in the registry log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRecord<E> {
    /// The signed record, decoded.
    pub envelope: Envelope<E>,
    /// Its leaf index in the registry log.
    pub registry_index: u64,
}

/// A log's validator state and the records that built it.
pub trait LogValidator: Clone + Default {
    /// The entries of this log's records.
    type Entry: LogKind;
    /// Validates and applies one record.
    fn validate(&mut self, envelope: &Envelope<Self::Entry>) -> Result<(), ValidationError>;
}

impl LogValidator for PackageLogState {
    type Entry = PackageEntry;
    fn validate(&mut self, envelope: &Envelope<PackageEntry>) -> Result<(), ValidationError> {
        PackageLogState::validate(self, envelope)
    }
}

impl LogValidator for OperatorLogState {
    type Entry = OperatorEntry;
    fn validate(&mut self, envelope: &Envelope<OperatorEntry>) -> Result<(), ValidationError> {
        OperatorLogState::validate(self, envelope)
    }
}

/// One verified log: the validator's state and every record, in order.
#[derive(Debug, Clone)]
pub struct VerifiedLog<V: LogValidator> {
    state: V,
    records: Vec<LoggedRecord<V::Entry>>,
}

impl<V: LogValidator> Default for VerifiedLog<V> {
    fn default() -> Self {
        VerifiedLog {
            state: V::default(),
            records: Vec::new(),
        }
    }
}

impl<V: LogValidator> VerifiedLog<V> {
    /// The validator's state after the last record (keys, permissions, releases, ...).
    pub fn state(&self) -> &V {
        &self.state
    }

    /// Every verified record, oldest first.
    pub fn records(&self) -> &[LoggedRecord<V::Entry>] {
        &self.records
    }

    /// The latest record.
    pub fn head(&self) -> Option<&LoggedRecord<V::Entry>> {
        self.records.last()
    }

    /// Decodes, places and validates a record served for this log, applying it if it passes.
    /// `log_length` is the length of the checkpoint the record was fetched under.
    pub(crate) fn apply(
        &mut self,
        log: &str,
        record: &PublishedRecord,
        log_length: u64,
    ) -> Result<(), SecurityError> {
        let envelope: Envelope<V::Entry> =
            record
                .envelope
                .to_envelope()
                .map_err(|e| SecurityError::UndecodableRecord {
                    log: log.to_owned(),
                    reason: e.to_string(),
                })?;
        let after_previous = self
            .head()
            .is_none_or(|head| record.registry_index > head.registry_index);
        if !after_previous || record.registry_index >= log_length {
            return Err(SecurityError::RecordOutOfPlace {
                log: log.to_owned(),
                record: *envelope.record_id(),
                index: record.registry_index,
                log_length,
            });
        }
        self.state
            .validate(&envelope)
            .map_err(|e| SecurityError::from_validation(log, *envelope.record_id(), e))?;
        self.records.push(LoggedRecord {
            envelope,
            registry_index: record.registry_index,
        });
        Ok(())
    }

    fn to_stored(&self) -> Vec<PublishedRecord> {
        self.records
            .iter()
            .map(|record| PublishedRecord {
                envelope: EnvelopeBody::from(&record.envelope),
                registry_index: record.registry_index,
                fetch_token: *record.envelope.record_id(),
            })
            .collect()
    }
}

/// A followed package: its name and its verified log.
#[derive(Debug, Clone)]
pub struct PackageLog {
    name: PackageName,
    log: VerifiedLog<PackageLogState>,
}

impl PackageLog {
    pub(crate) fn new(name: PackageName) -> Self {
        PackageLog {
            name,
            log: VerifiedLog::default(),
        }
    }

    /// The package's name.
    pub fn name(&self) -> &PackageName {
        &self.name
    }

    /// The package log's state: keys, permissions, releases.
    pub fn state(&self) -> &PackageLogState {
        self.log.state()
    }

    /// Every verified record, oldest first.
    pub fn records(&self) -> &[LoggedRecord<PackageEntry>] {
        self.log.records()
    }

    /// The content a verified record released as `version` (a yanked release's too, which
    /// the state no longer holds).
    pub fn released_content(&self, version: &semver::Version) -> Option<cairn_protocol::Digest> {
        self.records().iter().find_map(|record| {
            record
                .envelope
                .record()
                .entries
                .iter()
                .find_map(|entry| match entry {
                    PackageEntry::Release {
                        version: released,
                        content,
                    } if released == version => Some(*content),
                    _ => None,
                })
        })
    }

    pub(crate) fn log_mut(&mut self) -> &mut VerifiedLog<PackageLogState> {
        &mut self.log
    }

    pub(crate) fn log(&self) -> &VerifiedLog<PackageLogState> {
        &self.log
    }
}

/// Everything the client trusts about one registry.
#[derive(Debug, Clone, Default)]
pub struct TrustState {
    pub(crate) checkpoint: Option<SignedCheckpoint>,
    pub(crate) operator: VerifiedLog<OperatorLogState>,
    pub(crate) packages: BTreeMap<LogId, PackageLog>,
}

impl TrustState {
    /// The last verified checkpoint, if any update has succeeded.
    pub fn checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.checkpoint.as_ref()
    }

    /// The verified operator log.
    pub fn operator(&self) -> &VerifiedLog<OperatorLogState> {
        &self.operator
    }

    /// Every followed package.
    pub fn packages(&self) -> impl Iterator<Item = &PackageLog> {
        self.packages.values()
    }

    /// A followed package.
    pub fn package(&self, name: &PackageName) -> Option<&PackageLog> {
        self.packages.get(&name.log_id())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateFile {
    format: u32,
    registry: String,
    checkpoint: Option<SignedCheckpoint>,
    operator: Vec<PublishedRecord>,
    packages: BTreeMap<LogId, StoredPackage>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredPackage {
    name: PackageName,
    records: Vec<PublishedRecord>,
}

/// Where the state of one registry is kept.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    path: PathBuf,
    registry: String,
}

impl StateStore {
    pub(crate) fn new(dir: &Path, registry: &str) -> Self {
        StateStore {
            path: dir.join(STATE_FILE),
            registry: registry.to_owned(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Loads and re-verifies the state; an empty state if none was saved.
    pub(crate) fn load(&self) -> Result<TrustState, ClientError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustState::default()),
            Err(e) => return Err(ClientError::io("read", &self.path)(e)),
        };
        let corrupt = |reason: String| ClientError::CorruptState {
            path: self.path.clone(),
            reason,
        };
        let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT {
            return Err(corrupt(format!("unknown format {}", file.format)));
        }
        if file.registry != self.registry {
            return Err(ClientError::OtherRegistry {
                stored: file.registry,
                requested: self.registry.clone(),
            });
        }
        let log_length = file
            .checkpoint
            .as_ref()
            .map(|c| c.contents.log_length)
            .unwrap_or(0);
        let mut state = TrustState::default();
        for record in &file.operator {
            state
                .operator
                .apply("the operator log", record, log_length)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        for (log_id, stored) in file.packages {
            if stored.name.log_id() != log_id {
                return Err(corrupt(format!(
                    "package `{}` is stored under log id {log_id}",
                    stored.name
                )));
            }
            let mut package = PackageLog::new(stored.name);
            let what = format!("package `{}`", package.name);
            for record in &stored.records {
                package
                    .log
                    .apply(&what, record, log_length)
                    .map_err(|e| corrupt(e.to_string()))?;
            }
            state.packages.insert(log_id, package);
        }
        if let Some(checkpoint) = file.checkpoint {
            let operator = state.operator.state();
            let key = operator
                .keys()
                .get(&checkpoint.key_id)
                .ok_or_else(|| corrupt("the checkpoint's signer is unknown".into()))?;
            checkpoint.verify(key).map_err(|e| corrupt(e.to_string()))?;
            if !operator.can_commit(&checkpoint.key_id) {
                return Err(corrupt("the checkpoint's signer lacks `commit`".into()));
            }
            state.checkpoint = Some(checkpoint);
        }
        Ok(state)
    }

    /// Writes `state` atomically: after a crash the file holds the old or the new state.
    pub(crate) fn save(&self, state: &TrustState) -> Result<(), ClientError> {
        let file = StateFile {
            format: FORMAT,
            registry: self.registry.clone(),
            checkpoint: state.checkpoint.clone(),
            operator: state.operator.to_stored(),
            packages: state
                .packages
                .iter()
                .map(|(log_id, package)| {
                    (
                        *log_id,
                        StoredPackage {
                            name: package.name.clone(),
                            records: package.log.to_stored(),
                        },
                    )
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("the state always serializes");
        write_atomically(&self.path, &json)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced before
/// it replaces `path`, the directory synced after (`atomic-write-file`).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    write_file_atomically(path, bytes).map_err(ClientError::io("write", path))
}

/// [`write_atomically`], for callers that keep I/O errors as they are.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = atomic_write_file::AtomicWriteFile::open(path)?;
    file.write_all(bytes)?;
    file.commit()
}
