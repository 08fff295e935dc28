//! Content blobs kept as blobs of one repository in an external OCI distribution-spec
//! registry: [`OciContentStore`], a [`BlobStore`] on `oci-client` (the OCI client `wkg` uses,
//! on the same `reqwest` stack as cairn's own client), and [`OciLocation`], the
//! `oci://HOST[:PORT]/REPOSITORY` text that names such a store.
//!
//! Every call blocks: `oci-client` runs on a small runtime of the store's own, and the caller
//! waits for its answer (the server calls the store on blocking threads). Nothing read from the
//! registry is trusted: `oci-client` checks a whole blob's digest as it streams, and joins
//! verify every blob again.
//!
//! Blobs of split content (`put`) are kept compressed when zstd makes them smaller, as a frame
//! found through a manifest tagged for the blob ([`frames`]); blobs moved in whole (`put_file`,
//! OCI scratch uploads) and those zstd cannot shrink are kept as they are. Which form a blob has
//! is remembered once seen (the registry's blobs never change but for deletes).
//!
//! * `has`: `HEAD /v2/<repo>/blobs/<digest>`, then `GET /v2/<repo>/manifests/sha256-<hex>.zst`;
//!   `size` reads the first answer's `Content-Length` or the manifest's size annotation.
//! * `open`: `GET` of the blob (or of its frame, decompressed as it streams), never buffered
//!   whole; `open_at` asks for a range of a blob kept as it is. `open_zstd` streams the frame.
//! * `put`: a `HEAD` first (a blob the registry has is never uploaded again), then a monolithic
//!   upload, `POST /v2/<repo>/blobs/uploads/` and one `PUT` of the bytes (streamed from a file
//!   for `put_file`); for a frame, the frame, the empty config once, then the manifest. The
//!   `PUT` is never repeated: after a connection error the blob is asked for, and uploaded again
//!   in a new session (once) only if the registry does not have it.
//! * `delete`: `DELETE` of the blob URL, and of a frame's manifest and frame. A registry with
//!   deletes disabled (405) or without the blob (404) is not an error: the blob stays in the
//!   registry and a warning is logged once.
//!
//! `oci-client` has no call for a blob's size or its deletion: those two requests are sent
//! here, with the same `reqwest` stack and the credentials `oci-client` negotiated.
//!
//! Authentication is `oci-client`'s: basic credentials from the location's userinfo or from
//! `CAIRN_CONTENT_USERNAME` / `CAIRN_CONTENT_PASSWORD`, or the token flow that a registry's
//! `WWW-Authenticate: Bearer` challenge asks for (the token is fetched again once when the
//! registry refuses it). Credentials go to the registry's own origin only: a `401` from
//! another host (an upload `Location` or a redirect there) is an error.
//!
//! Timeouts: 10 s to connect, and 60 s without a byte of an answer, so that a registry that
//! stalls never holds a thread for ever.

mod frames;
mod location;

pub(crate) use location::{is_oci_location, redact_credentials, scheme_of};
pub use location::{
    Credentials, OciLocation, OciLocationError, Transport, CONTENT_PASSWORD_ENV,
    CONTENT_USERNAME_ENV,
};

use std::future::Future;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use crate::content::{BlobDigest, BlobStore};
use crate::store_runtime::StoreRuntime;

/// How long the store waits on a registry.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// To open a connection.
    connect: Duration,
    /// Without a byte of an answer (headers or body).
    read: Duration,
}

impl Timeouts {
    const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        read: Duration::from_secs(60),
    };
}

/// Blobs in one repository of an OCI registry.
pub struct OciContentStore {
    inner: Arc<Inner>,
    runtime: StoreRuntime,
}

/// What the requests of the store share; owned by the futures run on the store's runtime.
struct Inner {
    location: OciLocation,
    reference: Reference,
    auth: RegistryAuth,
    client: oci_client::Client,
    /// For `HEAD` (a blob's size) and `DELETE`, which `oci-client` does not send.
    http: reqwest::Client,
    /// The bearer token `http` sends, from `oci-client`'s token flow.
    token: Mutex<Option<String>>,
    warned_deletes_disabled: AtomicBool,
    /// How blobs seen in the registry are kept there (what the registry holds never changes,
    /// but for deletes, which forget it), up to [`STORED_REMEMBERED`] of them.
    stored: Mutex<std::collections::HashMap<BlobDigest, Stored>>,
    /// Whether the OCI empty config (of the compressed blobs' manifests) is known to be there.
    empty_config_stored: AtomicBool,
}

/// How the registry keeps a blob.
#[derive(Debug, Clone, Copy)]
enum Stored {
    /// As it is, with this many bytes.
    Raw(u64),
    /// As a zstd frame.
    Frame(frames::Frame),
    /// As a zstd frame that this process once read in full and saw decompress to the blob:
    /// the frame's bytes are checked against its digest on every read, and the same frame
    /// always decompresses to the same bytes, so the blob need not be hashed again.
    VerifiedFrame(frames::Frame),
}

impl Stored {
    fn frame(self) -> Option<frames::Frame> {
        match self {
            Stored::Raw(_) => None,
            Stored::Frame(frame) | Stored::VerifiedFrame(frame) => Some(frame),
        }
    }
}

/// The most blobs whose form the store remembers (about 100 bytes each); past it, it starts
/// over.
const STORED_REMEMBERED: usize = 200_000;

