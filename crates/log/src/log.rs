//! The registry log: an append-only RFC 6962 Merkle tree over leaf hashes, kept whole in memory
//! so that the root and the proofs of every past length stay available.
//!
//! Every node hash ever computed is kept, one vector per level: level 0 holds the leaf hashes
//! and level `h` holds the hashes of the perfect subtrees over `[j·2^h, (j+1)·2^h)`. An append
//! adds one leaf and the parents it completes (amortised one branch hash), and never changes a
//! stored hash, so a past length's tree is always a prefix of the stored one. The log must never
//! recompute anything an append already hashed.

use crate::error::LogError;
use crate::hash::{branch_hash, empty_log_root, leaf_hash, Hash};

/// An append-only Merkle log (RFC 6962 tree hashing) over leaf hashes.
#[derive(Clone, Default)]
pub struct RegistryLog {
    /// `levels[h][j]` is the hash of the perfect subtree over leaves `[j·2^h, (j+1)·2^h)`.
    levels: Vec<Vec<Hash>>,
}

impl RegistryLog {
    /// The empty log.
    pub fn new() -> Self {
        RegistryLog::default()
    }

    /// Number of leaves appended so far.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether no leaf was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf holding `data` (hashed as `SHA256(0x00 ‖ data)`) and returns its index.
    pub fn append(&mut self, data: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf whose leaf hash is already computed and returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let leaf_index = self.levels[0].len() - 1;

        // Each odd index at a level completes a pair, whose parent goes one level up.
        let mut index = leaf_index;
        let mut level = 0;
        while index % 2 == 1 {
            let parent = branch_hash(&self.levels[level][index - 1], &self.levels[level][index]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            index /= 2;
            level += 1;
        }
        leaf_index as u64
    }

    /// The leaf hash at `leaf_index`, if that leaf exists.
    pub fn leaf_hash(&self, leaf_index: u64) -> Option<Hash> {
        let index = usize::try_from(leaf_index).ok()?;
        self.levels.first()?.get(index).copied()
    }

    /// The root of the whole log.
    pub fn root(&self) -> Hash {
        self.subtree_hash(0, self.len())
    }

    /// The root the log had when it was `log_length` leaves long.
    pub fn root_at(&self, log_length: u64) -> Result<Hash, LogError> {
        self.check_length(log_length)?;
        Ok(self.subtree_hash(0, log_length))
    }

    /// The RFC 6962 inclusion proof (audit path, RFC 9162 section 2.1.3.1) of leaf `leaf_index` in
    /// the tree of the first `log_length` leaves: sibling hashes from the leaf upwards.
    pub fn inclusion_proof(&self, leaf_index: u64, log_length: u64) -> Result<Vec<Hash>, LogError> {
        self.check_length(log_length)?;
        if leaf_index >= log_length {
            return Err(LogError::LeafIndexOutOfRange {
                leaf_index,
                log_length,
            });
        }
        // Walk down from the root, noting each sibling; the proof lists them bottom-up.
        let mut siblings_top_down = Vec::new();
        let (mut start, mut end) = (0, log_length);
        while end - start > 1 {
            let split = start + largest_power_of_two_below(end - start);
            if leaf_index < split {
                siblings_top_down.push(self.subtree_hash(split, end));
                end = split;
            } else {
                siblings_top_down.push(self.subtree_hash(start, split));
                start = split;
            }
        }
        siblings_top_down.reverse();
        Ok(siblings_top_down)
    }

    /// The RFC 6962 consistency proof (RFC 9162 section 2.1.4.1) between the trees of the first
    /// `old_length` and the first `new_length` leaves. It is empty when the lengths are equal.
    /// Consistency from length 0 to a longer log is refused: verifiers reject it.
    pub fn consistency_proof(
        &self,
        old_length: u64,
        new_length: u64,
    ) -> Result<Vec<Hash>, LogError> {
        self.check_length(new_length)?;
        if old_length > new_length {
            return Err(LogError::OldLengthAfterNew {
                old_length,
                new_length,
            });
        }
        if old_length == new_length {
            return Ok(Vec::new());
        }
        if old_length == 0 {
            return Err(LogError::ConsistencyFromEmptyLog { new_length });
        }
        // SUBPROOF(m, D[start:end], old_is_whole_subtree), unrolled into a walk down the tree.
        let mut hashes_top_down = Vec::new();
        let (mut start, mut end) = (0, new_length);
        let mut old_is_whole_subtree = true;
        loop {
            let old_in_range = old_length - start;
            if old_in_range == end - start {
                if !old_is_whole_subtree {
                    hashes_top_down.push(self.subtree_hash(start, end));
                }
                break;
            }
            let split = start + largest_power_of_two_below(end - start);
            if old_length <= split {
                hashes_top_down.push(self.subtree_hash(split, end));
                end = split;
            } else {
                hashes_top_down.push(self.subtree_hash(start, split));
                start = split;
                old_is_whole_subtree = false;
            }
        }
        hashes_top_down.reverse();
        Ok(hashes_top_down)
    }

    /// The hash of node `node` in warg's in-order numbering (leaf `i` is node `2i`; the perfect
    /// subtree over `[s, s+2^h)` is node `2s + 2^h − 1`), if that subtree is complete in the log.
    pub fn node_hash(&self, node: u64) -> Option<Hash> {
        let height = node.trailing_ones() as usize;
        let index = usize::try_from(node.checked_shr(height as u32 + 1)?).ok()?;
        self.levels.get(height)?.get(index).copied()
    }

    pub(crate) fn check_length(&self, log_length: u64) -> Result<(), LogError> {
        if log_length > self.len() {
            return Err(LogError::LengthBeyondLog {
                requested: log_length,
                available: self.len(),
            });
        }
        Ok(())
    }

    /// RFC 6962 Merkle Tree Hash of the leaves `[start, end)`, which must all be appended.
    ///
    /// Aligned perfect subtrees are read from storage; others are split at the largest power of
    /// two below their size. Ranges met in proofs start at a multiple of that power, so the left
    /// part is always stored and the cost is O(log n).
    fn subtree_hash(&self, start: u64, end: u64) -> Hash {
        let size = end - start;
        if size == 0 {
            return empty_log_root();
        }
        if size.is_power_of_two() && start.is_multiple_of(size) {
            let height = size.trailing_zeros() as usize;
            return self.levels[height][(start >> height) as usize];
        }
        let split = start + largest_power_of_two_below(size);
        branch_hash(
            &self.subtree_hash(start, split),
            &self.subtree_hash(split, end),
        )
    }
}

impl std::fmt::Debug for RegistryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLog")
            .field("len", &self.len())
            .field("root", &self.root())
            .finish()
    }
}

/// The largest power of two strictly below `size`, which must be at least 2.
pub(crate) fn largest_power_of_two_below(size: u64) -> u64 {
    1 << (63 - (size - 1).leading_zeros())
}
