//! Signature verification throughput (ring, which cairn uses, against the pure-Rust p256
//! crate, in the same run) and the CPU time to verify one package update the way a client
//! does: the checkpoint's signature, the log inclusion proof of the package's head record,
//! the map inclusion proof of that head, and the record's signature, from the wire bytes.
//!
//! Run with `cargo bench -p cairn-protocol --bench verify`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn_log::{KeyPath, Map, MapValue, RegistryLog, TreeHead};
use cairn_protocol::proofs::{
    decode_log_bundle, decode_map_bundle, encode_log_bundle, encode_map_bundle,
};
use cairn_protocol::{
    prefix, Checkpoint, Digest, Envelope, PackageEntry, PackageEnvelope, PackageName, PrivateKey,
    Record, RecordId, Timestamp, TimestampedCheckpoint,
};

fn per_op(iterations: u32, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn main() {
    let key = PrivateKey::generate().unwrap();
    let message = b"WARG-PACKAGE-RECORD-SIGNATURE-V0:a record of about a hundred bytes, as package records usually are...";
    let signature = key.sign_message(message);
    let public = key.public_key().clone();

    let n = 20_000;
    let ring = per_op(n, || {
        public
            .verify_message(black_box(message), black_box(&signature))
            .unwrap();
    });
    let p256_signature = p256::ecdsa::DerSignature::try_from(signature.as_der()).unwrap();
    let p256_key = *public.to_p256();
    let pure = per_op(n / 4, || {
        use p256::ecdsa::signature::Verifier as _;
        p256_key
            .verify(black_box(message), black_box(&p256_signature))
            .unwrap();
    });
    println!(
        "P-256 verify: ring {:>8.0}/s ({:.1} us)   p256 {:>8.0}/s ({:.1} us)   ring is {:.2}x p256",
        1.0 / ring.as_secs_f64(),
        ring.as_secs_f64() * 1e6,
        1.0 / pure.as_secs_f64(),
        pure.as_secs_f64() * 1e6,
        pure.as_secs_f64() / ring.as_secs_f64()
    );
    let sign = per_op(2_000, || {
        black_box(key.sign_message(black_box(message)));
    });
    println!(
        "P-256 sign (p256, RFC 6979): {:.0}/s ({:.1} us)",
        1.0 / sign.as_secs_f64(),
        sign.as_secs_f64() * 1e6
    );

    for (leaves, packages) in [(100_000u64, 10_000usize), (1_000_000, 100_000)] {
        verify_one_update(leaves, packages, &key);
    }
}

/// Builds a registry of `leaves` records over `packages` packages, then times what a client
/// does to accept the newest record of one package.
fn verify_one_update(leaves: u64, packages: usize, operator: &PrivateKey) {
    let publisher = PrivateKey::generate().unwrap();
    let names: Vec<PackageName> = (0..packages)
        .map(|i| format!("bench:package-n{i}").parse().unwrap())
        .collect();
    let log_ids: Vec<_> = names.iter().map(PackageName::log_id).collect();
    let mut log = RegistryLog::new();
    let mut heads: Vec<Option<RecordId>> = vec![None; packages];
    let build = Instant::now();
    for i in 0..leaves - 1 {
        let p = (i as usize) % packages;
        let record_id = RecordId::package_record(&i.to_le_bytes());
        log.append(&prefix::log_leaf(&log_ids[p], &record_id));
        heads[p] = Some(record_id);
    }
    // The update being verified: a real signed release record, the last leaf.
    let target = packages / 2;
    let record = Record {
        prev: heads[target],
        version: 0,
        time: Timestamp::now(),
        entries: vec![PackageEntry::Release {
            version: "1.2.3".parse().unwrap(),
            content: Digest::of(b"content"),
        }],
    };
    let envelope: PackageEnvelope = Envelope::signed(record, &publisher);
    log.append(&prefix::log_leaf(&log_ids[target], envelope.record_id()));
    heads[target] = Some(*envelope.record_id());
    let map = Map::new().extend(heads.iter().zip(&log_ids).filter_map(|(head, log_id)| {
        head.map(|h| {
            (
                KeyPath::of_key(log_id.digest().as_bytes()),
                MapValue::new(&prefix::map_leaf(&h)).unwrap(),
            )
        })
    }));
    let checkpoint = TimestampedCheckpoint::new(
        Checkpoint {
            log_root: log.root().into(),
            log_length: log.len(),
            map_root: map.root().into(),
        },
        1_800_000_000,
    )
    .sign(operator);
    let built = build.elapsed();

    // What the server sends.
    let log_bundle = encode_log_bundle(&log.proof_bundle(log.len(), &[], &[leaves - 1]).unwrap());
    let map_bundle =
        encode_map_bundle(&[map.prove(&KeyPath::of_key(log_ids[target].digest().as_bytes()))]);
    let content_bytes = envelope.content_bytes().to_vec();
    let (key_id, signature) = (*envelope.key_id(), envelope.signature().clone());

    let time = per_op(2_000, || {
        let verified = checkpoint.verify(operator.public_key()).unwrap();
        let contents = verified.contents();
        let record =
            PackageEnvelope::from_parts(content_bytes.clone(), key_id, signature.clone()).unwrap();
        record.verify_signature(publisher.public_key()).unwrap();
        let head = TreeHead {
            length: contents.log_length,
            root: contents.log_root.to_hash(),
        };
        let leaf = cairn_log::leaf_hash(&prefix::log_leaf(&log_ids[target], record.record_id()));
        decode_log_bundle(&log_bundle)
            .unwrap()
            .verify_inclusion(&head, leaves - 1, &leaf)
            .unwrap();
        let path = KeyPath::of_key(log_ids[target].digest().as_bytes());
        decode_map_bundle(&map_bundle).unwrap()[0]
            .verify_inclusion(
                &contents.map_root.to_hash(),
                &path,
                &prefix::map_leaf(record.record_id()),
            )
            .unwrap();
    });
    println!(
        "verify one package update at {leaves} leaves, {packages} packages: {:.1} us CPU (target < 1000 us); \
         proofs {} + {} bytes (registry built in {:.1} s)",
        time.as_secs_f64() * 1e6,
        log_bundle.len(),
        map_bundle.len(),
        built.as_secs_f64()
    );
}
