//! Throughput of the registry log and the verifiable map at registry scale: log appends up to
//! 10^6 leaves, log proofs at 10^6 leaves, map updates and map proofs at 10^5 and 10^6 keys.
//! Every proof generated here is also verified once, so the figures are for working proofs.
//!
//! Run with `cargo bench -p cairn-log --bench log_and_map`. Setting up the 10^6-key map takes a
//! while; its time is printed as "setup".

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn_log::{audit_path, leaf_hash, Hash, KeyPath, Map, MapValue, RegistryLog, TreeHead};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const LOG_LENGTH: u64 = 1_000_000;
const MAP_SIZES: [u64; 2] = [100_000, 1_000_000];
const UPDATES_PER_BATCH: u64 = 1_000;

/// A warg log leaf is about 160 bytes: a tag and two `sha256:<hex>` strings.
fn log_leaf_value(index: u64) -> Vec<u8> {
    let mut value = b"WARG-LOG-LEAF-V0".to_vec();
    for part in [index, !index] {
        value.push(71);
        value.extend_from_slice(format!("sha256:{:064x}", part).as_bytes());
    }
    value
}

/// A warg map leaf is about 90 bytes: a tag and a `sha256:<hex>` record id.
fn map_value(index: u64, version: u64) -> MapValue {
    let text = format!("WARG-MAP-LEAF-V0\x47sha256:{:048x}{:016x}", index, version);
    MapValue::new(text.as_bytes()).unwrap()
}

fn map_key(index: u64) -> KeyPath {
    KeyPath::of_key(&Hash::sha256(&index.to_le_bytes()).to_bytes())
}

/// Spread-out sample indices in `0..bound`, the same on every run.
fn sample_indices(count: usize, bound: u64) -> Vec<u64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        })
        .collect()
}

fn log_appends(c: &mut Criterion) {
    let leaf_hashes: Vec<Hash> = (0..LOG_LENGTH)
        .map(|index| leaf_hash(&log_leaf_value(index)))
        .collect();
    let leaf_values: Vec<Vec<u8>> = (0..LOG_LENGTH).map(log_leaf_value).collect();

    let mut group = c.benchmark_group("log append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LOG_LENGTH));
    group.bench_function("10^6 leaf hashes", |b| {
        b.iter(|| {
            let mut log = RegistryLog::new();
            for leaf in &leaf_hashes {
                log.append_leaf_hash(*leaf);
            }
            black_box(log.root())
        })
    });
    group.bench_function("10^6 leaves of 160 bytes, hashing them", |b| {
        b.iter(|| {
            let mut log = RegistryLog::new();
            for value in &leaf_values {
                log.append(value);
            }
            black_box(log.root())
        })
    });
    group.finish();
}

fn log_proofs(c: &mut Criterion) {
    let mut log = RegistryLog::new();
    for index in 0..LOG_LENGTH {
        log.append(&log_leaf_value(index));
    }
    let head = TreeHead {
        length: LOG_LENGTH,
        root: log.root(),
    };
    let leaf_indices = sample_indices(1024, LOG_LENGTH);
    let old_lengths: Vec<u64> = sample_indices(1024, LOG_LENGTH - 1)
        .into_iter()
        .map(|length| length + 1)
        .collect();
    let mut group = c.benchmark_group("log proofs at 10^6 leaves");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));

    let mut next = 0;
    group.bench_function("inclusion audit path: generate", |b| {
        b.iter(|| {
            next = (next + 1) % leaf_indices.len();
            black_box(log.inclusion_proof(leaf_indices[next], LOG_LENGTH).unwrap())
        })
    });
    let inclusion: Vec<(u64, Hash, Vec<Hash>)> = leaf_indices
        .iter()
        .map(|&index| {
            let proof = log.inclusion_proof(index, LOG_LENGTH).unwrap();
            let leaf = log.leaf_hash(index).unwrap();
            audit_path::verify_inclusion(index, LOG_LENGTH, &leaf, &proof, &head.root).unwrap();
            (index, leaf, proof)
        })
        .collect();
    group.bench_function("inclusion audit path: verify", |b| {
        b.iter(|| {
            next = (next + 1) % inclusion.len();
            let (index, leaf, proof) = &inclusion[next];
            audit_path::verify_inclusion(*index, LOG_LENGTH, leaf, proof, &head.root).unwrap()
        })
    });

    group.bench_function("consistency audit path: generate", |b| {
        b.iter(|| {
            next = (next + 1) % old_lengths.len();
            black_box(
                log.consistency_proof(old_lengths[next], LOG_LENGTH)
                    .unwrap(),
            )
        })
    });
    let consistency: Vec<(u64, Hash, Vec<Hash>)> = old_lengths
        .iter()
        .map(|&old_length| {
            let proof = log.consistency_proof(old_length, LOG_LENGTH).unwrap();
            let old_root = log.root_at(old_length).unwrap();
            audit_path::verify_consistency(old_length, LOG_LENGTH, &old_root, &head.root, &proof)
                .unwrap();
            (old_length, old_root, proof)
        })
        .collect();
    group.bench_function("consistency audit path: verify", |b| {
        b.iter(|| {
            next = (next + 1) % consistency.len();
            let (old_length, old_root, proof) = &consistency[next];
            audit_path::verify_consistency(*old_length, LOG_LENGTH, old_root, &head.root, proof)
                .unwrap()
        })
    });

    group.bench_function("warg bundle, 1 inclusion + 1 consistency: generate", |b| {
        b.iter(|| {
            next = (next + 1) % leaf_indices.len();
            black_box(
                log.proof_bundle(LOG_LENGTH, &[old_lengths[next]], &[leaf_indices[next]])
                    .unwrap(),
            )
        })
    });
    let bundles: Vec<_> = (0..leaf_indices.len())
        .map(|i| {
            let bundle = log
                .proof_bundle(LOG_LENGTH, &[old_lengths[i]], &[leaf_indices[i]])
                .unwrap();
            let old = TreeHead {
                length: old_lengths[i],
                root: log.root_at(old_lengths[i]).unwrap(),
            };
            let leaf = log.leaf_hash(leaf_indices[i]).unwrap();
            bundle
                .verify_inclusion(&head, leaf_indices[i], &leaf)
                .unwrap();
            bundle.verify_consistency(&old, &head).unwrap();
            (bundle, old, leaf)
        })
        .collect();
    group.bench_function("warg bundle, 1 inclusion + 1 consistency: verify", |b| {
        b.iter(|| {
            next = (next + 1) % bundles.len();
            let (bundle, old, leaf) = &bundles[next];
            bundle
                .verify_inclusion(&head, leaf_indices[next], leaf)
                .unwrap();
            bundle.verify_consistency(old, &head).unwrap();
        })
    });
    group.finish();
}

