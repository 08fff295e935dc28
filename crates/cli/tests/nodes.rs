//! Several `cairn serve` nodes on one PostgreSQL database and one content directory: every
//! node accepts publishes and serves reads, one sequences at a time, another takes over when
//! it dies, a node started late catches up, and under a chaos run (the sequencer killed with
//! `kill -9` five times, PostgreSQL restarted once) nothing acknowledged is lost and no two
//! nodes ever serve different checkpoints at one length. PostgreSQL is a cluster of the
//! test's own on loopback; without PostgreSQL the tests say so and pass, except in CI.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_log::TreeHead;
use cairn_protocol::api::{ConsistencyResponse, RecordState};
use cairn_protocol::proofs::decode_log_bundle;
use cairn_protocol::{Digest, PackageName, RecordId, SignedCheckpoint};
use cairn_test_servers::{Cluster, S3Server};
use serde_json::json;
use support::*;

/// The nodes of one registry: their data directories, addresses and shared parts.
struct Registry {
    root: PathBuf,
    database: String,
    /// The content store every node names: a directory, or a bucket of an S3 server.
    content: String,
    /// The `AWS_*` variables of the S3 server, when the content is there.
    env: Vec<(&'static str, String)>,
    ports: Vec<u16>,
}

impl Registry {
    fn new(cluster: &Cluster, name: &str, nodes: usize) -> Registry {
        let root = temp_dir(name);
        Registry {
            database: cluster.create_database(&name.replace('-', "_")),
            content: root.join("content").display().to_string(),
            env: Vec::new(),
            ports: (0..nodes).map(|_| free_loopback_port()).collect(),
            root,
        }
    }

    /// The same registry keeping its content in `bucket` of `s3`.
    fn with_s3(mut self, s3: &S3Server, bucket: &str) -> Registry {
        self.content = format!("s3://{bucket}/registry");
        self.env = s3.env();
        self
    }

    fn data(&self, node: usize) -> PathBuf {
        self.root.join(format!("node{node}"))
    }

    fn url(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[node])
    }

