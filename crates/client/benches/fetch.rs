//! What a fetch moves and how long it takes, over real HTTP on loopback against an in-process
//! cairn registry:
//!
//! * the second of two components built with the same toolchain (the componentize-py pair of
//!   the corpus) while the first is cached: bytes downloaded against the floor, the bytes of the
//!   blobs the cache lacks (target: within 2%), and against the whole file;
//! * a cold fetch of the largest corpus component, split (blobs in parallel) against whole-file
//!   (the registry seen through a proxy that hides cairn's split extension, as the reference
//!   server would), in the same run.
//!
//! Run with `cargo bench -p cairn-client --bench fetch`; it needs `../shared/corpus`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use semver::VersionReq;
use support::{client, key, name, Setup, Tamper};

fn corpus(file: &str) -> Option<Vec<u8>> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus")
            .join(file),
    )
    .ok()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (Some(first), Some(second)) = (
        corpus("b07-py-hello.componentize-py.component.wasm"),
        corpus("b10-py-spin-http.componentize-py.component.wasm"),
    ) else {
        println!("SKIPPED: ../shared/corpus is missing");
        return;
    };
    let setup = Setup::start("bench-fetch").await;
    let owner = key();
    let mut publisher = client(&setup.registry.url, &setup.dir.join("publisher"));
    let (hello, spin) = (name("example:py-hello"), name("example:py-spin"));
    for (package, bytes) in [(&hello, &first), (&spin, &second)] {
        publisher.publish_init(package, &owner).await.unwrap();
        publisher
            .publish_release(package, &owner, "1.0.0".parse().unwrap(), bytes.clone())
            .await
            .unwrap();
    }
    let any = VersionReq::STAR;

    // The floor: the blobs of the second component that the first does not have.
    let cached: HashSet<_> = cairn_split::split(&first)
        .unwrap()
        .blobs()
        .iter()
        .map(|b| b.digest)
        .collect();
    let split_second = cairn_split::split(&second).unwrap();
    let floor: u64 = split_second
        .blobs()
        .iter()
        .filter(|b| !cached.contains(&b.digest))
        .map(|b| b.bytes.len() as u64)
        .sum();

    let mut warm = setup.client("warm");
    warm.fetch(&hello, &any).await.unwrap();
    let start = Instant::now();
    let fetched = warm.fetch(&spin, &any).await.unwrap();
    let warm_time = start.elapsed();
    assert_eq!(fetched.bytes, second);
    let moved = fetched.stats.bytes_downloaded();
    println!(
        "second of two componentize-py components, first cached: downloaded {moved} B ({} blobs, {} from the cache, \
         {} B of manifest) in {:.1} ms; floor {floor} B; {:.3}x the floor (target <= 1.02x); {:.1}% of the whole file ({} B)",
        fetched.stats.blobs_downloaded,
        fetched.stats.blobs_cached,
        fetched.stats.manifest_bytes,
        warm_time.as_secs_f64() * 1000.0,
        moved as f64 / floor as f64,
        100.0 * moved as f64 / second.len() as f64,
        second.len()
    );

    // Cold fetches of the largest component, split against whole-file, alternating.
    let (mut split_times, mut whole_times) = (Vec::new(), Vec::new());
    for round in 0..5 {
        setup.proxy.set(Tamper::Nothing);
        let mut cold = setup.client(&format!("cold-split-{round}"));
        cold.update_packages(std::slice::from_ref(&spin))
            .await
            .unwrap();
        let start = Instant::now();
        let fetched = cold.fetch(&spin, &any).await.unwrap();
        split_times.push(start.elapsed());
        assert!(!fetched.stats.whole_file && fetched.bytes == second);

        setup.proxy.set(Tamper::NoSplitExtension);
        let mut cold = setup.client(&format!("cold-whole-{round}"));
        cold.update_packages(std::slice::from_ref(&spin))
            .await
            .unwrap();
        let start = Instant::now();
        let fetched = cold.fetch(&spin, &any).await.unwrap();
        whole_times.push(start.elapsed());
        assert!(fetched.stats.whole_file && fetched.bytes == second);
    }
    let (split, whole) = (median(split_times), median(whole_times));
    println!(
        "cold fetch of the largest component ({} B), median of 5: split {:.1} ms, whole-file {:.1} ms, split/whole {:.2}x",
        second.len(),
        split.as_secs_f64() * 1000.0,
        whole.as_secs_f64() * 1000.0,
        split.as_secs_f64() / whole.as_secs_f64()
    );
    setup.stop().await;
}
