//! Applying a batch of updates to the map: first the new tree's shape, then its hashes.
//!
//! The new shape is built in an arena, reusing every untouched subtree of the old map. Hashing
//! then runs as a set of independent chains: each new or moved node is hashed from its own
//! height up through the skipped one-child levels to its slot, and a fork's chain starts once
//! both its children are hashed. Up to four chains advance together through `branch_lanes`.
//! Finally the arena is frozen into shared nodes. The old map is never modified.
//!
//! A large batch (at least [`PARALLEL_BATCH`] entries) is cut in two when the new root is a
//! fork at the top of the tree: the entries going left of the root and those going right touch
//! disjoint subtrees, so each half is built, hashed and frozen in an arena of its own, one of
//! them on a second thread, and only the root fork is hashed once both are done. A batch costs
//! hundreds of branch hashes per entry and a thread costs tens of microseconds to start, so on a
//! machine with two cores this nearly doubles the throughput of large batches. The halves are
//! exactly the subtrees the single arena would have built below the root, so the resulting map
//! is identical node for node; when the cut does not apply (small batch, a root that is not a
//! top fork, every entry on one side) the whole batch goes through one arena.

use std::sync::Arc;

use super::{KeyPath, MapValue, Node, Slot, EMPTY_SUBTREE_HASHES, MAP_HEIGHT};
use crate::branch_lanes::branch_hashes;
use crate::hash::{branch_hash, Hash};

/// The smallest batch cut in two halves built on two threads. Below it, starting a thread costs
/// a noticeable part of the batch's time.
pub(super) const PARALLEL_BATCH: usize = 256;

/// Applies `entries` (sorted by path, each path once) to the tree under `root`. Returns the new
/// root slot and the number of keys that were not in the map before.
pub(super) fn apply(root: Option<&Slot>, entries: &[Entry]) -> (Slot, u64) {
    if entries.len() >= PARALLEL_BATCH {
        if let Some(applied) = apply_in_halves(root, entries) {
            return applied;
        }
    }
    apply_below(root, MAP_HEIGHT, entries)
}

/// Applies `entries` to the subtree `existing` (if any) in a slot of `slot_height`, in one
/// arena on the current thread. `entries` must all lie below that slot.
fn apply_below(existing: Option<&Slot>, slot_height: usize, entries: &[Entry]) -> (Slot, u64) {
    let mut build = Build {
        // Each entry adds a leaf and about one fork, plus the forks on the way down.
        nodes: Vec::with_capacity(2 * entries.len() + MAP_HEIGHT / 8),
        added_keys: 0,
    };
    let root = build.merge(existing.map(existing_child), slot_height, entries);
    build.hash_all();
    let added_keys = build.added_keys;
    (build.freeze(root), added_keys)
}

/// Applies `entries` as two halves, left and right of the root, built on two threads, if the
/// new root is a fork at the top whose sides both change; otherwise `None` and nothing is done.
///
/// The cut applies when the old root is a fork at height 256 (the map has keys on both sides)
/// or the map is empty, and the entries go to both sides. The new root is then the same fork as
/// the single arena builds: with the old root's path, or for an empty map the first entry's.
fn apply_in_halves(root: Option<&Slot>, entries: &[Entry]) -> Option<(Slot, u64)> {
    let (old_left, old_right, path) = match root {
        None => (None, None, entries.first()?.0),
        Some(slot) => match &*slot.node {
            Node::Fork {
                height: MAP_HEIGHT,
                path,
                left,
                right,
            } => (Some(left), Some(right), *path),
            // A leaf, or a lower fork (every key on one side): the top fork would be new and
            // would hold the old root on one side. Rare and small; not worth a second path.
            _ => return None,
        },
    };
    let (left_entries, right_entries) = split_by_side(entries, MAP_HEIGHT);
    if left_entries.is_empty() || right_entries.is_empty() {
        return None;
    }
    let ((left, left_added), (right, right_added)) = std::thread::scope(|scope| {
        let left = scope.spawn(|| apply_below(old_left, MAP_HEIGHT - 1, left_entries));
        let right = apply_below(old_right, MAP_HEIGHT - 1, right_entries);
        let left = left
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (left, right)
    });
    // The fork sits in its own slot, so its slot hash is its own hash.
    let hash = branch_hash(&left.hash, &right.hash);
    let node = Arc::new(Node::Fork {
        height: MAP_HEIGHT,
        path,
        left,
        right,
    });
    Some((Slot { node, hash }, left_added + right_added))
}

