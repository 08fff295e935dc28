//! Helpers shared by the integration tests: naive reference computations written straight from
//! the definitions, with no sharing or caching, to check the incremental structures against.

#![allow(dead_code)]

use cairn_log::{branch_hash, empty_log_root, empty_subtree_hash, leaf_hash, Hash, KeyPath};

/// RFC 6962 Merkle Tree Hash of `leaves`, recomputed from scratch by the recursive definition.
pub fn naive_log_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_log_root(),
        1 => leaves[0],
        n => {
            // The largest power of two strictly below n.
            let mut split = 1;
            while split * 2 < n {
                split *= 2;
            }
            branch_hash(
                &naive_log_root(&leaves[..split]),
                &naive_log_root(&leaves[split..]),
            )
        }
    }
}

/// The leaf hashes of leaves `"leaf 0"`, `"leaf 1"`, ...
pub fn numbered_leaf_hashes(count: u64) -> Vec<Hash> {
    (0..count)
        .map(|index| leaf_hash(format!("leaf {index}").as_bytes()))
        .collect()
}

/// Bit `index` of `hash`, most significant bit of byte 0 first.
fn bit(hash: &Hash, index: usize) -> bool {
    (hash.as_bytes()[index / 8] >> (7 - index % 8)) & 1 == 1
}

/// Root of the full 256-level sparse Merkle tree over `(path, value)` entries, recomputed level
/// by level from the definition (empty subtrees are `E(h)`).
pub fn naive_map_root(entries: &[(KeyPath, Vec<u8>)]) -> Hash {
    let leaves: Vec<(Hash, Hash)> = entries
        .iter()
        .map(|(path, value)| (*path.as_hash(), leaf_hash(value)))
        .collect();
    naive_subtree(&leaves, 256)
}

fn naive_subtree(leaves: &[(Hash, Hash)], height: usize) -> Hash {
    if leaves.is_empty() {
        return empty_subtree_hash(height);
    }
    if height == 0 {
        assert_eq!(leaves.len(), 1, "two entries with one path");
        return leaves[0].1;
    }
    let bit_index = 256 - height;
    let (right, left): (Vec<_>, Vec<_>) = leaves.iter().partition(|(path, _)| bit(path, bit_index));
    branch_hash(
        &naive_subtree(&left, height - 1),
        &naive_subtree(&right, height - 1),
    )
}

/// `hash` with bit `bit` (0..256) flipped.
pub fn flip_bit(hash: &Hash, bit: usize) -> Hash {
    let mut bytes = hash.to_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    Hash::from_bytes(bytes)
}

/// The leaves of the RFC 6962 test tree used by the transparency-dev vectors.
pub fn rfc6962_test_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|hex| {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    })
    .collect()
}

/// The shape of the RFC 6962 audit path of leaf `index` in a tree of `size` leaves, from the
/// recursive definition of PATH: for each sibling, bottom-up, whether it is on the left.
pub fn inclusion_path_shape(index: u64, size: u64) -> Vec<bool> {
    if size <= 1 {
        return Vec::new();
    }
    let split = largest_power_of_two_below(size);
    let (mut shape, sibling_on_left) = if index < split {
        (inclusion_path_shape(index, split), false)
    } else {
        (inclusion_path_shape(index - split, size - split), true)
    };
    shape.push(sibling_on_left);
    shape
}

/// The shape of the RFC 6962 consistency proof from `old_size` to `new_size` (both non-zero),
/// from the recursive definition of SUBPROOF: whether the path starts at the old root itself,
/// and for each further hash, bottom-up, whether it is a left sibling.
pub fn consistency_path_shape(old_size: u64, new_size: u64) -> (bool, Vec<bool>) {
    fn subproof(old: u64, new: u64, old_is_whole: bool) -> (bool, Vec<bool>) {
        if old == new {
            return (old_is_whole, Vec::new());
        }
        let split = largest_power_of_two_below(new);
        let ((starts_at_old_root, mut shape), sibling_on_left) = if old <= split {
            (subproof(old, split, old_is_whole), false)
        } else {
            (subproof(old - split, new - split, false), true)
        };
        shape.push(sibling_on_left);
        (starts_at_old_root, shape)
    }
    subproof(old_size, new_size, true)
}

fn largest_power_of_two_below(size: u64) -> u64 {
    let mut power = 1;
    while power * 2 < size {
        power *= 2;
    }
    power
}
