//! The client's errors: [`ClientError`] for everything that can go wrong, and inside it
//! [`SecurityError`], one variant per attack the client detects.
//!
//! A security error means the registry (or something between it and us) served data that
//! does not match what was signed or what we trusted before. The update or fetch that found
//! it is abandoned and the trusted state on disk is left exactly as it was. Messages are
//! written for the person at the terminal: what was wrong, and about what.

use std::path::PathBuf;

use cairn_protocol::{KeyId, LogId, PackageName, PackagePermission, RecordId, ValidationError};

/// Something the registry served that contradicts what is signed or what was trusted before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// A record's signature does not verify with the key its log authorises.
    #[error("record {record} of {log} has a signature that does not verify with key {key_id}: the registry altered or forged it")]
    BadRecordSignature {
        /// Which log (`operator log` or a package name).
        log: String,
        /// The record.
        record: RecordId,
        /// The key it claims.
        key_id: KeyId,
    },
    /// A record does not link to the record before it: one was dropped, reordered or inserted.
    #[error("the records of {log} do not form a chain at record {record} ({reason}): the registry dropped, reordered or inserted records")]
    BrokenChain {
        /// Which log.
        log: String,
        /// The record that does not link.
        record: RecordId,
        /// What the validator found.
        reason: String,
    },
    /// A record breaks another rule of its log (permissions, timestamps, versions).
    #[error("record {record} of {log} is invalid: {reason}")]
    InvalidRecord {
        /// Which log.
        log: String,
        /// The record.
        record: RecordId,
        /// The rule it breaks.
        reason: String,
    },
    /// A record's bytes could not be decoded.
    #[error("a record of {log} could not be decoded: {reason}")]
    UndecodableRecord {
        /// Which log.
        log: String,
        /// Why.
        reason: String,
    },
    /// A record is placed outside the checkpoint, or out of order in the registry log.
    #[error("record {record} of {log} is listed at registry index {index}, which is not after the log's previous record and below the checkpoint's length {log_length}")]
    RecordOutOfPlace {
        /// Which log.
        log: String,
        /// The record.
        record: RecordId,
        /// Its claimed registry index.
        index: u64,
        /// The checkpoint's length.
        log_length: u64,
    },
    /// The registry answered for logs we did not ask about.
    #[error("the registry sent records for log {0}, which was not asked for")]
    UnrequestedLog(LogId),
    /// The checkpoint is older (shorter) than one already trusted.
    #[error("the registry's checkpoint has log length {offered}, shorter than the {trusted} already trusted: it is rolling the registry back")]
    RewoundCheckpoint {
        /// The trusted length.
        trusted: u64,
        /// The length offered now.
        offered: u64,
    },
    /// A checkpoint at the trusted length with different roots: two histories exist.
    #[error("the registry's checkpoint at log length {log_length} has different roots from the one already trusted at that length: it is showing a forked history")]
    ForkedCheckpoint {
        /// The length both checkpoints state.
        log_length: u64,
    },
    /// The checkpoint is older than the configured maximum age.
    #[error("the registry's checkpoint is {age_seconds} s old, more than the {max_seconds} s allowed: the registry may be freezing updates")]
    StaleCheckpoint {
        /// How old it is.
        age_seconds: u64,
        /// The limit.
        max_seconds: u64,
    },
    /// The checkpoint names a key the operator log does not know.
    #[error("the checkpoint is signed by key {0}, which the operator log does not know")]
    UnknownCheckpointSigner(KeyId),
    /// The checkpoint's signature does not verify.
    #[error("the checkpoint's signature does not verify with operator key {0}")]
    BadCheckpointSignature(KeyId),
    /// The checkpoint's signer does not hold `commit` in the operator log.
    #[error("the checkpoint is signed by key {0}, which does not hold the `commit` permission in the operator log")]
    CheckpointSignerWithoutCommit(KeyId),
    /// The consistency proof between the trusted and the new checkpoint does not verify.
    #[error("the registry's proof that log length {from} grew into length {to} does not verify ({reason}): its history was rewritten")]
    BadConsistencyProof {
        /// The trusted length.
        from: u64,
        /// The new length.
        to: u64,
        /// Why.
        reason: String,
    },
    /// A log inclusion proof does not verify.
    #[error("the registry's proof that the head of {log} (record {record}) is in the log does not verify ({reason})")]
    BadInclusionProof {
        /// Which log.
        log: String,
        /// The head record.
        record: RecordId,
        /// Why.
        reason: String,
    },
    /// The map does not commit to the head we fetched: newer records are hidden, or the proof
    /// is bad.
    #[error("the registry's map does not commit to record {record} as the latest of {log}: it is hiding newer records or its proof is bad")]
    StaleMapHead {
        /// Which log.
        log: String,
        /// The head we fetched.
        record: RecordId,
    },
    /// Downloaded content does not match the digest its release signs.
    #[error("the content of {what} does not match its signed digest {expected}: {reason}")]
    TamperedContent {
        /// What was downloaded (`ns:name@1.0.0`, or a blob).
        what: String,
        /// The signed digest.
        expected: String,
        /// What was wrong.
        reason: String,
    },
    /// A response larger than the client accepts.
    #[error("the response to {what} is larger than the {limit} bytes this client accepts")]
    OversizedResponse {
        /// The request.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The registry's answers do not fit together (more records promised but none sent, proofs
    /// missing, a manifest that does not fit its content).
    #[error("the registry's answer to {what} is inconsistent: {reason}")]
    InconsistentResponse {
        /// The request.
        what: String,
        /// What was wrong.
        reason: String,
    },
}