type BuildId = usize;

/// A key and its new value.
type Entry = (KeyPath, MapValue);

/// An old subtree being merged, and its hash if it stays in a slot of the same height.
#[derive(Clone, Copy)]
struct Existing<'a> {
    node: &'a Arc<Node>,
    hash_in_slot: Option<Hash>,
}

/// A subtree of the new tree.
enum Part {
    /// Unchanged and in a slot of the same height: its slot hash is known.
    Kept(Slot),
    /// New, changed or moved: built in the arena and hashed later.
    Built(BuildId),
}

enum Shape {
    Leaf {
        value: MapValue,
        leaf_hash: Hash,
    },
    /// An unchanged old subtree in a new, lower slot: only its lift is recomputed.
    Moved(Arc<Node>),
    Fork {
        left: Part,
        right: Part,
    },
}

struct BuildNode {
    /// Taken out when the arena is frozen.
    shape: Option<Shape>,
    height: usize,
    path: KeyPath,
    slot_height: usize,
    parent: Option<BuildId>,
    /// Children of a fork still waiting for their hash.
    unhashed_children: u8,
    slot_hash: Option<Hash>,
}

/// A node being hashed up to its slot: `hash` is its subtree's hash at `height`.
struct Chain {
    node: BuildId,
    hash: Hash,
    height: usize,
    slot_height: usize,
    path: KeyPath,
    /// The right-hand input of the next step, when it is a fork's right child rather than an
    /// empty subtree.
    right_sibling: Option<Hash>,
}

impl Chain {
    fn is_done(&self) -> bool {
        self.height == self.slot_height && self.right_sibling.is_none()
    }

    /// The inputs of the next step up.
    fn next_inputs(&self) -> (Hash, Hash) {
        if let Some(right) = self.right_sibling {
            return (self.hash, right);
        }
        let empty = EMPTY_SUBTREE_HASHES[self.height];
        if self.path.goes_right_below(self.height + 1) {
            (empty, self.hash)
        } else {
            (self.hash, empty)
        }
    }

    fn step(&mut self, parent_hash: Hash) {
        self.hash = parent_hash;
        self.height += 1;
        self.right_sibling = None;
    }
}

struct Build {
    nodes: Vec<BuildNode>,
    added_keys: u64,
}

impl Build {
    fn merge(
        &mut self,
        existing: Option<Existing<'_>>,
        slot_height: usize,
        entries: &[Entry],
    ) -> Part {
        let Some(existing) = existing else {
            return self.fresh(entries, slot_height);
        };
        let node = existing.node;
        if entries.is_empty() {
            return match existing.hash_in_slot {
                Some(hash) => Part::Kept(Slot {
                    node: node.clone(),
                    hash,
                }),
                None => self.add(
                    Shape::Moved(node.clone()),
                    node.height(),
                    *node.path(),
                    slot_height,
                ),
            };
        }

        // The highest bit on which the entries and the old subtree's keys disagree.
        let (first, last) = (&entries[0].0, &entries[entries.len() - 1].0);
        let lowest = first.min(node.path());
        let highest = last.max(node.path());
        let split_above_node = lowest
            .first_difference(highest)
            .filter(|&bit| bit < MAP_HEIGHT - node.height());

        if let Some(bit) = split_above_node {
            // The entries leave the old subtree's path above it: a new fork goes there.
            let fork_height = MAP_HEIGHT - bit;
            let (left_entries, right_entries) = split_by_side(entries, fork_height);
            let moved = Some(Existing {
                node,
                hash_in_slot: None,
            });
            let (left, right) = if node.path().goes_right_below(fork_height) {
                let left = self.fresh(left_entries, fork_height - 1);
                (left, self.merge(moved, fork_height - 1, right_entries))
            } else {
                let left = self.merge(moved, fork_height - 1, left_entries);
                (left, self.fresh(right_entries, fork_height - 1))
            };
            return self.add_fork(fork_height, *node.path(), left, right, slot_height);
        }

        match &**node {
            Node::Leaf { .. } => {
                // The one entry has this leaf's path: its value is replaced.
                let (path, value) = &entries[0];
                self.add_leaf(*path, value.clone(), slot_height)
            }
            Node::Fork {
                height,
                path,
                left,
                right,
            } => {
                let (left_entries, right_entries) = split_by_side(entries, *height);
                let left = self.merge(Some(existing_child(left)), height - 1, left_entries);
                let right = self.merge(Some(existing_child(right)), height - 1, right_entries);
                self.add_fork(*height, *path, left, right, slot_height)
            }
        }
    }

