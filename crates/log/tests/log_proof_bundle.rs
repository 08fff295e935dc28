//! warg's log proof bundles (warg-v1 section 4.4): which node hashes a bundle carries, in
//! in-order node numbering, and how inclusion and consistency are verified from them.

mod common;

use std::sync::OnceLock;

use cairn_log::{
    empty_log_root, leaf_hash, Hash, LogError, LogProofBundle, ProofError, RegistryLog, TreeHead,
};
use common::{flip_bit, naive_log_root, numbered_leaf_hashes};
use proptest::prelude::*;

const SHARED_LOG_LENGTH: u64 = 1500;

fn shared_log() -> &'static RegistryLog {
    static LOG: OnceLock<RegistryLog> = OnceLock::new();
    LOG.get_or_init(|| log_of(SHARED_LOG_LENGTH))
}

fn log_of(length: u64) -> RegistryLog {
    let mut log = RegistryLog::new();
    for leaf in numbered_leaf_hashes(length) {
        log.append_leaf_hash(leaf);
    }
    log
}

fn head(log: &RegistryLog, length: u64) -> TreeHead {
    TreeHead {
        length,
        root: log.root_at(length).unwrap(),
    }
}

fn nodes_of(bundle: &LogProofBundle) -> Vec<u32> {
    bundle.hashes.iter().map(|(node, _)| *node).collect()
}

#[test]
fn an_inclusion_bundle_carries_the_sibling_path_and_the_other_balanced_roots() {
    let log = log_of(7);
    // Leaf 3 is node 6; in a 7-leaf log the balanced roots are nodes 3 (leaves 0-3),
    // 9 (leaves 4-5) and 12 (leaf 6). The walk up from node 6 passes siblings 4 and 1.
    let bundle = log.proof_bundle(7, &[], &[3]).unwrap();
    assert_eq!(bundle.log_length, 7);
    assert_eq!(bundle.included_indices, [6]);
    assert_eq!(nodes_of(&bundle), [1, 4, 9, 12]);
}

#[test]
fn an_inclusion_bundle_does_not_carry_the_leafs_own_hash() {
    let log = log_of(3);
    let bundle = log.proof_bundle(3, &[], &[0]).unwrap();
    assert_eq!(bundle.included_indices, [0]);
    assert_eq!(nodes_of(&bundle), [2, 4]);
}

#[test]
fn a_consistency_bundle_carries_each_old_balanced_root_and_its_path() {
    let log = log_of(8);
    // Length 3 has balanced roots 1 (leaves 0-1) and 4 (leaf 2). In the 8-leaf log node 1
    // needs sibling 5, and node 4 needs siblings 6 and 1; both then need node 11 (leaves 4-7).
    let bundle = log.proof_bundle(8, &[3], &[]).unwrap();
    assert_eq!(bundle.consistent_lengths, [3]);
    assert_eq!(nodes_of(&bundle), [1, 4, 5, 6, 11]);
}

#[test]
fn every_hash_in_a_bundle_is_the_hash_of_the_node_it_names() {
    let log = shared_log();
    let leaves = numbered_leaf_hashes(SHARED_LOG_LENGTH);
    let bundle = log
        .proof_bundle(1000, &[1, 77, 512, 999], &[0, 5, 998])
        .unwrap();
    for (node, hash) in &bundle.hashes {
        let height = node.trailing_ones();
        let first_leaf = ((node >> (height + 1)) << height) as usize;
        let range = &leaves[first_leaf..first_leaf + (1 << height)];
        assert_eq!(*hash, naive_log_root(range), "node {node}");
    }
}