impl SecurityError {
    /// Classifies a validator's refusal of a record.
    pub(crate) fn from_validation(log: &str, record: RecordId, error: ValidationError) -> Self {
        let log = log.to_owned();
        match error {
            ValidationError::SignatureVerificationFailed(key_id) => {
                SecurityError::BadRecordSignature {
                    log,
                    record,
                    key_id,
                }
            }
            ValidationError::PreviousHashOnFirstRecord
            | ValidationError::NoPreviousHashAfterInit
            | ValidationError::RecordHashDoesNotMatch { .. } => SecurityError::BrokenChain {
                log,
                record,
                reason: error.to_string(),
            },
            other => SecurityError::InvalidRecord {
                log,
                record,
                reason: other.to_string(),
            },
        }
    }
}

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry or a proxy served data that fails verification.
    #[error("security check failed: {0}")]
    Security(#[from] SecurityError),
    /// The registry could not be reached or the connection failed.
    #[error("cannot reach the registry at {url}: {reason}; check that it is running and that the URL is right")]
    Network {
        /// The URL requested.
        url: String,
        /// Why.
        reason: String,
    },
    /// The registry answered with an error.
    #[error("the registry refused {what}: {message} (HTTP {status})")]
    Registry {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The entity kind of a typed error (`log`, `contentDigest`, ...), if the body had one.
        kind: Option<String>,
        /// The registry's explanation.
        message: String,
    },
    /// The registry's answer could not be read (not the JSON expected).
    #[error("the registry's answer to {what} could not be read: {reason}")]
    BadResponse {
        /// The request.
        what: String,
        /// Why.
        reason: String,
    },
    /// The registry does not know the package.
    #[error("the registry has no package `{0}`")]
    PackageNotFound(PackageName),
    /// No release of the package matches the requirement (yanked releases are skipped).
    #[error("package `{name}` has no release matching `{requirement}`")]
    NoMatchingRelease {
        /// The package.
        name: PackageName,
        /// The requirement.
        requirement: String,
    },
    /// The only releases matching the requirement were yanked.
    #[error("`{name}@{version}` exists but was yanked by its publisher; `--allow-yanked` fetches it anyway")]
    Yanked {
        /// The package.
        name: PackageName,
        /// The highest yanked version that matches.
        version: semver::Version,
    },
    /// What answers at the URL is not a warg registry.
    #[error("{url} does not answer as a warg registry ({reason}); check the URL")]
    NotARegistry {
        /// The URL.
        url: String,
        /// What it answered.
        reason: String,
    },
    /// The registry does not host the package's namespace.
    #[error("the registry does not host namespace `{namespace}` ({}); its operator can define it with `cairn admin define-namespace {namespace}`", hosted_list(.hosted))]
    UnknownNamespace {
        /// The namespace.
        namespace: String,
        /// The namespaces it hosts.
        hosted: Vec<String>,
    },
    /// The signing key lacks a permission the record needs.
    #[error("key {key_id} may not {permission} `{name}`; an owner of the package can grant it with `cairn publish grant {name} {public_key} --permission {permission}`")]
    NotPermitted {
        /// The package.
        name: PackageName,
        /// The key's id.
        key_id: KeyId,
        /// The key.
        public_key: String,
        /// The permission.
        permission: PackagePermission,
    },
    /// The registry rejected a published record.
    #[error("the registry rejected the record {record} of `{name}`: {reason}")]
    Rejected {
        /// The package.
        name: PackageName,
        /// The record.
        record: RecordId,
        /// The registry's reason.
        reason: String,
    },
    /// A published record was not published within the wait time.
    #[error("record {record} of `{name}` was not published within {seconds} s")]
    PublishTimeout {
        /// The package.
        name: PackageName,
        /// The record.
        record: RecordId,
        /// How long the client waited.
        seconds: u64,
    },
    /// A record cannot be made from what was asked (no entries, init of a known package, ...).
    #[error("cannot publish to `{name}`: {reason}")]
    InvalidPublish {
        /// The package.
        name: PackageName,
        /// Why.
        reason: String,
    },
    /// The registry's TLS certificate is not trusted.
    #[error("the TLS certificate of {url} is not trusted ({reason}); if your own CA signed it, pass `--ca-cert FILE` (or set CAIRN_CA_CERT or SSL_CERT_FILE)")]
    UntrustedCertificate {
        /// The registry's origin.
        url: String,
        /// What TLS said.
        reason: String,
    },
    /// A `--ca-cert` file is not usable.
    #[error("the CA certificate is not usable: {reason}")]
    BadCaCertificate {
        /// Why.
        reason: String,
    },
    /// The registry URL is not usable.
    #[error("invalid registry URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The local trust state is unreadable or no longer verifies.
    #[error("the trusted state in {path} is damaged: {reason}")]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The registry's operator log starts with another record than the one trusted: its
    /// whole history differs (it was reset, or another registry answers at its address).
    #[error("the registry at {registry} has a different history from the one you trusted: its operator log starts with another record. If the registry was reset on purpose, `cairn reset --registry {registry}` forgets what you trusted; otherwise do not use it")]
    DifferentHistory {
        /// The registry.
        registry: String,
    },
    /// The storage directory holds the trust state of another registry.
    #[error("the storage directory holds the state of registry {stored}, not {requested}")]
    OtherRegistry {
        /// The registry the state belongs to.
        stored: String,
        /// The registry asked for.
        requested: String,
    },
}

impl ClientError {
    /// The security error inside, if this is one.
    pub fn security(&self) -> Option<&SecurityError> {
        match self {
            ClientError::Security(error) => Some(error),
            _ => None,
        }
    }

    pub(crate) fn io<'a>(
        what: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| ClientError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

/// The hosted namespaces, for [`ClientError::UnknownNamespace`].
fn hosted_list(hosted: &[String]) -> String {
    if hosted.is_empty() {
        "it hosts none yet".to_owned()
    } else {
        format!("it hosts {}", hosted.join(", "))
    }
}
