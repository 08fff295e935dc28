//! `cairn hash` and `cairn split` on the largest corpus file, against `openssl dgst -sha256`
//! (and `sha256sum`) reading and hashing the same file, in the same run: each command is run
//! as a process, several times, from a warm page cache, and the best run counts.
//!
//! `cairn hash` must give the file's SHA-256 and its tree digest (every blob hashed); it is
//! checked against `openssl`'s digest. `cairn split` runs into an empty directory (writing
//! every blob) and into one that holds them (re-checking each). Run with
//! `cargo bench -p cairn --bench hash`. The corpus is read from `../shared/corpus` (skipped
//! with a message when absent). Scale: `BENCH_RUNS` (default 10).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{env_number, temp_dir};

/// The largest file in the corpus manifest: (name, path).
fn largest_file(corpus: &Path) -> Option<(String, std::path::PathBuf)> {
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).ok()?;
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let valid = fields.get(9) == Some(&"valid");
            let size: u64 = fields.get(3)?.parse().ok()?;
            valid.then(|| (size, fields[0].to_owned()))
        })
        .max()
        .map(|(_, name)| (name.clone(), corpus.join(name)))
}

/// The best wall time of `runs` runs of `command` (made fresh each run by `make`), each of
/// which must succeed; and the last run's standard output.
fn best(runs: usize, make: impl Fn() -> Command) -> (Duration, String) {
    let mut best = Duration::MAX;
    let mut stdout = String::new();
    for _ in 0..runs {
        let mut command = make();
        let start = Instant::now();
        let output = command.output().unwrap();
        let elapsed = start.elapsed();
        assert!(
            output.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        best = best.min(elapsed);
        stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    }
    (best, stdout)
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let Some((name, path)) = largest_file(&corpus) else {
        println!(
            "SKIPPED: no corpus manifest at {}: nothing to measure",
            corpus.display()
        );
        return;
    };
    let runs = env_number("BENCH_RUNS", 10);
    let size = std::fs::metadata(&path).unwrap().len();
    let mib = size as f64 / (1 << 20) as f64;
    println!("{name}: {mib:.1} MiB; best of {runs} runs each");
    let cairn = env!("CARGO_BIN_EXE_cairn");
    // Warm the page cache.
    std::fs::read(&path).unwrap();

    let (openssl, digest) = best(runs, || {
        let mut command = Command::new("openssl");
        command.args(["dgst", "-sha256", "-r"]).arg(&path);
        command
    });
    let digest = digest.split_whitespace().next().unwrap().to_owned();
    let (sha256sum, _) = best(runs, || {
        let mut command = Command::new("sha256sum");
        command.arg(&path);
        command
    });
    let (hash, printed) = best(runs, || {
        let mut command = Command::new(cairn);
        command.arg("hash").arg(&path);
        command
    });
    assert!(
        printed.contains(&format!("sha256:{digest}")),
        "cairn hash printed another digest:\n{printed}"
    );
    let dir = temp_dir("bench-hash-split");
    let (split_fresh, _) = best(runs, || {
        let _ = std::fs::remove_dir_all(&dir);
        let mut command = Command::new(cairn);
        command.arg("split").arg(&path).arg("-o").arg(&dir);
        command
    });
    let (split_again, _) = best(runs, || {
        let mut command = Command::new(cairn);
        command.arg("split").arg(&path).arg("-o").arg(&dir);
        command
    });
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\n{:<44} {:>10} {:>8} {:>8}",
        "command", "ms", "MiB/s", "ratio"
    );
    for (label, time) in [
        ("openssl dgst -sha256", openssl),
        ("sha256sum", sha256sum),
        ("cairn hash (SHA-256 and tree digest)", hash),
        ("cairn split into an empty directory", split_fresh),
        ("cairn split where the blobs are", split_again),
    ] {
        println!(
            "{label:<44} {:>10.1} {:>8.0} {:>8.2}",
            time.as_secs_f64() * 1000.0,
            mib / time.as_secs_f64(),
            openssl.as_secs_f64() / time.as_secs_f64()
        );
    }
    println!("(ratio: speed against openssl dgst -sha256 in the same run; above 1 is faster)");
}
