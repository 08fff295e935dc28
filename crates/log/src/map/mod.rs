//! The verifiable map: warg's 256-level sparse Merkle tree from key paths to values, persistent
//! (every update returns a new map sharing structure with the old one, so any snapshot keeps its
//! root and proofs), with warg's compressed proofs of inclusion and proofs of absence.
//!
//! Hashing (warg-v1 section 4.2): a key's path is the 256 bits of `SHA256(key)`, read from the
//! most significant bit of byte 0, which picks the side below the root (0 = left). A leaf is
//! `SHA256(0x00 ‖ value)`, a branch `SHA256(0x01 ‖ left ‖ right)`, an empty leaf `SHA256(0x00)` and
//! an empty subtree of height `h` is `E(h) = SHA256(0x01 ‖ E(h−1) ‖ E(h−1))`. The root always equals
//! that of the full 256-level tree.
//!
//! Storage is compressed: a subtree holding one key is a single leaf node and a chain of
//! one-child nodes is skipped, so an update creates only the O(log n) forks above its key. The
//! hashes of the skipped levels are still computed (the root must match the full tree), so an
//! update costs about 256 branch hashes whatever the size of the map. [`Map::extend`] applies a
//! batch, hashing shared levels once and running the hash chains of different keys side by
//! side, which roughly halves the cost per key; a large batch is also split between the two
//! sides of the root and built on two threads (see `update`).
//!
//! The key is never hashed here: callers pass a [`KeyPath`], built from the raw key bytes by
//! [`KeyPath::of_key`] (which hashes them) or from an already computed hash.

use std::sync::{Arc, LazyLock};

use crate::error::{EmptyMapValueError, ProofError};
use crate::hash::{branch_hash, leaf_hash, Hash};

mod update;

/// Number of levels below the root; also the number of bits in a key path.
pub const MAP_HEIGHT: usize = 256;

/// `EMPTY_SUBTREE_HASHES[h]` is `E(h)`, the hash of an empty subtree of height `h`.
pub(crate) static EMPTY_SUBTREE_HASHES: LazyLock<[Hash; MAP_HEIGHT + 1]> = LazyLock::new(|| {
    let mut hashes = [leaf_hash(&[]); MAP_HEIGHT + 1];
    for height in 1..=MAP_HEIGHT {
        hashes[height] = branch_hash(&hashes[height - 1], &hashes[height - 1]);
    }
    hashes
});

/// `E(height)`: the hash of an empty subtree of that height (0 is an empty leaf, 256 the empty
/// map). Panics if `height` is above 256.
pub fn empty_subtree_hash(height: usize) -> Hash {
    EMPTY_SUBTREE_HASHES[height]
}

/// The root of the map with no keys, `E(256)`:
/// `c6689f10812a0980976d9533d83875282166159567ec35155716c1413af53d6a`.
pub fn empty_map_root() -> Hash {
    EMPTY_SUBTREE_HASHES[MAP_HEIGHT]
}

/// Where a key lives in the map: the 256-bit `SHA256` of the key's bytes.
///
/// Build it with [`KeyPath::of_key`] from the raw key (for warg, the 32 raw digest bytes of the
/// log ID), or with [`KeyPath::from_hashed`] when the hash is already taken. Every map method
/// takes a `KeyPath`, so a key is never hashed twice or not at all by mistake.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyPath(Hash);

impl KeyPath {
    /// The path of the key whose bytes are `key`: `SHA256(key)`.
    pub fn of_key(key: &[u8]) -> Self {
        KeyPath(Hash::sha256(key))
    }

    /// A path already computed as `SHA256(key)`.
    pub const fn from_hashed(path: Hash) -> Self {
        KeyPath(path)
    }

    /// The path's 256 bits as a hash.
    pub const fn as_hash(&self) -> &Hash {
        &self.0
    }

    /// The bit that picks the side below a node at `height` (1..=256): 0 left, 1 right.
    pub(crate) fn goes_right_below(&self, height: usize) -> bool {
        self.0.bit(MAP_HEIGHT - height)
    }

    /// Index (from the most significant bit) of the first bit where `self` and `other` differ.
    pub(crate) fn first_difference(&self, other: &KeyPath) -> Option<usize> {
        let (ours, theirs) = (self.0.as_bytes(), other.0.as_bytes());
        ours.iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .map(|byte| 8 * byte + (ours[byte] ^ theirs[byte]).leading_zeros() as usize)
    }
}

/// A value stored in the map: a non-empty byte string.
///
/// Empty values are refused because warg hashes an empty value exactly like an empty slot, so
/// an empty value would prove absent and absent keys would prove "present with no bytes".
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MapValue(Arc<[u8]>);

