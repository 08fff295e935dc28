//! cairn on PostgreSQL, side by side in one run with cairn on SQLite and with the reference
//! `warg-server` 0.10.0 on its PostgreSQL store, from the same load generator (`load/`):
//!
//! * publish throughput for new packages (inits) and for releases: cairn on SQLite, on
//!   PostgreSQL with one node, with three nodes (the clients spread over the three), and
//!   `warg-server` on PostgreSQL; reported as records/s and as ratios;
//! * take-over: the sequencer of three nodes killed with `kill -9`, the time until another
//!   node says it sequences, and until a record sent just after the kill is published;
//! * reads: `fetch/logs` from one node pinned to one core (`taskset`) against two nodes
//!   pinned to one core each (the machine's two cores; the load generator shares them).
//!
//! Run with `cargo bench -p cairn --bench scale_out`. Needs PostgreSQL (`initdb`, as for the
//! tests). The reference is `warg-server` built with its `postgres` feature (which links
//! libpq: `apt-get install libpq-dev`), found at `$CAIRN_WARG_SERVER_POSTGRES`, else at
//! `~/.cache/cairn-peers/warg-server-postgres/bin/warg-server`:
//! `cargo install --locked --root ~/.cache/cairn-peers/warg-server-postgres warg-server@0.10.0 --features postgres`.
//! Without it the reference is left out. Scale: `BENCH_PACKAGES` (default 1000),
//! `BENCH_RELEASES` (default 10), `BENCH_CLIENTS` (default 128), `BENCH_FETCH_CLIENTS`
//! (default 16), `BENCH_FETCHES` (default 4000), `BENCH_TAKEOVERS` (default 3).

#[path = "../tests/support/mod.rs"]
mod support;

mod load;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_protocol::api::RecordState;
use cairn_test_servers::Cluster;
use load::*;
use support::{env_number, free_loopback_port, temp_dir, Client, Publisher, TestServer};

/// `cairn serve` nodes on one database and one content directory.
struct Nodes {
    root: PathBuf,
    database: String,
    ports: Vec<u16>,
    servers: Vec<Option<TestServer>>,
}

impl Nodes {
    fn start(cluster: &Cluster, name: &str, count: usize) -> Nodes {
        let root = temp_dir(name);
        let mut nodes = Nodes {
            database: cluster.create_database(name),
            ports: (0..count).map(|_| free_loopback_port()).collect(),
            servers: Vec::new(),
            root,
        };
        for node in 0..count {
            let server = nodes.start_node(node);
            nodes.servers.push(Some(server));
        }
        nodes
    }

    fn start_node(&self, node: usize) -> TestServer {
        let data = self.root.join(format!("node{node}"));
        if node > 0 && !data.join("operator.key").exists() {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::copy(
                self.root.join("node0/operator.key"),
                data.join("operator.key"),
            )
            .unwrap();
        }
        let listen = format!("127.0.0.1:{}", self.ports[node]);
        let content = self.root.join("content");
        TestServer::start(
            &data,
            &[
                "--namespace",
                "bench",
                "--database",
                &self.database,
                "--content",
                content.to_str().unwrap(),
                "--listen",
                &listen,
            ],
        )
    }

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.servers
            .iter()
            .flatten()
            .map(|server| server.child.id())
            .collect()
    }

    /// Waits until exactly one running node says it sequences; returns it.
    fn sequencer(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sequencing: Vec<usize> = (0..self.ports.len())
                .filter(|&i| self.servers[i].is_some() && says_sequencer(&self.urls()[i]))
                .collect();
            if let [one] = sequencing[..] {
                return one;
            }
            assert!(
                Instant::now() < deadline,
                "no single sequencer: {sequencing:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn says_sequencer(url: &str) -> bool {
    http()
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .ok()
        .and_then(|r| r.json::<serde_json::Value>().ok())
        .is_some_and(|body| body["sequencer"] == true)
}

fn find_reference() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CAIRN_WARG_SERVER_POSTGRES") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".cache/cairn-peers/warg-server-postgres/bin/warg-server"))
        .filter(|path| path.is_file())
}

/// Pins every thread of process `pid` to core `cpu`.
fn pin(pid: u32, cpu: usize) {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cannot run taskset");
    assert!(status.success(), "taskset failed");
}