impl std::fmt::Debug for OciContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciContentStore")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl OciContentStore {
    /// A store for `location`, using the location's credentials or else those in the
    /// environment. Sends nothing yet: [`OciContentStore::ping`] checks the registry.
    pub fn new(location: OciLocation) -> io::Result<Self> {
        Self::with_timeouts(location, Timeouts::DEFAULT)
    }

    fn with_timeouts(location: OciLocation, timeouts: Timeouts) -> io::Result<Self> {
        let credentials = location.credentials.clone().or_else(Credentials::from_env);
        let auth = match credentials {
            Some(credentials) => RegistryAuth::Basic(credentials.username, credentials.password),
            None => RegistryAuth::Anonymous,
        };
        let protocol = match location.transport {
            Transport::Http => ClientProtocol::Http,
            Transport::Https => ClientProtocol::Https,
        };
        let user_agent = concat!("cairn/", env!("CARGO_PKG_VERSION"));
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            // One `PUT` of the whole blob: what every registry accepts.
            use_monolithic_push: true,
            read_timeout: Some(timeouts.read),
            connect_timeout: Some(timeouts.connect),
            user_agent,
            platform_resolver: None,
            ..ClientConfig::default()
        });
        let mut http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            // A redirect to another host would carry no credentials anyway; the store's own
            // requests go to the registry and nowhere else.
            .redirect(reqwest::redirect::Policy::none());
        if location.transport == Transport::Https {
            http = http.https_only(true);
        }
        let http = http.build().map_err(io::Error::other)?;
        let reference = Reference::with_tag(
            location.authority.clone(),
            location.repository.clone(),
            "latest".to_owned(),
        );
        Ok(OciContentStore {
            inner: Arc::new(Inner {
                location,
                reference,
                auth,
                client,
                http,
                token: Mutex::new(None),
                warned_deletes_disabled: AtomicBool::new(false),
                stored: Mutex::default(),
                empty_config_stored: AtomicBool::new(false),
            }),
            runtime: StoreRuntime::new("cairn-oci-content")?,
        })
    }

    /// The location of the store.
    pub fn location(&self) -> &OciLocation {
        &self.inner.location
    }

    /// Checks that the registry answers the distribution API (`GET /v2/`) and accepts our
    /// credentials, with the token for pushing when it asks for one.
    pub fn ping(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        self.runtime.run(async move {
            let url = format!("{}/v2/", inner.location.origin());
            let response = inner
                .send_authorized("ping (GET /v2/)", None, |http| http.get(&url))
                .await?;
            match response.status().as_u16() {
                200 => Ok(()),
                _ => Err(inner.answer_error("ping (GET /v2/)", None, response).await),
            }
        })
    }

    /// Runs `operation` on the store's runtime with a clone of the shared state.
    fn run<T, F>(&self, operation: impl FnOnce(Arc<Inner>) -> F) -> T
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.runtime.run(operation(self.inner.clone()))
    }

    /// Uploads a blob the registry does not have, with bytes from `body` (called again for a
    /// second session). The `PUT` is never sent twice to a session: after a connection error
    /// the registry may have stored the blob already, or part of the body. The blob is asked
    /// for instead: there, the upload succeeded; not there, the upload starts over once in a
    /// new session.
    fn upload<B>(&self, digest: &BlobDigest, size: u64, body: B) -> io::Result<()>
    where
        B: Fn() -> io::Result<BlobBody> + Send + Sync + 'static,
    {
        let digest = *digest;
        self.run(move |inner| async move {
            let error = match inner.push(&digest, size, &body).await {
                Err(error) if is_connection_failure(&error) => error,
                other => return other,
            };
            match inner.head(&digest).await {
                Ok(Some(_)) => {
                    tracing::debug!(store = %inner.location, %digest, %error, "the registry stored the blob before the connection failed");
                    return Ok(());
                }
                Ok(None) => {}
                Err(head_error) => {
                    tracing::debug!(store = %inner.location, %digest, %head_error, "cannot ask for the blob after its upload failed");
                    return Err(error);
                }
            }
            tracing::debug!(store = %inner.location, %digest, %error, "uploading the blob again, in a new session");
            inner.push(&digest, size, &body).await
        })
    }
}

impl OciContentStore {
    /// How the registry keeps `digest`, if it has it: remembered, or asked (`HEAD` of the
    /// blob, then `GET` of the manifest tagged for its frame).
    fn stored(&self, digest: &BlobDigest) -> io::Result<Option<Stored>> {
        if let Some(stored) = self.remembered(digest) {
            return Ok(Some(stored));
        }
        let blob = *digest;
        let stored = self.run(move |inner| async move {
            if let Some(len) = inner.head(&blob).await? {
                return io::Result::Ok(Some(Stored::Raw(len)));
            }
            Ok(inner.frame_of(&blob).await?.map(Stored::Frame))
        })?;
        if let Some(stored) = stored {
            self.remember(digest, stored);
        }
        Ok(stored)
    }

    fn remembered(&self, digest: &BlobDigest) -> Option<Stored> {
        self.inner
            .stored
            .lock()
            .expect("stored lock")
            .get(digest)
            .copied()
    }

    fn remember(&self, digest: &BlobDigest, stored: Stored) {
        let mut remembered = self.inner.stored.lock().expect("stored lock");
        if remembered.len() >= STORED_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(*digest, stored);
    }

    /// Uploads `bytes` under their digest `digest` unless the registry has them.
    fn upload_unless_present(&self, digest: &BlobDigest, bytes: bytes::Bytes) -> io::Result<()> {
        let blob = *digest;
        if self
            .run(move |inner| async move { inner.head(&blob).await })?
            .is_some()
        {
            return Ok(());
        }
        self.upload_bytes(digest, bytes)
    }

