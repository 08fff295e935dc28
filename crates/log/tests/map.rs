//! The verifiable map (warg-v1 section 4.2): warg's hashing and empty root, persistence of
//! snapshots, and compressed proofs of inclusion and of absence.

mod common;

use std::collections::BTreeMap;

use cairn_log::{
    branch_hash, empty_map_root, empty_subtree_hash, leaf_hash, EmptyMapValueError, Hash, KeyPath,
    Map, MapProof, MapValue, ProofError,
};
use common::{flip_bit, naive_map_root};
use proptest::prelude::*;

fn key(name: &str) -> KeyPath {
    KeyPath::of_key(name.as_bytes())
}

fn value(text: &str) -> MapValue {
    MapValue::new(text.as_bytes()).unwrap()
}

fn map_of(entries: &[(KeyPath, Vec<u8>)]) -> Map {
    entries.iter().fold(Map::new(), |map, (path, bytes)| {
        map.insert(*path, MapValue::new(bytes).unwrap())
    })
}

fn numbered_entries(count: usize) -> Vec<(KeyPath, Vec<u8>)> {
    (0..count)
        .map(|index| {
            (
                key(&format!("key {index}")),
                format!("value {index}").into_bytes(),
            )
        })
        .collect()
}

#[test]
fn the_empty_map_has_warg_s_empty_root() {
    assert_eq!(
        Map::new().root().to_string(),
        "c6689f10812a0980976d9533d83875282166159567ec35155716c1413af53d6a"
    );
    assert_eq!(Map::new().root(), empty_map_root());
}

#[test]
fn an_empty_leaf_is_the_hash_of_a_zero_byte_and_empty_subtrees_double_up() {
    assert_eq!(empty_subtree_hash(0), Hash::sha256(&[0]));
    for height in 1..=256 {
        let below = empty_subtree_hash(height - 1);
        assert_eq!(empty_subtree_hash(height), branch_hash(&below, &below));
    }
}

#[test]
fn a_key_path_is_the_sha256_of_the_key_bytes() {
    let log_id = [7u8; 32];
    assert_eq!(*KeyPath::of_key(&log_id).as_hash(), Hash::sha256(&log_id));
    assert_eq!(
        KeyPath::from_hashed(Hash::sha256(&log_id)),
        KeyPath::of_key(&log_id)
    );
}

#[test]
fn a_single_key_map_has_the_full_tree_root() {
    // Bit 0 of the path is the most significant bit of byte 0 and picks the side below the
    // root; the leaf's siblings are all empty.
    let path = key("only");
    let map = Map::new().insert(path, value("v"));
    let mut expected = leaf_hash(b"v");
    for height in 0..256 {
        let bit_index = 255 - height;
        let goes_right = (path.as_hash().as_bytes()[bit_index / 8] >> (7 - bit_index % 8)) & 1 == 1;
        let empty = empty_subtree_hash(height);
        expected = if goes_right {
            branch_hash(&empty, &expected)
        } else {
            branch_hash(&expected, &empty)
        };
    }
    assert_eq!(map.root(), expected);
}

#[test]
fn the_root_equals_the_naive_full_tree_root() {
    for count in [1, 2, 3, 10, 50] {
        let entries = numbered_entries(count);
        assert_eq!(
            map_of(&entries).root(),
            naive_map_root(&entries),
            "{count} keys"
        );
    }
}

#[test]
fn keys_whose_paths_share_a_long_prefix_still_hash_as_the_full_tree() {
    let mut base = [0u8; 32];
    base[31] = 0b1000_0000;
    let mut neighbour = base;
    neighbour[31] = 0b1000_0001; // differs only in the last bit
    let mut distant = base;
    distant[0] = 0b1000_0000;
    let entries: Vec<(KeyPath, Vec<u8>)> = [base, neighbour, distant]
        .iter()
        .map(|bytes| {
            (
                KeyPath::from_hashed(Hash::from_bytes(*bytes)),
                b"x".to_vec(),
            )
        })
        .collect();
    let map = map_of(&entries);
    assert_eq!(map.root(), naive_map_root(&entries));
    for (path, bytes) in &entries {
        assert_eq!(
            map.prove(path).verify_inclusion(&map.root(), path, bytes),
            Ok(())
        );
    }
}

