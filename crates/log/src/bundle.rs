//! warg's log proof bundles: inclusion and consistency proofs as one set of node hashes in
//! in-order node numbering, built from a [`RegistryLog`] and verified as warg-v1 section 4.4
//! describes.
//!
//! Numbering: leaf `i` is node `2i`; a node's height is the number of trailing 1-bits of its
//! index; the perfect subtree over leaves `[s, s+2^h)` is node `2s + 2^h − 1`. A log of length
//! `L` is a forest of "balanced roots", one perfect subtree per 1-bit of `L`, tallest first.
//!
//! This module holds plain Rust values only; the protobuf encoding lives elsewhere. Verification
//! trusts nothing in the bundle and never panics.

use crate::error::{LogError, ProofError};
use crate::hash::{branch_hash, empty_log_root, Hash};
use crate::log::RegistryLog;

/// A log length and the root the log had at that length, as a trusted checkpoint states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub length: u64,
    pub root: Hash,
}

/// warg's `LogProofBundle`: proofs of inclusion and consistency against one log length, sharing
/// one set of node hashes. Fields are named and typed as in `proofs.proto`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LogProofBundle {
    /// The log length every proof in the bundle is against.
    pub log_length: u32,
    /// Old lengths from which consistency with `log_length` is proven.
    pub consistent_lengths: Vec<u32>,
    /// Node indices (leaf `i` is node `2i`) whose inclusion is proven.
    pub included_indices: Vec<u32>,
    /// `(node index, node hash)` for every node any proof needs, sorted by node index.
    pub hashes: Vec<(u32, Hash)>,
}

impl RegistryLog {
    /// Builds the warg proof bundle, against the first `log_length` leaves, that proves
    /// consistency from each of `old_lengths` and inclusion of each of `leaf_indices`.
    ///
    /// As in warg, an inclusion proof carries the sibling path and the other balanced roots but
    /// not the leaf's own hash (the verifier hashes the leaf it holds); a consistency proof also
    /// carries the hash of each old balanced root.
    pub fn proof_bundle(
        &self,
        log_length: u64,
        old_lengths: &[u64],
        leaf_indices: &[u64],
    ) -> Result<LogProofBundle, LogError> {
        self.check_length(log_length)?;
        let bundle_length = u32::try_from(log_length)
            .ok()
            .filter(|length| *length <= u32::MAX / 2)
            .ok_or(LogError::LengthTooLargeForBundle { log_length })?;

        let mut nodes_needed = Vec::new();
        let mut consistent_lengths = Vec::with_capacity(old_lengths.len());
        for &old_length in old_lengths {
            if old_length > log_length {
                return Err(LogError::OldLengthAfterNew {
                    old_length,
                    new_length: log_length,
                });
            }
            if old_length == 0 && log_length > 0 {
                return Err(LogError::ConsistencyFromEmptyLog {
                    new_length: log_length,
                });
            }
            consistent_lengths.push(old_length as u32);
            for old_root in balanced_roots(old_length) {
                nodes_needed.push(old_root);
                nodes_needed.extend(inclusion_walk(old_root, log_length).nodes());
            }
        }

        let mut included_indices = Vec::with_capacity(leaf_indices.len());
        for &leaf_index in leaf_indices {
            if leaf_index >= log_length {
                return Err(LogError::LeafIndexOutOfRange {
                    leaf_index,
                    log_length,
                });
            }
            let leaf_node = 2 * leaf_index;
            included_indices.push(leaf_node as u32);
            nodes_needed.extend(inclusion_walk(leaf_node, log_length).nodes());
        }

        nodes_needed.sort_unstable();
        nodes_needed.dedup();
        let hashes = nodes_needed
            .into_iter()
            .map(|node| {
                let hash = self
                    .node_hash(node)
                    .expect("every node of a walk at a stored length is stored");
                (node as u32, hash)
            })
            .collect();

        Ok(LogProofBundle {
            log_length: bundle_length,
            consistent_lengths,
            included_indices,
            hashes,
        })
    }
}