    /// Uploads `bytes` under their digest `digest`.
    fn upload_bytes(&self, digest: &BlobDigest, bytes: bytes::Bytes) -> io::Result<()> {
        let size = bytes.len() as u64;
        self.upload(digest, size, move || {
            Ok(futures_util::stream::once(std::future::ready(Ok(bytes.clone()))).boxed())
        })
    }

    /// Stores `packed`, the zstd frame of the blob `digest` of `size` bytes: the frame as a
    /// blob, the empty config, then the manifest tagged for the blob.
    fn put_frame(&self, digest: &BlobDigest, size: u64, packed: Vec<u8>) -> io::Result<()> {
        use sha2::Digest as _;
        let frame = frames::Frame {
            digest: BlobDigest::Sha256(sha2::Sha256::digest(&packed).into()),
            len: packed.len() as u64,
            size,
        };
        if !self.inner.empty_config_stored.load(Ordering::Relaxed) {
            let empty: BlobDigest = frames::EMPTY_DIGEST.parse().expect("a digest");
            self.upload_unless_present(&empty, bytes::Bytes::from_static(frames::EMPTY_CONFIG))?;
            self.inner
                .empty_config_stored
                .store(true, Ordering::Relaxed);
        }
        self.upload_unless_present(&frame.digest, packed.into())?;
        let blob = *digest;
        self.run(move |inner| async move { inner.tag_frame(&blob, &frame).await })?;
        self.remember(digest, Stored::Frame(frame));
        Ok(())
    }

    /// The blob `digest` as the registry sends it, from byte `offset` on.
    fn blob_stream(
        &self,
        digest: &BlobDigest,
        offset: u64,
    ) -> io::Result<futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>> {
        use oci_client::client::BlobResponse;
        let digest = *digest;
        self.run(move |inner| async move {
            let text = digest.to_string();
            let text = text.as_str();
            if offset == 0 {
                let stream = inner
                    .with_auth("GET blob", Some(&digest), RegistryOperation::Pull, || {
                        inner.client.pull_blob_stream(&inner.reference, text)
                    })
                    .await?;
                return io::Result::Ok(stream.stream);
            }
            let answer = inner
                .with_auth(
                    "GET blob range",
                    Some(&digest),
                    RegistryOperation::Pull,
                    || async {
                        match inner
                            .client
                            .pull_blob_stream_partial(&inner.reference, text, offset, None)
                            .await
                        {
                            // Starting at the end: nothing to read.
                            Err(OciDistributionError::ServerError { code: 416, .. }) => Ok(None),
                            other => other.map(Some),
                        }
                    },
                )
                .await?;
            Ok(match answer {
                // A registry that ignores ranges sends the whole blob: skip to the offset.
                Some(BlobResponse::Full(stream)) => skip(stream.stream, offset),
                Some(BlobResponse::Partial(stream)) => stream.stream,
                None => futures_util::stream::empty().boxed(),
            })
        })
    }
}

impl Inner {
    fn manifest_url(&self, tag: &str) -> String {
        format!(
            "{}/v2/{}/manifests/{tag}",
            self.location.origin(),
            self.location.repository
        )
    }

