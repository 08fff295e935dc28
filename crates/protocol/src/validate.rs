//! The log validators: the state of a package log or of the operator log, and the rules that
//! a new record must pass to extend it (warg-v1 section 3). The server and the client run the
//! same code.
//!
//! Every record is checked in this order: the `prev` link; the protocol version (0); the
//! timestamp (not lower than the previous record's); each entry in order (permissions and
//! entry rules); that the log is initialised; that the signer's key is known; the signature.
//! Only then does the head advance. A record that fails leaves the state exactly as it was.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use crate::crypto::PublicKey;
use crate::digest::{Digest, KeyId, RecordId};
use crate::envelope::{Envelope, LogKind, VerifiedSignature};
use crate::name::Namespace;
use crate::record::{
    HashAlgorithm, OperatorEntry, OperatorPermission, PackageEntry, PackagePermission, Timestamp,
};

/// Why a record cannot extend a log. The names follow the reference's error cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The first record of a log has a `prev`.
    #[error("the first record of a log must not link to a previous record")]
    PreviousHashOnFirstRecord,
    /// A later record has no `prev`.
    #[error("a record after the first must link to the previous record")]
    NoPreviousHashAfterInit,
    /// `prev` is not the previous record's id.
    #[error("previous record hash does not match: expected {expected}, found {found}")]
    RecordHashDoesNotMatch {
        /// The id of the log's head.
        expected: RecordId,
        /// The `prev` in the record.
        found: RecordId,
    },
    /// A protocol version other than 0.
    #[error("protocol version {0} not allowed")]
    ProtocolVersionNotAllowed(u32),
    /// The record is older than the previous one.
    #[error("record has lower timestamp than previous")]
    TimestampLowerThanPrevious,
    /// The first entry of a log is not an init.
    #[error("the first entry of a log must be an init")]
    FirstEntryIsNotInit,
    /// An init entry after the beginning.
    #[error("an init entry may only be the first entry of a log")]
    InitialEntryAfterBeginning,
    /// A package init signed by another key than the one it names.
    #[error("the init entry names key {init_key}, but the record is signed by {signer}")]
    InitKeyMismatch {
        /// The key named in the entry.
        init_key: KeyId,
        /// The signer.
        signer: KeyId,
    },
    /// After its entries, the record leaves the log uninitialised.
    #[error("the initial record does not initialise the log")]
    InitialRecordDoesNotInit,
    /// The signer's key is not in the log.
    #[error("key id {0} is not recognised by this log")]
    KeyIdNotRecognized(KeyId),
    /// The signature does not verify with the signer's key.
    #[error("the record's signature does not verify with key {0}")]
    SignatureVerificationFailed(KeyId),
    /// The signer lacks a permission the entry needs.
    #[error("key {key_id} lacks the `{permission}` permission")]
    Unauthorized {
        /// The signer.
        key_id: KeyId,
        /// The permission it lacks.
        permission: String,
    },
    /// A revoke of a permission the target does not hold.
    #[error("key {key_id} does not hold the `{permission}` permission to revoke")]
    PermissionNotFoundToRevoke {
        /// The target key.
        key_id: KeyId,
        /// The permission.
        permission: String,
    },
    /// A version released before (even if yanked since).
    #[error("version {0} was already released")]
    ReleaseOfReleased(Version),
    /// A yank of a version never released.
    #[error("an entry attempted to yank version {0} which had not yet been released")]
    YankOfUnreleased(Version),
    /// A yank of a version already yanked.
    #[error("version {0} was already yanked")]
    YankOfYanked(Version),
    /// A namespace defined or imported twice.
    #[error("namespace {0} is already defined")]
    NamespaceAlreadyDefined(Namespace),
}

/// The latest record of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The record's id.
    pub record_id: RecordId,
    /// The record's time.
    pub timestamp: Timestamp,
}

/// What the validators share: head, keys, permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chain<P: Ord> {
    head: Option<Head>,
    algorithm: Option<HashAlgorithm>,
    keys: BTreeMap<KeyId, PublicKey>,
    permissions: BTreeMap<KeyId, BTreeSet<P>>,
}

impl<P: Ord + Copy + std::fmt::Display> Default for Chain<P> {
    fn default() -> Self {
        Chain {
            head: None,
            algorithm: None,
            keys: BTreeMap::new(),
            permissions: BTreeMap::new(),
        }
    }
}

