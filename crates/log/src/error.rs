//! The error types of this crate: one for reading hashes, one for asking the log for something it
//! cannot give, one for proofs that do not verify, one for map values.
//!
//! Verification never panics: every malformed, inconsistent or hostile proof ends in a
//! [`ProofError`].

/// A hash could not be read from bytes or text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("a hash must be 32 bytes, got {actual}")]
    WrongLength { actual: usize },
    #[error("a hash in hex must be 64 characters, got {actual}")]
    WrongHexLength { actual: usize },
    #[error("a hash in hex may only contain the digits 0-9 and a-f (lowercase)")]
    InvalidHexDigit,
}

/// The log was asked for a root or a proof that it cannot produce. The request is at fault,
/// never the stored data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("log length {requested} is beyond the {available} leaves appended so far")]
    LengthBeyondLog { requested: u64, available: u64 },
    #[error("leaf index {leaf_index} is not below log length {log_length}")]
    LeafIndexOutOfRange { leaf_index: u64, log_length: u64 },
    #[error("old length {old_length} is greater than new length {new_length}")]
    OldLengthAfterNew { old_length: u64, new_length: u64 },
    #[error("consistency from the empty log to length {new_length} proves nothing and is refused")]
    ConsistencyFromEmptyLog { new_length: u64 },
    #[error(
        "log length {log_length} is too large for a proof bundle: its node indices must fit in 32 bits"
    )]
    LengthTooLargeForBundle { log_length: u64 },
}

/// A proof did not verify. Each variant names the first check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {leaf_index} is not below tree size {tree_size}")]
    LeafIndexOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is greater than new tree size {new_size}")]
    OldSizeAfterNew { old_size: u64, new_size: u64 },
    #[error("the proof has more hashes than the tree sizes allow")]
    ProofTooLong,
    #[error("the proof has fewer hashes than the tree sizes need")]
    ProofTooShort,
    #[error("a consistency proof between different sizes cannot be empty")]
    EmptyProof,
    #[error("a consistency proof between equal sizes must be empty")]
    NonEmptyProofForEqualSizes,
    #[error("consistency from the empty tree proves nothing and is refused")]
    ConsistencyFromEmptyTree,
    #[error("the proof leads to a root other than the expected one")]
    RootMismatch,
    #[error("the proof leads to an old root other than the expected one")]
    OldRootMismatch,
    #[error("the proof leads to a new root other than the expected one")]
    NewRootMismatch,
    #[error("the bundle is for log length {bundle_length}, not the expected {expected_length}")]
    BundleLengthMismatch {
        bundle_length: u64,
        expected_length: u64,
    },
    #[error("the bundle does not claim inclusion of leaf {leaf_index}")]
    LeafNotInBundle { leaf_index: u64 },
    #[error("the bundle does not claim consistency from length {old_length}")]
    OldLengthNotInBundle { old_length: u64 },
    #[error("the bundle lacks the hash of node {node}")]
    MissingNodeHash { node: u64 },
    #[error("the bundle's node hashes are not sorted by strictly increasing node index")]
    UnsortedNodeHashes,
    #[error("the bundle's proofs for the old balanced roots lead to different new roots")]
    DivergingNewRoots,
    #[error("a map proof has {count} sibling hashes; at most 256 are possible")]
    TooManySiblings { count: usize },
    #[error("an empty map value cannot be proven present: it hashes like an empty slot")]
    EmptyMapValue,
}

/// A map value was empty. The map's leaf hash of an empty value equals the hash of an empty
/// slot, so an empty value would be indistinguishable from an absent key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a map value cannot be empty: it would hash like an absent key")]
pub struct EmptyMapValueError;