    /// The manifest tagged for `blob`'s frame, if there is one.
    async fn frame_manifest(&self, blob: &BlobDigest) -> io::Result<Option<bytes::Bytes>> {
        let url = self.manifest_url(&frames::tag_of(blob));
        let response = self
            .send_authorized("GET frame manifest", Some(blob), |http| {
                http.get(&url)
                    .header(reqwest::header::ACCEPT, frames::MANIFEST_MEDIA_TYPE)
            })
            .await?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => {
                return Err(self
                    .answer_error("GET frame manifest", Some(blob), response)
                    .await)
            }
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| self.error("GET frame manifest", Some(blob), error.into()))?;
        Ok(Some(body))
    }

    /// The frame of `blob`, from the manifest tagged for it, if there is one.
    async fn frame_of(&self, blob: &BlobDigest) -> io::Result<Option<frames::Frame>> {
        let Some(body) = self.frame_manifest(blob).await? else {
            return Ok(None);
        };
        frames::frame_in(&body, blob).map(Some).map_err(|reason| {
            io::Error::other(format!(
                "OCI registry {}: the manifest tagged {} is not one cairn wrote for blob {blob} ({reason}); the repository holds something else under cairn's tags: give cairn a repository of its own",
                self.location,
                frames::tag_of(blob)
            ))
        })
    }

    /// Deletes `blob`'s frame and the manifest tagged for it, if there are.
    async fn delete_frame(&self, blob: &BlobDigest) -> io::Result<()> {
        use sha2::Digest as _;
        let Some(body) = self.frame_manifest(blob).await? else {
            return Ok(());
        };
        let manifest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
        let url = self.manifest_url(&manifest);
        let response = self
            .send_authorized("DELETE frame manifest", Some(blob), |http| {
                http.delete(&url)
            })
            .await?;
        self.deleted("DELETE frame manifest", blob, response)
            .await?;
        if let Ok(frame) = frames::frame_in(&body, blob) {
            self.delete_blob(&frame.digest).await?;
        }
        Ok(())
    }

    /// Deletes the blob `digest` as the registry names it.
    async fn delete_blob(&self, digest: &BlobDigest) -> io::Result<()> {
        let url = self.blob_url(digest);
        let response = self
            .send_authorized("DELETE blob", Some(digest), |http| http.delete(&url))
            .await?;
        self.deleted("DELETE blob", digest, response).await
    }

    /// The outcome of a `DELETE`: done, or not there, or deletes disabled (a warning, once).
    async fn deleted(
        &self,
        what: &str,
        digest: &BlobDigest,
        response: reqwest::Response,
    ) -> io::Result<()> {
        match response.status().as_u16() {
            200 | 202 | 204 | 404 => Ok(()),
            405 => {
                if !self.warned_deletes_disabled.swap(true, Ordering::Relaxed) {
                    tracing::warn!(store = %self.location, "the content registry does not delete blobs (HTTP 405); deleted blobs stay there");
                }
                Ok(())
            }
            _ => Err(self.answer_error(what, Some(digest), response).await),
        }
    }

    /// Tags the manifest pointing to `frame`, the compressed form of `blob`.
    async fn tag_frame(&self, blob: &BlobDigest, frame: &frames::Frame) -> io::Result<()> {
        let url = self.manifest_url(&frames::tag_of(blob));
        let body = frames::manifest_of(blob, frame);
        let response = self
            .send_authorized("PUT frame manifest", Some(blob), |http| {
                http.put(&url)
                    .header(reqwest::header::CONTENT_TYPE, frames::MANIFEST_MEDIA_TYPE)
                    .body(body.clone())
            })
            .await?;
        match response.status().as_u16() {
            200 | 201 => Ok(()),
            _ => Err(self
                .answer_error("PUT frame manifest", Some(blob), response)
                .await),
        }
    }

    /// Has `oci-client` (and this store's own requests) authenticate for `operation` now,
    /// replacing any token it had; from then on `oci-client` authenticates by itself.
    async fn authenticate(&self, operation: RegistryOperation) -> io::Result<()> {
        match self
            .client
            .auth(&self.reference, &self.auth, operation)
            .await
        {
            Ok(token) => {
                *self.token.lock().expect("token lock") = token;
                Ok(())
            }
            Err(error) => Err(self.error("authenticate", None, error)),
        }
    }

    /// Runs an `oci-client` call; when the registry refuses it (HTTP 401), authenticates
    /// again and runs it once more.
    async fn with_auth<T, F, Fut>(
        &self,
        what: &str,
        digest: Option<&BlobDigest>,
        operation: RegistryOperation,
        call: F,
    ) -> io::Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        // `oci-client` learns the credentials at the first refusal: a registry that asks for
        // none is never asked `GET /v2/` again before each request.
        match call().await {
            Err(error) if self.is_our_401(&error) => {
                self.authenticate(operation).await?;
                call()
                    .await
                    .map_err(|error| self.error(what, digest, error))
            }
            other => other.map_err(|error| self.error(what, digest, error)),
        }
    }

    /// Whether `error` is a `401` from the registry itself (not from a host it redirected to).
    fn is_our_401(&self, error: &OciDistributionError) -> bool {
        match error {
            OciDistributionError::UnauthorizedError { url } => self.is_registry_url(url),
            OciDistributionError::ServerError { code: 401, url, .. } => self.is_registry_url(url),
            _ => false,
        }
    }

    /// Whether `url` is on the registry's origin (scheme, host and port).
    fn is_registry_url(&self, url: &str) -> bool {
        let ours = reqwest::Url::parse(&self.location.origin()).map(|url| url.origin());
        let theirs = reqwest::Url::parse(url).map(|url| url.origin());
        matches!((ours, theirs), (Ok(ours), Ok(theirs)) if ours == theirs)
    }

    fn blob_url(&self, digest: &BlobDigest) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.location.origin(),
            self.location.repository
        )
    }

    /// Sends a request `build` makes with the registry's credentials (the token `oci-client`
    /// negotiated, or the basic credentials), authenticating again once on a `401`.
    async fn send_authorized(
        &self,
        what: &str,
        digest: Option<&BlobDigest>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> io::Result<reqwest::Response> {
        let send = || async {
            let mut request = build(&self.http);
            let token = self.token.lock().expect("token lock").clone();
            match (&token, &self.auth) {
                (Some(token), _) => request = request.bearer_auth(token),
                (None, RegistryAuth::Basic(user, password)) => {
                    request = request.basic_auth(user, Some(password))
                }
                _ => {}
            }
            request
                .send()
                .await
                .map_err(|error| self.error(what, digest, error.into()))
        };
        let response = send().await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.authenticate(RegistryOperation::Push).await?;
        send().await
    }

    /// The blob's size, if the registry has it.
    async fn head(&self, digest: &BlobDigest) -> io::Result<Option<u64>> {
        let url = self.blob_url(digest);
        let response = self
            .send_authorized("HEAD blob", Some(digest), |http| http.head(&url))
            .await?;
        match response.status().as_u16() {
            200 => {
                let length = response
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok())
                    .ok_or_else(|| {
                        io::Error::other(format!(
                            "OCI registry {}: HEAD blob {digest} answered without a Content-Length",
                            self.location
                        ))
                    })?;
                Ok(Some(length))
            }
            404 => Ok(None),
            _ => Err(self.answer_error("HEAD blob", Some(digest), response).await),
        }
    }

    /// One monolithic upload of `size` bytes from `body` in a new session.
    async fn push(
        &self,
        digest: &BlobDigest,
        size: u64,
        body: &(dyn Fn() -> io::Result<BlobBody> + Send + Sync),
    ) -> io::Result<()> {
        let digest_text = digest.to_string();
        self.with_auth("upload blob", Some(digest), RegistryOperation::Push, || {
            let digest_text = &digest_text;
            async move {
                let stream = body().map_err(OciDistributionError::IoError)?;
                self.client
                    .push_blob_stream(&self.reference, stream, digest_text, Some(size))
                    .await
            }
        })
        .await?;
        tracing::debug!(store = %self.location, %digest, size, "uploaded a blob");
        Ok(())
    }

    /// The error for a call that failed, naming the store, the operation and the blob.
    fn error(
        &self,
        what: &str,
        digest: Option<&BlobDigest>,
        error: OciDistributionError,
    ) -> io::Error {
        let blob = digest.map(|d| format!(" {d}")).unwrap_or_default();
        let location = &self.location;
        match error {
            OciDistributionError::RequestError(error) => {
                request_error(location, what, &blob, &error)
            }
            OciDistributionError::IoError(error) => match find_request_error(&error) {
                Some(request) => request_error(location, what, &blob, request),
                None => io::Error::new(
                    error.kind(),
                    format!("OCI registry {location}: {what}{blob} failed: {error}"),
                ),
            },
            OciDistributionError::UnauthorizedError { url }
            | OciDistributionError::ServerError { code: 401, url, .. }
                if !self.is_registry_url(&url) =>
            {
                // The origin only: the path and query of a redirect may hold signatures.
                let host = reqwest::Url::parse(&url)
                    .map(|url| url.origin().ascii_serialization())
                    .unwrap_or_else(|_| "an unknown host".to_owned());
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "OCI registry {location}: {what}{blob}: another host than the registry, \
                         {host}, refused it (HTTP 401); cairn sends its credentials to the \
                         registry only"
                    ),
                )
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::ServerError { code: 401, .. } => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "OCI registry {location}: {what}{blob} refused {}",
                    self.refusal()
                ),
            ),
            OciDistributionError::AuthenticationFailure(reason) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "OCI registry {location}: {what}{blob} refused by the token service {}: {}",
                    self.refusal(),
                    reason.trim()
                ),
            ),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| {
                        let code = serde_json::to_value(&e.code)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_else(|| "UNKNOWN".to_owned());
                        format!("{code}: {}", e.message)
                    })
                    .collect();
                let kind = if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::BlobUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                    )
                }) {
                    io::ErrorKind::NotFound
                } else if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::Unauthorized
                            | oci_client::errors::OciErrorCode::Denied
                    )
                }) {
                    io::ErrorKind::PermissionDenied
                } else {
                    io::ErrorKind::Other
                };
                io::Error::new(
                    kind,
                    format!(
                        "OCI registry {location}: {what}{blob} failed ({})",
                        codes.join("; ")
                    ),
                )
            }
            OciDistributionError::ServerError { code, message, .. } => {
                let kind = match code {
                    404 => io::ErrorKind::NotFound,
                    403 => io::ErrorKind::PermissionDenied,
                    _ => io::ErrorKind::Other,
                };
                let message = message.trim();
                let detail = if message.is_empty() || message.len() > 200 {
                    String::new()
                } else {
                    format!(": {message}")
                };
                io::Error::new(
                    kind,
                    format!("OCI registry {location}: {what}{blob} failed: HTTP {code}{detail}"),
                )
            }
            other => io::Error::other(format!(
                "OCI registry {location}: {what}{blob} failed: {other}"
            )),
        }
    }

    /// What the registry refused, in the terms of what was sent.
    fn refusal(&self) -> String {
        match &self.auth {
            RegistryAuth::Anonymous => format!(
                "(HTTP 401) and asks for credentials (give them in the location or in \
                 {CONTENT_USERNAME_ENV} and {CONTENT_PASSWORD_ENV})"
            ),
            _ => "(HTTP 401) with the credentials given".to_owned(),
        }
    }

    /// The error for an answer of the store's own requests (`HEAD`, `DELETE`, ping).
    async fn answer_error(
        &self,
        what: &str,
        digest: Option<&BlobDigest>,
        response: reqwest::Response,
    ) -> io::Error {
        let status = response.status().as_u16();
        let url = response.url().to_string();
        let body = response.text().await.unwrap_or_default();
        let error = match serde_json::from_str(&body) {
            Ok(envelope) if status != 401 => OciDistributionError::RegistryError { envelope, url },
            _ if status == 401 => OciDistributionError::UnauthorizedError { url },
            _ => OciDistributionError::ServerError {
                code: status,
                url,
                message: body,
            },
        };
        self.error(what, digest, error)
    }
}

