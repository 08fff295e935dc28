//! Content: checking uploads, storing them split, and serving whole files (and ranges) by
//! joining their blobs.
//!
//! An upload must be a valid WebAssembly module or component (checked with `wasmparser`,
//! every feature it knows enabled, since components in the wild use new proposals) and within
//! the size limit. It is split with `cairn-split` and each blob is stored once, by digest,
//! across all packages. A download joins the blobs again, verifying each one as it streams.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use cairn_protocol::Digest;
use cairn_split::{BlobEntry, BlobSource, Manifest};
use cairn_store::{BlobDigest, BlobStore, ContentRow};
use tokio::sync::mpsc;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// Not valid WebAssembly.
    #[error("content is not valid WebAssembly: {0}")]
    Invalid(String),
    /// Storing failed.
    #[error("cannot store content: {0}")]
    Io(#[from] io::Error),
}

/// Bytes `wasmparser` found to be a valid core module or component: what [`ingest`] stores.
pub struct ValidWasm(Vec<u8>);

impl ValidWasm {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Checks that `bytes` are a valid core module or component.
pub fn validate_wasm(bytes: Vec<u8>) -> Result<ValidWasm, ContentError> {
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator
        .validate_all(&bytes)
        .map_err(|e| ContentError::Invalid(e.to_string()))?;
    Ok(ValidWasm(bytes))
}

/// Splits and stores `wasm`, whose SHA-256 the caller has checked is `digest`. Returns the
/// row to record in the store. Blocking: call from a blocking thread.
pub fn ingest(
    blobs: &dyn BlobStore,
    digest: &Digest,
    wasm: &ValidWasm,
) -> Result<ContentRow, ContentError> {
    let split =
        cairn_split::split(wasm.bytes()).map_err(|e| ContentError::Invalid(e.to_string()))?;
    for blob in split.blobs() {
        blobs.put(&blob.digest.into(), &blob.bytes)?;
    }
    Ok(ContentRow {
        digest: *digest,
        size: wasm.bytes().len() as u64,
        tree_digest: split.tree_digest().to_string(),
        manifest: split.manifest().to_json(),
    })
}

/// Reads blobs from a blob store, for joins.
pub struct StoreBlobs<'a>(pub &'a dyn BlobStore);

impl BlobSource for StoreBlobs<'_> {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn io::Read + '_>> {
        Ok(self.0.open(&entry.digest.into())?)
    }

    fn known_intact(&mut self, entry: &BlobEntry) -> bool {
        self.0.known_intact(&entry.digest.into())
    }

    fn verified(&mut self, entry: &BlobEntry) {
        self.0.mark_intact(&entry.digest.into());
    }
}

/// Reads the blobs of a record's upload: those staged for the record, then the store's.
pub struct RecordBlobs<'a> {
    /// The content store.
    pub store: &'a dyn BlobStore,
    /// The uploads, with the record's staged blobs.
    pub uploads: &'a crate::upload::Uploads,
    /// The record.
    pub record_id: cairn_protocol::RecordId,
}

impl RecordBlobs<'_> {
    /// Whether every blob of `manifest` is staged or stored.
    pub fn has_all(&self, manifest: &Manifest) -> io::Result<bool> {
        for entry in manifest.blobs() {
            if self
                .uploads
                .staged(&self.record_id, &entry.digest)
                .is_none()
                && !self.store.has(&entry.digest.into())?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl BlobSource for RecordBlobs<'_> {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn io::Read + '_>> {
        match self.uploads.staged(&self.record_id, &entry.digest) {
            Some(path) => Ok(Box::new(std::fs::File::open(path)?)),
            None => Ok(self.store.open(&entry.digest.into())?),
        }
    }
}

/// A byte range of a file, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
}