    /// A subtree holding only `entries` (not empty) in a slot of `slot_height`.
    fn fresh(&mut self, entries: &[Entry], slot_height: usize) -> Part {
        self.added_keys += entries.len() as u64;
        self.fresh_subtree(entries, slot_height)
    }

    fn fresh_subtree(&mut self, entries: &[Entry], slot_height: usize) -> Part {
        let (first, last) = (&entries[0].0, &entries[entries.len() - 1].0);
        match first.first_difference(last) {
            None => self.add_leaf(*first, entries[0].1.clone(), slot_height),
            Some(bit) => {
                let fork_height = MAP_HEIGHT - bit;
                let (left_entries, right_entries) = split_by_side(entries, fork_height);
                let left = self.fresh_subtree(left_entries, fork_height - 1);
                let right = self.fresh_subtree(right_entries, fork_height - 1);
                self.add_fork(fork_height, *first, left, right, slot_height)
            }
        }
    }

    fn add_leaf(&mut self, path: KeyPath, value: MapValue, slot_height: usize) -> Part {
        let leaf_hash = value.leaf_hash();
        self.add(Shape::Leaf { value, leaf_hash }, 0, path, slot_height)
    }

    fn add_fork(
        &mut self,
        height: usize,
        path: KeyPath,
        left: Part,
        right: Part,
        slot_height: usize,
    ) -> Part {
        let id = self.nodes.len();
        let mut unhashed_children = 0;
        for child in [&left, &right] {
            if let Part::Built(child) = child {
                self.nodes[*child].parent = Some(id);
                unhashed_children += 1;
            }
        }
        let Part::Built(id) = self.add(Shape::Fork { left, right }, height, path, slot_height)
        else {
            unreachable!("add always builds");
        };
        self.nodes[id].unhashed_children = unhashed_children;
        Part::Built(id)
    }

    fn add(&mut self, shape: Shape, height: usize, path: KeyPath, slot_height: usize) -> Part {
        self.nodes.push(BuildNode {
            shape: Some(shape),
            height,
            path,
            slot_height,
            parent: None,
            unhashed_children: 0,
            slot_hash: None,
        });
        Part::Built(self.nodes.len() - 1)
    }

    /// The chain that hashes node `id`, whose built children (if any) are hashed.
    fn chain_for(&self, id: BuildId) -> Chain {
        let node = &self.nodes[id];
        let (hash, height, right_sibling) = match node.shape.as_ref().expect("not frozen yet") {
            Shape::Leaf { leaf_hash, .. } => (*leaf_hash, 0, None),
            Shape::Moved(moved) => match &**moved {
                Node::Leaf { leaf_hash, .. } => (*leaf_hash, 0, None),
                Node::Fork {
                    height,
                    left,
                    right,
                    ..
                } => (left.hash, height - 1, Some(right.hash)),
            },
            Shape::Fork { left, right } => (
                self.part_hash(left),
                node.height - 1,
                Some(self.part_hash(right)),
            ),
        };
        Chain {
            node: id,
            hash,
            height,
            slot_height: node.slot_height,
            path: node.path,
            right_sibling,
        }
    }

    fn part_hash(&self, part: &Part) -> Hash {
        match part {
            Part::Kept(slot) => slot.hash,
            Part::Built(id) => self.nodes[*id]
                .slot_hash
                .expect("children are hashed first"),
        }
    }

