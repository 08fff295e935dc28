//! Verification of RFC 6962 audit paths: inclusion and consistency proofs checked exactly as
//! RFC 9162 sections 2.1.3.2 and 2.1.4.2 describe, plus the edge rules every verifier needs
//! (equal sizes, the empty old tree, an old size beyond the new one, an index beyond the size).
//!
//! These functions trust nothing they are given and never panic: a proof of the wrong length,
//! an absurd index or size, or a hash that does not fit all end in a [`ProofError`].

use crate::error::ProofError;
use crate::hash::{branch_hash, empty_log_root, Hash};

/// Checks that `audit_path` proves the leaf with hash `leaf_hash` sits at `leaf_index` in the
/// tree of `tree_size` leaves whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    audit_path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, audit_path)?;
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The root that `audit_path` leads to from `leaf_hash` at `leaf_index` in a tree of
/// `tree_size` leaves. The caller must compare it with a root it trusts; prefer
/// [`verify_inclusion`].
pub fn root_from_inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    audit_path: &[Hash],
) -> Result<Hash, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::LeafIndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    // `index` is the position of the running hash within its level and `last` that of the
    // level's last node; the path ends exactly when `last` reaches 0, the root.
    let mut index = leaf_index;
    let mut last = tree_size - 1;
    let mut running = *leaf_hash;
    for sibling in audit_path {
        if last == 0 {
            return Err(ProofError::ProofTooLong);
        }
        if index % 2 == 1 || index == last {
            running = branch_hash(sibling, &running);
            if index.is_multiple_of(2) {
                // A right-edge node without a sibling at this level: climb to where it has one.
                while index.is_multiple_of(2) && index != 0 {
                    index >>= 1;
                    last >>= 1;
                }
            }
        } else {
            running = branch_hash(&running, sibling);
        }
        index >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::ProofTooShort);
    }
    Ok(running)
}

/// Checks that `proof` shows the tree of `old_size` leaves with root `old_root` is a prefix of
/// the tree of `new_size` leaves with root `new_root` (RFC 9162 section 2.1.4.2).
///
/// Edge rules: `old_size > new_size` fails; equal sizes need an empty proof and equal roots (and
/// for size 0, the empty-tree root); an old size of 0 below a larger new size fails, as
/// consistency with the empty tree proves nothing and a client asking for it has lost its state.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeAfterNew { old_size, new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::NonEmptyProofForEqualSizes);
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        if old_size == 0 && *old_root != empty_log_root() {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    if old_size == 0 {
        return Err(ProofError::ConsistencyFromEmptyTree);
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::EmptyProof);
    };

    // When the old tree is a perfect subtree its root is the implicit first path element.
    let (start, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        (*first, rest)
    };

    let mut index = old_size - 1;
    let mut last = new_size - 1;
    while index % 2 == 1 {
        index >>= 1;
        last >>= 1;
    }
    let mut old_running = start;
    let mut new_running = start;
    for hash in rest {
        if last == 0 {
            return Err(ProofError::ProofTooLong);
        }
        if index % 2 == 1 || index == last {
            old_running = branch_hash(hash, &old_running);
            new_running = branch_hash(hash, &new_running);
            if index.is_multiple_of(2) {
                while index.is_multiple_of(2) && index != 0 {
                    index >>= 1;
                    last >>= 1;
                }
            }
        } else {
            new_running = branch_hash(&new_running, hash);
        }
        index >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if old_running != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_running != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}
