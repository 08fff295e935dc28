//! Checkpoints: the operator's signed statement of the registry log's length and root and the
//! map's root at one moment.
//!
//! ```text
//! checkpoint id      = SHA256("WARG-CHECKPOINT-V0" ‖ leb(logLength) ‖ str(logRoot) ‖ str(mapRoot))
//! signed payload     = "WARG-TIMESTAMPED-CHECKPOINT-V0" ‖ leb(logLength) ‖ str(logRoot) ‖ str(mapRoot) ‖ leb(timestamp)
//! signature          = ECDSA over "WARG-CHECKPOINT-SIGNATURE-V0:" ‖ signed payload
//! ```
//!
//! The signature covers the prefix encoding, never the JSON. A [`VerifiedCheckpoint`] can
//! only be made by verifying a [`SignedCheckpoint`] with the key its `keyId` names.

use serde::{Deserialize, Serialize};

use crate::crypto::{PrivateKey, PublicKey, Signature, SigningDomain};
use crate::digest::{Digest, KeyId};
use crate::prefix::{write_str, write_uleb};

/// The registry log's length and root and the map's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Root of the registry log at `log_length`.
    pub log_root: Digest,
    /// Number of leaves in the registry log.
    pub log_length: u64,
    /// Root of the map at `log_length`.
    pub map_root: Digest,
}

impl Checkpoint {
    /// The checkpoint's id (without the timestamp).
    pub fn id(&self) -> Digest {
        let mut input = b"WARG-CHECKPOINT-V0".to_vec();
        self.write_fields(&mut input);
        Digest::of(&input)
    }

    fn write_fields(&self, out: &mut Vec<u8>) {
        write_uleb(out, self.log_length);
        write_str(out, &self.log_root.to_string());
        write_str(out, &self.map_root.to_string());
    }
}

/// A checkpoint and the time, in whole Unix seconds, at which it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampedCheckpoint {
    /// Root of the registry log at `log_length`.
    pub log_root: Digest,
    /// Number of leaves in the registry log.
    pub log_length: u64,
    /// Root of the map at `log_length`.
    pub map_root: Digest,
    /// Unix seconds.
    pub timestamp: u64,
}

impl TimestampedCheckpoint {
    /// Stamps `checkpoint` with `timestamp`.
    pub fn new(checkpoint: Checkpoint, timestamp: u64) -> Self {
        TimestampedCheckpoint {
            log_root: checkpoint.log_root,
            log_length: checkpoint.log_length,
            map_root: checkpoint.map_root,
            timestamp,
        }
    }

    /// The checkpoint without its time.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            log_root: self.log_root,
            log_length: self.log_length,
            map_root: self.map_root,
        }
    }

    /// The bytes the operator signs (after the signing domain's prefix).
    pub fn signed_payload(&self) -> Vec<u8> {
        let mut out = b"WARG-TIMESTAMPED-CHECKPOINT-V0".to_vec();
        self.checkpoint().write_fields(&mut out);
        write_uleb(&mut out, self.timestamp);
        out
    }

    /// Signs the checkpoint.
    pub fn sign(self, key: &PrivateKey) -> SignedCheckpoint {
        SignedCheckpoint {
            signature: key.sign(SigningDomain::Checkpoint, &self.signed_payload()),
            key_id: key.public_key().fingerprint(),
            contents: self,
        }
    }
}

/// A timestamped checkpoint with the operator's signature, in the API's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedCheckpoint {
    /// What is signed.
    pub contents: TimestampedCheckpoint,
    /// The signer's key id.
    pub key_id: KeyId,
    /// The signature over the prefix encoding of `contents`.
    pub signature: Signature,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The key offered is not the one the checkpoint names.
    #[error("the checkpoint names signer {named}, not {offered}")]
    WrongKey {
        /// The key id in the checkpoint.
        named: KeyId,
        /// The key offered to verify it.
        offered: KeyId,
    },
    /// The signature does not verify.
    #[error("the checkpoint's signature does not verify with key {0}")]
    BadSignature(KeyId),
}

impl SignedCheckpoint {
    /// Verifies the signature with `key`, which must be the key `key_id` names.
    pub fn verify(&self, key: &PublicKey) -> Result<VerifiedCheckpoint, CheckpointError> {
        let offered = key.fingerprint();
        if offered != self.key_id {
            return Err(CheckpointError::WrongKey {
                named: self.key_id,
                offered,
            });
        }
        key.verify(
            SigningDomain::Checkpoint,
            &self.contents.signed_payload(),
            &self.signature,
        )
        .map_err(|_| CheckpointError::BadSignature(self.key_id))?;
        Ok(VerifiedCheckpoint(self.clone()))
    }
}

/// A checkpoint whose signature has been verified. Whether its signer may sign checkpoints
/// (holds `commit` in the operator log) is the caller's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint(SignedCheckpoint);

impl VerifiedCheckpoint {
    /// The signed checkpoint.
    pub fn signed(&self) -> &SignedCheckpoint {
        &self.0
    }

    /// The checkpoint's contents.
    pub fn contents(&self) -> &TimestampedCheckpoint {
        &self.0.contents
    }
}