impl MapValue {
    /// Copies `bytes` into a map value; they must not be empty.
    pub fn new(bytes: &[u8]) -> Result<Self, EmptyMapValueError> {
        if bytes.is_empty() {
            return Err(EmptyMapValueError);
        }
        Ok(MapValue(bytes.into()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The leaf hash of this value: `SHA256(0x00 ‖ value)`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.0)
    }
}

impl TryFrom<Vec<u8>> for MapValue {
    type Error = EmptyMapValueError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        if bytes.is_empty() {
            return Err(EmptyMapValueError);
        }
        Ok(MapValue(bytes.into()))
    }
}

/// A persistent sparse Merkle map from [`KeyPath`] to [`MapValue`].
///
/// Cloning is O(1) and a clone is a snapshot: [`Map::insert`] returns a new map and leaves
/// `self` untouched, the two sharing every unchanged node.
#[derive(Clone, Default)]
pub struct Map {
    root: Option<Slot>,
    len: u64,
}

/// A non-empty subtree in the slot of some height below a fork (or the root slot, height 256).
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) node: Arc<Node>,
    /// The subtree's hash at the slot's height: the node's own hash lifted through the skipped
    /// one-child levels between the node and the slot.
    pub(crate) hash: Hash,
}

pub(crate) enum Node {
    /// The only key in its subtree.
    Leaf {
        path: KeyPath,
        value: MapValue,
        leaf_hash: Hash,
    },
    /// A node at `height` with keys on both sides.
    Fork {
        height: usize,
        /// The path of any key below; its first `256 − height` bits are this node's position.
        path: KeyPath,
        left: Slot,
        right: Slot,
    },
}

impl Node {
    pub(crate) fn height(&self) -> usize {
        match self {
            Node::Leaf { .. } => 0,
            Node::Fork { height, .. } => *height,
        }
    }

    pub(crate) fn path(&self) -> &KeyPath {
        match self {
            Node::Leaf { path, .. } | Node::Fork { path, .. } => path,
        }
    }

    /// The hash of the subtree rooted at this node, at the node's own height.
    fn own_hash(&self) -> Hash {
        match self {
            Node::Leaf { leaf_hash, .. } => *leaf_hash,
            Node::Fork { left, right, .. } => branch_hash(&left.hash, &right.hash),
        }
    }
}

/// Hashes `hash`, the subtree at height `from` on `path`, up to height `to` through levels whose
/// other side is empty.
fn lift(mut hash: Hash, path: &KeyPath, from: usize, to: usize) -> Hash {
    for height in from..to {
        let empty = &EMPTY_SUBTREE_HASHES[height];
        hash = if path.goes_right_below(height + 1) {
            branch_hash(empty, &hash)
        } else {
            branch_hash(&hash, empty)
        };
    }
    hash
}

impl Map {
    /// The empty map.
    pub fn new() -> Self {
        Map::default()
    }

    /// Number of keys in the map.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root hash, equal to that of the full 256-level tree.
    pub fn root(&self) -> Hash {
        self.root
            .as_ref()
            .map_or_else(empty_map_root, |slot| slot.hash)
    }

    /// The value stored at `path`, if any.
    pub fn get(&self, path: &KeyPath) -> Option<&MapValue> {
        let mut slot = self.root.as_ref()?;
        loop {
            match &*slot.node {
                Node::Leaf {
                    path: leaf_path,
                    value,
                    ..
                } => return (leaf_path == path).then_some(value),
                Node::Fork {
                    height,
                    left,
                    right,
                    ..
                } => {
                    slot = if path.goes_right_below(*height) {
                        right
                    } else {
                        left
                    };
                }
            }
        }
    }

    /// A new map where `path` holds `value`, replacing any previous value. `self` is unchanged.
    /// Costs about 256 branch hashes (two chains of them run side by side when the key is new)
    /// and O(number of forks above the key) new nodes.
    pub fn insert(&self, path: KeyPath, value: MapValue) -> Map {
        self.extend([(path, value)])
    }

