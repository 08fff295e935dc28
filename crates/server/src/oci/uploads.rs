//! Blob uploads: upload sessions (monolithic, chunked and streamed), kept as files under
//! `content/tmp/oci-uploads` so that they survive a restart, and blob deletes.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_store::BlobDigest;
use futures_util::StreamExt as _;

use super::*;

/// One lock per upload session in use, so that the requests of a session run one after
/// another: two chunks checked against the same size would both be appended, and a chunk
/// appended while the closing PUT moves the file into the content store would change a
/// stored blob. An entry lives while some request holds or awaits it.
#[derive(Clone, Default)]
pub(super) struct SessionLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl SessionLocks {
    pub(super) async fn lock(&self, id: &str) -> SessionGuard {
        let lock = {
            let mut locks = self.0.lock().expect("session locks poisoned");
            // Entries nobody holds or awaits any more (a waiter whose request was dropped
            // while it waited leaves one behind): swept here, so the map stays small.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(id.to_owned()).or_default().clone()
        };
        SessionGuard {
            locks: self.clone(),
            id: id.to_owned(),
            held: Some(lock.lock_owned().await),
        }
    }
}

/// A held session lock; dropping it releases the lock, and forgets it if nobody waits.
pub(super) struct SessionGuard {
    pub(super) locks: SessionLocks,
    pub(super) id: String,
    pub(super) held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut locks = self.locks.0.lock().expect("session locks poisoned");
        self.held.take();
        // Waiters hold a clone of the entry, taken under the map's lock: if only the map
        // holds it now, nobody does.
        if locks
            .get(&self.id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.id);
        }
    }
}

/// How long an upload session may go without a request before it is removed.
pub(super) const SESSION_IDLE_LIMIT: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// An upload in progress, kept on disk as two files: `<id>` holds the bytes received so far
/// and `<id>.repository` the repository it belongs to.
pub(super) struct Session {
    pub(super) path: PathBuf,
    pub(super) size: u64,
}

impl Session {
    pub(super) fn repository_file(uploads: &FsPath, id: &str) -> PathBuf {
        uploads.join(format!("{id}.repository"))
    }

    /// Starts a session of `repository`. Now and then, sessions left idle for
    /// [`SESSION_IDLE_LIMIT`] are removed first.
    pub(super) async fn create(uploads: &FsPath, repository: &str) -> std::io::Result<String> {
        tokio::fs::create_dir_all(uploads).await?;
        Session::sweep_now_and_then(uploads).await;
        let id = new_session_id();
        tokio::fs::write(uploads.join(&id), b"").await?;
        tokio::fs::write(Session::repository_file(uploads, &id), repository).await?;
        Ok(id)
    }

    /// Removes the files of sessions idle for [`SESSION_IDLE_LIMIT`], at most once an hour.
    pub(super) async fn sweep_now_and_then(uploads: &FsPath) {
        static LAST_SWEEP: AtomicU64 = AtomicU64::new(0);
        if !hourly_turn(&LAST_SWEEP) {
            return;
        }
        let Ok(mut entries) = tokio::fs::read_dir(uploads).await else {
            return;
        };
        // A session's bytes file changes with every chunk; its `.repository` file does not,
        // so the bytes file says how long the session has been idle.
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            let Some(id) = name.to_str().map(|n| n.trim_end_matches(".repository")) else {
                continue;
            };
            if !Session::well_formed(id) {
                continue;
            }
            let modified = match tokio::fs::metadata(uploads.join(id)).await {
                Ok(meta) => meta.modified().ok(),
                // A `.repository` file without bytes: as old as itself.
                Err(_) => entry.metadata().await.ok().and_then(|m| m.modified().ok()),
            };
            let idle = modified
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|idle| idle > SESSION_IDLE_LIMIT);
            if idle {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    /// Whether `id` can be a session id: 32 lowercase hex digits, so a client's id never
    /// names another file.
    pub(super) fn well_formed(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The session `id` of `repository`, if there is one. Its size is only stable under
    /// the session's lock.
    pub(super) async fn find(uploads: &FsPath, repository: &str, id: &str) -> Option<Session> {
        if !Session::well_formed(id) {
            return None;
        }
        let owner = tokio::fs::read_to_string(Session::repository_file(uploads, id))
            .await
            .ok()?;
        if owner != repository {
            return None;
        }
        let path = uploads.join(id);
        let size = tokio::fs::metadata(&path).await.ok()?.len();
        Some(Session { path, size })
    }

    /// Forgets the session (its bytes, if still there, too).
    pub(super) async fn remove(uploads: &FsPath, id: &str) {
        let _ = tokio::fs::remove_file(Session::repository_file(uploads, id)).await;
        let _ = tokio::fs::remove_file(uploads.join(id)).await;
    }
}

/// Undoes what a request wrote to a file unless the request succeeds: cuts a session back
/// to its size before the request, or deletes a single POST's file. Holds the session's lock
/// (if any) until the file is as it was.
pub(super) struct Undo {
    pub(super) path: PathBuf,
    /// The length to cut back to; `None` deletes the file.
    pub(super) keep: Option<u64>,
    pub(super) armed: bool,
    pub(super) _lock: Option<SessionGuard>,
}

impl Undo {
    pub(super) fn truncate(path: PathBuf, size: u64, lock: SessionGuard) -> Undo {
        Undo {
            path,
            keep: Some(size),
            armed: true,
            _lock: Some(lock),
        }
    }

    pub(super) fn remove(path: PathBuf) -> Undo {
        Undo {
            path,
            keep: None,
            armed: true,
            _lock: None,
        }
    }

    /// The request succeeded: its bytes stay.
    pub(super) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let undone = match self.keep {
            Some(size) => std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|file| file.set_len(size)),
            None => std::fs::remove_file(&self.path),
        };
        if let Err(e) = undone {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot undo an upload");
            }
        }
    }
}

