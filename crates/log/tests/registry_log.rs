//! The registry log and its RFC 6962 audit paths: roots at every length, inclusion and
//! consistency proofs, and the verification rules of RFC 9162 sections 2.1.3.2 and 2.1.4.2.

mod common;

use std::sync::OnceLock;

use cairn_log::audit_path::{root_from_inclusion_proof, verify_consistency, verify_inclusion};
use cairn_log::{branch_hash, empty_log_root, leaf_hash, Hash, LogError, ProofError, RegistryLog};
use common::{
    consistency_path_shape, flip_bit, inclusion_path_shape, naive_log_root, numbered_leaf_hashes,
    rfc6962_test_leaves,
};
use proptest::prelude::*;

const SHARED_LOG_LENGTH: u64 = 1500;

/// One log of `SHARED_LOG_LENGTH` numbered leaves; the property tests prove against its past
/// lengths, which also checks that later appends leave them intact.
fn shared_log() -> &'static (RegistryLog, Vec<Hash>) {
    static LOG: OnceLock<(RegistryLog, Vec<Hash>)> = OnceLock::new();
    LOG.get_or_init(|| {
        let leaves = numbered_leaf_hashes(SHARED_LOG_LENGTH);
        let mut log = RegistryLog::new();
        for leaf in &leaves {
            log.append_leaf_hash(*leaf);
        }
        (log, leaves)
    })
}

fn log_of(leaves: &[Hash]) -> RegistryLog {
    let mut log = RegistryLog::new();
    for leaf in leaves {
        log.append_leaf_hash(*leaf);
    }
    log
}

fn hash(hex: &str) -> Hash {
    hex.parse().unwrap()
}