#[test]
fn insert_returns_a_new_map_and_leaves_the_snapshot_unchanged() {
    let before = map_of(&numbered_entries(20));
    let root_before = before.root();
    let proof_before = before.prove(&key("key 3"));
    let after = before.insert(key("key 3"), value("changed"));
    let after = after.insert(key("new key"), value("new"));

    assert_eq!(before.root(), root_before);
    assert_eq!(before.get(&key("key 3")), Some(&value("value 3")));
    assert_eq!(before.get(&key("new key")), None);
    assert_eq!(before.prove(&key("key 3")), proof_before);
    assert_ne!(after.root(), root_before);
    assert_eq!(after.get(&key("key 3")), Some(&value("changed")));
}

#[test]
fn inserting_an_existing_key_replaces_its_value_and_keeps_the_count() {
    let map = map_of(&numbered_entries(5));
    let replaced = map.insert(key("key 2"), value("other"));
    assert_eq!(replaced.len(), 5);
    assert_eq!(replaced.get(&key("key 2")), Some(&value("other")));
    let mut entries = numbered_entries(5);
    entries[2].1 = b"other".to_vec();
    assert_eq!(replaced.root(), naive_map_root(&entries));
}

#[test]
fn extend_equals_inserting_one_by_one() {
    let entries = numbered_entries(30);
    let extended = Map::new().extend(
        entries
            .iter()
            .map(|(path, bytes)| (*path, MapValue::new(bytes).unwrap())),
    );
    assert_eq!(extended.root(), map_of(&entries).root());
    assert_eq!(extended.len(), 30);
}

#[test]
fn an_empty_batch_leaves_the_map_as_it_was() {
    let map = map_of(&numbered_entries(5));
    let same = map.extend(Vec::new());
    assert_eq!(same.root(), map.root());
    assert_eq!(same.len(), 5);
}

#[test]
fn within_a_batch_the_later_value_of_a_key_wins() {
    let map = Map::new().extend([
        (key("k"), value("first")),
        (key("other"), value("x")),
        (key("k"), value("second")),
    ]);
    assert_eq!(map.get(&key("k")), Some(&value("second")));
    assert_eq!(map.len(), 2);
}

#[test]
fn empty_values_are_refused_because_they_hash_like_an_absent_key() {
    assert_eq!(MapValue::new(b""), Err(EmptyMapValueError));
    assert_eq!(MapValue::try_from(Vec::new()), Err(EmptyMapValueError));
    assert_eq!(leaf_hash(b""), empty_subtree_hash(0));
    let map = map_of(&numbered_entries(3));
    let absent = key("absent");
    assert_eq!(
        map.prove(&absent)
            .verify_inclusion(&map.root(), &absent, b""),
        Err(ProofError::EmptyMapValue)
    );
}

#[test]
fn a_present_key_proves_its_value() {
    let entries = numbered_entries(40);
    let map = map_of(&entries);
    for (path, bytes) in &entries {
        assert_eq!(
            map.prove(path).verify_inclusion(&map.root(), path, bytes),
            Ok(())
        );
    }
}

