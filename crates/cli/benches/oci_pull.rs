//! OCI pull throughput of the largest corpus component: cairn's
//! `GET /v2/<ns>/<name>/blobs/<layer digest>` (the file joined from its split on the fly)
//! against Debian's `docker-registry` serving the same bytes as one stored blob, in the same
//! run, over real HTTP on loopback; and cairn with `--content oci://` pointing at that
//! `docker-registry` (every blob of the split read through it while joining).
//!
//! Each target is pulled sequentially by one client, then by several concurrent clients.
//! Every pull is checked for its length, and each client's first pull of each target for its
//! SHA-256. Run with `cargo bench -p cairn --bench oci_pull`. The corpus is read from
//! `../shared/corpus` beside the repository (skipped with a message when absent).
//! Scale: `BENCH_PULLS` (sequential pulls, and pulls per concurrent client; default 12),
//! `BENCH_CLIENTS` (default 4).

#[path = "../tests/docker_registry/mod.rs"]
mod docker_registry;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_protocol::Digest;
use cairn_store::{BlobStore, OciContentStore};
use docker_registry::{docker_registry_binary, DockerRegistry, RegistryOptions};
use support::{env_number, temp_dir, Publisher, TestServer};

/// The largest valid component in the corpus manifest: (file name, path).
fn largest_component(corpus: &Path) -> Option<(String, PathBuf)> {
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).ok()?;
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let is_component = fields.get(5) == Some(&"component");
            let valid = fields.get(9) == Some(&"valid");
            let size: u64 = fields.get(3)?.parse().ok()?;
            (is_component && valid).then(|| (size, fields[0].to_owned()))
        })
        .max()
        .map(|(_, name)| {
            let path = corpus.join(&name);
            (name, path)
        })
}

/// Pulls `url` once, checking the length (and the SHA-256 if `verify_digest`); returns the
/// bytes read.
fn pull(
    http: &reqwest::blocking::Client,
    url: &str,
    expected: &[u8],
    verify_digest: bool,
) -> usize {
    let mut response = http.get(url).send().unwrap();
    assert_eq!(response.status(), 200, "{url}");
    if verify_digest {
        let mut bytes = Vec::with_capacity(expected.len());
        response.read_to_end(&mut bytes).unwrap();
        assert!(
            Digest::of(&bytes) == Digest::of(expected),
            "{url} served other bytes"
        );
        return bytes.len();
    }
    let total = read_all(response);
    assert_eq!(total, expected.len(), "{url} served another length");
    total
}

/// Reads to the end, returning the length.
fn read_all(mut reader: impl Read) -> usize {
    let mut buffer = vec![0u8; 256 << 10];
    let mut total = 0;
    loop {
        let read = reader.read(&mut buffer).unwrap();
        if read == 0 {
            return total;
        }
        total += read;
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// MiB/s of `pulls` sequential pulls by one client.
fn sequential(url: &str, expected: &[u8], pulls: usize) -> f64 {
    let http = http();
    pull(&http, url, expected, true);
    let start = Instant::now();
    let bytes: usize = (0..pulls).map(|_| pull(&http, url, expected, false)).sum();
    bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

/// MiB/s of `clients` concurrent clients pulling `pulls` times each.
fn concurrent(url: &str, expected: &[u8], clients: usize, pulls: usize) -> f64 {
    let start = Instant::now();
    let bytes: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let http = http();
                    (0..pulls)
                        .map(|index| pull(&http, url, expected, index == 0))
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

/// Starts cairn (with `extra` flags), publishes `bytes` as `bench:big@1.0.0`, and returns the
/// server and the URL of the layer.
fn cairn_with(name: &str, extra: &[&str], bytes: &[u8]) -> (TestServer, String) {
    let data = temp_dir(name);
    let mut args = vec!["--namespace", "bench", "--max-content-size", "1GiB"];
    args.extend_from_slice(extra);
    let server = TestServer::start(&data, &args);
    let client = server.client();
    let mut publisher = Publisher::new("bench:big");
    publisher.publish_init(&client);
    publisher.publish_release(&client, "1.0.0", bytes);
    let url = format!("{}/v2/bench/big/blobs/{}", server.url, Digest::of(bytes));
    (server, url)
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let Some((name, path)) = largest_component(&corpus) else {
        println!(
            "SKIPPED: no corpus manifest at {}: nothing to measure",
            corpus.display()
        );
        return;
    };
    let Some(binary) = docker_registry_binary("the OCI pull benchmark") else {
        return;
    };
    let pulls = env_number("BENCH_PULLS", 12);
    let clients = env_number("BENCH_CLIENTS", 4);
    let bytes = std::fs::read(&path).unwrap();
    println!(
        "{name}: {:.1} MiB; {pulls} sequential pulls; {clients} concurrent clients x {pulls} pulls",
        bytes.len() as f64 / (1 << 20) as f64
    );

    let registry = DockerRegistry::start(
        &binary,
        "bench-oci-pull-registry",
        RegistryOptions::default(),
    );
    let direct = OciContentStore::new(
        format!("oci://127.0.0.1:{}/bench/direct", registry.port)
            .parse()
            .unwrap(),
    )
    .unwrap();
    let digest = Digest::of(&bytes).to_string().parse().unwrap();
    // As it is (`put` would keep it compressed): what docker-registry serves for a layer.
    let file = temp_dir("bench-oci-pull-file").join("layer");
    std::fs::write(&file, &bytes).unwrap();
    direct.put_file(&digest, &file).unwrap();
    let direct_url = format!("{}/v2/bench/direct/blobs/{digest}", registry.url());

    let (on_disk, on_disk_url) = cairn_with("bench-oci-pull-disk", &[], &bytes);
    let location = registry.content_location();
    let (proxied, proxied_url) =
        cairn_with("bench-oci-pull-proxied", &["--content", &location], &bytes);

    let targets = [
        ("docker-registry 2.8 (one stored blob)", direct_url),
        ("cairn, content on disk (joined)", on_disk_url),
        (
            "cairn --content oci:// (joined via docker-registry)",
            proxied_url,
        ),
    ];
    let mut rows = Vec::new();
    for (label, url) in &targets {
        let one = sequential(url, &bytes, pulls);
        let many = concurrent(url, &bytes, clients, pulls);
        rows.push((label, one, many));
    }
    // Where the proxied row's time goes: cairn's OCI client alone, reading the stored blob.
    let client_one = {
        let start = Instant::now();
        let mut total = 0;
        for _ in 0..pulls {
            total += read_all(direct.open(&digest).unwrap());
        }
        assert_eq!(total, pulls * bytes.len());
        total as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
    };
    let (_, base_one, base_many) = rows[0];
    println!();
    println!(
        "{:<52} {:>14} {:>8} {:>16} {:>8}",
        "target",
        "1 client MiB/s",
        "ratio",
        format!("{clients} clients MiB/s"),
        "ratio"
    );
    for (label, one, many) in &rows {
        println!(
            "{label:<52} {one:>14.0} {:>8.2} {many:>16.0} {:>8.2}",
            one / base_one,
            many / base_many
        );
    }
    println!("(ratio: against docker-registry in the same run; above 1 is faster)");
    println!(
        "cairn's OCI content client alone, reading the blob from docker-registry: {client_one:.0} MiB/s"
    );
    drop((on_disk, proxied, registry));
}
