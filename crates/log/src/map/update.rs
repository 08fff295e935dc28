//! Applying a batch of updates to the map: first the new tree's shape, then its hashes.
//!
//! The new shape is built in an arena, reusing every untouched subtree of the old map. Hashing
//! then runs as a set of independent chains: each new or moved node is hashed from its own
//! height up through the skipped one-child levels to its slot, and a fork's chain starts once
//! both its children are hashed. Up to four chains advance together through `branch_lanes`.
//! Finally the arena is frozen into shared nodes. The old map is never modified.

use std::sync::Arc;

use super::{KeyPath, MapValue, Node, Slot, EMPTY_SUBTREE_HASHES, MAP_HEIGHT};
use crate::branch_lanes::branch_hashes;
use crate::hash::{branch_hash, Hash};

/// Applies `entries` (sorted by path, each path once) to the tree under `root`. Returns the new
/// root slot and the number of keys that were not in the map before.
pub(super) fn apply(root: Option<&Slot>, entries: &[Entry]) -> (Slot, u64) {
    let mut build = Build {
        // Each entry adds a leaf and about one fork, plus the forks on the way down.
        nodes: Vec::with_capacity(2 * entries.len() + MAP_HEIGHT / 8),
        added_keys: 0,
    };
    let existing = root.map(|slot| Existing {
        node: &slot.node,
        hash_in_slot: Some(slot.hash),
    });
    let root = build.merge(existing, MAP_HEIGHT, entries);
    build.hash_all();
    let added_keys = build.added_keys;
    (build.freeze(root), added_keys)
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
