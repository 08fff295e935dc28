//! The warg v1 protocol's data model, byte for byte with the reference (see
//! `../shared/spec/warg-v1.md`, which the project keeps as its specification).
//!
//! * Identifiers: [`Digest`] and the ids built on it ([`RecordId`], [`LogId`], [`KeyId`]);
//!   [`PackageName`] and [`Namespace`] with warg's kebab-case rules.
//! * Cryptography: ECDSA P-256 [`PublicKey`], [`PrivateKey`], [`Signature`], each signature in
//!   a [`SigningDomain`].
//! * Records: [`PackageRecord`] and [`OperatorRecord`] with their exact protobuf encoding, and
//!   [`Envelope`]s whose ids come from the bytes as received.
//! * Validation: [`PackageLogState`] and [`OperatorLogState`], the rules every record must
//!   pass, shared by server and client.
//! * Checkpoints: [`Checkpoint`], [`TimestampedCheckpoint`], [`SignedCheckpoint`] and
//!   [`VerifiedCheckpoint`].
//! * The wire: [`api`] (JSON of every v1 endpoint) and [`proofs`] (protobuf proof bundles).
//!
//! Nothing here does I/O.

#![forbid(unsafe_code)]

pub mod api;
mod checkpoint;
mod crypto;
mod digest;
mod envelope;
mod name;
pub mod prefix;
pub mod proofs;
pub mod protobuf;
mod record;
mod validate;

pub use checkpoint::{
    Checkpoint, CheckpointError, SignedCheckpoint, TimestampedCheckpoint, VerifiedCheckpoint,
};
pub use crypto::{BadSignature, KeyError, PrivateKey, PublicKey, Signature, SigningDomain};
pub use digest::{Digest, DigestError, KeyId, LogId, RecordId};
pub use envelope::{Envelope, LogKind, OperatorEnvelope, PackageEnvelope, VerifiedSignature};
pub use name::{is_lower_kebab, NameError, Namespace, PackageName};
pub use record::{
    DecodeError, Entry, HashAlgorithm, OperatorEntry, OperatorPermission, OperatorRecord,
    PackageEntry, PackagePermission, PackageRecord, Record, Timestamp,
};
pub use validate::{
    Head, NamespaceState, OperatorLogState, PackageLogState, Release, ReleaseState, ValidationError,
};