impl<P: Ord + Copy + std::fmt::Display> Chain<P> {
    /// Checks `prev`, version and timestamp (rules 1 to 3).
    fn check_link<E: LogKind>(&self, envelope: &Envelope<E>) -> Result<(), ValidationError> {
        let record = envelope.record();
        match (&self.head, &record.prev) {
            (None, Some(_)) => return Err(ValidationError::PreviousHashOnFirstRecord),
            (Some(_), None) => return Err(ValidationError::NoPreviousHashAfterInit),
            (Some(head), Some(prev)) if head.record_id != *prev => {
                return Err(ValidationError::RecordHashDoesNotMatch {
                    expected: head.record_id,
                    found: *prev,
                })
            }
            _ => {}
        }
        if record.version != 0 {
            return Err(ValidationError::ProtocolVersionNotAllowed(record.version));
        }
        if let Some(head) = &self.head {
            if record.time < head.timestamp {
                return Err(ValidationError::TimestampLowerThanPrevious);
            }
        }
        Ok(())
    }

    fn require(&self, key_id: &KeyId, permission: P) -> Result<(), ValidationError> {
        if self
            .permissions
            .get(key_id)
            .is_some_and(|held| held.contains(&permission))
        {
            Ok(())
        } else {
            Err(ValidationError::Unauthorized {
                key_id: *key_id,
                permission: permission.to_string(),
            })
        }
    }

    fn grant(
        &mut self,
        signer: &KeyId,
        key: &PublicKey,
        permissions: &[P],
    ) -> Result<(), ValidationError> {
        for &permission in permissions {
            self.require(signer, permission)?;
        }
        let key_id = key.fingerprint();
        self.keys.insert(key_id, key.clone());
        self.permissions
            .entry(key_id)
            .or_default()
            .extend(permissions.iter().copied());
        Ok(())
    }

