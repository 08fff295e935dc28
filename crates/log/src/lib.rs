//! Merkle structures of the warg registry protocol: the registry log and the verifiable map,
//! with proofs and their verification. Pure computation: no I/O, no encoding on the wire, and no
//! panics on any proof input.
//!
//! * [`RegistryLog`]: an append-only RFC 6962 Merkle tree over leaf hashes. Appends cost O(1)
//!   amortised; the root and proofs of every past length stay available. Proofs come in two
//!   forms: RFC 6962/9162 audit paths ([`RegistryLog::inclusion_proof`],
//!   [`RegistryLog::consistency_proof`], checked by [`audit_path`]) and warg's proof bundles
//!   ([`RegistryLog::proof_bundle`], checked by [`LogProofBundle`]'s methods).
//! * [`Map`]: warg's 256-level sparse Merkle map, persistent (an insert returns a new map and
//!   old snapshots stay valid), updated one key at a time ([`Map::insert`]) or in batches
//!   ([`Map::extend`]), with compressed proofs of inclusion and of absence ([`Map::prove`],
//!   checked by [`MapProof`]'s methods). Keys are given as [`KeyPath`]s: `SHA256(key bytes)`.
//!
//! Hashing is shared by both (warg-v1 sections 4.1 and 4.2): leaves `SHA256(0x00 ‖ data)`,
//! branches `SHA256(0x01 ‖ left ‖ right)`. The protobuf form of proofs lives in another crate.

#![deny(unsafe_code)]

pub mod audit_path;
mod branch_lanes;
mod bundle;
mod error;
mod hash;
mod log;
mod map;

pub use bundle::{LogProofBundle, TreeHead};
pub use error::{EmptyMapValueError, HashError, LogError, ProofError};
pub use hash::{branch_hash, empty_log_root, leaf_hash, Hash, HASH_LEN};
pub use log::RegistryLog;
pub use map::{empty_map_root, empty_subtree_hash, KeyPath, Map, MapProof, MapValue, MAP_HEIGHT};
