//! Proof bundles survive their protobuf encoding and verify against the roots of a log and
//! map built from warg leaves; tampered bundles do not.

use cairn_log::{KeyPath, Map, MapValue, RegistryLog, TreeHead};
use cairn_protocol::proofs::{
    decode_log_bundle, decode_map_bundle, encode_log_bundle, encode_map_bundle,
};
use cairn_protocol::{prefix, LogId, PackageName, RecordId};

struct Registry {
    log: RegistryLog,
    map: Map,
    leaves: Vec<(LogId, RecordId)>,
}

fn registry(packages: usize, records: usize) -> Registry {
    let mut log = RegistryLog::new();
    let mut map = Map::new();
    let mut leaves = Vec::new();
    for i in 0..records {
        let name: PackageName = format!("test:package-n{}", i % packages).parse().unwrap();
        let log_id = name.log_id();
        let record_id = RecordId::package_record(format!("record {i}").as_bytes());
        log.append(&prefix::log_leaf(&log_id, &record_id));
        map = map.insert(
            KeyPath::of_key(log_id.digest().as_bytes()),
            MapValue::new(&prefix::map_leaf(&record_id)).unwrap(),
        );
        leaves.push((log_id, record_id));
    }
    Registry { log, map, leaves }
}

#[test]
fn log_bundles_round_trip_and_verify() {
    let r = registry(20, 300);
    let head = TreeHead {
        length: 300,
        root: r.log.root(),
    };
    let old = TreeHead {
        length: 123,
        root: r.log.root_at(123).unwrap(),
    };
    let indices = [0u64, 7, 123, 299];
    let bundle = r.log.proof_bundle(300, &[123], &indices).unwrap();
    let bytes = encode_log_bundle(&bundle);
    let decoded = decode_log_bundle(&bytes).unwrap();
    assert_eq!(decoded, bundle);
    for index in indices {
        let (log_id, record_id) = &r.leaves[index as usize];
        let leaf = cairn_log::leaf_hash(&prefix::log_leaf(log_id, record_id));
        decoded.verify_inclusion(&head, index, &leaf).unwrap();
    }
    decoded.verify_consistency(&old, &head).unwrap();
}

#[test]
fn map_bundles_round_trip_and_verify() {
    let r = registry(50, 200);
    let root = r.map.root();
    // The latest record of each of a few packages.
    let latest: Vec<(LogId, RecordId)> = (150..200).map(|i| r.leaves[i]).collect();
    let proofs: Vec<_> = latest
        .iter()
        .map(|(log_id, _)| r.map.prove(&KeyPath::of_key(log_id.digest().as_bytes())))
        .collect();
    let decoded = decode_map_bundle(&encode_map_bundle(&proofs)).unwrap();
    assert_eq!(decoded, proofs);
    for ((log_id, record_id), proof) in latest.iter().zip(&decoded) {
        let path = KeyPath::of_key(log_id.digest().as_bytes());
        proof
            .verify_inclusion(&root, &path, &prefix::map_leaf(record_id))
            .unwrap();
        // A stale head (an older record of the same package) does not verify.
        let stale = r
            .leaves
            .iter()
            .find(|(l, rec)| l == log_id && rec != record_id)
            .unwrap()
            .1;
        assert!(proof
            .verify_inclusion(&root, &path, &prefix::map_leaf(&stale))
            .is_err());
    }
}

#[test]
fn a_changed_byte_in_an_encoded_bundle_is_caught() {
    let r = registry(10, 64);
    let head = TreeHead {
        length: 64,
        root: r.log.root(),
    };
    let bundle = r.log.proof_bundle(64, &[], &[5]).unwrap();
    let bytes = encode_log_bundle(&bundle);
    let (log_id, record_id) = &r.leaves[5];
    let leaf = cairn_log::leaf_hash(&prefix::log_leaf(log_id, record_id));
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut copy = bytes.clone();
            copy[i] ^= bit;
            if let Ok(decoded) = decode_log_bundle(&copy) {
                assert!(
                    decoded.verify_inclusion(&head, 5, &leaf).is_err(),
                    "flipping bit {bit:#x} of byte {i} went unnoticed"
                );
            }
        }
    }
}

#[test]
fn malformed_bundles_are_errors_not_panics() {
    for bytes in [
        &[0x22, 0x05, 0x0a][..],
        &[0x0a, 0x02, 0x0a, 0x05],
        &[0xff; 11],
        &[0x08],
    ] {
        let _ = decode_log_bundle(bytes);
        let _ = decode_map_bundle(bytes);
    }
    // 257 siblings is one more than the map has levels.
    let too_many = cairn_log::MapProof {
        siblings: vec![None; 257],
    };
    assert!(decode_map_bundle(&encode_map_bundle(&[too_many])).is_err());
}
