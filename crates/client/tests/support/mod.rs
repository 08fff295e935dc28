//! Test fixtures: a real cairn registry served in-process on loopback, a tampering proxy in
//! front of it (a real HTTP server that forwards every request and changes one thing), and
//! small WebAssembly components that share a core module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_client::{Client, ClientConfig};
use cairn_protocol::api::{ConsistencyResponse, FetchLogsResponse, InclusionResponse};
use cairn_protocol::{
    Envelope, OperatorEntry, OperatorPermission, PackageName, PrivateKey, PublicKey, Record,
    SignedCheckpoint, SigningDomain, Timestamp,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-client-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name),
    )
    .unwrap()
}

pub fn name(text: &str) -> PackageName {
    text.parse().unwrap()
}

pub fn key() -> PrivateKey {
    PrivateKey::generate().unwrap()
}

/// A cairn registry serving the namespace `example` on 127.0.0.1, in this process.
pub struct TestRegistry {
    /// Where the registry listens.
    pub url: String,
    /// The operator's checkpoint key (to forge checkpoints a compromised registry could sign).
    pub operator_key: PrivateKey,
    pub data: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestRegistry {
    /// Starts a registry whose content URLs name `base_url` (its own URL when `None`).
    /// With `grantee`, the operator log also grants that key `defineNamespace` (and not
    /// `commit`) before the registry serves.
    pub async fn start_on(
        data: &Path,
        listener: TcpListener,
        base_url: Option<String>,
        grantee: Option<PublicKey>,
    ) -> TestRegistry {
        let address = listener.local_addr().unwrap();
        let url = format!("http://{address}");
        let registry = cairn_server::Registry::open(cairn_server::Settings {
            data_dir: data.to_owned(),
            namespaces: vec!["example".parse().unwrap()],
            checkpoint_interval: Duration::from_millis(20),
            max_content_size: 64 << 20,
            connections: Default::default(),
            uploads: Default::default(),
            require_publisher_token: false,
            patch_cache_bytes: cairn_server::patches::DEFAULT_CACHE_BYTES,
            database: None,
        })
        .await
        .unwrap();
        let operator_key = registry.operator_key().clone();
        if let Some(grantee) = grantee {
            registry.sequence_pending().await.unwrap();
            let head = registry
                .state()
                .read()
                .unwrap()
                .operator()
                .head()
                .map(|h| h.record_id);
            let record = Record {
                prev: head,
                version: 0,
                time: Timestamp::now(),
                entries: vec![OperatorEntry::Grant {
                    key: grantee,
                    permissions: vec![OperatorPermission::DefineNamespace],
                }],
            };
            registry
                .queue_operator_record(Envelope::signed(record, &operator_key))
                .await
                .unwrap();
            registry.sequence_pending().await.unwrap();
        }
        let (tx, rx) = oneshot::channel::<()>();
        let base_url = base_url.unwrap_or_else(|| url.clone());
        let task = tokio::spawn(async move {
            registry
                .serve(listener, base_url, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let registry = TestRegistry {
            url,
            operator_key,
            data: data.to_owned(),
            shutdown: Some(tx),
            task: Some(task),
        };
        registry.wait_for_checkpoint().await;
        registry
    }

    pub async fn start(data: &Path) -> TestRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(data, listener, None, None).await
    }

    async fn wait_for_checkpoint(&self) {
        let http = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(response) = http
                .get(format!("{}/v1/fetch/checkpoint", self.url))
                .send()
                .await
            {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the registry made no checkpoint");
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// A client of `url` storing in `dir`.
pub fn client(url: &str, dir: &Path) -> Client {
    let mut config = ClientConfig::new(url, dir);
    config.poll_interval = Duration::from_millis(20);
    config.publish_timeout = Duration::from_secs(30);
    Client::open(config).unwrap()
}

/// What the tampering proxy changes.
#[derive(Clone, Debug, Default)]
pub enum Tamper {
    /// Nothing: the proxy forwards faithfully.
    #[default]
    Nothing,
    /// Flips one byte of every blob and every whole file it forwards.
    FlipContentByte,
    /// Answers 404 to cairn's extension routes, like the reference server.
    NoSplitExtension,
    /// Both: no split extension, and whole files get one byte flipped.
    NoSplitExtensionAndFlipContentByte,
    /// Re-signs every package record in `fetch/logs` with an unrelated key.
    ForgeRecordSignatures,
    /// Serves this checkpoint instead of the registry's.
    ServeCheckpoint(SignedCheckpoint),
    /// Answers the checkpoint request with a body that never ends.
    EndlessCheckpoint,
    /// Changes one byte of a hash in every consistency proof.
    CorruptConsistencyProof,
    /// Changes one byte of a hash in every log inclusion proof.
    CorruptInclusionProof,
    /// Leaves out the newest record of every package in `fetch/logs`.
    HideNewestPackageRecord,
    /// Leaves out the oldest record of every package in `fetch/logs` that lists two or more.
    DropOldestPackageRecord,
    /// Swaps the first two records of every package in `fetch/logs`.
    SwapPackageRecords,
    /// Flips one byte of every patch it forwards.
    FlipPatchByte,
    /// Drops `Accept-Encoding` from requests and asks for blobs instead of patches: the
    /// registry answers as it did to every client before it compressed anything (for
    /// benchmarks).
    NoCompression,
    /// Asks the registry for every patch against this blob instead of the bases the client
    /// offered, and names the client's first base in the answer, as if the patch were
    /// against it.
    PatchAgainstOtherBase(String),
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    tamper: Mutex<Tamper>,
    /// A link all answers share, when throttled: its rate in bytes per second and when it is
    /// next free.
    link: Mutex<Option<(u64, tokio::time::Instant)>>,
}

/// A real HTTP server on loopback that forwards to a registry and tampers as told.
pub struct Proxy {
    pub url: String,
    state: Arc<ProxyState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Proxy {
    /// Serves on `listener`, forwarding to `upstream`.
    pub fn start(listener: TcpListener, upstream: &str) -> Proxy {
        let address: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            tamper: Mutex::new(Tamper::Nothing),
            link: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Proxy {
            url: format!("http://{address}"),
            state,
            shutdown: Some(tx),
        }
    }

    pub fn set(&self, tamper: Tamper) {
        *self.state.tamper.lock().unwrap() = tamper;
    }

    /// Sends every answer through one link of `bytes_per_second` (or at full speed: `None`),
    /// as a slow network between client and registry would.
    pub fn throttle(&self, bytes_per_second: Option<u64>) {
        *self.state.link.lock().unwrap() =
            bytes_per_second.map(|rate| (rate, tokio::time::Instant::now()));
    }

    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A registry and a tampering proxy in front of it; the registry's content URLs name the
/// proxy, so whole-file downloads go through it too.
pub struct Setup {
    pub registry: TestRegistry,
    pub proxy: Proxy,
    pub dir: PathBuf,
}

impl Setup {
    pub async fn start(test: &str) -> Setup {
        Self::start_with(test, None).await
    }

    /// As [`Setup::start`]; the operator log also grants `grantee` a permission other than
    /// `commit`.
    pub async fn start_with(test: &str, grantee: Option<PublicKey>) -> Setup {
        let dir = temp_dir(test);
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", proxy_listener.local_addr().unwrap());
        let registry_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let registry_url = format!("http://{}", registry_listener.local_addr().unwrap());
        let proxy = Proxy::start(proxy_listener, &registry_url);
        let registry = TestRegistry::start_on(
            &dir.join("registry"),
            registry_listener,
            Some(proxy_url),
            grantee,
        )
        .await;
        Setup {
            registry,
            proxy,
            dir,
        }
    }

    /// A client talking to the registry through the proxy.
    pub fn client(&self, name: &str) -> Client {
        client(&self.proxy.url, &self.dir.join(name))
    }

    pub async fn stop(self) {
        self.proxy.stop();
        self.registry.stop().await;
    }
}

async fn forward(State(proxy): State<Arc<ProxyState>>, request: Request) -> Response {
    let tamper = proxy.tamper.lock().unwrap().clone();
    let path = request.uri().path().to_owned();
    let no_split = matches!(
        tamper,
        Tamper::NoSplitExtension | Tamper::NoSplitExtensionAndFlipContentByte
    );
    if no_split && path.starts_with("/v1/cairn/") {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":404,"message":"the requested resource was not found"}"#,
        )
            .into_response();
    }
    if path == "/v1/fetch/checkpoint" {
        match &tamper {
            Tamper::ServeCheckpoint(checkpoint) => {
                return axum::Json(checkpoint.clone()).into_response();
            }
            Tamper::EndlessCheckpoint => {
                let chunk = bytes::Bytes::from(vec![b' '; 64 << 10]);
                let stream = futures_stream(chunk);
                return (
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(stream),
                )
                    .into_response();
            }
            _ => {}
        }
    }

    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let accept_encoding = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .filter(|_| !matches!(tamper, Tamper::NoCompression))
        .cloned();
    // The first base the client offered, and the query the registry is sent.
    let mut offered_base = None;
    let mut path_and_query = path_and_query;
    if let (Tamper::PatchAgainstOtherBase(other), Some(query)) = (&tamper, request.uri().query()) {
        if path.ends_with("/patch") {
            offered_base = query
                .strip_prefix("from=")
                .and_then(|bases| bases.split(',').next())
                .map(str::to_owned);
            path_and_query = format!("{path}?from={other}");
        }
    }
    if matches!(tamper, Tamper::NoCompression) {
        if let Some(blob) = path.strip_suffix("/patch") {
            path_and_query = blob.to_owned();
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let mut upstream = proxy
        .http
        .request(method, format!("{}{path_and_query}", proxy.upstream))
        .body(body);
    if let Some(content_type) = content_type {
        upstream = upstream.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(accept_encoding) = accept_encoding {
        upstream = upstream.header(header::ACCEPT_ENCODING, accept_encoding);
    }
    let upstream = upstream.send().await.unwrap();
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let content_encoding = upstream.headers().get(header::CONTENT_ENCODING).cloned();
    let mut patch_from = upstream.headers().get("cairn-patch-from").cloned();
    if let (Tamper::PatchAgainstOtherBase(other), Some(offered)) = (&tamper, &offered_base) {
        if patch_from
            .as_ref()
            .is_some_and(|base| base == other.as_str())
        {
            patch_from = Some(HeaderValue::from_str(offered).unwrap());
        }
    }
    let mut body = upstream.bytes().await.unwrap().to_vec();

    let flip_blobs =
        matches!(tamper, Tamper::FlipContentByte) && path.starts_with("/v1/cairn/blobs/");
    let flip_whole = matches!(
        tamper,
        Tamper::FlipContentByte | Tamper::NoSplitExtensionAndFlipContentByte
    ) && path.starts_with("/content/");
    let flip_patch = matches!(tamper, Tamper::FlipPatchByte) && patch_from.is_some();
    if status.is_success() && (flip_blobs || flip_whole || flip_patch) && !body.is_empty() {
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
    }
    if status.is_success()
        && path == "/v1/fetch/logs"
        && matches!(tamper, Tamper::ForgeRecordSignatures)
    {
        let mut logs: FetchLogsResponse = serde_json::from_slice(&body).unwrap();
        let forger = PrivateKey::generate().unwrap();
        for records in logs.packages.values_mut() {
            for record in records {
                record.envelope.signature =
                    forger.sign(SigningDomain::PackageRecord, &record.envelope.content_bytes);
            }
        }
        body = serde_json::to_vec(&logs).unwrap();
    }

    if status.is_success() {
        body = tamper_json(&tamper, &path, body);
    }

    let throttled = proxy.link.lock().unwrap().is_some();
    let mut response = if throttled {
        Response::new(Body::from_stream(paced(proxy.clone(), body)))
    } else {
        Response::new(Body::from(body))
    };
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    if let Some(content_encoding) = content_encoding {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, content_encoding);
    }
    if let Some(patch_from) = patch_from {
        response
            .headers_mut()
            .insert("cairn-patch-from", patch_from);
    }
    response
        .headers_mut()
        .insert("x-proxied", HeaderValue::from_static("1"));
    response
}

/// `body` in pieces, each sent when the proxy's shared link has carried the ones before.
fn paced(
    proxy: Arc<ProxyState>,
    body: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    const PIECE: usize = 16 * 1024;
    let body = bytes::Bytes::from(body);
    futures_util::stream::unfold(0usize, move |offset| {
        let (proxy, body) = (proxy.clone(), body.clone());
        async move {
            if offset >= body.len() {
                return None;
            }
            let end = (offset + PIECE).min(body.len());
            let due = proxy.link.lock().unwrap().as_mut().map(|(rate, next)| {
                let start = (*next).max(tokio::time::Instant::now());
                *next = start + Duration::from_secs_f64((end - offset) as f64 / *rate as f64);
                *next
            });
            if let Some(due) = due {
                tokio::time::sleep_until(due).await;
            }
            Some((Ok(body.slice(offset..end)), end))
        }
    })
}

fn flip_last_byte(bytes: &mut [u8]) {
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
}

/// The JSON tampering modes.
fn tamper_json(tamper: &Tamper, path: &str, body: Vec<u8>) -> Vec<u8> {
    match (tamper, path) {
        (Tamper::CorruptConsistencyProof, "/v1/proof/consistency") => {
            let mut proof: ConsistencyResponse = serde_json::from_slice(&body).unwrap();
            flip_last_byte(&mut proof.proof);
            serde_json::to_vec(&proof).unwrap()
        }
        (Tamper::CorruptInclusionProof, "/v1/proof/inclusion") => {
            let mut proof: InclusionResponse = serde_json::from_slice(&body).unwrap();
            flip_last_byte(&mut proof.log);
            serde_json::to_vec(&proof).unwrap()
        }
        (
            Tamper::HideNewestPackageRecord
            | Tamper::DropOldestPackageRecord
            | Tamper::SwapPackageRecords,
            "/v1/fetch/logs",
        ) => {
            let mut logs: FetchLogsResponse = serde_json::from_slice(&body).unwrap();
            for records in logs.packages.values_mut() {
                match tamper {
                    Tamper::HideNewestPackageRecord => {
                        records.pop();
                    }
                    Tamper::DropOldestPackageRecord if records.len() >= 2 => {
                        records.remove(0);
                    }
                    Tamper::SwapPackageRecords if records.len() >= 2 => records.swap(0, 1),
                    _ => {}
                }
            }
            serde_json::to_vec(&logs).unwrap()
        }
        _ => body,
    }
}

/// An endless stream of `chunk`.
fn futures_stream(
    chunk: bytes::Bytes,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::repeat_with(move || Ok(chunk.clone()))
}

// Two components built by hand that share one large core module (a WASI adapter), as two
// components built with the same toolchain share their runtime.

const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

fn leb(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A component holding `modules` as core module sections.
pub fn component_of(modules: &[&[u8]]) -> Vec<u8> {
    let mut out = COMPONENT_PREAMBLE.to_vec();
    for module in modules {
        out.push(1);
        out.extend(leb(module.len()));
        out.extend_from_slice(module);
    }
    out
}

/// The shared module and two components that both contain it.
pub fn two_components_sharing_a_module() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let shared = fixture("r05-wasi-p1-adapter.command.wasmtime-50.0.1.core.wasm");
    let first = component_of(&[&shared, &fixture("r03-wabt-fac.core.wasm")]);
    let second = component_of(&[&shared, &fixture("r04-extism-runtime.core.wasm")]);
    (shared, first, second)
}

/// A snapshot of the client's trusted state file.
pub fn state_bytes(client: &Client) -> Vec<u8> {
    std::fs::read(client.state_file()).unwrap_or_default()
}