impl ByteRange {
    /// Parses one `Range: bytes=...` range against a file of `size` bytes. `None` means
    /// "not satisfiable"; a header this does not understand is ignored by the caller.
    pub fn parse(header: &str, size: u64) -> Option<Option<ByteRange>> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let range = if first.is_empty() {
            let suffix: u64 = last.parse().ok()?;
            if suffix == 0 || size == 0 {
                return Some(None);
            }
            ByteRange {
                start: size.saturating_sub(suffix),
                end: size - 1,
            }
        } else {
            let start: u64 = first.parse().ok()?;
            let end = if last.is_empty() {
                size.saturating_sub(1)
            } else {
                last.parse::<u64>().ok()?.min(size.saturating_sub(1))
            };
            if start >= size || end < start {
                return Some(None);
            }
            ByteRange { start, end }
        };
        Some(Some(range))
    }

    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Whether the range is empty (never, for a parsed range).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Sends the joined bytes (or a range of them) to an HTTP body as they are produced.
struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    /// The runtime whose timer bounds each send.
    runtime: tokio::runtime::Handle,
    buffer: Vec<u8>,
    /// Bytes of the whole file seen so far.
    position: u64,
    range: Option<ByteRange>,
}

const CHUNK: usize = 256 * 1024;

/// How long a client may leave a piece of a download unread before the download is dropped,
/// so that a client that stops reading does not hold a blocking thread for ever.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The error a [`BodyWriter`] returns once its range is complete, to stop the join early.
const RANGE_DONE: &str = "range complete";

impl Write for BodyWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let start = self.position;
        self.position += bytes.len() as u64;
        let wanted = match self.range {
            None => bytes,
            Some(range) => {
                if start > range.end {
                    return Err(io::Error::other(RANGE_DONE));
                }
                let from = range.start.saturating_sub(start).min(bytes.len() as u64) as usize;
                let to = (range.end + 1)
                    .saturating_sub(start)
                    .min(bytes.len() as u64) as usize;
                &bytes[from..to]
            }
        };
        self.buffer.extend_from_slice(wanted);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buffer));
            let tx = &self.tx;
            let sent = self
                .runtime
                .block_on(async { tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(chunk))).await });
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(io::Error::other("the client went away")),
                Err(_) => return Err(io::Error::other("the client stopped reading")),
            }
        }
        Ok(())
    }
}

/// Starts joining `manifest` on a blocking thread; the bytes (of `range`, if given) arrive
/// on the returned channel. A failure mid-way ends the stream with an error, so the client
/// sees a truncated body rather than wrong bytes.
pub fn stream_join(
    blobs: Arc<dyn BlobStore>,
    manifest: Manifest,
    range: Option<ByteRange>,
) -> mpsc::Receiver<io::Result<Bytes>> {
    spawn_body(range, 0, move |writer| {
        served(cairn_split::join(
            &manifest,
            &mut StoreBlobs(&*blobs),
            writer,
        ))
    })
}

/// What a join that serves content ends with: a failure to write (the client went away, or a
/// range is complete) as it is; any other failure logged, and passed on to end the stream.
fn served(joined: Result<cairn_split::JoinSummary, cairn_split::JoinError>) -> io::Result<()> {
    match joined {
        Ok(_) => Ok(()),
        Err(cairn_split::JoinError::Write(e)) => Err(e),
        Err(error) => {
            tracing::error!(%error, "join failed while serving content");
            Err(io::Error::other(error.to_string()))
        }
    }
}

/// Starts joining `manifest` on a blocking thread into a zstd stream, whose bytes arrive on the
/// returned channel: a sequence of zstd frames that decodes to the file. Each module the store
/// keeps compressed is sent as its stored frame, compressing nothing again; the bytes between
/// them (the skeletons' literals, and modules kept uncompressed) go in frames compressed at
/// level 1. The join runs as for [`stream_join`], so every module is read and checked against
/// its digest, and a failure ends the stream with an error.
pub fn stream_join_zstd(
    blobs: Arc<dyn BlobStore>,
    manifest: Manifest,
) -> mpsc::Receiver<io::Result<Bytes>> {
    spawn_body(None, 0, move |writer| {
        let module = std::rc::Rc::new(std::cell::RefCell::new(None));
        let mut source = FramedBlobs {
            store: StoreBlobs(&*blobs),
            module: module.clone(),
        };
        let mut framed = FrameWriter {
            out: writer,
            module,
            literals: None,
        };
        served(cairn_split::join(&manifest, &mut source, &mut framed))?;
        framed.finish_literals()
    })
}