#[test]
fn bundle_hashes_are_sorted_by_node_and_each_node_appears_once() {
    let bundle = shared_log()
        .proof_bundle(1000, &[1, 77, 512, 999, 77], &[0, 5, 998, 5])
        .unwrap();
    let nodes = nodes_of(&bundle);
    assert!(nodes.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn one_bundle_proves_several_leaves_and_several_old_lengths() {
    let log = shared_log();
    let bundle = log
        .proof_bundle(1000, &[1, 77, 512, 999, 1000], &[0, 5, 998])
        .unwrap();
    let new = head(log, 1000);
    for leaf_index in [0, 5, 998] {
        let leaf = log.leaf_hash(leaf_index).unwrap();
        assert_eq!(bundle.verify_inclusion(&new, leaf_index, &leaf), Ok(()));
    }
    for old_length in [1, 77, 512, 999, 1000] {
        assert_eq!(
            bundle.verify_consistency(&head(log, old_length), &new),
            Ok(())
        );
    }
}

#[test]
fn a_bundle_for_a_past_length_stays_valid_after_later_appends() {
    let mut log = log_of(10);
    let before = log.proof_bundle(10, &[4], &[9]).unwrap();
    let head_before = head(&log, 10);
    for leaf in numbered_leaf_hashes(50) {
        log.append_leaf_hash(leaf);
    }
    assert_eq!(log.proof_bundle(10, &[4], &[9]).unwrap(), before);
    let leaf = log.leaf_hash(9).unwrap();
    assert_eq!(before.verify_inclusion(&head_before, 9, &leaf), Ok(()));
}

#[test]
fn bundles_beyond_the_log_or_for_absent_leaves_are_refused() {
    let log = log_of(10);
    assert!(matches!(
        log.proof_bundle(11, &[], &[]),
        Err(LogError::LengthBeyondLog { .. })
    ));
    assert!(matches!(
        log.proof_bundle(10, &[], &[10]),
        Err(LogError::LeafIndexOutOfRange { .. })
    ));
    assert!(matches!(
        log.proof_bundle(10, &[11], &[]),
        Err(LogError::OldLengthAfterNew { .. })
    ));
    assert!(matches!(
        log.proof_bundle(10, &[0], &[]),
        Err(LogError::ConsistencyFromEmptyLog { .. })
    ));
}

#[test]
fn a_bundle_only_proves_the_leaves_and_lengths_it_lists() {
    let log = shared_log();
    let bundle = log.proof_bundle(100, &[10], &[3]).unwrap();
    let new = head(log, 100);
    let leaf = log.leaf_hash(4).unwrap();
    assert_eq!(
        bundle.verify_inclusion(&new, 4, &leaf),
        Err(ProofError::LeafNotInBundle { leaf_index: 4 })
    );
    assert_eq!(
        bundle.verify_consistency(&head(log, 11), &new),
        Err(ProofError::OldLengthNotInBundle { old_length: 11 })
    );
}

#[test]
fn a_bundle_for_another_length_than_the_tree_head_is_refused() {
    let log = shared_log();
    let bundle = log.proof_bundle(100, &[], &[3]).unwrap();
    let leaf = log.leaf_hash(3).unwrap();
    assert_eq!(
        bundle.verify_inclusion(&head(log, 101), 3, &leaf),
        Err(ProofError::BundleLengthMismatch {
            bundle_length: 100,
            expected_length: 101
        })
    );
}

#[test]
fn a_bundle_with_unsorted_or_repeated_nodes_is_refused() {
    let log = shared_log();
    let mut bundle = log.proof_bundle(100, &[], &[3]).unwrap();
    let leaf = log.leaf_hash(3).unwrap();
    bundle.hashes.swap(0, 1);
    assert_eq!(
        bundle.verify_inclusion(&head(log, 100), 3, &leaf),
        Err(ProofError::UnsortedNodeHashes)
    );
    bundle.hashes.swap(0, 1);
    bundle.hashes.insert(1, bundle.hashes[0]);
    assert_eq!(
        bundle.verify_inclusion(&head(log, 100), 3, &leaf),
        Err(ProofError::UnsortedNodeHashes)
    );
}

#[test]
fn a_bundle_missing_a_needed_hash_is_refused() {
    let log = shared_log();
    let mut bundle = log.proof_bundle(100, &[], &[3]).unwrap();
    let (removed, _) = bundle.hashes.remove(2);
    let leaf = log.leaf_hash(3).unwrap();
    assert_eq!(
        bundle.verify_inclusion(&head(log, 100), 3, &leaf),
        Err(ProofError::MissingNodeHash {
            node: u64::from(removed)
        })
    );
}

#[test]
fn consistency_from_the_empty_log_is_refused_and_between_empty_logs_accepted() {
    let empty = TreeHead {
        length: 0,
        root: empty_log_root(),
    };
    let bundle = LogProofBundle {
        log_length: 0,
        consistent_lengths: vec![0],
        ..LogProofBundle::default()
    };
    assert_eq!(bundle.verify_consistency(&empty, &empty), Ok(()));

    let log = shared_log();
    let hostile = LogProofBundle {
        log_length: 5,
        consistent_lengths: vec![0],
        ..LogProofBundle::default()
    };
    assert_eq!(
        hostile.verify_consistency(&empty, &head(log, 5)),
        Err(ProofError::ConsistencyFromEmptyTree)
    );
}

#[test]
fn hostile_bundles_with_huge_numbers_are_refused_without_panicking() {
    let any_hash = leaf_hash(b"x");
    let bundle = LogProofBundle {
        log_length: u32::MAX,
        consistent_lengths: vec![u32::MAX, u32::MAX - 1, 1],
        included_indices: vec![u32::MAX, u32::MAX - 1, 0],
        hashes: vec![(0, any_hash), (u32::MAX, any_hash)],
    };
    let new = TreeHead {
        length: u64::from(u32::MAX),
        root: any_hash,
    };
    for leaf_index in [0, u64::from(u32::MAX) / 2, u64::from(u32::MAX), u64::MAX] {
        assert!(bundle
            .verify_inclusion(&new, leaf_index, &any_hash)
            .is_err());
    }
    for old_length in [1, u64::from(u32::MAX) - 1, u64::from(u32::MAX)] {
        let old = TreeHead {
            length: old_length,
            root: any_hash,
        };
        assert!(bundle.verify_consistency(&old, &new).is_err());
    }
}

#[test]
fn an_included_node_beyond_the_log_length_is_refused() {
    let any_hash = leaf_hash(b"x");
    let bundle = LogProofBundle {
        log_length: 4,
        consistent_lengths: vec![],
        included_indices: vec![8],
        hashes: vec![(3, any_hash)],
    };
    let new = TreeHead {
        length: 4,
        root: any_hash,
    };
    assert!(bundle.verify_inclusion(&new, 4, &any_hash).is_err());
}

fn index_and_length() -> impl Strategy<Value = (u64, u64)> {
    (1..=SHARED_LOG_LENGTH).prop_flat_map(|length| (0..length, Just(length)))
}

fn old_and_new_length() -> impl Strategy<Value = (u64, u64)> {
    (1..=SHARED_LOG_LENGTH).prop_flat_map(|new| (1..=new, Just(new)))
}

/// `bundle` with bit `bit` of its `entry`-th hash flipped.
fn with_flipped_hash(
    bundle: &LogProofBundle,
    entry: prop::sample::Index,
    bit: usize,
) -> LogProofBundle {
    let mut tampered = bundle.clone();
    let entry = entry.index(tampered.hashes.len());
    tampered.hashes[entry].1 = flip_bit(&tampered.hashes[entry].1, bit);
    tampered
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_bundles_verify_at_random_lengths_and_indices((leaf_index, length) in index_and_length()) {
        let log = shared_log();
        let bundle = log.proof_bundle(length, &[], &[leaf_index]).unwrap();
        let leaf = log.leaf_hash(leaf_index).unwrap();
        prop_assert_eq!(bundle.verify_inclusion(&head(log, length), leaf_index, &leaf), Ok(()));
    }

    #[test]
    fn a_changed_bit_in_any_hash_of_an_inclusion_bundle_fails(
        (leaf_index, length) in index_and_length(),
        entry in any::<prop::sample::Index>(),
        bit in 0..256usize,
    ) {
        let log = shared_log();
        let bundle = log.proof_bundle(length, &[], &[leaf_index]).unwrap();
        prop_assume!(!bundle.hashes.is_empty());
        let tampered = with_flipped_hash(&bundle, entry, bit);
        let leaf = log.leaf_hash(leaf_index).unwrap();
        prop_assert!(tampered.verify_inclusion(&head(log, length), leaf_index, &leaf).is_err());
    }

    #[test]
    fn a_changed_bit_in_the_leaf_or_root_fails_bundle_inclusion(
        (leaf_index, length) in index_and_length(),
        bit in 0..256usize,
    ) {
        let log = shared_log();
        let bundle = log.proof_bundle(length, &[], &[leaf_index]).unwrap();
        let leaf = log.leaf_hash(leaf_index).unwrap();
        let mut tampered_head = head(log, length);
        prop_assert!(bundle.verify_inclusion(&tampered_head, leaf_index, &flip_bit(&leaf, bit)).is_err());
        tampered_head.root = flip_bit(&tampered_head.root, bit);
        prop_assert!(bundle.verify_inclusion(&tampered_head, leaf_index, &leaf).is_err());
    }

    #[test]
    fn a_changed_included_index_fails_bundle_inclusion(
        (leaf_index, length) in index_and_length(),
        other_index in 0..2 * SHARED_LOG_LENGTH,
    ) {
        prop_assume!(other_index != leaf_index);
        let log = shared_log();
        let mut bundle = log.proof_bundle(length, &[], &[leaf_index]).unwrap();
        bundle.included_indices = vec![2 * other_index as u32];
        let leaf = log.leaf_hash(leaf_index).unwrap();
        prop_assert!(bundle.verify_inclusion(&head(log, length), other_index, &leaf).is_err());
    }

    #[test]
    fn a_changed_length_fails_bundle_inclusion(
        (leaf_index, length) in index_and_length(),
        other_length in 0..2 * SHARED_LOG_LENGTH,
    ) {
        prop_assume!(other_length != length);
        let log = shared_log();
        let mut bundle = log.proof_bundle(length, &[], &[leaf_index]).unwrap();
        let leaf = log.leaf_hash(leaf_index).unwrap();
        let mut claimed = head(log, length);
        claimed.length = other_length;
        prop_assert!(bundle.verify_inclusion(&claimed, leaf_index, &leaf).is_err());
        bundle.log_length = other_length as u32;
        prop_assert!(bundle.verify_inclusion(&claimed, leaf_index, &leaf).is_err());
    }

    #[test]
    fn consistency_bundles_verify_at_random_lengths((old_length, new_length) in old_and_new_length()) {
        let log = shared_log();
        let bundle = log.proof_bundle(new_length, &[old_length], &[]).unwrap();
        prop_assert_eq!(
            bundle.verify_consistency(&head(log, old_length), &head(log, new_length)),
            Ok(())
        );
    }

    #[test]
    fn a_changed_bit_in_any_hash_or_root_of_a_consistency_bundle_fails(
        (old_length, new_length) in old_and_new_length(),
        entry in any::<prop::sample::Index>(),
        bit in 0..256usize,
    ) {
        let log = shared_log();
        let bundle = log.proof_bundle(new_length, &[old_length], &[]).unwrap();
        let (old, new) = (head(log, old_length), head(log, new_length));
        let tampered = with_flipped_hash(&bundle, entry, bit);
        prop_assert!(tampered.verify_consistency(&old, &new).is_err());
        let tampered_old = TreeHead { root: flip_bit(&old.root, bit), ..old };
        prop_assert!(bundle.verify_consistency(&tampered_old, &new).is_err());
        let tampered_new = TreeHead { root: flip_bit(&new.root, bit), ..new };
        prop_assert!(bundle.verify_consistency(&old, &tampered_new).is_err());
    }

    #[test]
    fn a_changed_length_fails_bundle_consistency(
        (old_length, new_length) in old_and_new_length(),
        other_length in 0..2 * SHARED_LOG_LENGTH,
    ) {
        let log = shared_log();
        let bundle = log.proof_bundle(new_length, &[old_length], &[]).unwrap();
        let (old, new) = (head(log, old_length), head(log, new_length));
        if other_length != old_length {
            let mut relabelled = bundle.clone();
            relabelled.consistent_lengths = vec![other_length as u32];
            let claimed_old = TreeHead { length: other_length, ..old };
            prop_assert!(relabelled.verify_consistency(&claimed_old, &new).is_err());
        }
        if other_length != new_length {
            let mut relabelled = bundle.clone();
            relabelled.log_length = other_length as u32;
            let claimed_new = TreeHead { length: other_length, ..new };
            prop_assert!(relabelled.verify_consistency(&old, &claimed_new).is_err());
        }
    }

    #[test]
    fn bundle_and_audit_path_agree_on_the_roots(
        (old_length, new_length) in old_and_new_length(),
    ) {
        // Both forms prove against roots computed by the same log; the bundle's old root is
        // the bag of the old balanced roots, which must be the RFC 6962 root.
        let log = shared_log();
        let bundle = log.proof_bundle(new_length, &[old_length], &[old_length - 1]).unwrap();
        let old_root: Hash = log.root_at(old_length).unwrap();
        let new = head(log, new_length);
        prop_assert_eq!(
            bundle.verify_consistency(&TreeHead { length: old_length, root: old_root }, &new),
            Ok(())
        );
        let audit_path = log.inclusion_proof(old_length - 1, new_length).unwrap();
        let leaf = log.leaf_hash(old_length - 1).unwrap();
        prop_assert_eq!(
            cairn_log::audit_path::verify_inclusion(old_length - 1, new_length, &leaf, &audit_path, &new.root),
            Ok(())
        );
        prop_assert_eq!(bundle.verify_inclusion(&new, old_length - 1, &leaf), Ok(()));
    }
}
