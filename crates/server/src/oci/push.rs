//! The OCI push side, for scratch repositories: repositories `ns/name` whose `ns:name` is not
//! a warg package (warg releases are only made by signed records). Blobs (`sha256:` or
//! `sha512:`) go to the content store, repository membership, manifests and tags to SQL.
//! Upload sessions are files under `content/tmp/oci-uploads`, so they survive restarts.
//!
//! What this module must never do: read a request body before the credential is checked
//! (bodies are streamed to disk, never buffered whole, except manifests, at most 4 MiB);
//! let two requests write to one session at once (a lock per session is held from finding
//! the session to storing its blob); leave a failed request's bytes in a session; let a
//! manifest make a blob readable that no scratch repository holds (such as a fragment of an
//! unpublished warg record); hand out the credential itself as a token.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine as _;
use cairn_protocol::{NamespaceState, PackageName, Timestamp};
use cairn_store::{BlobDigest, OciManifestRow, Publisher};
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use super::{
    bytes_response, header_value, is_name_component, is_tag, parse_digest, sha256_text,
    unsupported, Oci, OciError,
};

/// What the push side needs from the operator: the credential and where sessions live.
#[derive(Clone)]
pub struct PushSettings {
    token: Option<String>,
    uploads: PathBuf,
    staged: PathBuf,
    pub(super) locks: SessionLocks,
}

impl PushSettings {
    /// Pushes need `token`; sessions go under `<data_dir>/content/tmp/oci-uploads`, where
    /// they survive restarts.
    pub fn new(token: Option<String>, data_dir: &FsPath) -> Self {
        PushSettings {
            token: token.filter(|t| !t.is_empty() && t != ANONYMOUS_TOKEN),
            uploads: data_dir.join("content").join("tmp").join("oci-uploads"),
            staged: data_dir.join("content").join("tmp").join("oci-staged"),
            locks: SessionLocks::default(),
        }
    }
}

impl PushSettings {
    /// Where a blob pushed to package repository `repository` waits until a manifest uses
    /// it: blobs of package repositories enter the content store only as part of a release
    /// (the layer, split) or of an accepted manifest (configs, referrers' blobs).
    pub(super) fn staged_blob(&self, repository: &str, digest: &BlobDigest) -> PathBuf {
        let digest = digest.to_string().replace(':', "-");
        self.staged.join(repository).join(digest)
    }
}

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
    locks: SessionLocks,
    id: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
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
const SESSION_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// An upload in progress, kept on disk as two files: `<id>` holds the bytes received so far
/// and `<id>.repository` the repository it belongs to.
struct Session {
    path: PathBuf,
    size: u64,
}

impl Session {
    fn repository_file(uploads: &FsPath, id: &str) -> PathBuf {
        uploads.join(format!("{id}.repository"))
    }

    /// Starts a session of `repository`. Now and then, sessions left idle for
    /// [`SESSION_IDLE_LIMIT`] are removed first.
    async fn create(uploads: &FsPath, repository: &str) -> std::io::Result<String> {
        tokio::fs::create_dir_all(uploads).await?;
        Session::sweep_now_and_then(uploads).await;
        let id = new_session_id();
        tokio::fs::write(uploads.join(&id), b"").await?;
        tokio::fs::write(Session::repository_file(uploads, &id), repository).await?;
        Ok(id)
    }