impl LogProofBundle {
    /// Checks that the bundle proves the leaf with hash `leaf_hash` sits at `leaf_index` in the
    /// log described by `head`. The bundle must be for `head.length` and must list the leaf.
    pub fn verify_inclusion(
        &self,
        head: &TreeHead,
        leaf_index: u64,
        leaf_hash: &Hash,
    ) -> Result<(), ProofError> {
        self.check_length(head)?;
        let leaf_node = leaf_index
            .checked_mul(2)
            .filter(|node| self.included_indices.iter().any(|&n| u64::from(n) == *node))
            .ok_or(ProofError::LeafNotInBundle { leaf_index })?;
        let known = KnownHashes::new(&self.hashes)?;
        let root = evaluate_inclusion(&known, leaf_node, *leaf_hash, head.length)?;
        if root != head.root {
            return Err(ProofError::RootMismatch);
        }
        Ok(())
    }

    /// Checks that the bundle proves the log described by `old` is a prefix of the one described
    /// by `new`. The bundle must be for `new.length` and must list `old.length`.
    ///
    /// As warg does: the inclusion of each balanced root of the old log in the new log is
    /// evaluated, all must give the same new root, and the old root is the right-associative
    /// bag of the old balanced roots. Consistency from length 0 to a longer log is refused.
    pub fn verify_consistency(&self, old: &TreeHead, new: &TreeHead) -> Result<(), ProofError> {
        self.check_length(new)?;
        if !self
            .consistent_lengths
            .iter()
            .any(|&length| u64::from(length) == old.length)
        {
            return Err(ProofError::OldLengthNotInBundle {
                old_length: old.length,
            });
        }
        if old.length > new.length {
            return Err(ProofError::OldSizeAfterNew {
                old_size: old.length,
                new_size: new.length,
            });
        }
        if old.length == 0 {
            if new.length > 0 {
                return Err(ProofError::ConsistencyFromEmptyTree);
            }
            if old.root != empty_log_root() || new.root != empty_log_root() {
                return Err(ProofError::RootMismatch);
            }
            return Ok(());
        }
        let known = KnownHashes::new(&self.hashes)?;
        let old_roots = balanced_roots(old.length);
        let mut old_root_hashes = Vec::with_capacity(old_roots.len());
        let mut new_root = None;
        for old_root_node in old_roots {
            let old_root_hash = known.get(old_root_node)?;
            old_root_hashes.push(old_root_hash);
            let found = evaluate_inclusion(&known, old_root_node, old_root_hash, new.length)?;
            match new_root {
                None => new_root = Some(found),
                Some(previous) if previous != found => return Err(ProofError::DivergingNewRoots),
                Some(_) => {}
            }
        }
        if bag_right_to_left(&old_root_hashes) != old.root {
            return Err(ProofError::OldRootMismatch);
        }
        if new_root != Some(new.root) {
            return Err(ProofError::NewRootMismatch);
        }
        Ok(())
    }

    fn check_length(&self, head: &TreeHead) -> Result<(), ProofError> {
        if u64::from(self.log_length) != head.length {
            return Err(ProofError::BundleLengthMismatch {
                bundle_length: u64::from(self.log_length),
                expected_length: head.length,
            });
        }
        Ok(())
    }
}

/// The bundle's node hashes, checked to be sorted by strictly increasing node index.
struct KnownHashes<'a>(&'a [(u32, Hash)]);

impl<'a> KnownHashes<'a> {
    fn new(hashes: &'a [(u32, Hash)]) -> Result<Self, ProofError> {
        if hashes.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(ProofError::UnsortedNodeHashes);
        }
        Ok(KnownHashes(hashes))
    }

    fn get(&self, node: u64) -> Result<Hash, ProofError> {
        let missing = ProofError::MissingNodeHash { node };
        let node = u32::try_from(node).map_err(|_| missing.clone())?;
        self.0
            .binary_search_by_key(&node, |(index, _)| *index)
            .map(|position| self.0[position].1)
            .map_err(|_| missing)
    }
}