pub(super) fn digest_invalid(text: &str, message: &str) -> OciError {
    OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
        .with_detail(serde_json::json!({ "digest": text }))
}

/// A pushed digest: `sha256:` or `sha512:`.
pub(super) fn push_digest(text: &str) -> Result<BlobDigest, OciError> {
    Ok(parse_digest(text)?.blob())
}

pub(super) fn new_session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.update(now.as_nanos().to_le_bytes());
    hex::encode(&hasher.finalize()[..16])
}

pub(super) fn upload_location(repository: &str, id: &str) -> String {
    format!("/v2/{repository}/blobs/uploads/{id}")
}

/// 202 for a session at `size` bytes.
pub(super) fn session_response(
    status: StatusCode,
    repository: &str,
    id: &str,
    size: u64,
) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(&upload_location(repository, id)),
    );
    headers.insert("docker-upload-uuid", header_value(id));
    headers.insert(
        header::RANGE,
        header_value(&format!("0-{}", size.saturating_sub(1))),
    );
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

/// 201 for a stored blob.
pub(super) fn blob_created(repository: &str, digest: &str) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(&format!("/v2/{repository}/blobs/{digest}")),
    );
    headers.insert("docker-content-digest", header_value(digest));
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

pub(super) fn too_large(max: u64) -> Response {
    fail(
        OciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            "the blob is larger than this registry accepts",
        )
        .with_detail(serde_json::json!({ "max": max })),
    )
}

pub(super) fn body_unreadable(error: impl std::fmt::Display) -> Response {
    fail(
        OciError::new(
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            "the request body could not be read",
        )
        .with_detail(serde_json::json!({ "reason": error.to_string() })),
    )
}

/// Appends `body` as it arrives to the file at `path`, which holds `size` bytes, and
/// returns its new size; past `max` bytes, 413 `SIZE_INVALID`. Every write has finished
/// when this returns, so the caller may undo them.
/// How long an upload's body may send nothing before the request is dropped.
pub(super) const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How much of a too-large body is read and dropped before the 413 goes out.
pub(super) const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

/// How long that draining waits for each piece.
pub(super) const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads (and drops) a little more of a body that is refused for its size, so that a client
/// still sending gets to read the answer instead of a closed connection.
pub(super) async fn drain(stream: &mut axum::body::BodyDataStream) {
    let mut dropped = 0u64;
    while dropped < DRAIN_LIMIT {
        match tokio::time::timeout(DRAIN_WAIT, stream.next()).await {
            Ok(Some(Ok(chunk))) => dropped += chunk.len() as u64,
            _ => break,
        }
    }
}