/// A module being joined whose stored zstd frame goes out in place of its bytes.
struct FramedModule {
    /// Its bytes the join has yet to write.
    remaining: u64,
    /// The stored frame.
    frame: Box<dyn io::Read + Send>,
}

/// The store, for [`stream_join_zstd`]: opening a module the store keeps compressed tells the
/// [`FrameWriter`] to send its frame once the join has written (and checked) its bytes.
struct FramedBlobs<'a> {
    store: StoreBlobs<'a>,
    module: std::rc::Rc<std::cell::RefCell<Option<FramedModule>>>,
}

impl BlobSource for FramedBlobs<'_> {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn io::Read + '_>> {
        if entry.kind == cairn_split::BlobKind::Module {
            let stored = self.store.0.open_zstd(&entry.digest.into())?;
            *self.module.borrow_mut() = stored.map(|(frame, _)| FramedModule {
                remaining: entry.size,
                frame,
            });
        }
        self.store.open(entry)
    }

    fn known_intact(&mut self, entry: &BlobEntry) -> bool {
        self.store.known_intact(entry)
    }

    fn verified(&mut self, entry: &BlobEntry) {
        self.store.verified(entry);
    }
}

/// Turns the joined bytes into zstd frames (see [`stream_join_zstd`]).
struct FrameWriter<'w> {
    out: &'w mut BodyWriter,
    module: std::rc::Rc<std::cell::RefCell<Option<FramedModule>>>,
    /// The frame the bytes outside stored frames go into, if one is open.
    literals: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
}

impl FrameWriter<'_> {
    fn finish_literals(&mut self) -> io::Result<()> {
        if let Some(encoder) = self.literals.take() {
            let frame = encoder.finish()?;
            self.out.write_all(&frame)?;
        }
        Ok(())
    }
}