    /// Starts node `node`; every node after the first signs with the first one's operator
    /// key (nodes of one registry share it, like the database).
    fn start(&self, node: usize) -> TestServer {
        let data = self.data(node);
        if node > 0 && !data.join("operator.key").exists() {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::copy(self.data(0).join("operator.key"), data.join("operator.key")).unwrap();
        }
        let listen = format!("127.0.0.1:{}", self.ports[node]);
        TestServer::start_with_env(
            &data,
            &[
                "--namespace",
                "example",
                "--database",
                &self.database,
                "--content",
                &self.content,
                "--listen",
                &listen,
                "--checkpoint-interval",
                "50ms",
            ],
            &self.env,
        )
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Whether the node at `url` says it is the sequencer (`None` if it does not answer).
fn is_sequencer(url: &str) -> Option<bool> {
    let body: serde_json::Value = http()
        .get(format!("{url}/readyz"))
        .send()
        .ok()?
        .json()
        .ok()?;
    body["sequencer"].as_bool()
}

fn checkpoint(url: &str) -> Option<SignedCheckpoint> {
    let response = http()
        .get(format!("{url}/v1/fetch/checkpoint"))
        .send()
        .ok()?;
    response
        .status()
        .is_success()
        .then(|| response.json().ok())?
}

/// Waits until exactly one of `urls` says it sequences; returns its position and how long
/// that took.
fn one_sequencer(urls: &[String]) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        let sequencers: Vec<usize> = urls
            .iter()
            .enumerate()
            .filter(|(_, url)| is_sequencer(url) == Some(true))
            .map(|(i, _)| i)
            .collect();
        if let [one] = sequencers[..] {
            return (one, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no single sequencer among {urls:?}: {sequencers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every node serves the same checkpoint, at least `length` long.
fn same_checkpoint(urls: &[String], length: u64) -> SignedCheckpoint {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: Vec<Option<SignedCheckpoint>> = urls.iter().map(|url| checkpoint(url)).collect();
        if let Some(Some(first)) = seen.first() {
            if first.contents.log_length >= length && seen.iter().all(|c| c.as_ref() == Some(first))
            {
                return first.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the nodes do not agree: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fixture_path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// The three nodes keep their content in S3 (an `s3s-fs` server on loopback).
#[test]
fn three_nodes_serve_one_log_hand_over_the_sequencer_and_a_late_node_catches_up() {
    let Some(cluster) = Cluster::start("nodes") else {
        return;
    };
    let Some(s3) = S3Server::start("nodes", &["content"]) else {
        return;
    };
    let registry = Registry::new(&cluster, "nodes-three", 4).with_s3(&s3, "content");
    let mut nodes: Vec<Option<TestServer>> = (0..3).map(|i| Some(registry.start(i))).collect();
    let urls: Vec<String> = (0..3).map(|i| registry.url(i)).collect();
    let (sequencer, _) = one_sequencer(&urls);
    let others: Vec<usize> = (0..3).filter(|&i| i != sequencer).collect();

    // Published through a node that does not sequence, fetched through the other one.
    let root = &registry.root;
    let alice = CliUser::new(root, "alice");
    let bob = CliUser::new(root, "bob");
    alice.ok(&["config", "--registry", &urls[others[0]]]);
    bob.ok(&["config", "--registry", &urls[others[1]]]);
    alice.ok(&["key", "new"]);
    alice.ok(&["publish", "init", "example:greeter"]);
    alice.ok(&[
        "publish",
        "release",
        "example:greeter",
        "--version",
        "1.0.0",
        &fixture_path("greeter-1.component.wasm"),
    ]);
    let out = root.join("greeter.wasm");
    bob.ok(&[
        "fetch",
        "example:greeter@1.0.0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("greeter-1.component.wasm")
    );
    let agreed = same_checkpoint(&urls, 3);

    // The sequencer dies: another node takes over and publishing goes on through it.
    let killed_at = Instant::now();
    nodes[sequencer].take().unwrap().crash();
    let survivors: Vec<String> = others.iter().map(|&i| urls[i].clone()).collect();
    let (_, _) = one_sequencer(&survivors);
    let takeover = killed_at.elapsed();
    eprintln!("take-over after kill -9 of the sequencer: {takeover:?}");
    alice.ok(&[
        "publish",
        "release",
        "example:greeter",
        "--version",
        "1.1.0",
        &fixture_path("greeter-2.component.wasm"),
    ]);
    bob.ok(&["update"]);
    bob.ok(&[
        "fetch",
        "example:greeter@1.1.0",
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fixture("greeter-2.component.wasm")
    );
    let later = same_checkpoint(&survivors, agreed.contents.log_length + 1);

    // A node started while the others run catches up and answers as they do.
    let late = registry.start(3);
    let mut all = survivors.clone();
    all.push(registry.url(3));
    assert_eq!(same_checkpoint(&all, later.contents.log_length), later);
    let name: PackageName = "example:greeter".parse().unwrap();
    let logs = |url: &str| -> serde_json::Value {
        http()
            .post(format!("{url}/v1/fetch/logs"))
            .json(&json!({"logLength": later.contents.log_length, "packages": {name.log_id().to_string(): null}}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(logs(&registry.url(3)), logs(&survivors[0]));
    assert_eq!(is_sequencer(&registry.url(3)), Some(false));

    drop(late);
    for node in nodes.into_iter().flatten() {
        assert!(node.stop().success());
    }
    // The blobs are in the bucket, and every content joins from there.
    let blobs = std::fs::read_dir(s3.root().join("content/registry/sha256"))
        .unwrap()
        .count();
    assert!(blobs >= 4, "{blobs} blobs in S3");
    let output = alice
        .command(env!("CARGO_BIN_EXE_cairn"))
        .envs(registry.env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["audit", "--data", registry.data(0).to_str().unwrap()])
        .args(["--database", &registry.database, "--json"])
        .output()
        .unwrap();
    let (ok, stdout, stderr) = outcome(output);
    assert!(ok, "{stdout}{stderr}");
    let audited: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(audited["logLength"], later.contents.log_length, "{audited}");
    assert_eq!(audited["contentsChecked"], 2, "{audited}");
}

/// Checkpoints served, by length, each with the node that served it.
type Served = BTreeMap<u64, Vec<(SignedCheckpoint, usize)>>;

/// A publisher's record that a node acknowledged as published, and where.
#[derive(Clone, Debug)]
struct Acked {
    name: PackageName,
    record_id: RecordId,
    index: u64,
}

/// Publishes records of one package until `stop`, through node `first` and, whenever that
/// node does not answer, the next one; returns what was acknowledged as published.
fn publish_until(
    stop: Arc<AtomicBool>,
    urls: Vec<String>,
    first: usize,
    worker: usize,
) -> Vec<Acked> {
    let http = http();
    let content = fixture("r03-wabt-fac.core.wasm");
    let digest = Digest::of(&content);
    let mut publisher = Publisher::new(&format!("example:chaos-n{worker}"));
    let mut record = publisher.init();
    let mut acked = Vec::new();
    let mut node = first;
    let mut version = 0;
    while !stop.load(Ordering::Relaxed) {
        let url = &urls[node % urls.len()];
        let log_id = publisher.name.log_id();
        let sent = (|| -> Result<RecordState, String> {
            let request = cairn_protocol::api::PublishRecordRequest {
                package_name: publisher.name.clone(),
                record: (&record).into(),
                content_sources: Default::default(),
            };
            let response = http
                .post(format!("{url}/v1/package/{log_id}/record"))
                .json(&request)
                .send()
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body: serde_json::Value = response.json().map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}: {body}"));
            }
            if body["state"] == "sourcing" {
                let uploaded = http
                    .post(format!(
                        "{url}/v1/package/{log_id}/record/{}/content/{digest}",
                        record.record_id()
                    ))
                    .body(content.clone())
                    .send()
                    .map_err(|e| e.to_string())?;
                if !uploaded.status().is_success() {
                    return Err(format!("upload: {}", uploaded.status()));
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let state: cairn_protocol::api::PackageRecordResponse = http
                    .get(format!(
                        "{url}/v1/package/{log_id}/record/{}",
                        record.record_id()
                    ))
                    .send()
                    .map_err(|e| e.to_string())?
                    .json()
                    .map_err(|e| e.to_string())?;
                match state.state {
                    state @ (RecordState::Published { .. } | RecordState::Rejected { .. }) => {
                        return Ok(state)
                    }
                    _ if Instant::now() > deadline => return Err("not published in 10 s".into()),
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })();
        match sent {
            Ok(RecordState::Published { registry_index }) => {
                acked.push(Acked {
                    name: publisher.name.clone(),
                    record_id: *record.record_id(),
                    index: registry_index,
                });
                version += 1;
                record = publisher.release(&format!("1.0.{version}"), &content);
            }
            Ok(other) => panic!(
                "worker {worker}: record {} was {other:?}",
                record.record_id()
            ),
            // The node is down (or its database is): the same record, through the next node.
            Err(_) => {
                node += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    acked
}

#[test]
fn chaos_the_sequencer_killed_five_times_and_postgresql_restarted_loses_nothing_and_never_forks() {
    let Some(cluster) = Cluster::start("chaos") else {
        return;
    };
    let registry = Registry::new(&cluster, "nodes-chaos", 3);
    let mut nodes: Vec<Option<TestServer>> = (0..3).map(|i| Some(registry.start(i))).collect();
    let urls: Vec<String> = (0..3).map(|i| registry.url(i)).collect();
    one_sequencer(&urls);

    // Every checkpoint any node served, by length, with the node that served it.
    let seen: Arc<Mutex<Served>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop, urls) = (seen.clone(), stop.clone(), urls.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (node, url) in urls.iter().enumerate() {
                    if let Some(checkpoint) = checkpoint(url) {
                        let mut seen = seen.lock().unwrap();
                        let at = seen.entry(checkpoint.contents.log_length).or_default();
                        if !at.iter().any(|(c, n)| *n == node && *c == checkpoint) {
                            at.push((checkpoint, node));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let (stop, urls) = (stop.clone(), urls.clone());
            std::thread::spawn(move || publish_until(stop, urls, worker % 3, worker))
        })
        .collect();

    let mut takeovers = Vec::new();
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(800));
        let (sequencer, _) = one_sequencer(&urls);
        let killed_at = Instant::now();
        nodes[sequencer].take().unwrap().crash();
        let survivors: Vec<String> = (0..3)
            .filter(|&i| i != sequencer)
            .map(|i| urls[i].clone())
            .collect();
        one_sequencer(&survivors);
        takeovers.push(killed_at.elapsed());
        nodes[sequencer] = Some(registry.start(sequencer));
        if round == 2 {
            // PostgreSQL itself goes down and comes back under the running nodes.
            cluster.kill();
            std::thread::sleep(Duration::from_millis(500));
            cluster.restart();
            one_sequencer(&urls);
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect();
    watcher.join().unwrap();
    eprintln!(
        "chaos: {} records acknowledged; take-over times after kill -9 of the sequencer: {:?}",
        acked.len(),
        takeovers
    );
    assert!(
        acked.len() >= 30,
        "too little was published: {}",
        acked.len()
    );

    // Every node serves every acknowledged record at the index it was acknowledged at.
    let last = same_checkpoint(&urls, 1);
    for url in &urls {
        let client = Client {
            url: url.clone(),
            http: http(),
        };
        for record in &acked {
            match client.record_state(&record.name, &record.record_id).state {
                RecordState::Published { registry_index } => {
                    assert_eq!(registry_index, record.index, "{record:?} at {url}")
                }
                other => panic!("acknowledged {record:?} is {other:?} at {url}"),
            }
        }
    }
    // No fork: one checkpoint per length, whichever node served it; and a checkpoint from
    // any node is consistent with the newest, by a proof from another node.
    let seen = seen.lock().unwrap();
    assert!(
        seen.len() > 5,
        "too few checkpoints were seen: {}",
        seen.len()
    );
    for (length, served) in seen.iter() {
        let first = &served[0].0;
        for (checkpoint, node) in served {
            assert_eq!(
                checkpoint.contents.checkpoint(),
                first.contents.checkpoint(),
                "two checkpoints at length {length} (node {node} and node {})",
                served[0].1
            );
        }
    }
    let new = TreeHead {
        length: last.contents.log_length,
        root: last.contents.log_root.to_hash(),
    };
    for (i, (length, served)) in seen.iter().enumerate() {
        if *length >= last.contents.log_length {
            continue;
        }
        let (checkpoint, node) = &served[0];
        let prover = &urls[(node + 1 + i) % urls.len()];
        let proof: ConsistencyResponse = http()
            .post(format!("{prover}/v1/proof/consistency"))
            .json(&json!({"from": length, "to": last.contents.log_length}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let old = TreeHead {
            length: *length,
            root: checkpoint.contents.log_root.to_hash(),
        };
        decode_log_bundle(&proof.proof)
            .unwrap()
            .verify_consistency(&old, &new)
            .unwrap_or_else(|e| panic!("{length} -> {}: {e}", new.length));
    }
    for node in nodes.into_iter().flatten() {
        assert!(node.stop().success());
    }
    let (ok, stdout, stderr) = cairn(&[
        "audit",
        "--data",
        registry.data(0).to_str().unwrap(),
        "--database",
        &registry.database,
    ]);
    assert!(ok, "audit failed after the chaos run: {stderr}");
    eprintln!("{}", stdout.trim());
}