/// Evaluates warg's inclusion proof of `node` (whose hash is `node_hash`) in the log of
/// `log_length` leaves and returns the root it leads to.
fn evaluate_inclusion(
    known: &KnownHashes<'_>,
    node: u64,
    node_hash: Hash,
    log_length: u64,
) -> Result<Hash, ProofError> {
    if !node_exists_at_length(node, log_length) {
        return Err(ProofError::LeafIndexOutOfRange {
            leaf_index: node / 2,
            tree_size: log_length,
        });
    }
    let walk = inclusion_walk(node, log_length);
    let mut current = (node, node_hash);
    for &sibling in &walk.siblings {
        current = combine(current, (sibling, known.get(sibling)?));
    }
    let smaller = walk.smaller_roots();
    if let Some((&smallest, rest)) = smaller.split_last() {
        let mut accumulated = (smallest, known.get(smallest)?);
        for &root in rest.iter().rev() {
            accumulated = combine(accumulated, (root, known.get(root)?));
        }
        current = combine(current, accumulated);
    }
    for &root in walk.taller_roots().iter().rev() {
        current = combine(current, (root, known.get(root)?));
    }
    Ok(current.1)
}

/// Hashes two adjacent subtrees, the one with the smaller node index on the left, and names the
/// result after the second input (as warg does; only the order of indices matters later).
fn combine(first: (u64, Hash), second: (u64, Hash)) -> (u64, Hash) {
    let hash = if first.0 < second.0 {
        branch_hash(&first.1, &second.1)
    } else {
        branch_hash(&second.1, &first.1)
    };
    (second.0, hash)
}

/// Right-associative bag of hashes: `branch(h0, branch(h1, …))`.
fn bag_right_to_left(hashes: &[Hash]) -> Hash {
    let Some((last, rest)) = hashes.split_last() else {
        return empty_log_root();
    };
    rest.iter()
        .rev()
        .fold(*last, |accumulated, hash| branch_hash(hash, &accumulated))
}

/// The nodes an inclusion proof of one node visits, in the order verification uses them.
struct InclusionWalk {
    /// Siblings from the node up to (not including) its balanced root.
    siblings: Vec<u64>,
    /// All balanced roots of the log, tallest first.
    roots: Vec<u64>,
    /// Position in `roots` of the balanced root above the node.
    reached: usize,
}

impl InclusionWalk {
    fn taller_roots(&self) -> &[u64] {
        &self.roots[..self.reached]
    }

    fn smaller_roots(&self) -> &[u64] {
        &self.roots[self.reached + 1..]
    }

    fn nodes(&self) -> impl Iterator<Item = u64> + '_ {
        self.siblings
            .iter()
            .chain(self.taller_roots())
            .chain(self.smaller_roots())
            .copied()
    }
}

/// The walk from `node` (which must exist at `log_length`) up to its balanced root.
fn inclusion_walk(node: u64, log_length: u64) -> InclusionWalk {
    let roots = balanced_roots(log_length);
    let mut siblings = Vec::new();
    let mut current = node;
    loop {
        if let Some(reached) = roots.iter().position(|&root| root == current) {
            return InclusionWalk {
                siblings,
                roots,
                reached,
            };
        }
        siblings.push(sibling(current));
        current = parent(current);
    }
}

/// The balanced roots of a log of `log_length` leaves, tallest (leftmost) first.
pub(crate) fn balanced_roots(log_length: u64) -> Vec<u64> {
    let mut roots = Vec::new();
    let mut start = 0u64;
    for height in (0..64).rev() {
        let width = 1u64 << height;
        if log_length & width != 0 {
            roots.push(2 * start + width - 1);
            start += width;
        }
    }
    roots
}

fn height(node: u64) -> u32 {
    node.trailing_ones()
}

/// Whether every leaf under `node` is among the first `log_length` leaves.
fn node_exists_at_length(node: u64, log_length: u64) -> bool {
    let height = height(node);
    if height >= 63 {
        return false;
    }
    let first_leaf = (node >> (height + 1)) << height;
    first_leaf + (1 << height) <= log_length
}

fn sibling(node: u64) -> u64 {
    node ^ (1 << (height(node) + 1))
}

fn parent(node: u64) -> u64 {
    let height = height(node);
    if (node >> (height + 1)).is_multiple_of(2) {
        node + (1 << height)
    } else {
        node - (1 << height)
    }
}
