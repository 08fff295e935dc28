//! Any bytes, read as each protobuf message warg sends: package and operator records, their
//! envelopes (the storage form), and log and map proof bundles. Decoding never panics, and
//! neither do verifying a decoded log bundle's proofs or printing a decoding error.
//!
//! Whatever decodes re-encodes to bytes that decode to the same value. An envelope keeps the
//! bytes it was given, so it must also hold the record those bytes decode to and their id.

#![no_main]

use cairn_log::{Hash, TreeHead};
use cairn_protocol::proofs::{
    decode_log_bundle, decode_map_bundle, encode_log_bundle, encode_map_bundle,
};
use cairn_protocol::{Envelope, LogKind, OperatorEntry, PackageEntry, Record};
use libfuzzer_sys::fuzz_target;

fn record_round_trip<E: LogKind>(data: &[u8]) {
    match Record::<E>::decode(data) {
        Ok(record) => {
            let again = Record::<E>::decode(&record.encode()).expect("re-encoded record decodes");
            assert_eq!(again, record, "decode(encode(record)) != record");
        }
        Err(error) => drop(error.to_string()),
    }
}

fn envelope_round_trip<E: LogKind>(data: &[u8]) {
    match Envelope::<E>::from_protobuf(data) {
        Ok(envelope) => {
            let content = envelope.content_bytes();
            assert_eq!(Ok(envelope.record()), Record::decode(content).as_ref());
            assert_eq!(*envelope.record_id(), E::record_id(content));
            let again = Envelope::<E>::from_protobuf(&envelope.to_protobuf())
                .expect("re-encoded envelope decodes");
            assert_eq!(
                again, envelope,
                "from_protobuf(to_protobuf(envelope)) != envelope"
            );
        }
        Err(error) => drop(error.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    record_round_trip::<PackageEntry>(data);
    record_round_trip::<OperatorEntry>(data);
    envelope_round_trip::<PackageEntry>(data);
    envelope_round_trip::<OperatorEntry>(data);

    if let Ok(bundle) = decode_log_bundle(data) {
        assert_eq!(
            decode_log_bundle(&encode_log_bundle(&bundle)),
            Ok(bundle.clone())
        );
        // A client verifies bundles from the server: wrong roots must be errors, not panics.
        let root = Hash::from_bytes([0; 32]);
        let new = TreeHead {
            length: u64::from(bundle.log_length),
            root,
        };
        for &node in bundle.included_indices.iter().take(4) {
            let _ = bundle.verify_inclusion(&new, u64::from(node / 2), &root);
        }
        for &length in bundle.consistent_lengths.iter().take(4) {
            let old = TreeHead {
                length: u64::from(length),
                root,
            };
            let _ = bundle.verify_consistency(&old, &new);
        }
    }
    if let Ok(proofs) = decode_map_bundle(data) {
        assert_eq!(decode_map_bundle(&encode_map_bundle(&proofs)), Ok(proofs));
    }
});
