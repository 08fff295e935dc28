//! Split and join throughput on the largest corpus component, as ratios against baselines
//! measured in the same run:
//!
//! * split + tree digest against a plain SHA-256 of the same bytes (target: at least 0.8x);
//! * a verifying join from in-memory blobs against a plain copy of the same bytes
//!   (target: at least 0.5x);
//! * a verifying join from blob files to a file against copying the whole file
//!   (what `cairn join` does against `cp`).
//!
//! Run with `cargo bench -p cairn-split --bench split_throughput`. Reads
//! `../shared/corpus` (or the directory in `CAIRN_CORPUS`); falls back to the largest
//! fixture in `tests/fixtures` when the corpus is missing.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_split::{join, split, BlobEntry, BlobId, BlobSource};

fn largest_wasm(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "wasm")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("component"))
        })
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
}

/// Median time of `runs` calls of `f`, after one warm-up call.
fn median<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn mib_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / time.as_secs_f64()
}

struct FileBlobs<'a> {
    dir: &'a Path,
}

impl BlobSource for FileBlobs<'_> {
    fn open(&mut self, entry: &BlobEntry) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        Ok(Box::new(std::fs::File::open(
            self.dir.join(entry.digest.to_hex()),
        )?))
    }
}

fn report(
    name: &str,
    bytes: usize,
    subject: Duration,
    baseline_name: &str,
    baseline: Duration,
    target: f64,
) {
    let ratio = baseline.as_secs_f64() / subject.as_secs_f64();
    println!(
        "{name:<34} {:>9.1} MiB/s   {baseline_name:<24} {:>9.1} MiB/s   ratio {ratio:.2}x (target {target:.1}x){}",
        mib_per_s(bytes, subject),
        mib_per_s(bytes, baseline),
        if ratio >= target { "" } else { "  BELOW TARGET" }
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = std::env::var_os("CAIRN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"));
    let path = largest_wasm(&corpus)
        .or_else(|| {
            println!(
                "corpus not found at {}; using the fixtures",
                corpus.display()
            );
            largest_wasm(&root.join("tests/fixtures"))
        })
        .expect("no component to benchmark");
    let bytes = std::fs::read(&path).unwrap();
    let runs = if bytes.len() > 4_000_000 { 15 } else { 101 };
    println!(
        "input: {} ({} bytes), median of {runs} runs",
        path.display(),
        bytes.len()
    );

    let sha = median(runs, || {
        black_box(BlobId::of(black_box(&bytes)));
    });
    let split_time = median(runs, || {
        let split = split(black_box(&bytes)).unwrap();
        black_box(split.tree_digest());
    });
    report(
        "split + tree digest",
        bytes.len(),
        split_time,
        "plain sha256",
        sha,
        0.8,
    );

    let split = split(&bytes).unwrap();
    let mut blobs: HashMap<BlobId, Vec<u8>> = split
        .blobs()
        .iter()
        .map(|b| (b.digest, b.bytes.to_vec()))
        .collect();
    let copy = median(runs, || {
        let mut out = Vec::with_capacity(bytes.len());
        out.extend_from_slice(black_box(&bytes));
        black_box(out);
    });
    let join_time = median(runs, || {
        let mut out = Vec::with_capacity(bytes.len());
        join(split.manifest(), &mut blobs, &mut out).unwrap();
        assert_eq!(out.len(), bytes.len());
        black_box(out);
    });
    report(
        "join, verifying (memory)",
        bytes.len(),
        join_time,
        "plain copy (memory)",
        copy,
        0.5,
    );

    // Files: blobs in a directory, output to a file, against copying the whole file.
    let dir = std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for blob in split.blobs() {
        std::fs::write(dir.join(blob.digest.to_hex()), &blob.bytes).unwrap();
    }
    let whole = dir.join("whole.wasm");
    std::fs::write(&whole, &bytes).unwrap();
    let copy_out = dir.join("copy.wasm");
    let file_copy = median(runs, || {
        std::io::copy(
            &mut std::fs::File::open(&whole).unwrap(),
            &mut std::fs::File::create(&copy_out).unwrap(),
        )
        .unwrap();
    });
    let join_out = dir.join("joined.wasm");
    let file_join = median(runs, || {
        let file = std::fs::File::create(&join_out).unwrap();
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        join(split.manifest(), &mut FileBlobs { dir: &dir }, &mut out).unwrap();
    });
    assert_eq!(std::fs::read(&join_out).unwrap(), bytes);
    report(
        "join, verifying (files)",
        bytes.len(),
        file_join,
        "file copy",
        file_copy,
        0.5,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