/// The next piece of a body, or 408 with `code` if `what` sends nothing for
/// [`BODY_IDLE_TIMEOUT`].
pub(super) async fn next_chunk(
    stream: &mut axum::body::BodyDataStream,
    code: &'static str,
    what: &str,
) -> Result<Option<Result<Bytes, axum::Error>>, Response> {
    tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next())
        .await
        .map_err(|_| {
            fail(OciError::new(
                StatusCode::REQUEST_TIMEOUT,
                code,
                format!("{what} sent nothing for too long; send it again"),
            ))
        })
}

pub(super) async fn receive(
    path: &FsPath,
    size: u64,
    body: Body,
    max: u64,
) -> Result<u64, Response> {
    use tokio::io::AsyncWriteExt as _;
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut received = size;
    let written = async {
        loop {
            // A client that stops sending would hold the session's lock: give up on it.
            let next = next_chunk(&mut stream, "BLOB_UPLOAD_INVALID", "the upload").await?;
            let Some(chunk) = next else {
                break;
            };
            let chunk = chunk.map_err(body_unreadable)?;
            received += chunk.len() as u64;
            if received > max {
                drain(&mut stream).await;
                return Err(too_large(max));
            }
            file.write_all(&chunk).await.map_err(internal)?;
        }
        Ok(())
    }
    .await;
    // A tokio file writes in the background: wait for the last write either way.
    let flushed = file.flush().await.map_err(internal);
    written.and(flushed).map(|()| received)
}

/// Hashes a received file, and if it is `expected` (a digest the client gave, `digest`
/// parsed) stores it in the content store as a blob of `repository`, removes `leftovers`
/// and lets `undo` go; otherwise 400 `DIGEST_INVALID`, and `undo` puts the file back as it
/// was. Callers run this in a task of their own ([`detached`]), so that a file is never
/// cut back halfway through being moved into the store.
pub(super) async fn store_received(
    oci: Oci,
    repository: String,
    expected: String,
    digest: BlobDigest,
    undo: Undo,
    leftovers: Vec<PathBuf>,
    staged: Option<PathBuf>,
) -> Answer {
    let path = undo.path.clone();
    let actual = tokio::task::spawn_blocking(move || digest_of_file(&digest, &path))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    if actual != digest {
        return Err(fail(digest_invalid(
            &expected,
            "provided digest did not match uploaded content",
        )));
    }
    if let Some(staged) = staged {
        // A package repository's blob waits outside the content store for its manifest.
        sweep_staged_now_and_then(staged.clone());
        // Twice: the sweep may remove the repository's folder, once empty, in between.
        let mut moved = Ok(());
        for _ in 0..2 {
            if let Some(dir) = staged.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(internal)?;
            }
            moved = tokio::fs::rename(&undo.path, &staged).await;
            if moved.is_ok() {
                break;
            }
        }
        moved.map_err(internal)?;
        for leftover in &leftovers {
            let _ = tokio::fs::remove_file(leftover).await;
        }
        undo.keep();
        return Ok(blob_created(&repository, &digest.to_string()));
    }
    // Not while abandoned content is being withdrawn: a blob this push finds stored already
    // could otherwise be deleted before the repository holds it.
    let _turn = oci.app.ingests.acquire().await.map_err(internal)?;
    let blobs = oci.app.blobs.clone();
    let path = undo.path.clone();
    tokio::task::spawn_blocking(move || blobs.put_file(&digest, &path))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    // From here the file may have moved into the store: the session ends either way, so
    // that no session is left pointing at a file that is gone.
    let added = oci
        .app
        .store
        .oci_add_blob(&repository, &digest.to_string())
        .await
        .map_err(internal);
    for leftover in &leftovers {
        let _ = tokio::fs::remove_file(leftover).await;
    }
    undo.keep();
    added?;
    Ok(blob_created(&repository, &digest.to_string()))
}