impl Write for FrameWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut module = self.module.borrow_mut();
        match module.as_mut() {
            Some(framed) => {
                framed.remaining = framed.remaining.saturating_sub(bytes.len() as u64);
                if framed.remaining == 0 {
                    let mut framed = module.take().expect("a module is being framed");
                    drop(module);
                    self.finish_literals()?;
                    io::copy(&mut framed.frame, &mut *self.out)?;
                }
            }
            None => {
                drop(module);
                let encoder = match &mut self.literals {
                    Some(encoder) => encoder,
                    None => self
                        .literals
                        .insert(zstd::stream::write::Encoder::new(Vec::new(), 1)?),
                };
                encoder.write_all(bytes)?;
                // Whatever the encoder has produced goes out as it grows.
                let produced = std::mem::take(encoder.get_mut());
                if !produced.is_empty() {
                    self.out.write_all(&produced)?;
                }
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Starts reading one stored blob (or `range` of it) on a blocking thread; the bytes arrive on
/// the returned channel, in pieces, so a large blob is never held in memory.
pub fn stream_blob(
    blobs: Arc<dyn BlobStore>,
    digest: BlobDigest,
    range: Option<ByteRange>,
) -> mpsc::Receiver<io::Result<Bytes>> {
    // Reading starts at the range's first byte (a seek for files, a range request for an OCI
    // store), never at the blob's.
    let start = range.map(|r| r.start).unwrap_or(0);
    spawn_body(range, start, move |writer| {
        blobs
            .open_at(&digest, start)
            .and_then(|mut reader| io::copy(&mut reader, writer))
            .map(|_| ())
            .inspect_err(|error| {
                if error.to_string() != RANGE_DONE {
                    tracing::error!(%error, %digest, "reading a blob failed while serving it");
                }
            })
    })
}

/// How many answers may be compressed with gzip at once: gzip is made per request (nothing is
/// stored in it), so its CPU is bounded; past this, answers go out as they are.
pub const GZIP_STREAMS: usize = 2;

/// The encoding of an answer's body, chosen from the request's `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireEncoding {
    /// The bytes as they are.
    Identity,
    /// zstd: frames as stored.
    Zstd,
    /// gzip, made as the body streams (level 1), within [`GZIP_STREAMS`].
    Gzip,
}

impl WireEncoding {
    /// zstd when accepted (it costs nothing: the store keeps it), else gzip when accepted,
    /// else the bytes as they are.
    pub fn negotiate(headers: &axum::http::HeaderMap) -> Self {
        if accepts_encoding(headers, "zstd") {
            WireEncoding::Zstd
        } else if accepts_encoding(headers, "gzip") {
            WireEncoding::Gzip
        } else {
            WireEncoding::Identity
        }
    }
}

/// Starts joining `manifest` on a blocking thread into a gzip stream (level 1), holding `turn`
/// (one of [`GZIP_STREAMS`]) until it ends.
pub fn stream_join_gzip(
    blobs: Arc<dyn BlobStore>,
    manifest: Manifest,
    turn: tokio::sync::OwnedSemaphorePermit,
) -> mpsc::Receiver<io::Result<Bytes>> {
    spawn_body(None, 0, move |writer| {
        let _turn = turn;
        let mut gzip = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
        served(cairn_split::join(
            &manifest,
            &mut StoreBlobs(&*blobs),
            &mut gzip,
        ))?;
        gzip.finish().map(|_| ())
    })
}

/// Starts reading one stored blob on a blocking thread into a gzip stream (level 1), holding
/// `turn` (one of [`GZIP_STREAMS`]) until it ends.
pub fn stream_blob_gzip(
    blobs: Arc<dyn BlobStore>,
    digest: BlobDigest,
    turn: tokio::sync::OwnedSemaphorePermit,
) -> mpsc::Receiver<io::Result<Bytes>> {
    spawn_body(None, 0, move |writer| {
        let _turn = turn;
        let mut gzip = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
        blobs
            .open(&digest)
            .and_then(|mut reader| io::copy(&mut reader, &mut gzip))
            .and_then(|_| gzip.finish())
            .map(|_| ())
            .inspect_err(|error| {
                tracing::error!(%error, %digest, "reading a blob failed while serving it");
            })
    })
}

/// Streams what `reader` reads (a blob as the store keeps it compressed, opened already).
pub fn stream_reader(mut reader: Box<dyn io::Read + Send>) -> mpsc::Receiver<io::Result<Bytes>> {
    spawn_body(None, 0, move |writer| {
        io::copy(&mut reader, writer).map(|_| ())
    })
}

/// An HTTP body that reads a streamed file from its channel.
pub fn body_of(rx: mpsc::Receiver<io::Result<Bytes>>) -> axum::body::Body {
    axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Whether a request's `Accept-Encoding` takes `encoding` (named, with a quality above 0).
pub fn accepts_encoding(headers: &axum::http::HeaderMap, encoding: &str) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let named = parts
                .next()
                .is_some_and(|name| name.eq_ignore_ascii_case(encoding));
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            named && !refused
        })
}

/// Runs `produce` on a blocking thread, writing into a [`BodyWriter`] for `range` whose first
/// byte is byte `start` of the file, and returns the channel an HTTP body reads. `produce`
/// stopping with [`RANGE_DONE`] is success; any other error ends the stream with it.
fn spawn_body(
    range: Option<ByteRange>,
    start: u64,
    produce: impl FnOnce(&mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(8);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut writer = BodyWriter {
            tx: tx.clone(),
            runtime,
            buffer: Vec::with_capacity(CHUNK),
            position: start,
            range,
        };
        let outcome = match produce(&mut writer) {
            Err(e) if e.to_string() == RANGE_DONE => Ok(()),
            other => other,
        }
        .and_then(|()| writer.flush());
        if let Err(error) = outcome {
            let _ = tx.try_send(Err(error));
        }
    });
    rx
}

/// Sets `Content-Length`, and for a range `Content-Range` and the status 206.
pub fn set_length_and_range(
    response: &mut axum::response::Response,
    size: u64,
    range: Option<ByteRange>,
) {
    use axum::http::{header, HeaderValue, StatusCode};
    let value = |text: String| HeaderValue::from_str(&text).expect("digits, spaces and dashes");
    let headers = response.headers_mut();
    match range {
        None => {
            headers.insert(header::CONTENT_LENGTH, value(size.to_string()));
        }
        Some(range) => {
            headers.insert(header::CONTENT_LENGTH, value(range.len().to_string()));
            headers.insert(
                header::CONTENT_RANGE,
                value(format!("bytes {}-{}/{size}", range.start, range.end)),
            );
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
    }
}