/// The error of a request that got no answer: the registry is down, unreachable or stalled.
fn request_error(
    location: &OciLocation,
    what: &str,
    blob: &str,
    error: &reqwest::Error,
) -> io::Error {
    let kind = if error.is_timeout() {
        io::ErrorKind::TimedOut
    } else if error.is_connect() {
        io::ErrorKind::ConnectionRefused
    } else {
        io::ErrorKind::Other
    };
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    io::Error::new(
        kind,
        ConnectionFailure(format!(
            "cannot reach the OCI registry {location} to {what}{blob}: {reason}"
        )),
    )
}

/// The `reqwest` error inside an I/O error of a stream, if any.
fn find_request_error(error: &io::Error) -> Option<&reqwest::Error> {
    error.get_ref()?.downcast_ref::<reqwest::Error>()
}

/// An error after which the registry may or may not have done what was asked.
#[derive(Debug)]
struct ConnectionFailure(String);

impl std::fmt::Display for ConnectionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectionFailure {}

fn is_connection_failure(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<ConnectionFailure>())
}

/// The bytes of a blob to upload, as `oci-client` takes them.
type BlobBody =
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, OciDistributionError>>;

/// A blob's bytes as they stream from the registry, read on the caller's thread: a task of the
/// store's runtime forwards the chunks through a small channel.
struct BlobReader {
    chunks: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl BlobReader {
    fn new(
        runtime: &StoreRuntime,
        mut stream: futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>,
    ) -> Self {
        let (sender, chunks) = tokio::sync::mpsc::channel(8);
        runtime.handle().spawn(async move {
            // Chunks that have arrived already go over together, up to `BATCH` bytes: one
            // hand-over between threads per batch rather than per network read.
            const BATCH: usize = 256 << 10;
            while let Some(first) = stream.next().await {
                let mut batch = match first {
                    Ok(bytes) => bytes::BytesMut::from(bytes),
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        break;
                    }
                };
                let (mut failed, mut ended) = (None, false);
                while batch.len() < BATCH {
                    match futures_util::FutureExt::now_or_never(stream.next()) {
                        Some(Some(Ok(bytes))) => batch.extend_from_slice(&bytes),
                        Some(Some(Err(error))) => {
                            failed = Some(error);
                            break;
                        }
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                if sender.send(Ok(batch.freeze())).await.is_err() {
                    break;
                }
                if let Some(error) = failed {
                    let _ = sender.send(Err(error)).await;
                    break;
                }
                if ended {
                    break;
                }
            }
        });
        BlobReader {
            chunks,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        use tokio::sync::mpsc::error::TryRecvError;
        while self.current.is_empty() {
            // A chunk that has arrived is taken without waiting.
            let chunk = match self.chunks.try_recv() {
                Ok(chunk) => Some(chunk),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => futures_executor::block_on(self.chunks.recv()),
            };
            match chunk {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buffer.len().min(self.current.len());
        buffer[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl BlobStore for OciContentStore {
    fn ping(&self) -> io::Result<()> {
        OciContentStore::ping(self)
    }

    fn has(&self, digest: &BlobDigest) -> io::Result<bool> {
        Ok(self.stored(digest)?.is_some())
    }

    /// Stores the blob as a zstd frame when that makes it smaller (see [`frames`]), else as
    /// it is.
    fn put(&self, digest: &BlobDigest, bytes: &[u8]) -> io::Result<()> {
        if self.has(digest)? {
            return Ok(());
        }
        match crate::content::compress_for_storage(bytes)? {
            Some(frame) => self.put_frame(digest, bytes.len() as u64, frame),
            None => {
                self.upload_bytes(digest, bytes::Bytes::copy_from_slice(bytes))?;
                self.remember(digest, Stored::Raw(bytes.len() as u64));
                Ok(())
            }
        }
    }

    fn put_file(&self, digest: &BlobDigest, path: &Path) -> io::Result<()> {
        if self.has(digest)? {
            return Ok(());
        }
        let size = std::fs::metadata(path)?.len();
        let path = path.to_owned();
        self.upload(digest, size, move || {
            let file = tokio::fs::File::from_std(std::fs::File::open(&path)?);
            Ok(tokio_util::io::ReaderStream::with_capacity(file, 64 << 10)
                .map(|chunk| chunk.map_err(OciDistributionError::IoError))
                .boxed())
        })?;
        self.remember(digest, Stored::Raw(size));
        Ok(())
    }

    fn open(&self, digest: &BlobDigest) -> io::Result<Box<dyn Read + Send>> {
        self.open_at(digest, 0)
    }

    fn open_at(&self, digest: &BlobDigest, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        if let Some(frame) = self.stored(digest)?.and_then(Stored::frame) {
            let reader = BlobReader::new(&self.runtime, self.blob_stream(&frame.digest, 0)?);
            let mut decoder = zstd::stream::read::Decoder::new(reader)?;
            io::copy(&mut (&mut decoder).take(offset), &mut io::sink())?;
            return Ok(Box::new(decoder));
        }
        Ok(Box::new(BlobReader::new(
            &self.runtime,
            self.blob_stream(digest, offset)?,
        )))
    }

    fn size(&self, digest: &BlobDigest) -> io::Result<Option<u64>> {
        Ok(self.stored(digest)?.map(|stored| match stored {
            Stored::Raw(len) => len,
            Stored::Frame(frame) | Stored::VerifiedFrame(frame) => frame.size,
        }))
    }

    fn open_zstd(&self, digest: &BlobDigest) -> io::Result<Option<(Box<dyn Read + Send>, u64)>> {
        match self.stored(digest)?.and_then(Stored::frame) {
            Some(frame) => {
                let reader = BlobReader::new(&self.runtime, self.blob_stream(&frame.digest, 0)?);
                Ok(Some((Box::new(reader), frame.len)))
            }
            _ => Ok(None),
        }
    }

    /// For blobs the registry keeps as they are: their bytes are checked against their digest
    /// as they stream (by `oci-client`), and a read whose bytes do not match fails at its end,
    /// before it reports the end of the blob, so a join need not hash them a second time. For
    /// compressed blobs only once a read saw the frame decompress to the blob
    /// ([`Stored::VerifiedFrame`]); never for blobs not seen yet.
    fn known_intact(&self, digest: &BlobDigest) -> bool {
        matches!(
            self.remembered(digest),
            Some(Stored::Raw(_) | Stored::VerifiedFrame(_))
        )
    }

    fn mark_intact(&self, digest: &BlobDigest) {
        if let Some(Stored::Frame(frame)) = self.remembered(digest) {
            self.remember(digest, Stored::VerifiedFrame(frame));
        }
    }

    fn delete(&self, digest: &BlobDigest) -> io::Result<()> {
        self.inner
            .stored
            .lock()
            .expect("stored lock")
            .remove(digest);
        let digest = *digest;
        self.run(move |inner| async move {
            inner.delete_blob(&digest).await?;
            inner.delete_frame(&digest).await
        })
    }
}

/// `stream` without its first `offset` bytes.
fn skip(
    stream: futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>,
    offset: u64,
) -> futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>> {
    let mut left = offset;
    stream
        .filter_map(move |chunk| {
            let chunk = match chunk {
                Ok(mut bytes) if left > 0 => {
                    let dropped = left.min(bytes.len() as u64);
                    left -= dropped;
                    let _ = bytes.split_to(dropped as usize);
                    (!bytes.is_empty()).then_some(Ok(bytes))
                }
                other => Some(other),
            };
            std::future::ready(chunk)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn parse(text: &str) -> OciLocation {
        text.parse().unwrap()
    }

    /// A request as the fake registry saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body_len: usize,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }
    }

    /// An answer of the fake registry: status, headers, body; or `None` to close the connection
    /// without answering (after reading the whole request).
    type Answer = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

    /// A minimal HTTP/1.1 server on loopback, one request per connection, recording the
    /// requests it sees. Its thread stays blocked in `accept` until the test process ends.
    struct Fake {
        port: u16,
        seen: std::sync::Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        fn start(answer: impl Fn(&Seen) -> Answer + Send + 'static) -> Fake {
            use std::io::{BufRead, BufReader, Write};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        continue;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_owned();
                    let path = parts.next().unwrap_or("").to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((key, value)) = line.split_once(':') {
                            headers.push((key.trim().to_owned(), value.trim().to_owned()));
                        }
                    }
                    let mut request = Seen {
                        method,
                        path,
                        headers,
                        body_len: 0,
                    };
                    let length: u64 = request
                        .header("content-length")
                        .and_then(|value| value.parse().ok())
                        .unwrap_or(0);
                    request.body_len = io::copy(&mut (&mut reader).take(length), &mut io::sink())
                        .unwrap_or(0) as usize;
                    log.lock().unwrap().push(request.clone());
                    let Some((status, headers, body)) = answer(&request) else {
                        continue;
                    };
                    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                    if !headers.iter().any(|(key, _)| key == "Content-Length") {
                        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                    }
                    for (key, value) in headers {
                        head.push_str(&format!("{key}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    if request.method != "HEAD" {
                        let _ = stream.write_all(&body);
                    }
                }
            });
            Fake { port, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn count(&self, method: &str) -> usize {
            self.seen().iter().filter(|r| r.method == method).count()
        }
    }

    fn reply(status: u16, headers: &[(&str, String)]) -> Answer {
        let headers = headers
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        Some((status, headers, Vec::new()))
    }

    fn test_digest(bytes: &[u8]) -> BlobDigest {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_401_from_another_host_is_not_answered_with_our_credentials() {
        // The token realm the other host names: it must never be asked.
        let realm = Fake::start(|_| Some((200, Vec::new(), br#"{"token":"stolen"}"#.to_vec())));
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{}/token",service="elsewhere""#,
            realm.port
        );
        let elsewhere =
            Fake::start(move |_| reply(401, &[("WWW-Authenticate", challenge.clone())]));
        let elsewhere_url = format!("http://127.0.0.1:{}", elsewhere.port);
        let redirect = elsewhere_url.clone();
        // The registry asks for basic credentials, then sends blob reads and uploads to the
        // other host.
        let registry = Fake::start(move |request| {
            let authorized = request.header("authorization").is_some();
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/v2/") if !authorized => reply(
                    401,
                    &[("WWW-Authenticate", r#"Basic realm="registry""#.to_owned())],
                ),
                ("GET", "/v2/") => reply(200, &[]),
                // No compressed blob's manifest: the blob itself is asked for.
                ("GET", path) if path.contains("/manifests/") => reply(404, &[]),
                ("GET", _) => reply(307, &[("Location", format!("{redirect}/blob"))]),
                ("HEAD", _) => reply(404, &[]),
                ("POST", _) => reply(202, &[("Location", format!("{redirect}/upload/1"))]),
                _ => reply(500, &[]),
            }
        });
        let store = OciContentStore::new(parse(&format!(
            "oci://user:secret@127.0.0.1:{}/cairn",
            registry.port
        )))
        .unwrap();
        let digest = test_digest(b"blob");

        let error = match store.open(&digest) {
            Ok(_) => panic!("a blob behind a refusing host opened"),
            Err(error) => error,
        };
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            error.to_string().contains(&format!(
                "another host than the registry, {elsewhere_url}, refused"
            )),
            "{error}"
        );
        let error = store.put(&digest, b"blob").unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("{elsewhere_url}, refused")),
            "{error}"
        );
        assert_eq!(elsewhere.count("GET"), 1);
        assert_eq!(elsewhere.count("PUT"), 1);
        assert!(
            elsewhere
                .seen()
                .iter()
                .all(|r| r.header("authorization").is_none()),
            "{:?}",
            elsewhere.seen()
        );
        assert!(
            realm.seen().is_empty(),
            "the realm was asked: {:?}",
            realm.seen()
        );
        // The registry itself got the credentials.
        assert!(registry
            .seen()
            .iter()
            .any(|r| r.header("authorization").is_some()));
    }

    /// A fake registry holding one blob's state: `HEAD` answers whether it is stored, `POST`
    /// opens session `n`, and `PUT` calls `put` with the number of `PUT`s so far (from 1) to
    /// decide: `Some(true)` stores the blob and answers 201, `Some(false)` stores it and closes
    /// the connection unanswered, `None` closes it unanswered without storing. A `PUT` to a
    /// session that was `PUT` to before gets 404 `BLOB_UPLOAD_UNKNOWN`, as from a real one.
    fn upload_registry(size: usize, put: impl Fn(usize) -> Option<bool> + Send + 'static) -> Fake {
        let stored = AtomicBool::new(false);
        let sessions = std::sync::atomic::AtomicUsize::new(0);
        let puts = std::sync::atomic::AtomicUsize::new(0);
        let closed = Mutex::new(BTreeSet::new());
        Fake::start(move |request| match request.method.as_str() {
            "HEAD" if stored.load(Ordering::SeqCst) => {
                reply(200, &[("Content-Length", size.to_string())])
            }
            "HEAD" => reply(404, &[]),
            // No compressed blob's manifest.
            "GET" => reply(404, &[]),
            "POST" => {
                let n = sessions.fetch_add(1, Ordering::SeqCst) + 1;
                reply(
                    202,
                    &[("Location", format!("/v2/cairn/blobs/uploads/s{n}"))],
                )
            }
            "PUT" => {
                let session = request.path.split('?').next().unwrap().to_owned();
                if !closed.lock().unwrap().insert(session) {
                    let body = br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}"#;
                    return Some((404, Vec::new(), body.to_vec()));
                }
                assert_eq!(request.body_len, size);
                match put(puts.fetch_add(1, Ordering::SeqCst) + 1) {
                    Some(answer) => {
                        stored.store(true, Ordering::SeqCst);
                        if answer {
                            reply(
                                201,
                                &[("Location", format!("/v2/cairn/blobs/{}", request.path))],
                            )
                        } else {
                            None
                        }
                    }
                    None => None,
                }
            }
            _ => reply(500, &[]),
        })
    }

    /// Bytes zstd cannot make smaller (a chain of SHA-256 digests), which a store keeps as
    /// they are.
    fn incompressible(len: usize) -> Vec<u8> {
        use sha2::Digest as _;
        let mut bytes = Vec::with_capacity(len + 32);
        let mut block = sha2::Sha256::digest(b"seed");
        while bytes.len() < len {
            bytes.extend_from_slice(&block);
            block = sha2::Sha256::digest(block);
        }
        bytes.truncate(len);
        assert!(crate::content::compress_for_storage(&bytes)
            .unwrap()
            .is_none());
        bytes
    }

    fn store_at(registry: &Fake) -> OciContentStore {
        OciContentStore::new(parse(&format!("oci://127.0.0.1:{}/cairn", registry.port))).unwrap()
    }

    #[test]
    fn a_closing_put_cut_off_after_the_registry_stored_the_blob_is_not_sent_again() {
        let bytes = incompressible(100_000);
        let registry = upload_registry(bytes.len(), |_| Some(false));
        let store = store_at(&registry);
        store.put(&test_digest(&bytes), &bytes).unwrap();
        assert_eq!(registry.count("POST"), 1);
        assert_eq!(registry.count("PUT"), 1);
    }

    #[test]
    fn a_closing_put_cut_off_before_the_blob_was_stored_starts_over_once_in_a_new_session() {
        let bytes = incompressible(100_000);
        let registry = upload_registry(bytes.len(), |n| (n > 1).then_some(true));
        let store = store_at(&registry);
        store.put(&test_digest(&bytes), &bytes).unwrap();
        assert_eq!(registry.count("POST"), 2);
        assert_eq!(registry.count("PUT"), 2);
        assert!(registry
            .seen()
            .iter()
            .filter(|r| r.method == "PUT")
            .map(|r| r.path.split('?').next().unwrap().to_owned())
            .eq(["/v2/cairn/blobs/uploads/s1", "/v2/cairn/blobs/uploads/s2"]));

        // Only once.
        let registry = upload_registry(bytes.len(), |_| None);
        let store = store_at(&registry);
        let error = store.put(&test_digest(&bytes), &bytes).unwrap_err();
        assert!(
            error.to_string().contains("cannot reach the OCI registry"),
            "{error}"
        );
        assert_eq!(registry.count("POST"), 2);
        assert_eq!(registry.count("PUT"), 2);
    }

    #[test]
    fn a_registry_that_stalls_in_a_body_times_out() {
        use std::io::Write as _;
        // Headers promising a body that never comes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut stream in listener.incoming().flatten() {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this");
                held.push(stream);
            }
        });
        let store = OciContentStore::with_timeouts(
            parse(&format!("oci://127.0.0.1:{port}/cairn")),
            Timeouts {
                read: Duration::from_millis(300),
                ..Timeouts::DEFAULT
            },
        )
        .unwrap();
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let read = store
                .open(&test_digest(b"x"))
                .and_then(|mut reader| reader.read_to_end(&mut Vec::new()));
            let _ = done.send(read.map_err(|error| error.kind()));
        });
        let read = result
            .recv_timeout(Duration::from_secs(20))
            .expect("the read of a stalled body did not time out");
        assert!(read.is_err(), "{read:?}");
    }

    #[test]
    fn a_blob_whose_bytes_do_not_match_its_digest_fails_its_read() {
        let registry = Fake::start(|request| match request.method.as_str() {
            "GET" if request.path == "/v2/" => reply(200, &[]),
            "HEAD" => reply(200, &[("Content-Length", "9".to_owned())]),
            "GET" => Some((200, Vec::new(), b"other bytes".to_vec())),
            _ => reply(500, &[]),
        });
        let store = store_at(&registry);
        let digest = test_digest(b"the bytes");
        let mut reader = store.open(&digest).unwrap();
        // The store vouches for what it reads of a blob kept as it is, so the read itself
        // must fail.
        assert!(store.known_intact(&digest));
        let mut read = Vec::new();
        let error = reader.read_to_end(&mut read).unwrap_err();
        assert!(error.to_string().contains("igest"), "{error}");
    }

    #[test]
    fn a_store_dropped_on_an_async_runtime_does_not_panic() {
        let store = OciContentStore::new(parse("oci://127.0.0.1:1/cairn")).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move { drop(store) });
    }
}
