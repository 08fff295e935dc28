//! Bytes at rest and on the wire with compressed blobs and patches, over real HTTP on loopback
//! against an in-process cairn registry (through the test proxy, which can hide compression
//! from the registry, as every client saw it before, and throttle the link):
//!
//! * stored: every valid corpus file published; the content store's bytes on disk against the
//!   files' (target: at most 0.35x);
//! * a cold fetch of each corpus component: bytes received against the file (target: at most
//!   0.40x over all of them);
//! * the second of a pair sharing a runtime (the componentize-py pair, the first cached);
//! * upgrades between two builds of one application that differ by one string: `greeter`
//!   (Rust, `tests/fixtures`) and, when `componentize-py` is on the PATH (or named by
//!   `CAIRN_COMPONENTIZE_PY`), a Python application it builds twice (target: at most 0.05x of
//!   the new file);
//! * the time to fetch and verify the largest component cold, and an upgrade, with and without
//!   compression, at full loopback speed (target: within 1.3x) and through a link of 100 Mbit/s
//!   (target: faster).
//!
//! Run with `cargo bench -p cairn-client --bench compression`; it needs `../shared/corpus`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_client::Fetched;
use cairn_protocol::PackageName;
use semver::{Version, VersionReq};
use support::{fixture, key, name, Setup, Tamper};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// The valid files of the corpus, with whether each is a component.
fn corpus_files() -> Option<Vec<(String, Vec<u8>, bool)>> {
    let manifest = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).ok()?;
    let mut files = Vec::new();
    for line in manifest.lines().skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        if columns.get(9) != Some(&"valid") {
            continue;
        }
        let bytes = std::fs::read(corpus_dir().join(columns[0])).ok()?;
        files.push((columns[0].to_owned(), bytes, columns[5] == "component"));
    }
    Some(files)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(time: Duration) -> String {
    format!("{:.1} ms", time.as_secs_f64() * 1000.0)
}

fn bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let metadata = entry.metadata().unwrap();
        if metadata.is_dir() {
            total += bytes_on_disk(&entry.path());
        } else {
            total += metadata.len();
        }
    }
    total
}

/// A package name for a corpus file.
fn package_of(file: &str) -> PackageName {
    let stem: String = file
        .split('.')
        .next()
        .unwrap()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name(&format!("example:{stem}"))
}

/// Builds a Python application three times with componentize-py: once, again from the same
/// source, and with one string changed; `None` when componentize-py is not installed.
fn python_builds(dir: &Path) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let tool = std::env::var("CAIRN_COMPONENTIZE_PY").unwrap_or("componentize-py".into());
    std::fs::create_dir_all(dir.join("wit")).unwrap();
    std::fs::write(
        dir.join("wit/world.wit"),
        "package cairn:demo;\n\nworld greeter {\n  export greet: func(name: string) -> string;\n}\n",
    )
    .unwrap();
    let mut builds = Vec::new();
    for (build, greeting) in ["Hello", "Hello", "Hello there"].iter().enumerate() {
        let app = dir.join(format!("build-{build}"));
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("app.py"),
            format!(
                "import wit_world\n\nclass WitWorld(wit_world.WitWorld):\n    def greet(self, name: str) -> str:\n        return f\"{greeting}, {{name}}!\"\n"
            ),
        )
        .unwrap();
        let status = std::process::Command::new(&tool)
            .current_dir(&app)
            .args([
                "-d",
                "../wit",
                "-w",
                "greeter",
                "componentize",
                "app",
                "-o",
                "out.wasm",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        builds.push(std::fs::read(app.join("out.wasm")).unwrap());
    }
    let changed = builds.pop()?;
    let rebuilt = builds.pop()?;
    Some((builds.pop()?, rebuilt, changed))
}

async fn fetch(setup: &Setup, client: &str, package: &PackageName, version: &str) -> Fetched {
    let mut client = setup.client(client);
    let requirement: VersionReq = format!("={version}").parse().unwrap();
    client.fetch(package, &requirement).await.unwrap()
}