    /// Removes the files of sessions idle for [`SESSION_IDLE_LIMIT`], at most once an hour.
    async fn sweep_now_and_then(uploads: &FsPath) {
        static LAST_SWEEP: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = LAST_SWEEP.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 3600
            || LAST_SWEEP
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
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
    fn well_formed(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The session `id` of `repository`, if there is one. Its size is only stable under
    /// the session's lock.
    async fn find(uploads: &FsPath, repository: &str, id: &str) -> Option<Session> {
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
    async fn remove(uploads: &FsPath, id: &str) {
        let _ = tokio::fs::remove_file(Session::repository_file(uploads, id)).await;
        let _ = tokio::fs::remove_file(uploads.join(id)).await;
    }
}

/// Undoes what a request wrote to a file unless the request succeeds: cuts a session back
/// to its size before the request, or deletes a single POST's file. Holds the session's lock
/// (if any) until the file is as it was.
struct Undo {
    path: PathBuf,
    /// The length to cut back to; `None` deletes the file.
    keep: Option<u64>,
    armed: bool,
    _lock: Option<SessionGuard>,
}

impl Undo {
    fn truncate(path: PathBuf, size: u64, lock: SessionGuard) -> Undo {
        Undo {
            path,
            keep: Some(size),
            armed: true,
            _lock: Some(lock),
        }
    }

    fn remove(path: PathBuf) -> Undo {
        Undo {
            path,
            keep: None,
            armed: true,
            _lock: None,
        }
    }

    /// The request succeeded: its bytes stay.
    fn keep(mut self) {
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

pub(super) type Push = Option<Extension<PushSettings>>;
pub(super) type Answer = Result<Response, Response>;

fn fail(error: OciError) -> Response {
    error.into_response()
}

pub(super) fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Response {
    let error: Box<dyn std::error::Error + Send + Sync> = error.into();
    if crate::error::stems_from_full_disk(&*error) {
        tracing::warn!("an OCI push failed because the disk is full");
        return OciError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "UNKNOWN",
            "the registry's disk is full; nothing of this request was kept, try again later",
        )
        .into_response();
    }
    OciError::internal(error).into_response()
}

/// Base64 of Basic credentials, padded or not.
const BASIC_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::general_purpose::PAD
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Whether pushes are configured (and so the ping asks for credentials).
pub(super) fn requires_credentials(push: &Push) -> bool {
    push.as_ref().is_some_and(|Extension(p)| p.token.is_some())
}

/// The `WWW-Authenticate` value of the token flow, for `repository` if given.
pub(super) fn challenge(oci: &Oci, repository: Option<&str>) -> String {
    let realm = format!(
        "Bearer realm=\"{}/v2/token\",service=\"{TOKEN_SERVICE}\"",
        oci.app.settings.base_url.trim_end_matches('/')
    );
    match repository {
        Some(repository) => format!("{realm},scope=\"repository:{repository}:pull,push\""),
        None => realm,
    }
}

/// What an `Authorization` header presents: a bearer token or a Basic password.
enum Presented {
    Bearer(String),
    Password(Vec<u8>),
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented::Bearer(rest.trim().to_owned()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let pair = BASIC_BASE64.decode(rest.trim()).ok()?;
        let colon = pair.iter().position(|b| *b == b':')?;
        Some(Presented::Password(pair[colon + 1..].to_vec()))
    } else {
        None
    }
}

/// Whether `given` is the credential, compared without stopping at the first difference.
fn is_credential(credential: &str, given: &[u8]) -> bool {
    let expected = credential.as_bytes();
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether the request carries the credential itself, as a bearer token or Basic password.
fn carries_credential(push: &Push, headers: &HeaderMap) -> bool {
    let Some(credential) = push.as_ref().and_then(|Extension(p)| p.token.as_deref()) else {
        return false;
    };
    match presented(headers) {
        Some(Presented::Bearer(token)) => is_credential(credential, token.as_bytes()),
        Some(Presented::Password(password)) => is_credential(credential, &password),
        None => false,
    }
}

/// Whether the request may push: it carries the credential, or as a bearer token an
/// unexpired token the token endpoint derived from it.
pub(super) fn authenticated(push: &Push, headers: &HeaderMap) -> bool {
    if carries_credential(push, headers) {
        return true;
    }
    let Some(credential) = push.as_ref().and_then(|Extension(p)| p.token.as_deref()) else {
        return false;
    };
    match presented(headers) {
        Some(Presented::Bearer(token)) => {
            DerivedToken::verify(credential, &token, unix_now()).is_some()
        }
        _ => false,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A push token the token endpoint issues in exchange for the credential:
/// `cairn1.<expiry>.<mac>`, where `expiry` is in Unix seconds (decimal) and `mac` is
/// base64url (unpadded) HMAC-SHA256 keyed with the credential over
/// `cairn oci token v1<expiry>`. It is worth a push until `expiry`, and reveals nothing of
/// the credential; changing the credential revokes every token.
struct DerivedToken;

impl DerivedToken {
    const PREFIX: &'static str = "cairn1.";
    /// How long a token is worth pushes, in seconds.
    const LIFETIME: u64 = 3600;

    fn mac(credential: &str, expiry: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(credential.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"cairn oci token v1");
        mac.update(expiry.to_string().as_bytes());
        mac
    }

    fn issue(credential: &str, expiry: u64) -> String {
        let mac = DerivedToken::mac(credential, expiry)
            .finalize()
            .into_bytes();
        format!(
            "{}{expiry}.{}",
            DerivedToken::PREFIX,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The expiry of `token` if the credential made it and it has not expired at `now`.
    fn verify(credential: &str, token: &str, now: u64) -> Option<u64> {
        let (expiry_text, mac) = token.strip_prefix(DerivedToken::PREFIX)?.split_once('.')?;
        let expiry: u64 = expiry_text.parse().ok()?;
        // One spelling per expiry: no sign, no leading zeros.
        if expiry.to_string() != expiry_text || expiry <= now {
            return None;
        }
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(mac)
            .ok()?;
        // `verify_slice` compares in constant time.
        DerivedToken::mac(credential, expiry)
            .verify_slice(&mac)
            .ok()?;
        Some(expiry)
    }
}

/// Whether `ns:name` is a warg package (published or not yet checkpointed).
fn is_package(oci: &Oci, ns: &str, name: &str) -> bool {
    match format!("{ns}:{name}").parse::<PackageName>() {
        Ok(package) => oci
            .app
            .state
            .read()
            .expect("state lock poisoned")
            .package(&package.log_id())
            .is_some(),
        Err(_) => false,
    }
}

fn check_name(ns: &str, name: &str) -> Result<String, OciError> {
    let repository = format!("{ns}/{name}");
    if is_name_component(ns) && is_name_component(name) {
        Ok(repository)
    } else {
        Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
        .with_detail(serde_json::json!({ "name": repository })))
    }
}

/// Who a write comes from.
pub(super) enum Writer {
    /// The holder of `--oci-push-token`: scratch repositories only.
    Operator,
    /// A publisher account; `repositories` limits it when it came with a scoped token.
    Publisher {
        account: Publisher,
        repositories: Option<Vec<String>>,
    },
}

/// The account or operator credential a request presents, if any: the push credential
/// (or a token derived from it), a publisher's token (as a Bearer token or the Basic
/// password), or a scoped token from `/v2/token`.
pub(super) async fn writer(
    oci: &Oci,
    push: &Push,
    headers: &HeaderMap,
) -> Result<Option<Writer>, Response> {
    if authenticated(push, headers) {
        return Ok(Some(Writer::Operator));
    }
    let token = match presented(headers) {
        Some(Presented::Bearer(token)) => token,
        Some(Presented::Password(password)) => match String::from_utf8(password) {
            Ok(password) => password,
            Err(_) => return Ok(None),
        },
        None => return Ok(None),
    };
    let accounts = &oci.app.accounts;
    if let Some((account, repositories)) = accounts
        .scoped(&token, unix_now())
        .await
        .map_err(internal)?
    {
        return Ok(Some(Writer::Publisher {
            account,
            repositories: Some(repositories),
        }));
    }
    Ok(accounts
        .by_token(&token)
        .await
        .map_err(internal)?
        .map(|account| Writer::Publisher {
            account,
            repositories: None,
        }))
}

/// Where a write goes.
pub(super) enum Target {
    /// A scratch repository.
    Scratch,
    /// A package repository, written by a publisher account that may publish the package.
    Package {
        publisher: Publisher,
        package: PackageName,
    },
}

fn denied(message: String, repository: &str) -> Response {
    fail(
        OciError::new(StatusCode::FORBIDDEN, "DENIED", message)
            .with_detail(serde_json::json!({ "name": repository })),
    )
}

/// The gate of every write: a valid name, and a writer who may write there. A package
/// repository (a warg package, or any repository of a namespace this registry hosts when a
/// publisher account writes) takes writes from publisher accounts whose scope covers the
/// package; a scratch repository from the push credential. Without credentials: 401
/// `UNAUTHORIZED` with the token challenge.
async fn writable(
    oci: &Oci,
    push: &Push,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<(String, PushSettings, Target), Response> {
    let repository = check_name(ns, name).map_err(fail)?;
    let settings = match push {
        Some(Extension(settings)) => settings.clone(),
        None => return Err(fail(OciError::internal("pushes are not set up"))),
    };
    match writer(oci, push, headers).await? {
        None => {
            let mut response = fail(OciError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required: push with a publisher account's token (as the \
                 password of any user name)",
            ));
            // The token flow of the distribution ecosystem: clients fetch a token from the
            // realm with the credential (as a Basic password) and retry with it. Clients may
            // also send the credential directly, as a Bearer token or a Basic password.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header_value(&challenge(oci, Some(&repository))),
            );
            Err(response)
        }
        Some(Writer::Operator) => {
            if is_package(oci, ns, name) {
                return Err(denied(
                    format!(
                        "`{ns}:{name}` is a warg package: its releases are signed records, \
                         published by its keys or by a publisher account (the push \
                         credential writes scratch repositories only)"
                    ),
                    &repository,
                ));
            }
            Ok((repository, settings, Target::Scratch))
        }
        Some(Writer::Publisher {
            account,
            repositories,
        }) => {
            let package: Option<PackageName> = format!("{ns}:{name}").parse().ok();
            let Some(package) = package else {
                return Err(denied(
                    format!(
                        "`{ns}/{name}` cannot name a warg package (names are lowercase kebab-case)"
                    ),
                    &repository,
                ));
            };
            let in_token = repositories
                .as_ref()
                .is_none_or(|granted| granted.contains(&repository));
            if !account.covers(ns, name) || !in_token {
                let reason = if in_token {
                    format!(
                        "publisher `{}` may not publish `{package}`; it may publish to {}",
                        account.name,
                        crate::publishers::describe_scopes(&account)
                    )
                } else {
                    format!(
                        "the token was issued for other repositories than `{repository}`; ask \
                         /v2/token for scope repository:{repository}:push,pull"
                    )
                };
                return Err(denied(reason, &repository));
            }
            let hosted = matches!(
                oci.app
                    .state
                    .read()
                    .expect("state lock poisoned")
                    .operator()
                    .namespace(ns),
                Some(NamespaceState::Defined)
            );
            if !hosted {
                return Err(denied(
                    format!("this registry does not host namespace `{ns}`, so it has no package `{package}`"),
                    &repository,
                ));
            }
            Ok((
                repository,
                settings,
                Target::Package {
                    publisher: account,
                    package,
                },
            ))
        }
    }
}

/// The `service` of the token challenge.
const TOKEN_SERVICE: &str = "cairn";

/// The token given to anonymous clients: it grants pulls, which need no token anyway.
const ANONYMOUS_TOKEN: &str = "anonymous-pull";

/// Whether the request carries the anonymous (pull-only) token.
pub(super) fn anonymous_token(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token.trim() == ANONYMOUS_TOKEN
        })
}

/// The repositories a token request asks to push to: each `scope` parameter (several may
/// be given, and one may hold several scopes separated by spaces) of the form
/// `repository:NAME:ACTIONS` whose actions include `push`.
fn push_scopes(query: Option<&str>) -> Vec<String> {
    let mut repositories = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "scope" {
            continue;
        }
        for scope in value.split(' ') {
            let mut parts = scope.splitn(3, ':');
            let (Some("repository"), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if actions.split(',').any(|a| a == "push" || a == "*") {
                repositories.push(name.to_owned());
            }
        }
    }
    repositories
}

/// `GET /v2/token`: the token endpoint. A request carrying the push credential (as the Basic
/// password, any user name, or as a Bearer token) gets a [`DerivedToken`] worth pushes to
/// scratch repositories for an hour; one carrying a publisher account's token gets a scoped
/// token worth pushes, for an hour, to the repositories it asked for (`scope`) that the
/// account may publish to; a request without credentials gets a pull-only token; anything
/// else gets 401 (a derived or scoped token cannot renew itself).
pub(super) async fn token(
    State(oci): State<Oci>,
    push: Push,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let anonymous = !headers.contains_key(header::AUTHORIZATION);
    let now = unix_now();
    let mut expires_in = DerivedToken::LIFETIME;
    let granted = if anonymous {
        Some(ANONYMOUS_TOKEN.to_owned())
    } else if let Some(credential) = push
        .as_ref()
        .and_then(|Extension(p)| p.token.as_deref())
        .filter(|_| carries_credential(&push, &headers))
    {
        Some(DerivedToken::issue(
            credential,
            now + DerivedToken::LIFETIME,
        ))
    } else {
        let token = match presented(&headers) {
            Some(Presented::Bearer(token)) => Some(token),
            Some(Presented::Password(password)) => String::from_utf8(password).ok(),
            None => None,
        };
        let account = match token {
            Some(token) => match oci.app.accounts.by_token(&token).await {
                Ok(account) => account,
                Err(error) => return internal(error),
            },
            None => None,
        };
        account.map(|account| {
            let repositories: Vec<String> = push_scopes(query.as_deref())
                .into_iter()
                .filter(|repository| {
                    repository
                        .split_once('/')
                        .is_some_and(|(ns, name)| account.covers(ns, name))
                })
                .collect();
            expires_in = crate::publishers::SCOPED_LIFETIME;
            oci.app
                .accounts
                .issue(&account, repositories, now + expires_in)
        })
    };
    let Some(token) = granted else {
        let mut response = fail(OciError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a publisher account's token (or the push credential) is required: send it as \
             the Basic password",
        ));
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header_value(&format!("Basic realm=\"{TOKEN_SERVICE}\"")),
        );
        return response;
    };
    let issued_at = Timestamp {
        seconds: i64::try_from(now).unwrap_or(i64::MAX),
        nanos: 0,
    }
    .to_rfc3339();
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": issued_at,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn digest_invalid(text: &str, message: &str) -> OciError {
    OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
        .with_detail(serde_json::json!({ "digest": text }))
}

/// A pushed digest: `sha256:` or `sha512:`.
pub(super) fn push_digest(text: &str) -> Result<BlobDigest, OciError> {
    Ok(parse_digest(text)?.blob())
}

fn new_session_id() -> String {
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

fn upload_location(repository: &str, id: &str) -> String {
    format!("/v2/{repository}/blobs/uploads/{id}")
}

/// 202 for a session at `size` bytes.
fn session_response(status: StatusCode, repository: &str, id: &str, size: u64) -> Response {
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
fn blob_created(repository: &str, digest: &str) -> Response {
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

fn too_large(max: u64) -> Response {
    fail(
        OciError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            "the blob is larger than this registry accepts",
        )
        .with_detail(serde_json::json!({ "max": max })),
    )
}

fn body_unreadable(error: impl std::fmt::Display) -> Response {
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
const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How much of a too-large body is read and dropped before the 413 goes out.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;
/// How long that draining waits for each piece.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads (and drops) a little more of a body that is refused for its size, so that a client
/// still sending gets to read the answer instead of a closed connection.
async fn drain(stream: &mut axum::body::BodyDataStream) {
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
async fn next_chunk(
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

async fn receive(path: &FsPath, size: u64, body: Body, max: u64) -> Result<u64, Response> {
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
async fn store_received(
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

/// Removes staged blobs of package repositories that no manifest used within
/// [`SESSION_IDLE_LIMIT`], at most once an hour, in the background. `staged` is a staged
/// blob's path: `<staged root>/<ns>/<name>/<digest>`.
fn sweep_staged_now_and_then(staged: PathBuf) {
    static LAST_SWEEP: AtomicU64 = AtomicU64::new(0);
    let now = unix_now();
    let last = LAST_SWEEP.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 3600
        || LAST_SWEEP
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
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
async fn detached<T: Send + 'static>(
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
fn misplaced_chunk(headers: &HeaderMap, size: u64, repository: &str, id: &str) -> Option<Response> {
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

fn upload_unknown(id: &str) -> Response {
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
fn digest_of_file(like: &BlobDigest, path: &FsPath) -> std::io::Result<BlobDigest> {
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

/// The largest manifest a push may carry (the size the distribution spec says registries
/// should accept at least).
pub(super) const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

fn manifest_invalid(message: &str) -> Response {
    fail(OciError::new(
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        message,
    ))
}

pub(super) fn blob_missing(digest: &str) -> Response {
    fail(
        OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            "manifest references a manifest or blob unknown to registry",
        )
        .with_detail(serde_json::json!({ "digest": digest })),
    )
}

/// The body of a manifest push, read only up to [`MAX_MANIFEST_SIZE`] bytes.
async fn read_manifest(body: Body) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    loop {
        let next = next_chunk(&mut stream, "MANIFEST_INVALID", "the manifest upload").await?;
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(|_| manifest_invalid("the manifest could not be read"))?;
        if bytes.len() + chunk.len() > MAX_MANIFEST_SIZE {
            drain(&mut stream).await;
            return Err(fail(
                OciError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "MANIFEST_INVALID",
                    "the manifest is larger than this registry accepts",
                )
                .with_detail(serde_json::json!({ "max": MAX_MANIFEST_SIZE })),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// `PUT /v2/{ns}/{name}/manifests/{reference}`.
pub(super) async fn put_manifest(
    State(oci): State<Oci>,
    push: Push,
    Path((ns, name, reference)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (repository, settings, target) = writable(&oci, &push, &ns, &name, &headers).await?;
    let body = read_manifest(body).await?;
    let mut digest = sha256_text(&body);
    let tag_invalid = |tag: &str| {
        fail(
            OciError::new(
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                "manifest tag did not match URI",
            )
            .with_detail(serde_json::json!({ "tag": tag })),
        )
    };
    // `?tag=a&tag=b` on a push by digest (distribution-spec, after 1.1.1) adds tags.
    let mut tags: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if key == "tag" {
            if !is_tag(&value) {
                return Err(tag_invalid(&value));
            }
            tags.push(value.into_owned());
        }
    }
    let tag = if reference.contains(':') {
        let named = push_digest(&reference).map_err(fail)?;
        digest = named.same_algorithm_of(&body).to_string();
        if reference != digest {
            return Err(fail(digest_invalid(
                &reference,
                "provided digest did not match uploaded content",
            )));
        }
        None
    } else if is_tag(&reference) {
        Some(reference.as_str())
    } else {
        return Err(tag_invalid(&reference));
    };
    tags.extend(tag.map(str::to_owned));
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = super::manifest::parse(&body, content_type)
        .map_err(|error| manifest_invalid(&error.to_string()))?;
    if let Target::Package { publisher, package } = target {
        let pushed = super::publish::Pushed {
            repository,
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            by_digest: tag.is_none(),
            digest,
            body,
            manifest: parsed,
        };
        return super::publish::put_manifest(&oci, &settings, &publisher, &package, pushed).await;
    }
    let super::manifest::PushedManifest {
        media_type,
        blobs,
        manifests,
        subject,
        artifact_type,
        ..
    } = parsed;
    // Blobs held elsewhere join this repository only once the whole manifest is accepted.
    let mut joining = Vec::new();
    for blob in &blobs {
        let Ok(parsed) = parse_digest(blob).map(|d| d.blob()) else {
            return Err(blob_missing(blob));
        };
        let in_repository = oci
            .app
            .store
            .oci_has_blob(&repository, blob)
            .await
            .map_err(internal)?;
        if !in_repository {
            // Held by another scratch repository, which the credential may read anyway (as
            // for an anonymous mount); a blob only the split store has, such as a fragment
            // of a record not published, stays unreadable here.
            let held_elsewhere = oci
                .app
                .store
                .oci_blob_anywhere(blob)
                .await
                .map_err(internal)?;
            let stored = held_elsewhere && {
                let blobs = oci.app.blobs.clone();
                tokio::task::spawn_blocking(move || blobs.has(&parsed))
                    .await
                    .map_err(internal)?
                    .map_err(internal)?
            };
            if !stored {
                return Err(blob_missing(blob));
            }
            joining.push(blob);
        }
    }
    for child in &manifests {
        let found = oci
            .app
            .store
            .oci_manifest(&repository, child)
            .await
            .map_err(internal)?;
        if found.is_none() {
            return Err(blob_missing(child));
        }
    }
    for blob in joining {
        oci.app
            .store
            .oci_add_blob(&repository, blob)
            .await
            .map_err(internal)?;
    }
    let row = OciManifestRow {
        repository: repository.clone(),
        digest: digest.clone(),
        media_type,
        bytes: body,
        subject: subject.clone(),
        artifact_type,
    };
    oci.app
        .store
        .oci_put_manifest(&row, &tags)
        .await
        .map_err(internal)?;
    let mut response = StatusCode::CREATED.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::LOCATION,
        header_value(&format!("/v2/{repository}/manifests/{digest}")),
    );
    for tag in &tags {
        response_headers.append("oci-tag", header_value(tag));
    }
    response_headers.insert("docker-content-digest", header_value(&digest));
    response_headers.insert(header::CONTENT_LENGTH, header_value("0"));
    if let Some(subject) = subject.filter(|s| parse_digest(s).is_ok()) {
        response_headers.insert("oci-subject", header_value(&subject));
    }
    Ok(response)
}

/// `DELETE /v2/{ns}/{name}/manifests/{reference}`: by digest, the manifest and its tags go;
/// by tag, only the tag.
pub(super) async fn delete_manifest(
    State(oci): State<Oci>,
    push: Push,
    Path((ns, name, reference)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    let (repository, _, target) = writable(&oci, &push, &ns, &name, &headers).await?;
    if let Target::Package { publisher, package } = target {
        return super::publish::delete_manifest(
            &oci,
            &publisher,
            &package,
            &repository,
            &reference,
        )
        .await;
    }
    let deleted = if reference.contains(':') {
        parse_digest(&reference).map_err(fail)?;
        oci.app
            .store
            .oci_delete_manifest(&repository, &reference)
            .await
            .map_err(internal)?
    } else if is_tag(&reference) {
        oci.app
            .store
            .oci_delete_tag(&repository, &reference)
            .await
            .map_err(internal)?
    } else {
        return Err(fail(
            OciError::new(
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                "not a tag or a digest",
            )
            .with_detail(serde_json::json!({ "reference": reference })),
        ));
    };
    if !deleted {
        return Err(fail(OciError::manifest_unknown(&reference)));
    }
    Ok(StatusCode::ACCEPTED.into_response())
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

// ---------------------------------------------------------------------------------------
// The pull side of scratch repositories.

async fn scratch_repository(oci: &Oci, ns: &str, name: &str) -> Result<String, OciError> {
    let repository = check_name(ns, name)?;
    if oci
        .app
        .store
        .oci_repository_exists(&repository)
        .await
        .map_err(OciError::internal)?
    {
        Ok(repository)
    } else {
        Err(OciError::name_unknown(&repository))
    }
}

/// A manifest of a scratch repository by tag or digest.
pub(super) async fn manifest(
    oci: &Oci,
    ns: &str,
    name: &str,
    reference: &str,
    method: &Method,
) -> Result<Response, OciError> {
    if reference.contains(':') {
        parse_digest(reference)?;
    }
    let repository = scratch_repository(oci, ns, name).await?;
    let digest = if reference.contains(':') {
        reference.to_owned()
    } else {
        oci.app
            .store
            .oci_tag(&repository, reference)
            .await
            .map_err(OciError::internal)?
            .ok_or_else(|| OciError::manifest_unknown(reference))?
    };
    let row = oci
        .app
        .store
        .oci_manifest(&repository, &digest)
        .await
        .map_err(OciError::internal)?
        .ok_or_else(|| OciError::manifest_unknown(reference))?;
    Ok(bytes_response(
        method,
        &row.media_type,
        &row.digest,
        Bytes::from(row.bytes),
    ))
}

/// A blob of a scratch repository.
pub(super) async fn blob(
    oci: &Oci,
    ns: &str,
    name: &str,
    digest_text: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, OciError> {
    parse_digest(digest_text)?;
    let repository = scratch_repository(oci, ns, name).await?;
    held_blob(oci, &repository, digest_text, method, headers).await
}

/// A blob `repository` holds (in `oci_blobs`), from the content store.
pub(super) async fn held_blob(
    oci: &Oci,
    repository: &str,
    digest_text: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, OciError> {
    let digest = parse_digest(digest_text)?.blob();
    let held = oci
        .app
        .store
        .oci_has_blob(repository, &digest.to_string())
        .await
        .map_err(OciError::internal)?;
    if !held {
        return Err(OciError::blob_unknown(digest_text));
    }
    let blobs = oci.app.blobs.clone();
    let size = tokio::task::spawn_blocking(move || blobs.size(&digest))
        .await
        .map_err(OciError::internal)?
        .map_err(OciError::internal)?
        .ok_or_else(|| OciError::blob_unknown(digest_text))?;
    Ok(super::stored_blob_response(
        oci, method, headers, digest, size,
    ))
}

pub(super) async fn tags(oci: &Oci, ns: &str, name: &str) -> Result<Vec<String>, OciError> {
    let repository = scratch_repository(oci, ns, name).await?;
    oci.app
        .store
        .oci_tags(&repository)
        .await
        .map_err(OciError::internal)
}

/// Every scratch repository.
pub(super) async fn repositories(oci: &Oci) -> Result<Vec<String>, OciError> {
    oci.app
        .store
        .oci_repositories()
        .await
        .map_err(OciError::internal)
}

/// The referrers of `subject` in a scratch repository, as index descriptors.
pub(super) async fn referrers(
    oci: &Oci,
    ns: &str,
    name: &str,
    subject: &str,
    filter: Option<&str>,
) -> Result<Vec<serde_json::Value>, OciError> {
    // A repository that does not exist (yet) has no referrers: an empty list, as the
    // distribution spec asks, not NAME_UNKNOWN.
    let repository = check_name(ns, name)?;
    let rows = oci
        .app
        .store
        .oci_referrers(&repository, subject)
        .await
        .map_err(OciError::internal)?;
    Ok(rows
        .into_iter()
        .filter(|row| filter.is_none_or(|wanted| row.artifact_type.as_deref() == Some(wanted)))
        .map(|row| {
            let annotations = serde_json::from_slice::<serde_json::Value>(&row.bytes)
                .ok()
                .and_then(|json| json.get("annotations").cloned());
            let mut descriptor = serde_json::json!({
                "mediaType": row.media_type,
                "digest": row.digest,
                "size": row.bytes.len(),
            });
            if let Some(artifact_type) = row.artifact_type {
                descriptor["artifactType"] = serde_json::Value::String(artifact_type);
            }
            if let Some(annotations) = annotations {
                descriptor["annotations"] = annotations;
            }
            descriptor
        })
        .collect())
}