#[test]
fn the_empty_log_has_the_sha256_of_nothing_as_root() {
    let log = RegistryLog::new();
    assert_eq!(
        log.root(),
        hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(log.root(), empty_log_root());
    assert!(log.is_empty());
}

#[test]
fn leaves_are_hashed_with_a_zero_byte_prefix_and_branches_with_a_one_byte_prefix() {
    let mut log = RegistryLog::new();
    log.append(b"a");
    log.append(b"b");
    let leaf_a = Hash::sha256(b"\x00a");
    let leaf_b = Hash::sha256(b"\x00b");
    assert_eq!(log.leaf_hash(0), Some(leaf_a));
    let mut branch_message = vec![1u8];
    branch_message.extend_from_slice(leaf_a.as_bytes());
    branch_message.extend_from_slice(leaf_b.as_bytes());
    assert_eq!(log.root(), Hash::sha256(&branch_message));
}

#[test]
fn the_rfc6962_test_tree_has_the_published_roots() {
    let mut log = RegistryLog::new();
    for leaf in rfc6962_test_leaves() {
        log.append(&leaf);
    }
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    for (length, root) in (1..).zip(expected) {
        assert_eq!(log.root_at(length).unwrap(), hash(root), "length {length}");
    }
}

#[test]
fn past_roots_stay_available_after_later_appends() {
    let leaves = numbered_leaf_hashes(100);
    let mut log = RegistryLog::new();
    let mut roots_when_appended = vec![log.root()];
    for leaf in &leaves {
        log.append_leaf_hash(*leaf);
        roots_when_appended.push(log.root());
    }
    for (length, root) in roots_when_appended.iter().enumerate() {
        assert_eq!(log.root_at(length as u64).unwrap(), *root);
    }
}

#[test]
fn every_incremental_root_equals_the_naive_recomputation() {
    let (log, leaves) = shared_log();
    for length in 0..=200 {
        assert_eq!(
            log.root_at(length).unwrap(),
            naive_log_root(&leaves[..length as usize]),
            "length {length}"
        );
    }
}

#[test]
fn append_returns_the_index_of_the_new_leaf() {
    let mut log = RegistryLog::new();
    assert_eq!(log.append(b"first"), 0);
    assert_eq!(log.append(b"second"), 1);
    assert_eq!(log.len(), 2);
}

#[test]
fn a_root_beyond_the_log_is_refused() {
    let log = log_of(&numbered_leaf_hashes(3));
    assert_eq!(
        log.root_at(4),
        Err(LogError::LengthBeyondLog {
            requested: 4,
            available: 3
        })
    );
}

#[test]
fn proofs_for_leaves_or_lengths_beyond_the_log_are_refused() {
    let log = log_of(&numbered_leaf_hashes(3));
    assert!(matches!(
        log.inclusion_proof(3, 3),
        Err(LogError::LeafIndexOutOfRange { .. })
    ));
    assert!(matches!(
        log.inclusion_proof(0, 4),
        Err(LogError::LengthBeyondLog { .. })
    ));
    assert!(matches!(
        log.consistency_proof(3, 2),
        Err(LogError::OldLengthAfterNew { .. })
    ));
    assert!(matches!(
        log.consistency_proof(0, 2),
        Err(LogError::ConsistencyFromEmptyLog { .. })
    ));
    assert!(matches!(
        log.inclusion_proof(u64::MAX, u64::MAX),
        Err(LogError::LengthBeyondLog { .. })
    ));
}

#[test]
fn inclusion_proofs_verify_for_every_leaf_of_every_small_log() {
    let (log, _) = shared_log();
    for size in 1..=70 {
        let root = log.root_at(size).unwrap();
        for leaf_index in 0..size {
            let proof = log.inclusion_proof(leaf_index, size).unwrap();
            let leaf = log.leaf_hash(leaf_index).unwrap();
            verify_inclusion(leaf_index, size, &leaf, &proof, &root)
                .unwrap_or_else(|error| panic!("leaf {leaf_index} of {size}: {error}"));
        }
    }
}

#[test]
fn consistency_proofs_verify_between_every_pair_of_small_lengths() {
    let (log, _) = shared_log();
    for new_size in 1..=70 {
        let new_root = log.root_at(new_size).unwrap();
        for old_size in 1..=new_size {
            let proof = log.consistency_proof(old_size, new_size).unwrap();
            let old_root = log.root_at(old_size).unwrap();
            verify_consistency(old_size, new_size, &old_root, &new_root, &proof)
                .unwrap_or_else(|error| panic!("{old_size} -> {new_size}: {error}"));
        }
    }
}

#[test]
fn an_inclusion_proof_is_at_most_ceil_log2_of_the_size_long() {
    let (log, _) = shared_log();
    for size in [1u64, 2, 3, 7, 8, 9, 1000, SHARED_LOG_LENGTH] {
        let bound = 64 - (size - 1).leading_zeros() as usize;
        for leaf_index in [0, size / 2, size - 1] {
            assert!(log.inclusion_proof(leaf_index, size).unwrap().len() <= bound);
        }
    }
}

#[test]
fn inclusion_of_an_index_at_or_beyond_the_size_fails() {
    let leaf = leaf_hash(b"x");
    for (leaf_index, size) in [(0, 0), (1, 1), (u64::MAX, 5), (u64::MAX, u64::MAX)] {
        assert_eq!(
            verify_inclusion(leaf_index, size, &leaf, &[], &leaf),
            Err(ProofError::LeafIndexOutOfRange {
                leaf_index,
                tree_size: size
            })
        );
    }
}

#[test]
fn an_inclusion_proof_that_is_too_long_or_too_short_fails() {
    let (log, _) = shared_log();
    let proof = log.inclusion_proof(5, 100).unwrap();
    let leaf = log.leaf_hash(5).unwrap();
    let mut longer = proof.clone();
    longer.push(leaf);
    assert_eq!(
        root_from_inclusion_proof(5, 100, &leaf, &longer),
        Err(ProofError::ProofTooLong)
    );
    assert_eq!(
        root_from_inclusion_proof(5, 100, &leaf, &proof[..proof.len() - 1]),
        Err(ProofError::ProofTooShort)
    );
}

#[test]
fn inclusion_in_huge_trees_is_refused_without_panicking() {
    let leaf = leaf_hash(b"x");
    let proof = vec![leaf; 70];
    for size in [u64::MAX, u64::MAX - 1, 1 << 63] {
        assert!(verify_inclusion(size - 1, size, &leaf, &proof, &leaf).is_err());
        assert!(verify_inclusion(0, size, &leaf, &proof[..64], &leaf).is_err());
    }
}

#[test]
fn consistency_to_a_smaller_size_fails() {
    let root = leaf_hash(b"x");
    assert_eq!(
        verify_consistency(3, 2, &root, &root, &[]),
        Err(ProofError::OldSizeAfterNew {
            old_size: 3,
            new_size: 2
        })
    );
}

#[test]
fn consistency_between_equal_sizes_needs_an_empty_proof_and_equal_roots() {
    let (log, _) = shared_log();
    let root = log.root_at(9).unwrap();
    assert_eq!(verify_consistency(9, 9, &root, &root, &[]), Ok(()));
    assert_eq!(
        verify_consistency(9, 9, &root, &root, &[root]),
        Err(ProofError::NonEmptyProofForEqualSizes)
    );
    assert_eq!(
        verify_consistency(9, 9, &root, &log.root_at(8).unwrap(), &[]),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn consistency_between_empty_trees_needs_the_empty_tree_root() {
    let empty = empty_log_root();
    assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
    let other = leaf_hash(b"x");
    assert_eq!(
        verify_consistency(0, 0, &other, &other, &[]),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn consistency_from_the_empty_tree_to_a_larger_one_is_refused() {
    let (log, _) = shared_log();
    let new_root = log.root_at(5).unwrap();
    assert_eq!(
        verify_consistency(0, 5, &empty_log_root(), &new_root, &[]),
        Err(ProofError::ConsistencyFromEmptyTree)
    );
}

#[test]
fn consistency_between_different_sizes_with_an_empty_proof_fails() {
    let (log, _) = shared_log();
    let (old_root, new_root) = (log.root_at(4).unwrap(), log.root_at(8).unwrap());
    assert_eq!(
        verify_consistency(4, 8, &old_root, &new_root, &[]),
        Err(ProofError::EmptyProof)
    );
}

#[test]
fn a_consistency_proof_that_is_too_long_or_too_short_fails() {
    let (log, _) = shared_log();
    let (old_root, new_root) = (log.root_at(6).unwrap(), log.root_at(100).unwrap());
    let proof = log.consistency_proof(6, 100).unwrap();
    let mut longer = proof.clone();
    longer.push(new_root);
    assert_eq!(
        verify_consistency(6, 100, &old_root, &new_root, &longer),
        Err(ProofError::ProofTooLong)
    );
    assert_eq!(
        verify_consistency(6, 100, &old_root, &new_root, &proof[..proof.len() - 1]),
        Err(ProofError::ProofTooShort)
    );
}

#[test]
fn consistency_between_huge_sizes_is_refused_without_panicking() {
    let hash = leaf_hash(b"x");
    let proof = vec![hash; 200];
    for (old_size, new_size) in [(1, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
        assert!(verify_consistency(old_size, new_size, &hash, &hash, &proof).is_err());
        assert!(verify_consistency(old_size, new_size, &hash, &hash, &proof[..1]).is_err());
    }
}

#[test]
fn in_order_node_numbering_names_leaves_and_perfect_subtrees() {
    let (log, leaves) = shared_log();
    // Leaf i is node 2i.
    assert_eq!(log.node_hash(2 * 37), Some(leaves[37]));
    // The perfect subtree over [s, s + 2^h) is node 2s + 2^h - 1.
    for (start, height) in [(0u64, 1u32), (4, 2), (8, 3), (1024, 8), (0, 10)] {
        let width = 1u64 << height;
        let node = 2 * start + width - 1;
        let range = &leaves[start as usize..(start + width) as usize];
        assert_eq!(
            log.node_hash(node),
            Some(naive_log_root(range)),
            "node {node}"
        );
    }
    // A subtree not complete in the log has no hash.
    assert_eq!(log.node_hash(2 * SHARED_LOG_LENGTH), None);
    assert_eq!(log.node_hash(2047), None);
    assert_eq!(log.node_hash(u64::MAX), None);
}

#[test]
fn a_two_leaf_root_is_the_branch_of_its_leaves() {
    let leaves = numbered_leaf_hashes(2);
    let log = log_of(&leaves);
    assert_eq!(log.root(), branch_hash(&leaves[0], &leaves[1]));
}

/// Why a verifier must take the size from the signed tree head along with the root: a proof
/// for leaf 0 of 513 leaves also verifies, against the same root, as leaf 0 of 790 leaves.
#[test]
fn a_size_change_that_keeps_the_path_shape_goes_unnoticed_by_the_proof_alone() {
    let (log, leaves) = shared_log();
    let proof = log.inclusion_proof(0, 513).unwrap();
    let root = log.root_at(513).unwrap();
    assert_eq!(verify_inclusion(0, 790, &leaves[0], &proof, &root), Ok(()));
}

/// A leaf index in `0..size` with `size` in `1..=SHARED_LOG_LENGTH`.
fn index_and_size() -> impl Strategy<Value = (u64, u64)> {
    (1..=SHARED_LOG_LENGTH).prop_flat_map(|size| (0..size, Just(size)))
}

/// Two lengths `old < new` within the shared log.
fn old_and_new_size() -> impl Strategy<Value = (u64, u64)> {
    (2..=SHARED_LOG_LENGTH).prop_flat_map(|new| (1..new, Just(new)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_proofs_verify_at_random_sizes_and_indices((leaf_index, size) in index_and_size()) {
        let (log, leaves) = shared_log();
        let proof = log.inclusion_proof(leaf_index, size).unwrap();
        let root = log.root_at(size).unwrap();
        prop_assert_eq!(
            verify_inclusion(leaf_index, size, &leaves[leaf_index as usize], &proof, &root),
            Ok(())
        );
    }

    #[test]
    fn a_changed_bit_in_an_inclusion_proof_fails(
        (leaf_index, size) in index_and_size(),
        element in any::<prop::sample::Index>(),
        bit in 0..256usize,
    ) {
        let (log, leaves) = shared_log();
        let mut proof = log.inclusion_proof(leaf_index, size).unwrap();
        prop_assume!(!proof.is_empty());
        let element = element.index(proof.len());
        proof[element] = flip_bit(&proof[element], bit);
        let root = log.root_at(size).unwrap();
        prop_assert!(
            verify_inclusion(leaf_index, size, &leaves[leaf_index as usize], &proof, &root).is_err()
        );
    }

    #[test]
    fn a_changed_bit_in_the_leaf_or_root_fails_inclusion(
        (leaf_index, size) in index_and_size(),
        bit in 0..256usize,
    ) {
        let (log, leaves) = shared_log();
        let proof = log.inclusion_proof(leaf_index, size).unwrap();
        let root = log.root_at(size).unwrap();
        let leaf = leaves[leaf_index as usize];
        prop_assert!(verify_inclusion(leaf_index, size, &flip_bit(&leaf, bit), &proof, &root).is_err());
        prop_assert!(verify_inclusion(leaf_index, size, &leaf, &proof, &flip_bit(&root, bit)).is_err());
    }

    #[test]
    fn a_changed_index_fails_inclusion(
        (leaf_index, size) in index_and_size(),
        other_index in 0..2 * SHARED_LOG_LENGTH,
    ) {
        prop_assume!(other_index != leaf_index);
        let (log, leaves) = shared_log();
        let proof = log.inclusion_proof(leaf_index, size).unwrap();
        let root = log.root_at(size).unwrap();
        let leaf = leaves[leaf_index as usize];
        prop_assert!(verify_inclusion(other_index, size, &leaf, &proof, &root).is_err());
    }

    /// RFC 9162 verification binds the size only through the path's shape (see the test
    /// above); the size is bound to the root by the signed tree head, never by the proof.
    #[test]
    fn a_changed_size_fails_inclusion_exactly_when_it_changes_the_path_shape(
        (leaf_index, size) in index_and_size(),
        other_size in 0..2 * SHARED_LOG_LENGTH,
    ) {
        prop_assume!(other_size != size);
        let (log, leaves) = shared_log();
        let proof = log.inclusion_proof(leaf_index, size).unwrap();
        let root = log.root_at(size).unwrap();
        let leaf = leaves[leaf_index as usize];
        let same_shape = leaf_index < other_size
            && inclusion_path_shape(leaf_index, other_size) == inclusion_path_shape(leaf_index, size);
        prop_assert_eq!(
            verify_inclusion(leaf_index, other_size, &leaf, &proof, &root).is_ok(),
            same_shape
        );
    }

    #[test]
    fn consistency_proofs_verify_at_random_sizes((old_size, new_size) in old_and_new_size()) {
        let (log, _) = shared_log();
        let proof = log.consistency_proof(old_size, new_size).unwrap();
        let (old_root, new_root) = (log.root_at(old_size).unwrap(), log.root_at(new_size).unwrap());
        prop_assert_eq!(verify_consistency(old_size, new_size, &old_root, &new_root, &proof), Ok(()));
    }

    #[test]
    fn a_changed_bit_in_a_consistency_proof_or_root_fails(
        (old_size, new_size) in old_and_new_size(),
        element in any::<prop::sample::Index>(),
        bit in 0..256usize,
    ) {
        let (log, _) = shared_log();
        let mut proof = log.consistency_proof(old_size, new_size).unwrap();
        let (old_root, new_root) = (log.root_at(old_size).unwrap(), log.root_at(new_size).unwrap());
        prop_assert!(
            verify_consistency(old_size, new_size, &flip_bit(&old_root, bit), &new_root, &proof).is_err()
        );
        prop_assert!(
            verify_consistency(old_size, new_size, &old_root, &flip_bit(&new_root, bit), &proof).is_err()
        );
        let element = element.index(proof.len());
        proof[element] = flip_bit(&proof[element], bit);
        prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &proof).is_err());
    }

    /// As for inclusion, a changed size goes unnoticed only if the proof keeps its shape.
    #[test]
    fn a_changed_size_fails_consistency_exactly_when_it_changes_the_proof_shape(
        (old_size, new_size) in old_and_new_size(),
        other_size in 0..2 * SHARED_LOG_LENGTH,
    ) {
        let (log, _) = shared_log();
        let proof = log.consistency_proof(old_size, new_size).unwrap();
        let (old_root, new_root) = (log.root_at(old_size).unwrap(), log.root_at(new_size).unwrap());
        let shape = consistency_path_shape(old_size, new_size);
        if other_size != old_size {
            let same_shape = 0 < other_size
                && other_size < new_size
                && consistency_path_shape(other_size, new_size) == shape;
            prop_assert_eq!(
                verify_consistency(other_size, new_size, &old_root, &new_root, &proof).is_ok(),
                same_shape
            );
        }
        if other_size != new_size {
            let same_shape = old_size < other_size
                && consistency_path_shape(old_size, other_size) == shape;
            prop_assert_eq!(
                verify_consistency(old_size, other_size, &old_root, &new_root, &proof).is_ok(),
                same_shape
            );
        }
    }

    #[test]
    fn swapped_roots_fail_consistency((old_size, new_size) in old_and_new_size()) {
        let (log, _) = shared_log();
        let proof = log.consistency_proof(old_size, new_size).unwrap();
        let (old_root, new_root) = (log.root_at(old_size).unwrap(), log.root_at(new_size).unwrap());
        prop_assert!(verify_consistency(old_size, new_size, &new_root, &old_root, &proof).is_err());
    }

    #[test]
    fn random_logs_have_the_naively_recomputed_root_at_every_length(
        leaf_data in prop::collection::vec(any::<Vec<u8>>(), 0..40),
    ) {
        let leaves: Vec<Hash> = leaf_data.iter().map(|data| leaf_hash(data)).collect();
        let mut log = RegistryLog::new();
        for data in &leaf_data {
            log.append(data);
        }
        for length in 0..=leaves.len() {
            prop_assert_eq!(log.root_at(length as u64).unwrap(), naive_log_root(&leaves[..length]));
        }
    }
}
