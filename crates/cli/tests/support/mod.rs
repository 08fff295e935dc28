//! Runs `cairn serve` on loopback for black-box tests, and talks to it like a client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_protocol::api::{EnvelopeBody, PackageRecordResponse, PublishRecordRequest, RecordState};
use cairn_protocol::{
    Digest, Envelope, HashAlgorithm, PackageEntry, PackageEnvelope, PackageName, PrivateKey,
    Record, RecordId, SignedCheckpoint, Timestamp,
};

/// A `cairn serve` process, stopped (SIGKILL if needed) when dropped.
pub struct TestServer {
    pub child: Child,
    /// The URL clients use (`--base-url` when given).
    pub url: String,
    /// The plain HTTP address it listens at (the same as `url` without `--base-url`).
    pub local_url: String,
    pub data: PathBuf,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// A loopback port free a moment ago (a server started on it may still find it taken).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestServer {
    /// Starts a server on a free loopback port with `data` as its data directory.
    pub fn start(data: &Path, extra: &[&str]) -> TestServer {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_cairn")), data, extra)
    }

    /// Like [`TestServer::start`], with the environment variables `env` set for the server.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, String)]) -> TestServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::start_command(command, data, extra)
    }

    /// Like [`TestServer::start`], with the open-file limit set to `soft` and `hard`.
    pub fn start_with_open_files(data: &Path, extra: &[&str], soft: u64, hard: u64) -> TestServer {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={soft}:{hard}"))
            .arg(env!("CARGO_BIN_EXE_cairn"));
        Self::start_command(command, data, extra)
    }

    fn start_command(mut command: Command, data: &Path, extra: &[&str]) -> TestServer {
        command.arg("serve");
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.arg("--data").arg(data).args(extra);
        if !extra.contains(&"--checkpoint-interval") {
            command.args(["--checkpoint-interval", "100ms"]);
        }
        let mut child = command
            .env(
                "RUST_LOG",
                std::env::var("CAIRN_TEST_RUST_LOG")
                    .unwrap_or_else(|_| "warn,cairn_server=info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start cairn serve");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // A text line starts with it; a JSON line has it as its message.
                if let Some(url) = line
                    .find("cairn registry at ")
                    .map(|at| &line[at + "cairn registry at ".len()..])
                    .and_then(|rest| rest.split(' ').next())
                {
                    let _ = tx.send(url.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("cairn serve did not start:\n{}", log.lock().unwrap())
            });
        let local_url = match extra.iter().position(|arg| *arg == "--listen") {
            Some(at) => format!("http://{}", extra[at + 1]),
            None => url.clone(),
        };
        let server = TestServer {
            child,
            url,
            local_url,
            data: data.to_owned(),
            stderr: log,
        };
        server.wait_for_checkpoint(1);
        server
    }

    pub fn client(&self) -> Client {
        Client {
            url: self.local_url.clone(),
            http: reqwest::blocking::Client::new(),
        }
    }

    /// Waits until the served checkpoint has at least `length` leaves.
    pub fn wait_for_checkpoint(&self, length: u64) -> SignedCheckpoint {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(checkpoint) = client.checkpoint() {
                if checkpoint.contents.log_length >= length {
                    return checkpoint;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint of length {length}:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A memory figure of the server's process from `/proc` (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
        kib * 1024
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn crash(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal warg client for tests.
pub struct Client {
    pub url: String,
    pub http: reqwest::blocking::Client,
}

impl Client {
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}/{path}", self.url))
            .send()
            .unwrap()
    }

    pub fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}/{path}", self.url))
            .json(body)
            .send()
            .unwrap()
    }

    pub fn checkpoint(&self) -> Result<SignedCheckpoint, String> {
        let response = self
            .http
            .get(format!("{}/v1/fetch/checkpoint", self.url))
            .send()
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(response.status().to_string());
        }
        response.json().map_err(|e| e.to_string())
    }

    pub fn publish(
        &self,
        name: &PackageName,
        envelope: &PackageEnvelope,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let request = PublishRecordRequest {
            package_name: name.clone(),
            record: EnvelopeBody::from(envelope),
            content_sources: Default::default(),
        };
        let response = self.post_json(&format!("v1/package/{}/record", name.log_id()), &request);
        let status = response.status();
        (status, response.json().unwrap())
    }

    pub fn record_state(&self, name: &PackageName, record_id: &RecordId) -> PackageRecordResponse {
        self.get(&format!("v1/package/{}/record/{record_id}", name.log_id()))
            .json()
            .unwrap()
    }

    /// Polls until the record is published or rejected.
    pub fn wait(&self, name: &PackageName, record_id: &RecordId) -> RecordState {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.record_state(name, record_id).state;
            if matches!(
                state,
                RecordState::Published { .. } | RecordState::Rejected { .. }
            ) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "record {record_id} stuck in {state:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn upload(
        &self,
        name: &PackageName,
        record_id: &RecordId,
        bytes: &[u8],
    ) -> reqwest::StatusCode {
        let digest = Digest::of(bytes);
        self.http
            .post(format!(
                "{}/v1/package/{}/record/{record_id}/content/{digest}",
                self.url,
                name.log_id()
            ))
            .body(bytes.to_vec())
            .send()
            .unwrap()
            .status()
    }
}