fn map_updates_and_proofs(c: &mut Criterion) {
    for size in MAP_SIZES {
        let started = Instant::now();
        let map = Map::new().extend((0..size).map(|index| (map_key(index), map_value(index, 0))));
        eprintln!(
            "setup: map of {size} keys built in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let label = if size == 100_000 { "10^5" } else { "10^6" };

        let mut group = c.benchmark_group(format!("map of {label} keys"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(4));
        group.warm_up_time(Duration::from_millis(500));
        group.throughput(Throughput::Elements(UPDATES_PER_BATCH));

        let new_entries: Vec<(KeyPath, MapValue)> = (size..size + UPDATES_PER_BATCH)
            .map(|index| (map_key(index), map_value(index, 0)))
            .collect();
        let changed_entries: Vec<(KeyPath, MapValue)> =
            sample_indices(UPDATES_PER_BATCH as usize, size)
                .into_iter()
                .map(|index| (map_key(index), map_value(index, 1)))
                .collect();
        for (name, entries) in [
            ("new keys", &new_entries),
            ("existing keys", &changed_entries),
        ] {
            group.bench_function(format!("insert 1000 {name}, one at a time"), |b| {
                b.iter_batched(
                    || map.clone(),
                    |mut map| {
                        for (path, value) in entries {
                            map = map.insert(*path, value.clone());
                        }
                        map
                    },
                    BatchSize::SmallInput,
                )
            });
            group.bench_function(format!("insert 1000 {name} as one batch"), |b| {
                b.iter_batched(
                    || map.clone(),
                    |map| map.extend(entries.iter().cloned()),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("map proofs at {label} keys"));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(2));
        group.warm_up_time(Duration::from_millis(500));
        let root = map.root();
        let present = sample_indices(256, size);
        let mut next = 0;
        group.bench_function("prove a present key", |b| {
            b.iter(|| {
                next = (next + 1) % present.len();
                black_box(map.prove(&map_key(present[next])))
            })
        });
        let absent: Vec<u64> = (0..256).map(|i| size + 10_000 + i).collect();
        group.bench_function("prove an absent key", |b| {
            b.iter(|| {
                next = (next + 1) % absent.len();
                black_box(map.prove(&map_key(absent[next])))
            })
        });
        let inclusion: Vec<_> = present
            .iter()
            .map(|&index| {
                let (path, value) = (map_key(index), map_value(index, 0));
                let proof = map.prove(&path);
                proof
                    .verify_inclusion(&root, &path, value.as_bytes())
                    .unwrap();
                (path, value, proof)
            })
            .collect();
        group.bench_function("verify inclusion", |b| {
            b.iter(|| {
                next = (next + 1) % inclusion.len();
                let (path, value, proof) = &inclusion[next];
                proof
                    .verify_inclusion(&root, path, value.as_bytes())
                    .unwrap()
            })
        });
        let absence: Vec<_> = absent
            .iter()
            .map(|&index| {
                let path = map_key(index);
                let proof = map.prove(&path);
                proof.verify_absence(&root, &path).unwrap();
                (path, proof)
            })
            .collect();
        group.bench_function("verify absence", |b| {
            b.iter(|| {
                next = (next + 1) % absence.len();
                let (path, proof) = &absence[next];
                proof.verify_absence(&root, path).unwrap()
            })
        });
        let non_empty: usize = inclusion
            .iter()
            .map(|(_, _, proof)| proof.siblings.iter().flatten().count())
            .sum();
        eprintln!(
            "map of {size} keys: {:.1} non-empty siblings per inclusion proof on average",
            non_empty as f64 / inclusion.len() as f64
        );
        group.finish();
    }
}

criterion_group!(benches, log_appends, log_proofs, map_updates_and_proofs);
criterion_main!(benches);