    /// A new map with every `(path, value)` of `entries` set (for a path given twice, the later
    /// value wins). `self` is unchanged.
    ///
    /// Cheaper per entry than [`Map::insert`] one by one: levels shared by several entries are
    /// hashed once, and the hash chains of different entries run side by side (see
    /// `branch_lanes`). A batch of 256 entries or more that changes both sides of the root is
    /// built as two halves, one on a scoped second thread; the result is the same either way. A
    /// registry applies the records of one checkpoint as one batch.
    pub fn extend(&self, entries: impl IntoIterator<Item = (KeyPath, MapValue)>) -> Map {
        let mut entries: Vec<(KeyPath, MapValue)> = entries.into_iter().collect();
        if entries.is_empty() {
            return self.clone();
        }
        // Sort by path (the tree's left-to-right order) keeping only the last value of a path.
        entries.reverse();
        entries.sort_by_key(|(path, _)| *path);
        entries.dedup_by(|later, kept| later.0 == kept.0);

        let (root, added_keys) = update::apply(self.root.as_ref(), &entries);
        Map {
            root: Some(root),
            len: self.len + added_keys,
        }
    }

    /// The proof, in warg's compressed form, that `path` holds its current value, or that it
    /// is absent if it holds none.
    pub fn prove(&self, path: &KeyPath) -> MapProof {
        // Non-empty siblings as (height, hash), found from the root down.
        let mut siblings = Vec::new();
        let mut next = self.root.as_ref().map(|slot| (slot, MAP_HEIGHT));
        while let Some((slot, slot_height)) = next.take() {
            let node = &*slot.node;
            let node_height = node.height();
            // Where the path leaves this subtree's compressed chain, the subtree is the sibling.
            let departure = path
                .first_difference(node.path())
                .filter(|&bit| bit < MAP_HEIGHT - node_height);
            if let Some(bit) = departure {
                let sibling_height = MAP_HEIGHT - bit - 1;
                let hash = lift(node.own_hash(), node.path(), node_height, sibling_height);
                siblings.push((sibling_height, hash));
                break;
            }
            if let Node::Fork {
                height,
                left,
                right,
                ..
            } = node
            {
                let (towards, away) = if path.goes_right_below(*height) {
                    (right, left)
                } else {
                    (left, right)
                };
                siblings.push((height - 1, away.hash));
                next = Some((towards, height - 1));
            }
            debug_assert!(slot_height >= node_height);
        }

        let lowest = siblings.last().map_or(MAP_HEIGHT, |&(height, _)| height);
        let mut bottom_up = vec![None; MAP_HEIGHT - lowest];
        for (height, hash) in siblings {
            bottom_up[height - lowest] = Some(hash);
        }
        MapProof {
            siblings: bottom_up,
        }
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("len", &self.len)
            .field("root", &self.root())
            .finish()
    }
}

/// warg's compressed map proof: the sibling hashes on a key's path, bottom-up (element 0 is the
/// lowest listed sibling, the last the child of the root on the other side), with the empty
/// siblings at the bottom left out and `None` for an empty sibling higher up.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MapProof {
    pub siblings: Vec<Option<Hash>>,
}

impl MapProof {
    /// The root this proof leads to if the leaf at `path` has hash `leaf_hash`. The caller must
    /// compare it with a root it trusts; prefer [`MapProof::verify_inclusion`] and
    /// [`MapProof::verify_absence`].
    pub fn root_for_leaf(&self, path: &KeyPath, leaf_hash: &Hash) -> Result<Hash, ProofError> {
        let omitted =
            MAP_HEIGHT
                .checked_sub(self.siblings.len())
                .ok_or(ProofError::TooManySiblings {
                    count: self.siblings.len(),
                })?;
        let mut hash = lift(*leaf_hash, path, 0, omitted);
        for (offset, sibling) in self.siblings.iter().enumerate() {
            let height = omitted + offset;
            let sibling = sibling.as_ref().unwrap_or(&EMPTY_SUBTREE_HASHES[height]);
            hash = if path.goes_right_below(height + 1) {
                branch_hash(sibling, &hash)
            } else {
                branch_hash(&hash, sibling)
            };
        }
        Ok(hash)
    }

    /// Checks that the map with root `root` holds `value` at `path`.
    pub fn verify_inclusion(
        &self,
        root: &Hash,
        path: &KeyPath,
        value: &[u8],
    ) -> Result<(), ProofError> {
        if value.is_empty() {
            return Err(ProofError::EmptyMapValue);
        }
        self.check_root(root, path, &leaf_hash(value))
    }

    /// Checks that the map with root `root` holds nothing at `path`.
    pub fn verify_absence(&self, root: &Hash, path: &KeyPath) -> Result<(), ProofError> {
        self.check_root(root, path, &EMPTY_SUBTREE_HASHES[0])
    }

    fn check_root(&self, root: &Hash, path: &KeyPath, leaf_hash: &Hash) -> Result<(), ProofError> {
        if self.root_for_leaf(path, leaf_hash)? != *root {
            return Err(ProofError::RootMismatch);
        }
        Ok(())
    }
}