/// A package owner: signs records for one package, linking each to the last.
pub struct Publisher {
    pub key: PrivateKey,
    pub name: PackageName,
    pub head: Option<RecordId>,
}

impl Publisher {
    pub fn new(name: &str) -> Self {
        Publisher {
            key: PrivateKey::generate().unwrap(),
            name: name.parse().unwrap(),
            head: None,
        }
    }

    pub fn sign(&mut self, entries: Vec<PackageEntry>) -> PackageEnvelope {
        let record = Record {
            prev: self.head,
            version: 0,
            time: Timestamp::now(),
            entries,
        };
        let envelope = Envelope::signed(record, &self.key);
        self.head = Some(*envelope.record_id());
        envelope
    }

    pub fn init(&mut self) -> PackageEnvelope {
        let entry = PackageEntry::Init {
            key: self.key.public_key().clone(),
            hash_algorithm: HashAlgorithm::Sha256,
        };
        self.sign(vec![entry])
    }

    pub fn release(&mut self, version: &str, content: &[u8]) -> PackageEnvelope {
        self.sign(vec![PackageEntry::Release {
            version: version.parse().unwrap(),
            content: Digest::of(content),
        }])
    }

    /// Publishes init, waiting until it is published.
    pub fn publish_init(&mut self, client: &Client) {
        let init = self.init();
        let (status, _) = client.publish(&self.name, &init);
        assert_eq!(status, 202);
        assert!(matches!(
            client.wait(&self.name, init.record_id()),
            RecordState::Published { .. }
        ));
    }

    /// Publishes a release of `bytes`, uploading the content, and waits until published.
    pub fn publish_release(&mut self, client: &Client, version: &str, bytes: &[u8]) -> RecordId {
        let record = self.release(version, bytes);
        let (status, body) = client.publish(&self.name, &record);
        assert_eq!(status, 202, "{body}");
        if body["state"] == "sourcing" {
            assert_eq!(client.upload(&self.name, record.record_id(), bytes), 201);
        }
        let state = client.wait(&self.name, record.record_id());
        assert!(matches!(state, RecordState::Published { .. }), "{state:?}");
        *record.record_id()
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name),
    )
    .unwrap()
}

pub fn corpus(name: &str) -> Option<Vec<u8>> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus")
            .join(name),
    )
    .ok()
}

/// Runs `cairn ARGS...` and returns (success, stdout, stderr).
pub fn cairn(args: &[&str]) -> (bool, String, String) {
    outcome(
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .output()
            .unwrap(),
    )
}

/// A finished command's (success, stdout, stderr).
pub fn outcome(output: std::process::Output) -> (bool, String, String) {
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A response header's value, which must be present.
pub fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts a distribution-spec error body: `status`, and `code` and a message in `errors[0]`.
pub fn assert_error(response: reqwest::blocking::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
}

/// A SHA-256 as the OCI distribution API writes it: `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A number from the environment variable `name`, else `default` (benchmark scales).
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A peer binary: `$VAR`, then `$CAIRN_PEERS/bin/NAME` (default `~/.cache/cairn-peers`),
/// then `PATH`. Without it the test says so loudly, and fails in CI.
pub fn peer(name: &str, var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let peers = std::env::var_os("CAIRN_PEERS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/cairn-peers"))
        });
    if let Some(found) = peers
        .map(|dir| dir.join("bin").join(name))
        .filter(|p| p.is_file())
    {
        return Some(found);
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    if path.is_empty() {
        let message =
            format!("SKIPPED: {name} is not installed; its interoperability test did not run");
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
        return None;
    }
    Some(PathBuf::from(path))
}

/// A person using the `cairn` command: their own folder (`home`, the working directory), with
/// the config and data folders in it, and none of the `CAIRN_*` settings of the environment
/// the tests run in.
pub struct CliUser {
    pub home: PathBuf,
}

impl CliUser {
    /// A user whose folder is `root/name`.
    pub fn new(root: &Path, name: &str) -> Self {
        let home = root.join(name);
        std::fs::create_dir_all(&home).unwrap();
        CliUser { home }
    }

    /// `CAIRN_CONFIG_DIR`: settings and keys.
    pub fn config(&self) -> PathBuf {
        self.home.join("config")
    }

    /// `CAIRN_DATA_DIR`: trusted state and the fragment cache.
    pub fn data(&self) -> PathBuf {
        self.home.join("data")
    }

    /// `program` (`cairn`, or a program that runs it) as this user runs it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env("CAIRN_CONFIG_DIR", self.config())
            .env("CAIRN_DATA_DIR", self.data())
            .env_remove("CAIRN_KEY")
            .env_remove("CAIRN_REGISTRY")
            .env_remove("CAIRN_TOKEN")
            .env_remove("CAIRN_CA_CERT")
            .env_remove("CAIRN_MAX_CHECKPOINT_AGE")
            .env_remove("SSL_CERT_FILE")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        command
    }

    /// Runs `cairn ARGS`: (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        outcome(
            self.command(env!("CARGO_BIN_EXE_cairn"))
                .args(args)
                .output()
                .unwrap(),
        )
    }

    /// Runs `cairn ARGS`, which must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "cairn {args:?} failed:\n{stdout}{stderr}");
        stdout
    }

    /// Runs `cairn ARGS`, which must fail; returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(!ok, "cairn {args:?} succeeded:\n{stdout}");
        stderr
    }

    /// Runs `cairn ARGS`, which must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}