/// Whether this caller may run a sweep that `last` (the Unix second of the last one) says
/// runs at most once an hour: when an hour has passed, exactly one caller wins the turn.
fn hourly_turn(last: &AtomicU64) -> bool {
    let now = unix_now();
    let previous = last.load(Ordering::Relaxed);
    now.saturating_sub(previous) >= 3600
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Removes staged blobs of package repositories that no manifest used within
/// [`SESSION_IDLE_LIMIT`], at most once an hour, in the background. `staged` is a staged
/// blob's path: `<staged root>/<ns>/<name>/<digest>`.
pub(super) fn sweep_staged_now_and_then(staged: PathBuf) {
    static LAST_SWEEP: AtomicU64 = AtomicU64::new(0);
    if !hourly_turn(&LAST_SWEEP) {
        return;
    }
    let Some(root) = staged.ancestors().nth(3).map(FsPath::to_owned) else {
        return;
    };
    tokio::task::spawn_blocking(move || {
        let idle = |path: &FsPath| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|idle| idle > SESSION_IDLE_LIMIT)
        };
        let entries = |dir: &FsPath| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default()
        };
        for namespace in entries(&root) {
            for repository in entries(&namespace) {
                for blob in entries(&repository) {
                    if idle(&blob) {
                        let _ = std::fs::remove_file(&blob);
                    }
                }
                // Removed only when empty.
                let _ = std::fs::remove_dir(&repository);
            }
            let _ = std::fs::remove_dir(&namespace);
        }
    });
}

/// Runs `work` as a task of its own, which goes on to its end if the client goes away (and
/// axum drops the handler): what it writes is either kept or undone, never left halfway.
pub(super) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, Response>> + Send + 'static,
) -> Result<T, Response> {
    tokio::spawn(work).await.map_err(internal)?
}

/// `POST /v2/{ns}/{name}/blobs/uploads/`: a session, a single-POST push (`?digest=`), or a
/// cross-repository mount (`?mount=&from=`).
pub(super) async fn start_upload(
    State(oci): State<Oci>,
    push: Push,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    if method != Method::POST {
        return Err(unsupported(method).await.into_response());
    }
    let (repository, settings, target) = writable(&oci, &push, &ns, &name, &headers).await?;
    let max = oci.app.settings.max_content_size;
    let scratch = matches!(target, Target::Scratch);
    // A package repository mounts nothing: its blobs wait staged for a manifest.
    if let Some(mount) = query.get("mount").filter(|_| scratch) {
        let digest = push_digest(mount).map_err(fail)?.to_string();
        // With `from`, the blob must be readable there; without it (an anonymous mount), in
        // any scratch repository, all of which the credential may read.
        let readable = match query.get("from") {
            Some(from) => oci.app.store.oci_has_blob(from, &digest).await,
            None => oci.app.store.oci_blob_anywhere(&digest).await,
        }
        .map_err(internal)?;
        let stored = readable && {
            let blobs = oci.app.blobs.clone();
            let parsed = push_digest(mount).map_err(fail)?;
            tokio::task::spawn_blocking(move || blobs.has(&parsed))
                .await
                .map_err(internal)?
                .map_err(internal)?
        };
        if stored {
            oci.app
                .store
                .oci_add_blob(&repository, &digest)
                .await
                .map_err(internal)?;
            return Ok(blob_created(&repository, &digest));
        }
        // Not mountable: an ordinary session, as the spec asks.
    } else if let Some(expected) = query.get("digest") {
        // A single POST: the body goes to a file of its own (not a session: it has no
        // `.repository`), then to the store.
        let digest = push_digest(expected).map_err(fail)?;
        tokio::fs::create_dir_all(&settings.uploads)
            .await
            .map_err(internal)?;
        let path = settings.uploads.join(new_session_id());
        tokio::fs::write(&path, b"").await.map_err(internal)?;
        let undo = Undo::remove(path.clone());
        let expected = expected.clone();
        let staged = (!scratch).then(|| settings.staged_blob(&repository, &digest));
        return detached(async move {
            receive(&path, 0, body, max).await?;
            store_received(oci, repository, expected, digest, undo, vec![path], staged).await
        })
        .await;
    }
    // A new session: a body here is not part of the protocol, and is not read.
    let id = Session::create(&settings.uploads, &repository)
        .await
        .map_err(internal)?;
    Ok(session_response(StatusCode::ACCEPTED, &repository, &id, 0))
}

/// A chunk's `Content-Range`, if it has one, must start where the upload ends: otherwise
/// the refusal, 416 with the range received so far.
pub(super) fn misplaced_chunk(
    headers: &HeaderMap,
    size: u64,
    repository: &str,
    id: &str,
) -> Option<Response> {
    let range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())?;
    let range = range
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let start = range
        .split_once('-')
        .and_then(|(start, _)| start.trim().parse::<u64>().ok());
    if start == Some(size) {
        return None;
    }
    let mut response = fail(OciError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "BLOB_UPLOAD_INVALID",
        "the chunk does not start where the upload ends",
    ));
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(&upload_location(repository, id)),
    );
    headers.insert(
        header::RANGE,
        header_value(&format!("0-{}", size.saturating_sub(1))),
    );
    Some(response)
}

