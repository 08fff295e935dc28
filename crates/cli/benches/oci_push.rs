//! OCI push throughput: releases pushed per second and MiB/s by concurrent clients, to cairn
//! (each push a signed release in the package's log, answered only once published) against
//! Debian's `docker-registry` taking the same pushes in the same run (which logs nothing).
//!
//! Every push is what `wkg publish` and `oras push` send: for the config and the layer a
//! `HEAD` of the blob, and if missing a `POST` to open an upload and a `PUT` of the bytes;
//! then the `PUT` of the manifest under the version's tag. Each client pushes to its own
//! package (`bench/client-a`, `bench/client-b`...), every layer distinct (a component with a custom section naming
//! the push appended, still a valid component), so neither registry finds a layer it holds.
//! At the end cairn's log must have grown by exactly one record per push.
//!
//! Two workloads: a small component (the `b03-rs-calc` fixture, 178 KiB) pushed many times,
//! and the corpus' valid components (55 MiB; read from `../shared/corpus`, skipped with a
//! message when absent). Run with `cargo bench -p cairn --bench oci_push`.
//! Scale: `BENCH_CLIENTS` (default 8), `BENCH_RELEASES` (small pushes per client, default 12),
//! `BENCH_CHECKPOINT_INTERVAL` (cairn's `--checkpoint-interval`, default its own default).

#[path = "../tests/docker_registry/mod.rs"]
mod docker_registry;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use docker_registry::{docker_registry_binary, DockerRegistry, RegistryOptions};
use serde_json::Value;
use support::{cairn, env_number, fixture, sha256, temp_dir, TestServer};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Where the pushes go, and with which credentials.
struct Target {
    url: String,
    authorization: Option<String>,
}

/// One push: the package repository, the version, and the component.
struct Push {
    repository: String,
    version: String,
    wasm: Vec<u8>,
    config: Vec<u8>,
}

/// `component` with a custom section `cairn-bench` holding `note` appended: another valid
/// component with another digest.
fn distinct(component: &[u8], note: &str) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"cairn-bench";
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(note.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// A kebab-case word for client `index` (`a`, `b`... `z`, `aa`...): warg names' words start
/// with a letter.
fn client_word(mut index: usize) -> String {
    let mut word = Vec::new();
    loop {
        word.push(b'a' + (index % 26) as u8);
        index /= 26;
        if index == 0 {
            break;
        }
        index -= 1;
    }
    word.reverse();
    String::from_utf8(word).unwrap()
}

/// `clients` lists of pushes: client `c` pushes `components` in turn, `rounds` times, as
/// versions `1.0.0`, `1.0.1`... of its own package.
fn workload(components: &[Vec<u8>], clients: usize, rounds: usize) -> Vec<Vec<Push>> {
    (0..clients)
        .map(|client| {
            (0..rounds * components.len())
                .map(|index| {
                    let version = format!("1.0.{index}");
                    let component = &components[(index + client) % components.len()];
                    let config = serde_json::to_vec(&serde_json::json!({
                        "architecture": "wasm",
                        "os": "wasip2",
                        "layerDigests": [],
                        "created": format!("2026-12-05T00:00:{:02}Z", index % 60),
                    }))
                    .unwrap();
                    Push {
                        repository: format!("bench/client-{}", client_word(client)),
                        wasm: distinct(component, &format!("client {client} version {version}")),
                        version,
                        config,
                    }
                })
                .collect()
        })
        .collect()
}

impl Target {
    fn request(
        &self,
        http: &reqwest::blocking::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::blocking::RequestBuilder {
        let builder = http.request(method, url);
        match &self.authorization {
            Some(value) => builder.header("authorization", value),
            None => builder,
        }
    }

    /// Uploads `bytes` into `repository` unless it is there: HEAD, then POST and PUT.
    fn push_blob(&self, http: &reqwest::blocking::Client, repository: &str, bytes: &[u8]) {
        let digest = sha256(bytes);
        let blob = format!("{}/v2/{repository}/blobs/{digest}", self.url);
        if self
            .request(http, reqwest::Method::HEAD, &blob)
            .send()
            .unwrap()
            .status()
            == 200
        {
            return;
        }
        let opened = self
            .request(
                http,
                reqwest::Method::POST,
                &format!("{}/v2/{repository}/blobs/uploads/", self.url),
            )
            .send()
            .unwrap();
        assert_eq!(opened.status(), 202, "{}", opened.text().unwrap());
        let location = opened.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.url)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self
            .request(
                http,
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(put.status(), 201, "{}", put.text().unwrap());
    }

    /// Pushes one release: config, layer, manifest.
    fn push(&self, http: &reqwest::blocking::Client, push: &Push) {
        self.push_blob(http, &push.repository, &push.config);
        self.push_blob(http, &push.repository, &push.wasm);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.wasm.config.v0+json",
                "digest": sha256(&push.config),
                "size": push.config.len(),
            },
            "layers": [{
                "mediaType": "application/wasm",
                "digest": sha256(&push.wasm),
                "size": push.wasm.len(),
            }],
        }))
        .unwrap();
        let response = self
            .request(
                http,
                reqwest::Method::PUT,
                &format!(
                    "{}/v2/{}/manifests/{}",
                    self.url, push.repository, push.version
                ),
            )
            .header("content-type", MANIFEST_TYPE)
            .body(manifest)
            .send()
            .unwrap();
        assert_eq!(
            response.status(),
            201,
            "{} {}: {}",
            push.repository,
            push.version,
            response.text().unwrap()
        );
    }

    /// Runs every client's pushes at once; returns (releases/s, MiB/s of layers).
    fn run(&self, workload: &[Vec<Push>]) -> (f64, f64) {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for pushes in workload {
                scope.spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(600))
                        .build()
                        .unwrap();
                    for push in pushes {
                        self.push(&http, push);
                    }
                });
            }
        });
        let seconds = start.elapsed().as_secs_f64();
        let releases = workload.iter().map(Vec::len).sum::<usize>();
        let bytes = workload
            .iter()
            .flatten()
            .map(|push| push.wasm.len())
            .sum::<usize>();
        (
            releases as f64 / seconds,
            bytes as f64 / (1 << 20) as f64 / seconds,
        )
    }
}