#[test]
fn a_present_key_does_not_prove_another_value_or_absence() {
    let map = map_of(&numbered_entries(40));
    let path = key("key 7");
    let proof = map.prove(&path);
    assert_eq!(
        proof.verify_inclusion(&map.root(), &path, b"value 8"),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        proof.verify_absence(&map.root(), &path),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn an_absent_key_proves_its_absence() {
    let map = map_of(&numbered_entries(40));
    for index in 0..40 {
        let absent = key(&format!("absent {index}"));
        assert_eq!(
            map.prove(&absent).verify_absence(&map.root(), &absent),
            Ok(())
        );
    }
}

#[test]
fn every_key_is_absent_from_the_empty_map_with_an_empty_proof() {
    let map = Map::new();
    let proof = map.prove(&key("anything"));
    assert!(proof.siblings.is_empty());
    assert_eq!(proof.verify_absence(&map.root(), &key("anything")), Ok(()));
}

#[test]
fn an_absent_key_does_not_prove_any_value() {
    let map = map_of(&numbered_entries(40));
    let absent = key("absent");
    assert_eq!(
        map.prove(&absent)
            .verify_inclusion(&map.root(), &absent, b"value 1"),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn a_proof_for_one_key_does_not_prove_another() {
    let map = map_of(&numbered_entries(40));
    let proof = map.prove(&key("key 1"));
    assert!(proof
        .verify_inclusion(&map.root(), &key("key 2"), b"value 1")
        .is_err());
    assert!(proof.verify_absence(&map.root(), &key("key 2")).is_err());
}

#[test]
fn the_only_key_of_a_map_has_an_empty_proof() {
    let path = key("only");
    let map = Map::new().insert(path, value("v"));
    let proof = map.prove(&path);
    assert!(proof.siblings.is_empty());
    assert_eq!(proof.verify_inclusion(&map.root(), &path, b"v"), Ok(()));
}

#[test]
fn proofs_list_siblings_bottom_up_and_leave_out_the_empty_bottom() {
    let entries = numbered_entries(5);
    let map = map_of(&entries);
    for (path, _) in &entries {
        let proof = map.prove(path);
        assert!(proof.siblings.len() <= 256);
        // The lowest listed sibling is the first non-empty one; the rest were left out.
        assert!(proof.siblings.first().is_some_and(Option::is_some));
        // With 5 keys, 4 siblings are not empty.
        assert!(proof.siblings.iter().flatten().count() <= 4);
    }
}

#[test]
fn a_proof_with_explicit_empty_siblings_at_the_bottom_verifies_the_same() {
    let entries = numbered_entries(5);
    let map = map_of(&entries);
    let (path, bytes) = &entries[0];
    let mut padded = map.prove(path);
    let omitted = 256 - padded.siblings.len();
    let mut full = vec![None; omitted];
    full.append(&mut padded.siblings);
    let full = MapProof { siblings: full };
    assert_eq!(full.verify_inclusion(&map.root(), path, bytes), Ok(()));
}

#[test]
fn a_proof_with_more_than_256_siblings_is_refused() {
    let proof = MapProof {
        siblings: vec![None; 257],
    };
    assert_eq!(
        proof.verify_absence(&empty_map_root(), &key("k")),
        Err(ProofError::TooManySiblings { count: 257 })
    );
}

fn random_entries(max: usize) -> impl Strategy<Value = BTreeMap<[u8; 32], Vec<u8>>> {
    prop::collection::btree_map(
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 1..8),
        0..max,
    )
}

fn as_entries(map: &BTreeMap<[u8; 32], Vec<u8>>) -> Vec<(KeyPath, Vec<u8>)> {
    map.iter()
        .map(|(path, bytes)| (KeyPath::from_hashed(Hash::from_bytes(*path)), bytes.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_maps_have_the_naively_recomputed_root(entries in random_entries(24)) {
        let entries = as_entries(&entries);
        prop_assert_eq!(map_of(&entries).root(), naive_map_root(&entries));
    }

    #[test]
    fn the_root_does_not_depend_on_insertion_order(entries in random_entries(24), seed in any::<u64>()) {
        let entries = as_entries(&entries);
        let mut shuffled = entries.clone();
        // A deterministic shuffle driven by the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(map_of(&entries).root(), map_of(&shuffled).root());
    }

    #[test]
    fn every_present_key_proves_its_value_and_absent_keys_prove_absence(
        entries in random_entries(24),
        absent in prop::collection::vec(any::<[u8; 32]>(), 1..4),
    ) {
        let entries = as_entries(&entries);
        let map = map_of(&entries);
        for (path, bytes) in &entries {
            prop_assert_eq!(map.prove(path).verify_inclusion(&map.root(), path, bytes), Ok(()));
        }
        for bytes in absent {
            let path = KeyPath::from_hashed(Hash::from_bytes(bytes));
            prop_assume!(map.get(&path).is_none());
            prop_assert_eq!(map.prove(&path).verify_absence(&map.root(), &path), Ok(()));
        }
    }

    #[test]
    fn a_changed_bit_in_any_sibling_fails_a_map_proof(
        entries in random_entries(24),
        pick in any::<prop::sample::Index>(),
        absent in any::<[u8; 32]>(),
        sibling in any::<prop::sample::Index>(),
        bit in 0..256usize,
    ) {
        let entries = as_entries(&entries);
        let map = map_of(&entries);
        if !entries.is_empty() {
            let (path, bytes) = &entries[pick.index(entries.len())];
            let mut proof = map.prove(path);
            if !proof.siblings.is_empty() {
                let at = sibling.index(proof.siblings.len());
                let original = proof.siblings[at].unwrap_or(empty_subtree_hash(256 - proof.siblings.len() + at));
                proof.siblings[at] = Some(flip_bit(&original, bit));
                prop_assert!(proof.verify_inclusion(&map.root(), path, bytes).is_err());
            }
        }
        let absent = KeyPath::from_hashed(Hash::from_bytes(absent));
        let mut proof = map.prove(&absent);
        if !proof.siblings.is_empty() {
            let at = sibling.index(proof.siblings.len());
            let original = proof.siblings[at].unwrap_or(empty_subtree_hash(256 - proof.siblings.len() + at));
            proof.siblings[at] = Some(flip_bit(&original, bit));
            prop_assert!(proof.verify_absence(&map.root(), &absent).is_err());
        }
    }

    #[test]
    fn a_changed_bit_in_the_key_value_or_root_fails_a_map_proof(
        entries in random_entries(24),
        pick in any::<prop::sample::Index>(),
        bit in 0..256usize,
    ) {
        let entries = as_entries(&entries);
        prop_assume!(!entries.is_empty());
        let map = map_of(&entries);
        let (path, bytes) = &entries[pick.index(entries.len())];
        let proof = map.prove(path);
        let other_path = KeyPath::from_hashed(flip_bit(path.as_hash(), bit));
        prop_assert!(proof.verify_inclusion(&map.root(), &other_path, bytes).is_err());
        prop_assert!(proof.verify_inclusion(&flip_bit(&map.root(), bit), path, bytes).is_err());
        let mut other_bytes = bytes.clone();
        other_bytes[0] ^= 1 << (bit % 8);
        prop_assert!(proof.verify_inclusion(&map.root(), path, &other_bytes).is_err());
    }

    #[test]
    fn a_batch_of_updates_equals_the_same_updates_one_by_one(
        before in random_entries(16),
        batch in prop::collection::vec((any::<[u8; 32]>(), prop::collection::vec(any::<u8>(), 1..8)), 0..16),
        overwrite in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let before = as_entries(&before);
        let start = map_of(&before);
        // Some updates hit keys already present, some repeat within the batch.
        let mut updates: Vec<(KeyPath, MapValue)> = batch
            .iter()
            .map(|(path, bytes)| (KeyPath::from_hashed(Hash::from_bytes(*path)), MapValue::new(bytes).unwrap()))
            .collect();
        for (n, pick) in overwrite.iter().enumerate() {
            if !before.is_empty() {
                let (path, _) = &before[pick.index(before.len())];
                updates.push((*path, MapValue::new(&[n as u8 + 1]).unwrap()));
            }
            if !updates.is_empty() {
                let repeated = updates[pick.index(updates.len())].0;
                updates.push((repeated, MapValue::new(&[0xEE, n as u8]).unwrap()));
            }
        }
        let start_root = start.root();
        let batched = start.extend(updates.clone());
        prop_assert_eq!(start.root(), start_root);
        let one_by_one = updates
            .iter()
            .fold(start.clone(), |map, (path, value)| map.insert(*path, value.clone()));
        prop_assert_eq!(batched.root(), one_by_one.root());
        prop_assert_eq!(batched.len(), one_by_one.len());

        let mut expected: BTreeMap<KeyPath, Vec<u8>> = before.into_iter().collect();
        for (path, value) in &updates {
            expected.insert(*path, value.as_bytes().to_vec());
        }
        let expected: Vec<(KeyPath, Vec<u8>)> = expected.into_iter().collect();
        prop_assert_eq!(batched.root(), naive_map_root(&expected));
        prop_assert_eq!(batched.len(), expected.len() as u64);
        for (path, bytes) in &expected {
            prop_assert_eq!(batched.get(path).map(MapValue::as_bytes), Some(bytes.as_slice()));
            prop_assert_eq!(batched.prove(path).verify_inclusion(&batched.root(), path, bytes), Ok(()));
        }
    }

    #[test]
    fn snapshots_keep_their_roots_and_proofs_after_later_inserts(
        first in random_entries(16),
        later in random_entries(16),
    ) {
        let first = as_entries(&first);
        let snapshot = map_of(&first);
        let root = snapshot.root();
        let proofs: Vec<MapProof> = first.iter().map(|(path, _)| snapshot.prove(path)).collect();
        let _later_map = as_entries(&later).iter().fold(snapshot.clone(), |map, (path, bytes)| {
            map.insert(*path, MapValue::new(bytes).unwrap())
        });
        prop_assert_eq!(snapshot.root(), root);
        for ((path, bytes), proof) in first.iter().zip(proofs) {
            prop_assert_eq!(&snapshot.prove(path), &proof);
            prop_assert_eq!(proof.verify_inclusion(&root, path, bytes), Ok(()));
        }
    }
}

/// `bytes` with its top bit, the side of the root its path goes to, set to `side` if given.
fn on_side(mut bytes: [u8; 32], side: Option<bool>) -> [u8; 32] {
    if let Some(right) = side {
        bytes[0] = (bytes[0] & 0x7F) | (u8::from(right) << 7);
    }
    bytes
}

proptest! {
    // Each case inserts some 270 keys one by one, which is slow in a debug build.
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Batches of about 256 entries or more are built in two halves on two threads when the
    /// root is a fork at the top; the result must not depend on it. The batches straddle that
    /// threshold (before and after removing repeated keys), and the maps take every shape: empty,
    /// one leaf, every key on one side of the root (a lower root fork), keys on both sides, with
    /// batches on one side or both.
    #[test]
    fn a_large_batch_equals_the_same_updates_one_by_one(
        before in prop_oneof![
            1 => Just(Vec::new()),
            1 => prop::collection::vec(any::<[u8; 32]>(), 1..2),
            4 => prop::collection::vec(any::<[u8; 32]>(), 2..32),
        ],
        before_side in prop::option::weighted(0.2, any::<bool>()),
        batch in prop::collection::vec(any::<[u8; 32]>(), 240..290),
        batch_side in prop::option::weighted(0.15, any::<bool>()),
        rewritten in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        repeated in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let before: Vec<(KeyPath, Vec<u8>)> = before
            .into_iter()
            .enumerate()
            .map(|(n, bytes)| {
                let path = KeyPath::from_hashed(Hash::from_bytes(on_side(bytes, before_side)));
                (path, vec![1, n as u8])
            })
            .collect();
        let start = map_of(&before);
        let mut updates: Vec<(KeyPath, MapValue)> = batch
            .into_iter()
            .enumerate()
            .map(|(n, bytes)| {
                let path = KeyPath::from_hashed(Hash::from_bytes(on_side(bytes, batch_side)));
                (path, MapValue::new(&[2, n as u8, (n >> 8) as u8]).unwrap())
            })
            .collect();
        for (n, pick) in rewritten.iter().enumerate() {
            if !before.is_empty() {
                let (path, _) = &before[pick.index(before.len())];
                updates.push((*path, MapValue::new(&[3, n as u8]).unwrap()));
            }
        }
        for (n, pick) in repeated.iter().enumerate() {
            let path = updates[pick.index(updates.len())].0;
            updates.push((path, MapValue::new(&[4, n as u8]).unwrap()));
        }

        let batched = start.extend(updates.clone());
        let one_by_one = updates
            .iter()
            .fold(start.clone(), |map, (path, value)| map.insert(*path, value.clone()));
        prop_assert_eq!(batched.root(), one_by_one.root());
        prop_assert_eq!(batched.len(), one_by_one.len());

        let mut expected: BTreeMap<KeyPath, Vec<u8>> = before.into_iter().collect();
        for (path, value) in &updates {
            expected.insert(*path, value.as_bytes().to_vec());
        }
        let expected: Vec<(KeyPath, Vec<u8>)> = expected.into_iter().collect();
        prop_assert_eq!(batched.root(), naive_map_root(&expected));
        prop_assert_eq!(batched.len(), expected.len() as u64);
        for (path, bytes) in &expected {
            prop_assert_eq!(batched.get(path).map(MapValue::as_bytes), Some(bytes.as_slice()));
            prop_assert_eq!(batched.prove(path), one_by_one.prove(path));
        }
    }
}
