//! What zstd makes of the split store, to choose the level fragments are stored at: every
//! valid component and module of the corpus is split, its distinct blobs (each stored once,
//! as the content store keeps them) are compressed one by one at several levels, keeping the
//! raw bytes when compression does not make a blob smaller. Reported against the whole files'
//! size: the bytes stored, and how fast all blobs compress and decompress. The whole files
//! compressed one by one at level 3 are shown for comparison.
//!
//! Run with `cargo bench -p cairn-split --bench fragment_compression`. Reads
//! `../shared/corpus` (or the directory in `CAIRN_CORPUS`), and says so when it is missing.
//! `BENCH_LEVELS` (comma separated, default `1,3,6,9,12,15,19`) chooses the levels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_split::{split, BlobId};

/// The valid files of the corpus manifest.
fn corpus_files(corpus: &Path) -> Option<Vec<PathBuf>> {
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).ok()?;
    let mut header = None;
    let mut files = Vec::new();
    for line in manifest.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let Some(columns) = &header else {
            header = Some(fields.iter().map(|f| f.to_string()).collect::<Vec<_>>());
            continue;
        };
        let column = |name: &str| columns.iter().position(|c| c == name);
        let (Some(file), Some(valid)) = (column("file"), column("valid")) else {
            return None;
        };
        if fields.get(valid) == Some(&"valid") {
            files.push(corpus.join(fields[file]));
        }
    }
    Some(files)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn mib_per_s(bytes: u64, time: Duration) -> f64 {
    mib(bytes) / time.as_secs_f64()
}

fn main() {
    let corpus = std::env::var_os("CAIRN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    let Some(files) = corpus_files(&corpus) else {
        println!(
            "SKIPPED: no corpus at {} (set CAIRN_CORPUS)",
            corpus.display()
        );
        return;
    };
    let levels: Vec<i32> = std::env::var("BENCH_LEVELS")
        .unwrap_or_else(|_| "1,3,6,9,12,15,19".into())
        .split(',')
        .map(|level| level.trim().parse().expect("BENCH_LEVELS: numbers"))
        .collect();

    let mut whole_bytes = 0u64;
    let mut whole_level_3 = 0u64;
    let mut blobs: BTreeMap<BlobId, Vec<u8>> = BTreeMap::new();
    for path in &files {
        let bytes = std::fs::read(path).expect("a corpus file");
        whole_bytes += bytes.len() as u64;
        whole_level_3 += zstd::bulk::compress(&bytes, 3)
            .expect("compresses")
            .len()
            .min(bytes.len()) as u64;
        let parts = split(&bytes).expect("a valid corpus file splits");
        for blob in parts.blobs() {
            blobs
                .entry(blob.digest)
                .or_insert_with(|| blob.bytes.to_vec());
        }
    }
    let stored: u64 = blobs.values().map(|b| b.len() as u64).sum();
    println!(
        "{} files, {:.1} MiB whole; split: {} distinct blobs, {:.1} MiB ({:.3} of whole)",
        files.len(),
        mib(whole_bytes),
        blobs.len(),
        mib(stored),
        stored as f64 / whole_bytes as f64
    );
    println!(
        "whole files, each compressed at level 3: {:.3} of whole\n",
        whole_level_3 as f64 / whole_bytes as f64
    );
    println!("level   stored (of whole)   compress MiB/s   decompress MiB/s   blobs kept raw");
    for level in levels {
        let started = Instant::now();
        let compressed: Vec<Option<Vec<u8>>> = blobs
            .values()
            .map(|bytes| {
                let packed = zstd::bulk::compress(bytes, level).expect("compresses");
                (packed.len() < bytes.len()).then_some(packed)
            })
            .collect();
        let compress_time = started.elapsed();
        let kept_raw = compressed.iter().filter(|c| c.is_none()).count();
        let stored_bytes: u64 = blobs
            .values()
            .zip(&compressed)
            .map(|(raw, packed)| packed.as_ref().map_or(raw.len(), Vec::len) as u64)
            .sum();
        let started = Instant::now();
        for (raw, packed) in blobs.values().zip(&compressed) {
            if let Some(packed) = packed {
                let unpacked = zstd::bulk::decompress(packed, raw.len()).expect("decompresses");
                assert!(unpacked == *raw, "a blob round trips");
            }
        }
        let decompress_time = started.elapsed();
        println!(
            "{level:>5}   {:>17.3}   {:>14.0}   {:>16.0}   {kept_raw:>14}",
            stored_bytes as f64 / whole_bytes as f64,
            mib_per_s(stored, compress_time),
            mib_per_s(stored, decompress_time),
        );
    }
}