fn main() {
    let scale = Scale {
        packages: env_number("BENCH_PACKAGES", 1000),
        releases: env_number("BENCH_RELEASES", 10),
        clients: env_number("BENCH_CLIENTS", 128),
        fetch_clients: env_number("BENCH_FETCH_CLIENTS", 16),
        fetches: env_number("BENCH_FETCHES", 4000),
    };
    println!(
        "{} packages (an init each), then {} releases each = {} records; {} concurrent publishing clients",
        scale.packages,
        scale.releases,
        scale.packages * scale.releases,
        scale.clients
    );
    let Some(cluster) = Cluster::start("bench") else {
        println!("PostgreSQL is not installed: nothing to compare");
        return;
    };

    // cairn on SQLite.
    let dir = temp_dir("scale-sqlite");
    let sqlite = TestServer::start(&dir, &["--namespace", "bench"]);
    let (sqlite_inits, sqlite_releases) = publish_load(
        std::slice::from_ref(&sqlite.url),
        &[sqlite.child.id()],
        &scale,
    );
    sqlite_inits.report("cairn sqlite inits");
    sqlite_releases.report("cairn sqlite releases");
    drop(sqlite);

    // cairn on PostgreSQL, one node: a record sent to it idle, then the load.
    let one = Nodes::start(&cluster, "scale_one", 1);
    let idle = env_number("BENCH_IDLE_PUBLISHES", 20);
    let (idle50, idle90) = idle_latency(&one.urls()[0], idle);
    println!(
        "cairn pg x1 idle publish: published {idle50:.1} ms after it is sent (p50), {idle90:.1} ms (p90), of {idle} (target: p50 under 100 ms)"
    );
    let (one_inits, one_releases) = publish_load(&one.urls(), &one.pids(), &scale);
    one_inits.report("cairn pg x1 inits");
    one_releases.report("cairn pg x1 releases");
    let (one_rps, one_p50, one_p99) = {
        let pid = one.pids()[0];
        pin(pid, 0);
        fetch_load(&one.urls(), &scale)
    };
    drop(one);

    // cairn on PostgreSQL, three nodes, the clients spread over them; first a record sent
    // idle to a node that does not sequence.
    let mut three = Nodes::start(&cluster, "scale_three", 3);
    let follower = (three.sequencer() + 1) % 3;
    let (idle50, idle90) = idle_latency(&three.urls()[follower], idle);
    println!(
        "cairn pg x3 idle publish through a follower: {idle50:.1} ms (p50), {idle90:.1} ms (p90)"
    );
    let (three_inits, three_releases) = publish_load(&three.urls(), &three.pids(), &scale);
    three_inits.report("cairn pg x3 inits");
    three_releases.report("cairn pg x3 releases");

    // Reads: two of the nodes, pinned to one core each, against the one node above.
    let urls = three.urls();
    let sequencer = three.sequencer();
    let readers: Vec<usize> = (0..3).filter(|&i| i != sequencer).collect();
    for (cpu, &node) in readers.iter().enumerate() {
        pin(three.servers[node].as_ref().unwrap().child.id(), cpu);
    }
    let reader_urls: Vec<String> = readers.iter().map(|&i| urls[i].clone()).collect();
    let (two_rps, two_p50, two_p99) = fetch_load(&reader_urls, &scale);
    println!(
        "fetch/logs  one node on one core: {one_rps:.0} requests/s (p50 {one_p50:.2} ms, p99 {one_p99:.2} ms); two nodes on a core each: {two_rps:.0} requests/s (p50 {two_p50:.2} ms, p99 {two_p99:.2} ms): {:.2}x",
        two_rps / one_rps
    );

    // Take-over: the sequencer killed, a record sent at once through another node.
    let mut takeovers = Vec::new();
    for round in 0..env_number("BENCH_TAKEOVERS", 3) {
        let sequencer = three.sequencer();
        let other = (sequencer + 1) % 3;
        let client = Client {
            url: urls[other].clone(),
            http: http(),
        };
        let mut publisher = Publisher::new(&format!("bench:takeover-n{round}"));
        let init = publisher.init();
        let killed = Instant::now();
        three.servers[sequencer].take().unwrap().crash();
        let (status, _) = client.publish(&publisher.name, &init);
        assert_eq!(status, 202);
        let new_sequencer = three.sequencer();
        let sequencing = killed.elapsed();
        loop {
            match client.record_state(&publisher.name, init.record_id()).state {
                RecordState::Published { .. } => break,
                RecordState::Rejected { reason } => panic!("rejected: {reason}"),
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let published = killed.elapsed();
        println!(
            "take-over {}: node {new_sequencer} sequences {:.0} ms after kill -9 of node {sequencer}; a record sent at the kill published after {:.0} ms",
            round + 1,
            sequencing.as_secs_f64() * 1000.0,
            published.as_secs_f64() * 1000.0
        );
        takeovers.push(published);
        three.servers[sequencer] = Some(three.start_node(sequencer));
    }
    drop(three);

    let Some(reference) = find_reference() else {
        println!(
            "warg-server with its postgres feature not found (see this bench's header): no reference figures"
        );
        return;
    };
    let database = cluster.create_database("scale_reference");
    let dir = temp_dir("scale-reference");
    let server = start_reference(&reference, &dir, Some(&database));
    let (ref_inits, ref_releases) = publish_load(
        std::slice::from_ref(&server.url),
        &[server.child.id()],
        &scale,
    );
    ref_inits.report("warg-server pg inits");
    ref_releases.report("warg-server pg releases");
    drop(server);

    println!(
        "ratios to warg-server on PostgreSQL (target >= 10x): inits: cairn pg x1 {:.1}x, x3 {:.1}x, sqlite {:.1}x; releases: cairn pg x1 {:.1}x, x3 {:.1}x, sqlite {:.1}x",
        one_inits.rate() / ref_inits.rate(),
        three_inits.rate() / ref_inits.rate(),
        sqlite_inits.rate() / ref_inits.rate(),
        one_releases.rate() / ref_releases.rate(),
        three_releases.rate() / ref_releases.rate(),
        sqlite_releases.rate() / ref_releases.rate(),
    );
    let worst = takeovers.iter().max().copied().unwrap_or_default();
    println!(
        "take-over: worst {:.0} ms from kill -9 to a record published (target under 5 s)",
        worst.as_secs_f64() * 1000.0
    );
}