    fn revoke(
        &mut self,
        signer: &KeyId,
        key_id: &KeyId,
        permissions: &[P],
    ) -> Result<(), ValidationError> {
        for &permission in permissions {
            self.require(signer, permission)?;
        }
        for &permission in permissions {
            let held = self.permissions.get_mut(key_id);
            if !held.is_some_and(|held| held.remove(&permission)) {
                return Err(ValidationError::PermissionNotFoundToRevoke {
                    key_id: *key_id,
                    permission: permission.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Rules 5 to 8: initialised, known key, signature (unless `verified` proves it); then
    /// the head advances.
    fn finish<E: LogKind>(
        &mut self,
        envelope: &Envelope<E>,
        verified: Option<&VerifiedSignature>,
    ) -> Result<(), ValidationError> {
        if self.algorithm.is_none() {
            return Err(ValidationError::InitialRecordDoesNotInit);
        }
        let key = self
            .keys
            .get(envelope.key_id())
            .ok_or(ValidationError::KeyIdNotRecognized(*envelope.key_id()))?;
        // A proof covers this envelope's exact signature by the key with this id; key ids
        // are fingerprints of keys, so it is a proof for `key`.
        if !verified.is_some_and(|proof| proof.covers(envelope)) {
            envelope
                .verify_signature(key)
                .map_err(|_| ValidationError::SignatureVerificationFailed(*envelope.key_id()))?;
        }
        self.head = Some(Head {
            record_id: *envelope.record_id(),
            timestamp: envelope.record().time,
        });
        Ok(())
    }

    fn permissions_of(&self, key_id: &KeyId) -> Vec<P> {
        self.permissions
            .get(key_id)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// A released version of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The record that released it.
    pub record_id: RecordId,
    /// The version.
    pub version: Version,
    /// Who released it.
    pub by: KeyId,
    /// When.
    pub timestamp: Timestamp,
    /// Released or yanked.
    pub state: ReleaseState,
}

/// Whether a release is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseState {
    /// Available, with this content.
    Released {
        /// SHA-256 of the released file.
        content: Digest,
    },
    /// Yanked; its content is no longer part of the state.
    Yanked {
        /// Who yanked it.
        by: KeyId,
        /// When.
        timestamp: Timestamp,
    },
}

/// The state of one package log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageLogState {
    chain: Chain<PackagePermission>,
    releases: BTreeMap<Version, Release>,
}

impl PackageLogState {
    /// The state of a log with no records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `envelope` against the state and, if it passes, applies it. On error the
    /// state is unchanged.
    pub fn validate(&mut self, envelope: &Envelope<PackageEntry>) -> Result<(), ValidationError> {
        self.validate_verified(envelope, None)
    }

    /// [`validate`](Self::validate), with the signature check skipped if `verified` proves
    /// this envelope's signature already.
    pub fn validate_verified(
        &mut self,
        envelope: &Envelope<PackageEntry>,
        verified: Option<&VerifiedSignature>,
    ) -> Result<(), ValidationError> {
        // The chain (keys, permissions, head) is small and copied; the releases, which grow
        // with the log, are changed in place and restored from an undo list on error.
        let chain = self.chain.clone();
        let mut undo = Vec::new();
        let result = self.apply(envelope, verified, &mut undo);
        if result.is_err() {
            self.chain = chain;
            for (version, previous) in undo.into_iter().rev() {
                match previous {
                    Some(release) => self.releases.insert(version, release),
                    None => self.releases.remove(&version),
                };
            }
        }
        result
    }

    /// Applies `envelope`, noting in `undo` each release's value before it changed.
    fn apply(
        &mut self,
        envelope: &Envelope<PackageEntry>,
        verified: Option<&VerifiedSignature>,
        undo: &mut Vec<(Version, Option<Release>)>,
    ) -> Result<(), ValidationError> {
        self.chain.check_link(envelope)?;
        let signer = *envelope.key_id();
        let record = envelope.record();
        for entry in &record.entries {
            if self.chain.algorithm.is_none() && !matches!(entry, PackageEntry::Init { .. }) {
                return Err(ValidationError::FirstEntryIsNotInit);
            }
            match entry {
                PackageEntry::Init {
                    key,
                    hash_algorithm,
                } => {
                    if self.chain.algorithm.is_some() {
                        return Err(ValidationError::InitialEntryAfterBeginning);
                    }
                    let init_key = key.fingerprint();
                    if init_key != signer {
                        return Err(ValidationError::InitKeyMismatch { init_key, signer });
                    }
                    self.chain.algorithm = Some(*hash_algorithm);
                    self.chain.keys.insert(init_key, key.clone());
                    self.chain
                        .permissions
                        .insert(init_key, PackagePermission::ALL.iter().copied().collect());
                }
                PackageEntry::Grant { key, permissions } => {
                    self.chain.grant(&signer, key, permissions)?
                }
                PackageEntry::Revoke {
                    key_id,
                    permissions,
                } => self.chain.revoke(&signer, key_id, permissions)?,
                PackageEntry::Release { version, content } => {
                    self.chain.require(&signer, PackagePermission::Release)?;
                    if self.releases.contains_key(version) {
                        return Err(ValidationError::ReleaseOfReleased(version.clone()));
                    }
                    undo.push((version.clone(), None));
                    self.releases.insert(
                        version.clone(),
                        Release {
                            record_id: *envelope.record_id(),
                            version: version.clone(),
                            by: signer,
                            timestamp: record.time,
                            state: ReleaseState::Released { content: *content },
                        },
                    );
                }
                PackageEntry::Yank { version } => {
                    self.chain.require(&signer, PackagePermission::Yank)?;
                    let release = self
                        .releases
                        .get_mut(version)
                        .ok_or_else(|| ValidationError::YankOfUnreleased(version.clone()))?;
                    if matches!(release.state, ReleaseState::Yanked { .. }) {
                        return Err(ValidationError::YankOfYanked(version.clone()));
                    }
                    undo.push((version.clone(), Some(release.clone())));
                    release.state = ReleaseState::Yanked {
                        by: signer,
                        timestamp: record.time,
                    };
                }
            }
        }
        self.chain.finish(envelope, verified)
    }

    /// The latest record, if any.
    pub fn head(&self) -> Option<&Head> {
        self.chain.head.as_ref()
    }

    /// Every key the log knows, by id.
    pub fn keys(&self) -> &BTreeMap<KeyId, PublicKey> {
        &self.chain.keys
    }

    /// The permissions `key_id` holds now.
    pub fn permissions(&self, key_id: &KeyId) -> Vec<PackagePermission> {
        self.chain.permissions_of(key_id)
    }

    /// Every release, yanked or not, by version.
    pub fn releases(&self) -> &BTreeMap<Version, Release> {
        &self.releases
    }

    /// The release of exactly this version.
    pub fn release(&self, version: &Version) -> Option<&Release> {
        self.releases.get(version)
    }
}

/// How this registry knows a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceState {
    /// Hosted here.
    Defined,
    /// Hosted by another registry.
    Imported {
        /// That registry.
        registry: String,
    },
}

/// The state of the operator log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperatorLogState {
    chain: Chain<OperatorPermission>,
    namespaces: BTreeMap<Namespace, NamespaceState>,
}

impl OperatorLogState {
    /// The state of an operator log with no records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `envelope` against the state and, if it passes, applies it. On error the
    /// state is unchanged.
    pub fn validate(&mut self, envelope: &Envelope<OperatorEntry>) -> Result<(), ValidationError> {
        self.validate_verified(envelope, None)
    }

    /// [`validate`](Self::validate), with the signature check skipped if `verified` proves
    /// this envelope's signature already.
    pub fn validate_verified(
        &mut self,
        envelope: &Envelope<OperatorEntry>,
        verified: Option<&VerifiedSignature>,
    ) -> Result<(), ValidationError> {
        let mut next = self.clone();
        next.apply(envelope, verified)?;
        *self = next;
        Ok(())
    }

    fn apply(
        &mut self,
        envelope: &Envelope<OperatorEntry>,
        verified: Option<&VerifiedSignature>,
    ) -> Result<(), ValidationError> {
        self.chain.check_link(envelope)?;
        let signer = *envelope.key_id();
        for entry in &envelope.record().entries {
            if self.chain.algorithm.is_none() && !matches!(entry, OperatorEntry::Init { .. }) {
                return Err(ValidationError::FirstEntryIsNotInit);
            }
            match entry {
                OperatorEntry::Init {
                    hash_algorithm,
                    key,
                } => {
                    if self.chain.algorithm.is_some() {
                        return Err(ValidationError::InitialEntryAfterBeginning);
                    }
                    self.chain.algorithm = Some(*hash_algorithm);
                    self.chain.keys.insert(key.fingerprint(), key.clone());
                    self.chain
                        .permissions
                        .insert(signer, OperatorPermission::ALL.iter().copied().collect());
                }
                OperatorEntry::Grant { key, permissions } => {
                    self.chain.require(&signer, OperatorPermission::Commit)?;
                    self.chain.grant(&signer, key, permissions)?;
                }
                OperatorEntry::Revoke {
                    key_id,
                    permissions,
                } => {
                    self.chain.require(&signer, OperatorPermission::Commit)?;
                    self.chain.revoke(&signer, key_id, permissions)?;
                }
                OperatorEntry::DefineNamespace { namespace } => {
                    self.chain
                        .require(&signer, OperatorPermission::DefineNamespace)?;
                    self.add_namespace(namespace, NamespaceState::Defined)?;
                }
                OperatorEntry::ImportNamespace {
                    namespace,
                    registry,
                } => {
                    self.chain
                        .require(&signer, OperatorPermission::ImportNamespace)?;
                    self.add_namespace(
                        namespace,
                        NamespaceState::Imported {
                            registry: registry.clone(),
                        },
                    )?;
                }
            }
        }
        self.chain.finish(envelope, verified)
    }

    fn add_namespace(
        &mut self,
        namespace: &Namespace,
        state: NamespaceState,
    ) -> Result<(), ValidationError> {
        if self.namespaces.contains_key(namespace) {
            return Err(ValidationError::NamespaceAlreadyDefined(namespace.clone()));
        }
        self.namespaces.insert(namespace.clone(), state);
        Ok(())
    }

    /// The latest record, if any.
    pub fn head(&self) -> Option<&Head> {
        self.chain.head.as_ref()
    }

    /// Every key the log knows, by id.
    pub fn keys(&self) -> &BTreeMap<KeyId, PublicKey> {
        &self.chain.keys
    }

    /// The permissions `key_id` holds now.
    pub fn permissions(&self, key_id: &KeyId) -> Vec<OperatorPermission> {
        self.chain.permissions_of(key_id)
    }

    /// Whether `key_id` may sign checkpoints.
    pub fn can_commit(&self, key_id: &KeyId) -> bool {
        self.chain
            .require(key_id, OperatorPermission::Commit)
            .is_ok()
    }

    /// How the registry knows `namespace`, if at all.
    pub fn namespace(&self, namespace: &str) -> Option<&NamespaceState> {
        self.namespaces.get(namespace)
    }

    /// Every namespace the operator log names.
    pub fn namespaces(&self) -> &BTreeMap<Namespace, NamespaceState> {
        &self.namespaces
    }
}
