//! The load generator of the registry benchmarks: publishes signed records from many clients
//! over lean keep-alive connections, measures idle publish latency, `fetch/logs` throughput,
//! CPU and memory of the server process, and starts the reference `warg-server`.
#![allow(dead_code)] // Shared by two benchmarks, each of which uses a part.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::api::{PackageRecordResponse, PublishRecordRequest, RecordState};
use cairn_protocol::{Digest, PackageName, PrivateKey, RecordId};

use crate::support::{fixture, Client, Publisher};

pub struct Scale {
    /// Concurrent clients fetching logs.
    pub fetch_clients: usize,
    /// Packages (one init each).
    pub packages: usize,
    /// Releases per package.
    pub releases: usize,
    /// Concurrent publishing clients.
    pub clients: usize,
    /// `fetch/logs` requests.
    pub fetches: usize,
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// The publish load, in two timed phases: every package's init, then (all inits published,
/// as the reference requires) every package's releases; each sent by `scale.clients`
/// concurrent clients spread over the nodes at `urls` (package `i` through node `i % n`).
/// Returns what each phase measured; `pids` are the server processes whose CPU counts.
pub fn publish_load(urls: &[String], pids: &[u32], scale: &Scale) -> (Published, Published) {
    let content = fixture("b01-fac.component.wasm");
    let mut publishers: Vec<Publisher> = (0..scale.packages)
        .map(|i| Publisher {
            key: PrivateKey::generate().unwrap(),
            name: format!("bench:package-n{i}").parse().unwrap(),
            head: None,
        })
        .collect();
    let inits: Work = publishers
        .iter_mut()
        .map(|p| (p.name.clone(), vec![p.init()]))
        .collect();
    let inits = send_all(urls, pids, scale.clients, &inits, &content);
    let releases: Work = publishers
        .iter_mut()
        .map(|p| {
            let releases = (0..scale.releases)
                .map(|r| p.release(&format!("1.0.{r}"), &content))
                .collect();
            (p.name.clone(), releases)
        })
        .collect();
    let releases = send_all(urls, pids, scale.clients, &releases, &content);
    (inits, releases)
}

/// Packages and the records to publish in each, in order.
type Work = Vec<(PackageName, Vec<cairn_protocol::PackageEnvelope>)>;

/// Sends every package's records (in order, each package through one node) from `clients`
/// concurrent clients and waits until every record is published.
fn send_all(
    urls: &[String],
    pids: &[u32],
    clients: usize,
    work: &Work,
    content: &[u8],
) -> Published {
    let last: Vec<(usize, PackageName, RecordId)> = work
        .iter()
        .enumerate()
        .map(|(i, (n, records))| {
            (
                i % urls.len(),
                n.clone(),
                *records.last().unwrap().record_id(),
            )
        })
        .collect();
    // The requests are built before the clock starts: signing and encoding are the
    // clients' work, not the server's. Then one async task per client sends its packages'
    // records in order, on one thread, so the load generator leaves the cores to the server.
    let hosts: Vec<String> = urls
        .iter()
        .map(|url| url.trim_start_matches("http://").to_owned())
        .collect();
    let mut queues: Vec<Vec<Vec<Vec<u8>>>> = vec![Vec::new(); urls.len()];
    for (i, (name, records)) in work.iter().enumerate() {
        let host = &hosts[i % urls.len()];
        let requests = records
            .iter()
            .map(|record| {
                let request = PublishRecordRequest {
                    package_name: name.clone(),
                    record: record.into(),
                    content_sources: Default::default(),
                };
                let body = serde_json::to_vec(&request).unwrap();
                let mut bytes = format!(
                    "POST /v1/package/{}/record HTTP/1.1\r\nhost: {host}\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    name.log_id(),
                    body.len()
                )
                .into_bytes();
                bytes.extend_from_slice(&body);
                bytes
            })
            .collect();
        queues[i % urls.len()].push(requests);
    }
    let queues: Vec<_> = queues
        .into_iter()
        .map(|queue| Arc::new(std::sync::Mutex::new(queue)))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server_cpu = || pids.iter().map(|&pid| cpu_seconds(pid)).sum::<f64>();
    let nodes: Vec<Client> = urls
        .iter()
        .map(|url| Client {
            url: url.clone(),
            http: http(),
        })
        .collect();
    let length_before = nodes[0].checkpoint().unwrap().contents.log_length;
    let records: usize = work.iter().map(|(_, records)| records.len()).sum();
    let cpu_before = (server_cpu(), cpu_seconds(std::process::id()));
    let start = Instant::now();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..clients)
            .map(|k| {
                let node = k % urls.len();
                let (http, queue, content) = (http.clone(), queues[node].clone(), content.to_vec());
                let (base, host) = (urls[node].clone(), hosts[node].clone());
                tokio::spawn(async move {
                    let mut connection = RawConnection::open(&host).await;
                    loop {
                        let Some(package) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        for request in package {
                            let (status, body) = tokio::time::timeout(
                                Duration::from_secs(60),
                                connection.exchange(&request),
                            )
                            .await
                            .expect("no answer to a publish within 60 s");
                            check_publish(&http, &base, status, &body, &content).await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let accepted = start.elapsed().as_secs_f64();
    // Every record is valid: all are published once every node serves a checkpoint that
    // many records longer (one request a poll, whatever the number of packages).
    let wanted = length_before + records as u64;
    for node in &nodes {
        while node.checkpoint().unwrap().contents.log_length < wanted {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let published = start.elapsed().as_secs_f64();
    // And each package's last record is published, where it was sent.
    for (node, name, record_id) in &last {
        wait_published(&nodes[*node], name, record_id);
    }
    Published {
        records,
        accepted,
        published,
        server_cpu: server_cpu() - cpu_before.0,
        generator_cpu: cpu_seconds(std::process::id()) - cpu_before.1,
    }
}

/// What a publish run measured.
pub struct Published {
    records: usize,
    /// Seconds until every record was accepted.
    accepted: f64,
    /// Seconds until every record was published.
    published: f64,
    /// CPU seconds the server used meanwhile.
    server_cpu: f64,
    /// CPU seconds the load generator (this process) used meanwhile.
    generator_cpu: f64,
}

impl Published {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.published
    }

    pub fn report(&self, who: &str) {
        println!(
            "{who:<12} publish: {} records accepted in {:.2} s, all published in {:.2} s: {:.0} records/s; server CPU {:.0} us/record, load generator CPU {:.0} us/record",
            self.records,
            self.accepted,
            self.published,
            self.rate(),
            self.server_cpu / self.records as f64 * 1e6,
            self.generator_cpu / self.records as f64 * 1e6,
        );
    }
}

/// User plus system CPU seconds of process `pid` so far (Linux `/proc`; 0 elsewhere).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// One keep-alive HTTP/1.1 connection that sends requests prepared as bytes and reads each
/// answer's status and body: a lean client, so that the load generator, which shares the
/// machine's cores with the server, spends little CPU of its own.
pub struct RawConnection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl RawConnection {
    async fn open(host: &str) -> RawConnection {
        let stream = tokio::net::TcpStream::connect(host).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawConnection {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends `request` and returns the response's status and body (by `content-length`, or
    /// chunked).
    async fn exchange(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(request).await.unwrap();
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await;
        };
        // Parsed in place: the load generator shares the cores with the server.
        let head = std::str::from_utf8(&self.buffer[..head_end]).unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
        };
        let content_length: Option<usize> = header("content-length").map(|l| l.parse().unwrap());
        let chunked = header("transfer-encoding") == Some("chunked");
        self.buffer.drain(..head_end);
        let body = if let Some(length) = content_length {
            while self.buffer.len() < length {
                self.fill().await;
            }
            self.buffer.drain(..length).collect()
        } else {
            assert!(chunked, "an answer with neither a length nor chunks");
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(at) = find(&self.buffer, b"\r\n") {
                        break at;
                    }
                    self.fill().await;
                };
                let size_text = std::str::from_utf8(&self.buffer[..line_end]).unwrap();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
                while self.buffer.len() < line_end + 2 + size + 2 {
                    self.fill().await;
                }
                body.extend_from_slice(&self.buffer[line_end + 2..line_end + 2 + size]);
                self.buffer.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        };
        (status, body)
    }

    async fn fill(&mut self) {
        use tokio::io::AsyncReadExt as _;
        // Reads into the buffer's spare room: nothing zeroed or copied.
        self.buffer.reserve(16 * 1024);
        let read = self.stream.read_buf(&mut self.buffer).await.unwrap();
        assert!(read > 0, "the server closed the connection");
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Checks a publish answer (202); uploads the content if the server asks for it.
pub async fn check_publish(
    http: &reqwest::Client,
    base: &str,
    status: u16,
    body: &[u8],
    content: &[u8],
) {
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(body));
    // Only a record waiting for content needs its answer parsed.
    if find(body, b"sourcing").is_none() {
        return;
    }
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    if body["state"] == "sourcing" {
        let path = body["missingContent"][Digest::of(content).to_string()]["upload"][0]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("sourcing, but no upload for the content: {body}"))
            .to_owned();
        let response = http
            .post(format!("{base}/{path}"))
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        // 405: the record no longer waits, because another record's upload of the same
        // content (the packages share it) arrived first.
        assert!(
            response.status().is_success() || response.status() == 405,
            "upload: {}",
            response.status()
        );
    }
}

pub fn wait_published(client: &Client, name: &PackageName, record_id: &RecordId) {
    loop {
        let state: PackageRecordResponse = client.record_state(name, record_id);
        match state.state {
            RecordState::Published { .. } => return,
            RecordState::Rejected { reason } => panic!("rejected: {reason}"),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Posts a package's init (which names no content, so never waits for any).
pub fn post_init(client: &Client, name: &PackageName, record: &cairn_protocol::PackageEnvelope) {
    let request = PublishRecordRequest {
        package_name: name.clone(),
        record: record.into(),
        content_sources: Default::default(),
    };
    let response = client.post_json(&format!("v1/package/{}/record", name.log_id()), &request);
    assert_eq!(
        response.status(),
        202,
        "{}",
        response.text().unwrap_or_default()
    );
}

/// The time from sending a package's init to an idle registry until the registry reports it
/// published (polled every millisecond), for `count` inits sent one at a time with a pause
/// between them; returns (p50 ms, p90 ms).
pub fn idle_latency(url: &str, count: usize) -> (f64, f64) {
    let client = Client {
        url: url.to_owned(),
        http: http(),
    };
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        // Pauses of 150 to 340 ms: longer than an interval, at varying phases of it.
        std::thread::sleep(Duration::from_millis(150 + (i as u64 * 37) % 191));
        let mut publisher = Publisher {
            key: PrivateKey::generate().unwrap(),
            name: format!("bench:idle-n{i}").parse().unwrap(),
            head: None,
        };
        let init = publisher.init();
        let start = Instant::now();
        post_init(&client, &publisher.name, &init);
        loop {
            let state = client.record_state(&publisher.name, init.record_id()).state;
            match state {
                RecordState::Published { .. } => break,
                RecordState::Rejected { reason } => panic!("rejected: {reason}"),
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[count / 2], times[count * 9 / 10])
}

/// A process's resident memory in KiB (`VmRSS` in `/proc/PID/status`).
pub fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `fetch/logs` for random packages' whole logs, the clients spread over the nodes at `urls`;
/// returns (requests/s, p50 ms, p99 ms).
pub fn fetch_load(urls: &[String], scale: &Scale) -> (f64, f64, f64) {
    let client = Client {
        url: urls[0].clone(),
        http: http(),
    };
    let length = client.checkpoint().unwrap().contents.log_length;
    let log_ids: Vec<String> = (0..scale.packages)
        .map(|i| {
            format!("bench:package-n{i}")
                .parse::<PackageName>()
                .unwrap()
                .log_id()
                .to_string()
        })
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..scale.fetch_clients)
        .map(|k| {
            let (url, log_ids, next) = (urls[k % urls.len()].clone(), log_ids.clone(), next.clone());
            let total = scale.fetches;
            std::thread::spawn(move || {
                let http = http();
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let body = serde_json::json!({"logLength": length, "limit": 1000, "packages": {log_ids[i % log_ids.len()].clone(): null}});
                    let begin = Instant::now();
                    let response = http.post(format!("{url}/v1/fetch/logs")).json(&body).send().unwrap();
                    assert_eq!(response.status(), 200);
                    let bytes = response.bytes().unwrap();
                    assert!(bytes.len() > 100);
                    latencies.push(begin.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (latencies.len() as f64 / seconds, at(0.50), at(0.99))
}

pub struct ReferenceServer {
    pub child: Child,
    pub url: String,
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn find_warg_server() -> Option<PathBuf> {
    let peers = std::env::var_os("CAIRN_PEERS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/cairn-peers"))
        })?;
    Some(peers.join("bin/warg-server")).filter(|p| p.is_file())
}

/// Starts `warg-server` with its content in `dir`, on a free loopback port; `database`, when
/// given, is the PostgreSQL URL of its data store (a `warg-server` built with `postgres`).
pub fn start_reference(binary: &Path, dir: &Path, database: Option<&str>) -> ReferenceServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = PrivateKey::generate().unwrap();
    let child = Command::new(binary)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--namespace",
            "bench",
            "--content-dir",
        ])
        .arg(dir)
        .args(match database {
            Some(url) => vec![
                "--data-store",
                "postgres",
                "--database-url",
                url,
                "--database-run-migrations",
            ],
            None => vec![],
        })
        .env("WARG_OPERATOR_KEY", key.to_secret_text())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = ReferenceServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = Client {
        url: server.url.clone(),
        http: http(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.checkpoint().is_err() {
        assert!(Instant::now() < deadline, "warg-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}