    /// Hashes every built node, children before parents, up to four chains at a time.
    fn hash_all(&mut self) {
        let mut ready: Vec<Chain> = (0..self.nodes.len())
            .filter(|&id| self.nodes[id].unhashed_children == 0)
            .map(|id| self.chain_for(id))
            .collect();
        let mut lanes: Vec<Chain> = Vec::with_capacity(4);
        loop {
            while lanes.len() < 4 {
                let Some(chain) = ready.pop() else { break };
                if chain.is_done() {
                    self.finish(chain, &mut ready);
                } else {
                    lanes.push(chain);
                }
            }
            if lanes.is_empty() {
                return;
            }
            if lanes.len() == 1 && ready.is_empty() {
                // Nothing can join this chain until it is done: run it without the lane
                // bookkeeping.
                let chain = &mut lanes[0];
                while !chain.is_done() {
                    let (left, right) = chain.next_inputs();
                    chain.step(branch_hash(&left, &right));
                }
            } else {
                step_lanes(&mut lanes);
            }
            let mut lane = 0;
            while lane < lanes.len() {
                if lanes[lane].is_done() {
                    let chain = lanes.swap_remove(lane);
                    self.finish(chain, &mut ready);
                } else {
                    lane += 1;
                }
            }
        }
    }

    fn finish(&mut self, chain: Chain, ready: &mut Vec<Chain>) {
        let node = &mut self.nodes[chain.node];
        node.slot_hash = Some(chain.hash);
        if let Some(parent) = node.parent {
            self.nodes[parent].unhashed_children -= 1;
            if self.nodes[parent].unhashed_children == 0 {
                ready.push(self.chain_for(parent));
            }
        }
    }

    /// Turns the arena subtree `part` into shared nodes.
    fn freeze(&mut self, part: Part) -> Slot {
        let id = match part {
            Part::Kept(slot) => return slot,
            Part::Built(id) => id,
        };
        let shape = self.nodes[id]
            .shape
            .take()
            .expect("each node is frozen once");
        let hash = self.nodes[id]
            .slot_hash
            .expect("every built node is hashed");
        let node = match shape {
            Shape::Moved(node) => node,
            Shape::Leaf { value, leaf_hash } => Arc::new(Node::Leaf {
                path: self.nodes[id].path,
                value,
                leaf_hash,
            }),
            Shape::Fork { left, right } => Arc::new(Node::Fork {
                height: self.nodes[id].height,
                path: self.nodes[id].path,
                left: self.freeze(left),
                right: self.freeze(right),
            }),
        };
        Slot { node, hash }
    }
}

fn existing_child(slot: &Slot) -> Existing<'_> {
    Existing {
        node: &slot.node,
        hash_in_slot: Some(slot.hash),
    }
}

/// Splits sorted `entries` that share the path above a node at `height` into those going left
/// and those going right below it.
fn split_by_side(entries: &[Entry], height: usize) -> (&[Entry], &[Entry]) {
    let boundary = entries.partition_point(|(path, _)| !path.goes_right_below(height));
    entries.split_at(boundary)
}