/// A fresh cairn with a publisher account for `bench`: the server and its push target.
fn cairn_target(name: &str, interval: Option<&str>) -> (TestServer, Target) {
    let data = temp_dir(name);
    let mut args = vec!["--namespace", "bench", "--max-content-size", "1GiB"];
    if let Some(interval) = interval {
        args.extend(["--checkpoint-interval", interval]);
    }
    let server = TestServer::start(&data, &args);
    let (ok, stdout, stderr) = cairn(&[
        "admin",
        "publisher",
        "add",
        "--data",
        data.to_str().unwrap(),
        "bench",
        "--namespace",
        "bench",
        "--json",
    ]);
    assert!(ok, "publisher add failed: {stderr}");
    let account: Value = serde_json::from_str(&stdout).unwrap();
    let token = account["token"].as_str().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bench:{token}"));
    let target = Target {
        url: server.url.clone(),
        authorization: Some(format!("Basic {basic}")),
    };
    (server, target)
}

fn log_length(server: &TestServer) -> u64 {
    server.client().checkpoint().unwrap().contents.log_length
}

/// The corpus' valid components, when the corpus is there.
fn corpus_components() -> Option<Vec<Vec<u8>>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).ok()?;
    let components = manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let wanted = fields.get(5) == Some(&"component") && fields.get(9) == Some(&"valid");
            wanted.then(|| std::fs::read(corpus.join(fields[0])).unwrap())
        })
        .collect();
    Some(components)
}

fn main() {
    let Some(binary) = docker_registry_binary("the OCI push benchmark") else {
        return;
    };
    let clients = env_number("BENCH_CLIENTS", 8);
    let releases = env_number("BENCH_RELEASES", 12);
    let interval = std::env::var("BENCH_CHECKPOINT_INTERVAL").ok();
    let mut workloads = vec![(
        format!("b03-rs-calc (178 KiB), {clients} clients x {releases} releases"),
        workload(
            &[fixture("b03-rs-calc.wac.component.wasm")],
            clients,
            releases,
        ),
    )];
    match corpus_components() {
        Some(components) => {
            let size: usize = components.iter().map(Vec::len).sum();
            let corpus_clients = clients.min(4);
            workloads.push((
                format!(
                    "corpus: {} components ({:.0} MiB), {corpus_clients} clients x {} releases",
                    components.len(),
                    size as f64 / (1 << 20) as f64,
                    components.len()
                ),
                workload(&components, corpus_clients, 1),
            ));
        }
        None => println!("SKIPPED: no corpus at ../shared/corpus: the corpus workload"),
    }
    println!(
        "cairn --checkpoint-interval {}",
        interval.as_deref().unwrap_or("(its default)")
    );
    println!(
        "\n{:<64} {:<16} {:>10} {:>8} {:>8} {:>8}",
        "workload", "registry", "releases/s", "ratio", "MiB/s", "ratio"
    );
    for (index, (label, pushes)) in workloads.iter().enumerate() {
        let registry = DockerRegistry::start(
            &binary,
            &format!("bench-oci-push-registry-{index}"),
            RegistryOptions::default(),
        );
        let direct = Target {
            url: registry.url(),
            authorization: None,
        };
        let (base_releases, base_mib) = direct.run(pushes);
        drop(registry);

        let (server, target) =
            cairn_target(&format!("bench-oci-push-{index}"), interval.as_deref());
        let before = log_length(&server);
        let (releases, mib) = target.run(pushes);
        // Every push answered 201 only once published, one record each (a package's first
        // also carries its init).
        let pushed = pushes.iter().map(Vec::len).sum::<usize>();
        assert_eq!(log_length(&server), before + pushed as u64);
        drop(server);

        println!(
            "{label:<64} {:<16} {base_releases:>10.1} {:>8.2} {base_mib:>8.1} {:>8.2}",
            "docker-registry", 1.0, 1.0
        );
        println!(
            "{:<64} {:<16} {releases:>10.1} {:>8.2} {mib:>8.1} {:>8.2}",
            "",
            "cairn",
            releases / base_releases,
            mib / base_mib
        );
    }
    println!("(ratio: against docker-registry in the same run; above 1 is faster)");
}