/// Fetches `earlier` then, timed, `later` with a fresh client.
async fn upgrade(
    setup: &Setup,
    client: &str,
    package: &PackageName,
    earlier: &str,
    later: &str,
) -> (Fetched, Duration) {
    let mut client = setup.client(client);
    let at = |v: &str| -> VersionReq { format!("={v}").parse().unwrap() };
    client.fetch(package, &at(earlier)).await.unwrap();
    client
        .update_packages(std::slice::from_ref(package))
        .await
        .unwrap();
    let start = Instant::now();
    let fetched = client.fetch(package, &at(later)).await.unwrap();
    (fetched, start.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(files) = corpus_files() else {
        println!("SKIPPED: ../shared/corpus is missing");
        return;
    };
    let setup = Setup::start("bench-compression").await;
    let owner = key();
    let mut publisher = setup.client("publisher");
    let v1: Version = "1.0.0".parse().unwrap();

    // Stored bytes.
    let whole: u64 = files.iter().map(|(_, bytes, _)| bytes.len() as u64).sum();
    for (file, bytes, _) in &files {
        let package = package_of(file);
        publisher.publish_init(&package, &owner).await.unwrap();
        publisher
            .publish_release(&package, &owner, v1.clone(), bytes.clone())
            .await
            .unwrap();
    }
    let stored = bytes_on_disk(&setup.registry.data.join("content"));
    println!(
        "stored: {} valid corpus files, {whole} B; content store {stored} B on disk: {:.3}x the files (target <= 0.35x)",
        files.len(),
        stored as f64 / whole as f64
    );

    // Cold fetches of each component.
    let (mut received, mut sizes) = (0u64, 0u64);
    println!("cold fetch of each corpus component (bytes received / file):");
    for (file, bytes, component) in &files {
        if !component {
            continue;
        }
        let fetched = fetch(&setup, &format!("cold-{file}"), &package_of(file), "1.0.0").await;
        assert_eq!(&fetched.bytes, bytes);
        let moved = fetched.stats.bytes_downloaded();
        println!(
            "  {file}: {moved} B of {} B, {:.3}x",
            bytes.len(),
            moved as f64 / bytes.len() as f64
        );
        received += moved;
        sizes += bytes.len() as u64;
    }
    println!(
        "  all components: {received} B of {sizes} B, {:.3}x (target <= 0.40x)",
        received as f64 / sizes as f64
    );

    // The second of a pair sharing a runtime.
    let hello = package_of("b07-py-hello.componentize-py.component.wasm");
    let spin = package_of("b10-py-spin-http.componentize-py.component.wasm");
    let mut pair = setup.client("pair");
    pair.fetch(&hello, &VersionReq::STAR).await.unwrap();
    let second = pair.fetch(&spin, &VersionReq::STAR).await.unwrap();
    println!(
        "second of a pair sharing a runtime (b10 after b07): {} B of {} B, {:.4}x ({} blobs, {} cached)",
        second.stats.bytes_downloaded(),
        second.bytes.len(),
        second.stats.bytes_downloaded() as f64 / second.bytes.len() as f64,
        second.stats.blobs_downloaded,
        second.stats.blobs_cached
    );

    // Upgrades.
    let mut apps = vec![(
        "rust",
        "greeter (Rust, wasm32-wasip2), one string changed",
        fixture("greeter-1.component.wasm"),
        fixture("greeter-2.component.wasm"),
    )];
    match python_builds(&setup.dir.join("python")) {
        Some((first, rebuilt, changed)) => {
            apps.push((
                "python",
                "greeter (Python, componentize-py), one string changed",
                first.clone(),
                changed,
            ));
            apps.push((
                "python-rebuilt",
                "greeter (Python, componentize-py), the same source built again",
                first,
                rebuilt,
            ));
        }
        None => println!("upgrade of a Python application: SKIPPED (no componentize-py)"),
    }
    let mut timed_upgrade = None;
    for (index, (key, label, first, second)) in apps.iter().enumerate() {
        let package = name(&format!("example:upgrade-{key}"));
        publisher.publish_init(&package, &owner).await.unwrap();
        for (version, bytes) in [("1.0.0", first), ("1.1.0", second)] {
            publisher
                .publish_release(&package, &owner, version.parse().unwrap(), bytes.clone())
                .await
                .unwrap();
        }
        let (made, made_time) = upgrade(
            &setup,
            &format!("upgrade-{index}-a"),
            &package,
            "1.0.0",
            "1.1.0",
        )
        .await;
        let (kept, kept_time) = upgrade(
            &setup,
            &format!("upgrade-{index}-b"),
            &package,
            "1.0.0",
            "1.1.0",
        )
        .await;
        assert_eq!(&made.bytes, second);
        assert_eq!(&kept.bytes, second);
        let moved = kept.stats.bytes_downloaded();
        println!(
            "upgrade of {label}: {} B -> {} B, received {moved} B ({} of {} blobs as patches), {:.4}x the new file (target <= 0.05x); \
             {} with the patches made on demand, {} once kept",
            first.len(),
            second.len(),
            kept.stats.blobs_patched,
            kept.stats.blobs_downloaded,
            moved as f64 / second.len() as f64,
            ms(made_time),
            ms(kept_time)
        );
        if *key != "python-rebuilt" {
            timed_upgrade = Some(package);
        }
    }

    // Time to fetch and verify: compressed against uncompressed, cold and upgrade, at full
    // speed and through 100 Mbit/s.
    let (largest, largest_bytes, _) = files
        .iter()
        .filter(|(_, _, component)| *component)
        .max_by_key(|(_, bytes, _)| bytes.len())
        .unwrap();
    let largest = package_of(largest);
    let upgraded = timed_upgrade.unwrap();
    for (link, rate, rounds) in [
        ("loopback", None, 5),
        ("100 Mbit/s", Some(12_500_000u64), 3),
    ] {
        setup.proxy.throttle(rate);
        let (mut now, mut before) = (Vec::new(), Vec::new());
        let (mut up_now, mut up_before) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for (compressed, times, up_times) in [
                (true, &mut now, &mut up_now),
                (false, &mut before, &mut up_before),
            ] {
                setup.proxy.set(if compressed {
                    Tamper::Nothing
                } else {
                    Tamper::NoCompression
                });
                let tag = format!("{link}-{round}-{compressed}");
                let mut cold = setup.client(&format!("time-{tag}"));
                cold.update_packages(std::slice::from_ref(&largest))
                    .await
                    .unwrap();
                let start = Instant::now();
                let fetched = cold.fetch(&largest, &VersionReq::STAR).await.unwrap();
                times.push(start.elapsed());
                assert_eq!(&fetched.bytes, largest_bytes);
                let (_, time) =
                    upgrade(&setup, &format!("up-{tag}"), &upgraded, "1.0.0", "1.1.0").await;
                up_times.push(time);
            }
        }
        setup.proxy.set(Tamper::Nothing);
        let (now, before) = (median(now), median(before));
        let (up_now, up_before) = (median(up_now), median(up_before));
        println!(
            "{link}: cold fetch of the largest component ({} B), median of {rounds}: compressed {}, uncompressed {}: {:.2}x; \
             upgrade: compressed and patched {}, uncompressed {}: {:.2}x",
            largest_bytes.len(),
            ms(now),
            ms(before),
            now.as_secs_f64() / before.as_secs_f64(),
            ms(up_now),
            ms(up_before),
            up_now.as_secs_f64() / up_before.as_secs_f64(),
        );
    }
    setup.proxy.throttle(None);
    setup.stop().await;
}