pub(super) fn upload_unknown(id: &str) -> Response {
    fail(
        OciError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        )
        .with_detail(serde_json::json!({ "upload": id })),
    )
}

/// `PATCH`, `PUT`, `GET` and `DELETE` on `/v2/{ns}/{name}/blobs/uploads/{id}`, one at a
/// time per session.
pub(super) async fn upload(
    State(oci): State<Oci>,
    push: Push,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (repository, settings, target) = writable(&oci, &push, &ns, &name, &headers).await?;
    if !Session::well_formed(&id) {
        return Err(upload_unknown(&id));
    }
    let uploads = &settings.uploads;
    let lock = settings.locks.lock(&id).await;
    let session = Session::find(uploads, &repository, &id)
        .await
        .ok_or_else(|| upload_unknown(&id))?;
    let max = oci.app.settings.max_content_size;
    match method {
        Method::GET => Ok(session_response(
            StatusCode::NO_CONTENT,
            &repository,
            &id,
            session.size,
        )),
        Method::DELETE => {
            Session::remove(uploads, &id).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::PATCH => {
            if let Some(refusal) = misplaced_chunk(&headers, session.size, &repository, &id) {
                return Err(refusal);
            }
            // In a task of its own, so that a client going away mid-chunk still leaves
            // the session as it was.
            let path = session.path.clone();
            let undo = Undo::truncate(path.clone(), session.size, lock);
            let size = detached(async move {
                let size = receive(&path, session.size, body, max).await?;
                undo.keep();
                Ok(size)
            })
            .await?;
            Ok(session_response(
                StatusCode::ACCEPTED,
                &repository,
                &id,
                size,
            ))
        }
        Method::PUT => {
            let expected = query.get("digest").ok_or_else(|| {
                fail(digest_invalid("", "the digest query parameter is required"))
            })?;
            let digest = push_digest(expected).map_err(fail)?;
            // A closing PUT may carry the last chunk, which must continue the upload too.
            if let Some(refusal) = misplaced_chunk(&headers, session.size, &repository, &id) {
                return Err(refusal);
            }
            // The last chunk is undone if the digest does not match, so the PUT can be
            // retried with the same chunk.
            let path = session.path.clone();
            let undo = Undo::truncate(path.clone(), session.size, lock);
            let leftovers = vec![Session::repository_file(uploads, &id), path.clone()];
            let (oci, expected) = (oci.clone(), expected.clone());
            let staged = matches!(target, Target::Package { .. })
                .then(|| settings.staged_blob(&repository, &digest));
            detached(async move {
                receive(&path, session.size, body, max).await?;
                store_received(oci, repository, expected, digest, undo, leftovers, staged).await
            })
            .await
        }
        other => Err(unsupported(other).await.into_response()),
    }
}

/// The digest of a file, under the algorithm of `like`, read in pieces.
pub(super) fn digest_of_file(like: &BlobDigest, path: &FsPath) -> std::io::Result<BlobDigest> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut sha256 = Sha256::new();
    let mut sha512 = sha2::Sha512::new();
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        match like {
            BlobDigest::Sha256(_) => sha256.update(&buffer[..n]),
            BlobDigest::Sha512(_) => sha512.update(&buffer[..n]),
        }
    }
    Ok(match like {
        BlobDigest::Sha256(_) => BlobDigest::Sha256(sha256.finalize().into()),
        BlobDigest::Sha512(_) => BlobDigest::Sha512(sha512.finalize().into()),
    })
}

/// `DELETE /v2/{ns}/{name}/blobs/{digest}`: the repository no longer holds the blob (the
/// bytes stay in the content store, which other repositories and packages share).
pub(super) async fn delete_blob(
    State(oci): State<Oci>,
    push: Push,
    Path((ns, name, digest)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    let (repository, _, _) = writable(&oci, &push, &ns, &name, &headers).await?;
    parse_digest(&digest).map_err(fail)?;
    let deleted = oci
        .app
        .store
        .oci_remove_blob(&repository, &digest)
        .await
        .map_err(internal)?;
    if !deleted {
        return Err(fail(OciError::blob_unknown(&digest)));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