/// Advances every chain in `lanes` (one to four) by one level.
fn step_lanes(lanes: &mut [Chain]) {
    let mut inputs = [(Hash::default(), Hash::default()); 4];
    for (input, chain) in inputs.iter_mut().zip(lanes.iter()) {
        *input = chain.next_inputs();
    }
    let pair = |lane: usize| (&inputs[lane].0, &inputs[lane].1);
    match lanes.len() {
        1 => {
            // A lone chain gains nothing from lanes; the plain hash is a little faster.
            let hash = branch_hash(pair(0).0, pair(0).1);
            lanes[0].step(hash);
        }
        2 => {
            let hashes = branch_hashes([pair(0), pair(1)]);
            for (chain, hash) in lanes.iter_mut().zip(hashes) {
                chain.step(hash);
            }
        }
        count => {
            // Three chains use the four-lane kernel too, the spare lane repeating the last.
            let hashes = branch_hashes([pair(0), pair(1), pair(2), pair(3.min(count - 1))]);
            for (chain, hash) in lanes.iter_mut().zip(hashes) {
                chain.step(hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The cut into two halves must build exactly the tree of the single arena: same nodes,
    //! heights, paths, values and slot hashes, not just the same root.

    use proptest::prelude::*;

    use super::*;

    /// Asserts that `a` and `b` are the same tree, node for node.
    fn assert_same_tree(a: &Slot, b: &Slot) {
        assert_eq!(a.hash, b.hash);
        match (&*a.node, &*b.node) {
            (
                Node::Leaf {
                    path,
                    value,
                    leaf_hash,
                },
                Node::Leaf {
                    path: other_path,
                    value: other_value,
                    leaf_hash: other_leaf_hash,
                },
            ) => {
                assert_eq!(path, other_path);
                assert_eq!(value, other_value);
                assert_eq!(leaf_hash, other_leaf_hash);
            }
            (
                Node::Fork {
                    height,
                    path,
                    left,
                    right,
                },
                Node::Fork {
                    height: other_height,
                    path: other_path,
                    left: other_left,
                    right: other_right,
                },
            ) => {
                assert_eq!(height, other_height);
                assert_eq!(path, other_path);
                assert_same_tree(left, other_left);
                assert_same_tree(right, other_right);
            }
            _ => panic!("a leaf where the other tree has a fork"),
        }
    }

    /// Sorted entries, one per path, with the top path bit forced to `side` if given.
    fn entries(
        paths: Vec<[u8; 32]>,
        side: Option<bool>,
        value: impl Fn(usize) -> Vec<u8>,
    ) -> Vec<Entry> {
        let mut entries: Vec<Entry> = paths
            .into_iter()
            .enumerate()
            .map(|(index, mut bytes)| {
                if let Some(right) = side {
                    bytes[0] = (bytes[0] & 0x7F) | (u8::from(right) << 7);
                }
                let path = KeyPath::from_hashed(Hash::from_bytes(bytes));
                (path, MapValue::new(&value(index)).unwrap())
            })
            .collect();
        entries.sort_by_key(|(path, _)| *path);
        entries.dedup_by(|later, kept| later.0 == kept.0);
        entries
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn halves_build_the_same_tree_as_one_arena(
            old_paths in prop_oneof![
                1 => Just(Vec::new()),
                1 => prop::collection::vec(any::<[u8; 32]>(), 1..2),
                4 => prop::collection::vec(any::<[u8; 32]>(), 2..24),
            ],
            old_side in prop::option::weighted(0.3, any::<bool>()),
            // `apply_in_halves` itself takes batches of any size; tests/map.rs goes through
            // `Map::extend` with batches around the threshold.
            new_paths in prop::collection::vec(any::<[u8; 32]>(), 1..80),
            new_side in prop::option::weighted(0.2, any::<bool>()),
            rewritten in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let old = entries(old_paths, old_side, |index| vec![1, index as u8]);
            let old_root = (!old.is_empty()).then(|| apply_below(None, MAP_HEIGHT, &old).0);
            // Some of the batch rewrites keys already in the map.
            let mut new_paths = new_paths;
            for pick in &rewritten {
                if !old.is_empty() {
                    new_paths.push(old[pick.index(old.len())].0.as_hash().to_bytes());
                }
            }
            let batch = entries(new_paths, new_side, |index| vec![2, index as u8]);

            let one_arena = apply_below(old_root.as_ref(), MAP_HEIGHT, &batch);
            let halves = apply_in_halves(old_root.as_ref(), &batch);
            let top_fork = old_root
                .as_ref()
                .is_none_or(|root| root.node.height() == MAP_HEIGHT);
            let both_sides = !batch[0].0.goes_right_below(MAP_HEIGHT)
                && batch[batch.len() - 1].0.goes_right_below(MAP_HEIGHT);
            prop_assert_eq!(halves.is_some(), top_fork && both_sides);
            if let Some((root, added_keys)) = halves {
                assert_same_tree(&root, &one_arena.0);
                prop_assert_eq!(added_keys, one_arena.1);
            }
        }
    }
}
