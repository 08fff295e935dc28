//! The OCI distribution API v1.1, pull side: every released version of package `ns:name` is
//! served as `<ns>/<name>:<version>` in the CNCF Wasm artifact layout, so `skopeo`, `oras`,
//! `wkg` and other OCI clients can pull from cairn.
//!
//! Nothing here is stored: the image manifest and the config blob of a release are derived
//! from the signed release record and the released file, and are deterministic (the same
//! release always gives byte-identical JSON and the same digest; the `created` time is the
//! record's, never the wall clock). The one layer is the whole `.wasm` file, joined from the
//! split store as it streams. Derived artifacts are cached in memory; a release never changes,
//! so the cache never goes stale.
//!
//! Only releases in the latest checkpoint are served. A yanked release loses its tag (it is
//! no longer listed and its tag no longer resolves), but its manifest, config and layer stay
//! readable by digest, so clients that pinned a digest keep working (see `docs/api.md`).
//!
//! Each release's split manifest (`docs/split-format.md`) is attached to the release's image
//! manifest as an OCI referrer: an artifact manifest with `artifactType`
//! `application/vnd.cairn.split.manifest.v1+json`, the empty config, one layer holding the
//! split manifest JSON, and `subject` naming the release's manifest. It is derived, cached and
//! deterministic like the release's own manifest, and listed by the referrers API.
//!
//! Package repositories never accept writes: a push or delete is 405 `UNSUPPORTED` without a
//! credential and 403 `DENIED` with one. Pushes go to scratch repositories (`push`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use cairn_protocol::{Digest, LogId, PackageEntry, PackageName, RecordId, Timestamp};
use cairn_split::Manifest;
use cairn_store::{BlobDigest, RecordStore};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::api::AppState;

pub mod manifest;
mod publish;
mod push;

use crate::content::{self, ByteRange};
use crate::state::ValidRecord;
pub use push::PushSettings;

pub use manifest::{IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE};
/// The media type of the Wasm config blob (CNCF Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the one layer: the whole `.wasm` file.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The artifact type of a release's split-manifest referrer, and its layer's media type.
pub const SPLIT_ARTIFACT_TYPE: &str = cairn_split::manifest::MANIFEST_MEDIA_TYPE;
/// The media type of the empty config of an artifact manifest (image-spec 1.1).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty JSON object, the empty config's bytes.
const EMPTY_JSON: &[u8] = b"{}";
/// The digest of [`EMPTY_JSON`].
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// The most entries one page of `tags/list` or `_catalog` holds.
const MAX_PAGE: usize = 1000;

/// The OCI routes' state: the registry's, plus what is derived from it.
#[derive(Clone)]
struct Oci {
    app: AppState,
    /// Derived artifacts.
    artifacts: Arc<Mutex<ArtifactCache>>,
    /// Repository names, found by scanning the log's leaves.
    catalog: Arc<Mutex<Catalog>>,
}

/// Derived artifacts, by package log and version.
type ArtifactCache = HashMap<(LogId, String), Arc<Artifact>>;

/// Every package repository seen in the first `scanned` leaves of the log.
#[derive(Default)]
struct Catalog {
    scanned: u64,
    seen: BTreeSet<LogId>,
    repositories: BTreeSet<String>,
}

/// The routes under `/v2/`, to be merged into the API router.
pub fn router(app: AppState) -> Router<AppState> {
    let oci = Oci {
        app,
        artifacts: Arc::default(),
        catalog: Arc::default(),
    };
    Router::new()
        // A method a route does not take is 405 `UNSUPPORTED` with a JSON body, like every
        // other error here.
        .route("/v2", get(ping).fallback(method_not_allowed))
        .route("/v2/", get(ping).fallback(method_not_allowed))
        .route("/v2/_catalog", get(catalog).fallback(method_not_allowed))
        .route("/v2/token", get(push::token).fallback(method_not_allowed))
        .route(
            "/v2/{ns}/{name}/manifests/{reference}",
            get(manifest)
                .head(manifest)
                .put(push::put_manifest)
                .delete(push::delete_manifest)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/{ns}/{name}/blobs/{digest}",
            get(blob)
                .head(blob)
                .delete(push::delete_blob)
                .fallback(method_not_allowed),
        )
        .route("/v2/{ns}/{name}/blobs/uploads/", any(push::start_upload))
        .route("/v2/{ns}/{name}/blobs/uploads/{upload}", any(push::upload))
        .route(
            "/v2/{ns}/{name}/tags/list",
            get(tags_list).fallback(method_not_allowed),
        )
        .route(
            "/v2/{ns}/{name}/referrers/{digest}",
            get(referrers).fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(oci)
}

// ---------------------------------------------------------------------------------------
// Errors.

/// An error as the distribution spec writes it: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: serde_json::Value,
}

impl OciError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    fn name_unknown(repository: &str) -> Self {
        OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .with_detail(serde_json::json!({ "name": repository }))
    }

    fn manifest_unknown(reference: &str) -> Self {
        OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown to registry",
        )
        .with_detail(serde_json::json!({ "reference": reference }))
    }

    fn blob_unknown(digest: &str) -> Self {
        OciError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        )
        .with_detail(serde_json::json!({ "digest": digest }))
    }

    /// A server fault; the details go to the log, not the client.
    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error serving OCI");
        OciError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal server error",
        )
    }
}

#[derive(Serialize)]
struct ErrorsBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    code: &'a str,
    message: &'a str,
    detail: &'a serde_json::Value,
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = ErrorsBody {
            errors: [ErrorEntry {
                code: self.code,
                message: &self.message,
                detail: &self.detail,
            }],
        };
        let json = serde_json::to_vec(&body).expect("error bodies serialise");
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response()
    }
}

/// An OCI error answer for an error that came without a body (or with a plain-text one)
/// from a layer below the handlers, such as a rejected path or body.
pub(crate) fn generic_error(status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "DENIED",
        StatusCode::NOT_FOUND => "NAME_UNKNOWN",
        StatusCode::METHOD_NOT_ALLOWED => "UNSUPPORTED",
        StatusCode::PAYLOAD_TOO_LARGE => "SIZE_INVALID",
        StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
        _ => "UNKNOWN",
    };
    OciError::new(status, code, message).into_response()
}

/// Any path no route matches (the fallback of the whole server). Under `/v2/` it is an OCI
/// error (repository names here have two components, `<ns>/<name>`); elsewhere a plain 404.
async fn not_found(uri: axum::http::Uri) -> Response {
    if !uri.path().starts_with("/v2/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    OciError::new(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "no such repository or endpoint: repositories of this registry are named <namespace>/<name>",
    )
    .with_detail(serde_json::json!({ "path": uri.path() }))
    .into_response()
}

/// A method the path does not take.
async fn method_not_allowed(method: Method) -> OciError {
    OciError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the operation is unsupported on this path",
    )
    .with_detail(serde_json::json!({ "method": method.as_str() }))
}

async fn unsupported(method: Method) -> OciError {
    OciError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "this registry is read-only over OCI: publish with the warg API",
    )
    .with_detail(serde_json::json!({ "method": method.as_str() }))
}

// ---------------------------------------------------------------------------------------
// Names, tags and digests.

/// Whether `text` is one path component of an OCI repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_name_component(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut run = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            run += 1;
            i += 1;
            continue;
        }
        if run == 0 {
            return false;
        }
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > start);
        run = 0;
    }
    run > 0
}

/// Whether `text` is an OCI tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_tag(text: &str) -> bool {
    let bytes = text.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(&bytes[0])
        && bytes[1..]
            .iter()
            .all(|b| word(b) || *b == b'.' || *b == b'-')
}

/// A digest as the distribution spec names content: `algorithm:encoded`.
enum OciDigest {
    /// A SHA-256, the algorithm of all warg content.
    Sha256(Digest),
    /// A SHA-512: only blobs and manifests pushed to scratch repositories have one.
    Sha512(BlobDigest),
}

impl OciDigest {
    /// The content store's name for it.
    fn blob(&self) -> BlobDigest {
        match self {
            OciDigest::Sha256(digest) => BlobDigest::Sha256(*digest.as_bytes()),
            OciDigest::Sha512(digest) => *digest,
        }
    }
}

/// Parses a digest; a malformed one is 400 `DIGEST_INVALID`, never a 500.
fn parse_digest(text: &str) -> Result<OciDigest, OciError> {
    match text.parse::<BlobDigest>() {
        Ok(BlobDigest::Sha256(bytes)) => Ok(OciDigest::Sha256(Digest::from_bytes(bytes))),
        Ok(digest) => Ok(OciDigest::Sha512(digest)),
        Err(_) => Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        )
        .with_detail(serde_json::json!({ "digest": text }))),
    }
}

fn sha256_text(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The package a repository `<ns>/<name>` names, if its log is published.
fn package_of(oci: &Oci, ns: &str, name: &str) -> Result<PackageName, OciError> {
    let repository = format!("{ns}/{name}");
    if !is_name_component(ns) || !is_name_component(name) {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
        .with_detail(serde_json::json!({ "name": repository })));
    }
    let package: PackageName = format!("{ns}:{name}")
        .parse()
        .map_err(|_| OciError::name_unknown(&repository))?;
    let state = oci.app.state.read().expect("state lock poisoned");
    let length = served_length(&state);
    let published = state
        .package(&package.log_id())
        .and_then(|log| log.head())
        .is_some_and(|head| {
            state
                .index_of(&head.record_id)
                .is_some_and(|index| index < length)
        });
    if !published {
        // The head may be newer than the checkpoint; the log is published if any record is.
        let any = state.package(&package.log_id()).is_some()
            && (0..length).any(|index| {
                state
                    .leaf(index)
                    .is_some_and(|(log_id, _)| *log_id == package.log_id())
            });
        if !any {
            return Err(OciError::name_unknown(&repository));
        }
    }
    Ok(package)
}

fn served_length(state: &crate::state::RegistryState) -> u64 {
    state
        .latest_checkpoint()
        .map(|c| c.contents.log_length)
        .unwrap_or(0)
}

/// A release as OCI sees it.
#[derive(Debug, Clone)]
struct ReleaseView {
    version: String,
    record_id: RecordId,
    timestamp: Timestamp,
    /// The released file; `None` once yanked (the state forgets it, the record does not).
    content: Option<Digest>,
}

impl ReleaseView {
    /// Whether the release has a tag: not yanked, and a version OCI can spell (a tag cannot
    /// hold the `+` of semver build metadata).
    fn tagged(&self) -> bool {
        self.content.is_some() && is_tag(&self.version)
    }
}

/// Every release of `package` in the latest checkpoint, yanked ones included.
fn releases(oci: &Oci, package: &PackageName) -> Vec<ReleaseView> {
    let state = oci.app.state.read().expect("state lock poisoned");
    let length = served_length(&state);
    let Some(log) = state.package(&package.log_id()) else {
        return Vec::new();
    };
    log.releases()
        .values()
        .filter(|release| {
            state
                .index_of(&release.record_id)
                .is_some_and(|index| index < length)
        })
        .map(|release| ReleaseView {
            version: release.version.to_string(),
            record_id: release.record_id,
            timestamp: release.timestamp,
            content: match &release.state {
                cairn_protocol::ReleaseState::Released { content } => Some(*content),
                cairn_protocol::ReleaseState::Yanked { .. } => None,
            },
        })
        .collect()
}

/// The released file of `release`, read from its signed record when it has been yanked.
async fn release_content(oci: &Oci, release: &ReleaseView) -> Result<Digest, OciError> {
    if let Some(content) = release.content {
        return Ok(content);
    }
    let row = oci
        .app
        .store
        .record(&release.record_id)
        .await
        .map_err(OciError::internal)?
        .ok_or_else(|| OciError::internal(format!("record {} is gone", release.record_id)))?;
    let ValidRecord::Package(envelope) = ValidRecord::decode(&row).map_err(OciError::internal)?
    else {
        return Err(OciError::internal("a release record in the operator log"));
    };
    envelope
        .record()
        .entries
        .iter()
        .find_map(|entry| match entry {
            PackageEntry::Release { version, content }
                if version.to_string() == release.version =>
            {
                Some(*content)
            }
            _ => None,
        })
        .ok_or_else(|| {
            OciError::internal(format!(
                "record {} releases no {}",
                release.record_id, release.version
            ))
        })
}

// ---------------------------------------------------------------------------------------
// The artifact.

/// The OCI form of one release: image manifest, config, and the split-manifest referrer.
#[derive(Debug)]
struct Artifact {
    manifest: Bytes,
    manifest_digest: String,
    /// The manifest's media type.
    media_type: String,
    config: Bytes,
    config_digest: String,
    referrer: Referrer,
}

/// The split-manifest referrer of a release.
#[derive(Debug)]
struct Referrer {
    /// The artifact manifest, whose `subject` is the release's manifest.
    manifest: Bytes,
    manifest_digest: String,
    /// The artifact manifest's annotations, repeated in its referrers-API descriptor.
    annotations: BTreeMap<&'static str, String>,
    /// The one layer: the split manifest JSON, as `GET /v1/cairn/content/{digest}/manifest`
    /// serves it.
    split: Bytes,
    split_digest: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    config: Descriptor<'a>,
    layers: [Descriptor<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor<'a>>,
    annotations: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a str, String>>,
}

/// An image index: what the referrers API answers.
/// `application/vnd.wasm.config.v0+json`, fields in the order `oci-wasm` writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    created: String,
    architecture: &'a str,
    os: &'a str,
    layer_digests: [String; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<ComponentSection>,
}

#[derive(Serialize)]
struct ComponentSection {
    exports: Vec<String>,
    imports: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// The standard world a component targets, as far as its binary tells. A component does not
/// carry its world's name, but the WASI worlds that runtimes dispatch on are known by their
/// export: `wasi:http/incoming-handler` makes a `wasi:http/proxy`, `wasi:cli/run` a
/// `wasi:cli/command`, at the export's version.
fn target_world(exports: &[String]) -> Option<String> {
    const WORLDS: [(&str, &str); 2] = [
        ("wasi:http/incoming-handler", "wasi:http/proxy"),
        ("wasi:cli/run", "wasi:cli/command"),
    ];
    exports.iter().find_map(|export| {
        let (interface, version) = match export.split_once('@') {
            Some((interface, version)) => (interface, Some(version)),
            None => (export.as_str(), None),
        };
        let (_, world) = WORLDS.iter().find(|(known, _)| *known == interface)?;
        Some(match version {
            Some(version) => format!("{world}@{version}"),
            None => (*world).to_owned(),
        })
    })
}

/// What the config says about a binary.
#[derive(Debug, PartialEq, Eq)]
struct WasmShape {
    component: bool,
    /// Top-level import names of a component, in binary order.
    imports: Vec<String>,
    /// Top-level export names of a component, in binary order.
    exports: Vec<String>,
}

/// Reads whether `bytes` is a component and its top-level import and export names (full
/// names, version suffixes applied). Nested modules and components are skipped.
fn wasm_shape(bytes: &[u8]) -> Result<WasmShape, wasmparser::BinaryReaderError> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut shape = WasmShape {
        component: false,
        imports: Vec::new(),
        exports: Vec::new(),
    };
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { encoding, .. } if depth == 0 => {
                shape.component = encoding == Encoding::Component;
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    shape.imports.push(import?.name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    shape.exports.push(export?.name.full_name().into_owned());
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// Builds the config and manifest of a release of `package` whose file has `shape`.
fn build_artifact(
    package: &PackageName,
    release: &ReleaseView,
    layer: Digest,
    split: &Manifest,
    shape: WasmShape,
) -> Artifact {
    let layer_size = split.size();
    let created = release.timestamp.to_rfc3339();
    let config = WasmConfig {
        created: created.clone(),
        architecture: "wasm",
        os: if shape.component { "wasip2" } else { "wasip1" },
        layer_digests: [layer.to_string()],
        component: shape.component.then(|| ComponentSection {
            target: target_world(&shape.exports),
            exports: shape.exports,
            imports: shape.imports,
        }),
    };
    let config = Bytes::from(serde_json::to_vec(&config).expect("configs serialise"));
    let config_digest = sha256_text(&config);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: IMAGE_MANIFEST_MEDIA_TYPE,
        artifact_type: None,
        config: Descriptor {
            media_type: WASM_CONFIG_MEDIA_TYPE,
            digest: config_digest.clone(),
            size: config.len() as u64,
            artifact_type: None,
            annotations: None,
        },
        layers: [Descriptor {
            media_type: WASM_LAYER_MEDIA_TYPE,
            digest: layer.to_string(),
            size: layer_size,
            artifact_type: None,
            annotations: Some(BTreeMap::from([(
                "org.opencontainers.image.title",
                format!("{}.wasm", package.name()),
            )])),
        }],
        subject: None,
        annotations: BTreeMap::from([
            ("org.opencontainers.image.created", created.clone()),
            ("org.opencontainers.image.version", release.version.clone()),
        ]),
    };
    let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("manifests serialise"));
    let manifest_digest = sha256_text(&manifest);
    let referrer = build_referrer(
        package,
        release,
        &manifest,
        &manifest_digest,
        split,
        created,
    );
    Artifact {
        manifest_digest,
        manifest,
        media_type: IMAGE_MANIFEST_MEDIA_TYPE.to_owned(),
        config_digest,
        config,
        referrer,
    }
}

/// Builds the split-manifest referrer of a release whose image manifest is `subject`.
fn build_referrer(
    package: &PackageName,
    release: &ReleaseView,
    subject: &[u8],
    subject_digest: &str,
    split: &Manifest,
    created: String,
) -> Referrer {
    let split_json = Bytes::from(split.to_json().into_bytes());
    let split_digest = sha256_text(&split_json);
    let annotations = BTreeMap::from([
        ("org.opencontainers.image.created", created),
        (
            "dev.cairn.split.tree-digest",
            split.tree_digest().to_string(),
        ),
    ]);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: IMAGE_MANIFEST_MEDIA_TYPE,
        artifact_type: Some(SPLIT_ARTIFACT_TYPE),
        config: Descriptor {
            media_type: EMPTY_MEDIA_TYPE,
            digest: EMPTY_DIGEST.to_owned(),
            size: EMPTY_JSON.len() as u64,
            artifact_type: None,
            annotations: None,
        },
        layers: [Descriptor {
            media_type: SPLIT_ARTIFACT_TYPE,
            digest: split_digest.clone(),
            size: split_json.len() as u64,
            artifact_type: None,
            annotations: Some(BTreeMap::from([(
                "org.opencontainers.image.title",
                format!("{}-{}.split.json", package.name(), release.version),
            )])),
        }],
        subject: Some(Descriptor {
            media_type: IMAGE_MANIFEST_MEDIA_TYPE,
            digest: subject_digest.to_owned(),
            size: subject.len() as u64,
            artifact_type: None,
            annotations: None,
        }),
        annotations: annotations.clone(),
    };
    let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("manifests serialise"));
    Referrer {
        manifest_digest: sha256_text(&manifest),
        manifest,
        annotations,
        split: split_json,
        split_digest,
    }
}

impl Referrer {
    /// The referrer's descriptor in a referrers-API index.
    fn descriptor(&self) -> Descriptor<'static> {
        Descriptor {
            media_type: IMAGE_MANIFEST_MEDIA_TYPE,
            digest: self.manifest_digest.clone(),
            size: self.manifest.len() as u64,
            artifact_type: Some(SPLIT_ARTIFACT_TYPE),
            annotations: Some(self.annotations.clone()),
        }
    }
}

/// The split manifest of stored content.
async fn split_manifest(oci: &Oci, digest: &Digest) -> Result<Manifest, OciError> {
    let row = oci
        .app
        .store
        .content(digest)
        .await
        .map_err(OciError::internal)?
        .ok_or_else(|| OciError::internal(format!("released content {digest} is not stored")))?;
    Manifest::from_json(row.manifest.as_bytes()).map_err(OciError::internal)
}

/// The artifact of a release, derived once and cached.
async fn artifact(
    oci: &Oci,
    package: &PackageName,
    release: &ReleaseView,
) -> Result<Arc<Artifact>, OciError> {
    let key = (package.log_id(), release.version.clone());
    if let Some(found) = oci.artifacts.lock().expect("cache poisoned").get(&key) {
        return Ok(found.clone());
    }
    let layer = release_content(oci, release).await?;
    let manifest = split_manifest(oci, &layer).await?;
    if let Some(pushed) = pushed_artifact(oci, package, release, &layer, &manifest).await? {
        let pushed = Arc::new(pushed);
        oci.artifacts
            .lock()
            .expect("cache poisoned")
            .insert(key, pushed.clone());
        return Ok(pushed);
    }
    let split = manifest.clone();
    let blobs = oci.app.blobs.clone();
    let shape = tokio::task::spawn_blocking(move || -> Result<WasmShape, String> {
        let mut bytes = Vec::with_capacity(manifest.size() as usize);
        cairn_split::join(&manifest, &mut content::StoreBlobs(&*blobs), &mut bytes)
            .map_err(|e| e.to_string())?;
        wasm_shape(&bytes).map_err(|e| e.to_string())
    })
    .await
    .map_err(OciError::internal)?
    .map_err(OciError::internal)?;
    let built = Arc::new(build_artifact(package, release, layer, &split, shape));
    oci.artifacts
        .lock()
        .expect("cache poisoned")
        .insert(key, built.clone());
    Ok(built)
}

/// The artifact of a release published by an OCI push: the manifest and config exactly as
/// pushed (kept under the release's version once it was published), if they were and the
/// manifest's one layer is the released file.
async fn pushed_artifact(
    oci: &Oci,
    package: &PackageName,
    release: &ReleaseView,
    layer: &Digest,
    split: &Manifest,
) -> Result<Option<Artifact>, OciError> {
    let repository = format!("{}/{}", package.namespace(), package.name());
    let store = &oci.app.store;
    let Some(digest) = store
        .oci_tag(&repository, &release.version)
        .await
        .map_err(OciError::internal)?
    else {
        return Ok(None);
    };
    let Some(row) = store
        .oci_manifest(&repository, &digest)
        .await
        .map_err(OciError::internal)?
    else {
        return Ok(None);
    };
    let parsed = manifest::parse(&row.bytes, Some(&row.media_type)).map_err(OciError::internal)?;
    let layer_text = layer.to_string();
    let (Some(config), [only]) = (parsed.config, parsed.layers.as_slice()) else {
        return Ok(None);
    };
    if only.digest != layer_text {
        return Ok(None);
    }
    let config_blob = parse_digest(&config.digest)?.blob();
    let blobs = oci.app.blobs.clone();
    let config_bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(blobs.open(&config_blob)?, push::MAX_MANIFEST_SIZE as u64),
            &mut bytes,
        )?;
        Ok(bytes)
    })
    .await
    .map_err(OciError::internal)?
    .map_err(OciError::internal)?;
    let created = release.timestamp.to_rfc3339();
    let referrer = build_referrer(package, release, &row.bytes, &row.digest, split, created);
    Ok(Some(Artifact {
        manifest: Bytes::from(row.bytes),
        manifest_digest: row.digest,
        media_type: row.media_type,
        config: Bytes::from(config_bytes),
        config_digest: config.digest,
        referrer,
    }))
}

// ---------------------------------------------------------------------------------------
// Handlers.

/// `GET /v2/`. Where pushes are configured, a request without credentials gets 401 with the
/// token challenge, as registries with authentication answer: clients learn the scheme here
/// (skopeo sends credentials only to a registry whose ping asked for them). Anonymous clients
/// then get a pull-only token from the realm, so pulls stay anonymous.
async fn ping(State(oci): State<Oci>, push: push::Push, headers: HeaderMap) -> Response {
    let allowed = push::anonymous_token(&headers)
        || matches!(push::writer(&oci, &push, &headers).await, Ok(Some(_)));
    // With publisher accounts, clients must learn that the registry takes credentials; an
    // account cannot be added without the operator, so a failed read counts as "some".
    let accounts = oci.app.accounts.store().any_active().await.unwrap_or(true);
    if (push::requires_credentials(&push) || accounts) && !allowed {
        let mut response = OciError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header_value(&push::challenge(&oci, None)),
        );
        response.headers_mut().insert(
            "docker-distribution-api-version",
            header_value("registry/2.0"),
        );
        return response;
    }
    (
        [
            ("docker-distribution-api-version", "registry/2.0"),
            ("content-type", "application/json"),
        ],
        "{}",
    )
        .into_response()
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("header values built here are ASCII")
}

/// A response carrying `bytes` (or, for HEAD, only their headers).
fn bytes_response(method: &Method, content_type: &str, digest: &str, bytes: Bytes) -> Response {
    let length = bytes.len();
    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(bytes))
    };
    let headers = response.headers_mut();
    // A stored media type was checked when it was pushed; should one still not be a valid
    // header value, the generic type is served rather than a panic.
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, header_value(&length.to_string()));
    headers.insert("docker-content-digest", header_value(digest));
    headers.insert(header::ETAG, header_value(&format!("\"{digest}\"")));
    response
}

async fn manifest(
    State(oci): State<Oci>,
    Path((ns, name, reference)): Path<(String, String, String)>,
    method: Method,
) -> Result<Response, OciError> {
    let package = match package_of(&oci, &ns, &name) {
        Ok(package) => package,
        Err(e) if e.code == "NAME_UNKNOWN" => {
            return push::manifest(&oci, &ns, &name, &reference, &method).await
        }
        Err(e) => return Err(e),
    };
    let releases = releases(&oci, &package);
    let found = if reference.contains(':') {
        let OciDigest::Sha256(_) = parse_digest(&reference)? else {
            return Err(OciError::manifest_unknown(&reference));
        };
        let mut found = None;
        for release in &releases {
            let artifact = artifact(&oci, &package, release).await?;
            if artifact.manifest_digest == reference {
                found = Some((
                    artifact.manifest.clone(),
                    reference.clone(),
                    artifact.media_type.clone(),
                ));
                break;
            }
            if artifact.referrer.manifest_digest == reference {
                found = Some((
                    artifact.referrer.manifest.clone(),
                    reference.clone(),
                    IMAGE_MANIFEST_MEDIA_TYPE.to_owned(),
                ));
                break;
            }
        }
        if found.is_none() {
            // An artifact a publisher pushed that refers to a release.
            let repository = format!("{ns}/{name}");
            found = oci
                .app
                .store
                .oci_manifest(&repository, &reference)
                .await
                .map_err(OciError::internal)?
                .filter(|row| row.subject.is_some())
                .map(|row| (Bytes::from(row.bytes), row.digest, row.media_type));
        }
        found
    } else {
        match releases
            .iter()
            .find(|r| r.tagged() && r.version == reference)
        {
            Some(release) => {
                let artifact = artifact(&oci, &package, release).await?;
                Some((
                    artifact.manifest.clone(),
                    artifact.manifest_digest.clone(),
                    artifact.media_type.clone(),
                ))
            }
            // A tag that is not a version names an artifact referring to a release.
            None if semver::Version::parse(&reference).is_err() => {
                referrer_by_tag(&oci, &format!("{ns}/{name}"), &reference).await?
            }
            None => None,
        }
    };
    let (bytes, digest, media_type) =
        found.ok_or_else(|| OciError::manifest_unknown(&reference))?;
    Ok(bytes_response(&method, &media_type, &digest, bytes))
}

/// The manifest a referrer tag of a package repository names: `(bytes, digest, media type)`.
async fn referrer_by_tag(
    oci: &Oci,
    repository: &str,
    tag: &str,
) -> Result<Option<(Bytes, String, String)>, OciError> {
    let store = &oci.app.store;
    let Some(digest) = store
        .oci_tag(repository, tag)
        .await
        .map_err(OciError::internal)?
    else {
        return Ok(None);
    };
    Ok(store
        .oci_manifest(repository, &digest)
        .await
        .map_err(OciError::internal)?
        .filter(|row| row.subject.is_some())
        .map(|row| (Bytes::from(row.bytes), row.digest, row.media_type)))
}

async fn blob(
    State(oci): State<Oci>,
    Path((ns, name, digest_text)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, OciError> {
    let package = match package_of(&oci, &ns, &name) {
        Ok(package) => package,
        Err(e) if e.code == "NAME_UNKNOWN" => {
            return push::blob(&oci, &ns, &name, &digest_text, &method, &headers).await
        }
        Err(e) => return Err(e),
    };
    let OciDigest::Sha256(digest) = parse_digest(&digest_text)? else {
        return Err(OciError::blob_unknown(&digest_text));
    };
    let releases = releases(&oci, &package);
    // The layer: the released file itself.
    for release in &releases {
        if release_content(&oci, release).await? == digest {
            let manifest = split_manifest(&oci, &digest).await?;
            return Ok(layer_response(&oci, &method, &headers, digest, manifest));
        }
    }
    // The empty config of the referrers, in any repository that has one.
    if digest_text == EMPTY_DIGEST && !releases.is_empty() {
        let empty = Bytes::from_static(EMPTY_JSON);
        return Ok(small_blob_response(&method, &headers, &empty, EMPTY_DIGEST));
    }
    // The config, and the split manifest layer of the referrer.
    for release in &releases {
        let artifact = artifact(&oci, &package, release).await?;
        if artifact.config_digest == digest_text {
            return Ok(small_blob_response(
                &method,
                &headers,
                &artifact.config,
                &artifact.config_digest,
            ));
        }
        if artifact.referrer.split_digest == digest_text {
            return Ok(small_blob_response(
                &method,
                &headers,
                &artifact.referrer.split,
                &artifact.referrer.split_digest,
            ));
        }
    }
    // The blobs of artifacts a publisher pushed that refer to a release.
    push::held_blob(
        &oci,
        &format!("{ns}/{name}"),
        &digest_text,
        &method,
        &headers,
    )
    .await
}

/// The requested range: `Ok(None)` for the whole blob, `Err(Unsatisfiable)` when the range
/// cannot be satisfied. A `Range` header this does not understand is ignored.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<ByteRange>, Unsatisfiable> {
    match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => Ok(None),
        Some(text) => match ByteRange::parse(text, size) {
            None => Ok(None),
            Some(Some(range)) => Ok(Some(range)),
            Some(None) => Err(Unsatisfiable { size }),
        },
    }
}

/// A `Range` outside a blob of `size` bytes: 416 with `Content-Range: bytes */size`.
struct Unsatisfiable {
    size: u64,
}

impl IntoResponse for Unsatisfiable {
    fn into_response(self) -> Response {
        let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes */{}", self.size)),
        );
        response
    }
}

/// Sets the headers of a blob response (whole or ranged).
fn blob_headers(response: &mut Response, digest: &str, size: u64, range: Option<ByteRange>) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert("docker-content-digest", header_value(digest));
    headers.insert(header::ETAG, header_value(&format!("\"{digest}\"")));
    crate::content::set_length_and_range(response, size, range);
}

fn layer_response(
    oci: &Oci,
    method: &Method,
    headers: &HeaderMap,
    digest: Digest,
    manifest: Manifest,
) -> Response {
    let size = manifest.size();
    let range = match requested_range(headers, size) {
        Ok(range) => range,
        Err(unsatisfiable) => return unsatisfiable.into_response(),
    };
    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        let rx = content::stream_join(oci.app.blobs.clone(), manifest, range);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Response::new(Body::from_stream(stream))
    };
    blob_headers(&mut response, &digest.to_string(), size, range);
    response
}

/// A blob read from the content store as it is sent (a blob of a scratch repository).
fn stored_blob_response(
    oci: &Oci,
    method: &Method,
    headers: &HeaderMap,
    digest: BlobDigest,
    size: u64,
) -> Response {
    let range = match requested_range(headers, size) {
        Ok(range) => range,
        Err(unsatisfiable) => return unsatisfiable.into_response(),
    };
    let mut response = if method == Method::HEAD || size == 0 {
        Response::new(Body::empty())
    } else {
        let rx = content::stream_blob(oci.app.blobs.clone(), digest, range);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Response::new(Body::from_stream(stream))
    };
    blob_headers(&mut response, &digest.to_string(), size, range);
    response
}

/// A blob held in memory (a config, the empty config, a split manifest).
fn small_blob_response(
    method: &Method,
    headers: &HeaderMap,
    bytes: &Bytes,
    digest: &str,
) -> Response {
    let size = bytes.len() as u64;
    let range = match requested_range(headers, size) {
        Ok(range) => range,
        Err(unsatisfiable) => return unsatisfiable.into_response(),
    };
    let body = match (method == Method::HEAD, range) {
        (true, _) => Body::empty(),
        (false, None) => Body::from(bytes.clone()),
        (false, Some(range)) => Body::from(bytes.slice(range.start as usize..=range.end as usize)),
    };
    let mut response = Response::new(body);
    blob_headers(&mut response, digest, size, range);
    response
}

/// `GET /v2/{ns}/{name}/referrers/{digest}`: an image index of the manifests whose subject is
/// `digest` (a release's split-manifest referrer), filtered by `artifactType` if asked. A
/// manifest without referrers, or an unknown one, gets an empty index, never a 404.
async fn referrers(
    State(oci): State<Oci>,
    Path((ns, name, digest_text)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let parsed = parse_digest(&digest_text)?;
    // A media type has no spaces: a space is a `+` that the client left unencoded.
    let filter = query
        .get("artifactType")
        .map(|wanted| wanted.replace(' ', "+"));
    let package = match package_of(&oci, &ns, &name) {
        Ok(package) => package,
        Err(e) if e.code == "NAME_UNKNOWN" => {
            let manifests =
                push::referrers(&oci, &ns, &name, &digest_text, filter.as_deref()).await?;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": IMAGE_INDEX_MEDIA_TYPE,
                "manifests": manifests,
            });
            let json = serde_json::to_vec(&index).expect("indexes serialise");
            let mut response =
                ([(header::CONTENT_TYPE, IMAGE_INDEX_MEDIA_TYPE)], json).into_response();
            if filter.is_some() {
                response.headers_mut().insert(
                    "oci-filters-applied",
                    HeaderValue::from_static("artifactType"),
                );
            }
            return Ok(response);
        }
        Err(e) => return Err(e),
    };
    let mut manifests = Vec::new();
    if let OciDigest::Sha256(_) = parsed {
        for release in &releases(&oci, &package) {
            let artifact = artifact(&oci, &package, release).await?;
            if artifact.manifest_digest == digest_text {
                if filter
                    .as_deref()
                    .is_none_or(|wanted| wanted == SPLIT_ARTIFACT_TYPE)
                {
                    manifests.push(
                        serde_json::to_value(artifact.referrer.descriptor())
                            .expect("descriptors serialise"),
                    );
                }
                break;
            }
        }
    }
    // Artifacts publishers pushed that refer to it.
    manifests.extend(push::referrers(&oci, &ns, &name, &digest_text, filter.as_deref()).await?);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    let json = serde_json::to_vec(&index).expect("indexes serialise");
    let mut response = ([(header::CONTENT_TYPE, IMAGE_INDEX_MEDIA_TYPE)], json).into_response();
    if filter.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

/// `n` and `last` of a paged listing.
fn page_params(query: &HashMap<String, String>) -> Result<(Option<usize>, Option<&str>), OciError> {
    let n = match query.get("n") {
        None => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "invalid number of results requested",
            )
            .with_detail(serde_json::json!({ "n": text }))
        })?),
    };
    Ok((n, query.get("last").map(String::as_str)))
}

/// One page of the sorted `all` after `last`, at most `n` long, and whether more follow.
fn page(all: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let after: Vec<String> = all
        .into_iter()
        .filter(|item| last.is_none_or(|last| item.as_str() > last))
        .collect();
    let limit = n.unwrap_or(usize::MAX).min(MAX_PAGE);
    let more = after.len() > limit;
    (after.into_iter().take(limit).collect(), more)
}

/// A JSON listing with a `Link` header to the next page when there is one.
fn listing<T: Serialize>(body: &T, next: Option<String>) -> Response {
    let json = serde_json::to_vec(body).expect("listings serialise");
    let mut response = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    if let Some(next) = next {
        response.headers_mut().insert(
            header::LINK,
            header_value(&format!("<{next}>; rel=\"next\"")),
        );
    }
    response
}

#[derive(Serialize)]
struct TagList {
    name: String,
    tags: Vec<String>,
}

async fn tags_list(
    State(oci): State<Oci>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let (n, last) = page_params(&query)?;
    let tags = match package_of(&oci, &ns, &name) {
        Ok(package) => {
            let mut tags: Vec<String> = releases(&oci, &package)
                .into_iter()
                .filter(ReleaseView::tagged)
                .map(|release| release.version)
                .collect();
            // And the tags of artifacts referring to releases (never versions).
            let repository = format!("{ns}/{name}");
            for tag in oci
                .app
                .store
                .oci_tags(&repository)
                .await
                .map_err(OciError::internal)?
            {
                if semver::Version::parse(&tag).is_err()
                    && referrer_by_tag(&oci, &repository, &tag).await?.is_some()
                {
                    tags.push(tag);
                }
            }
            tags.sort();
            tags
        }
        Err(e) if e.code == "NAME_UNKNOWN" => push::tags(&oci, &ns, &name).await?,
        Err(e) => return Err(e),
    };
    let (tags, more) = page(tags, n, last);
    let next = match (more, tags.last()) {
        (true, Some(last)) => Some(format!(
            "/v2/{ns}/{name}/tags/list?n={}&last={last}",
            tags.len()
        )),
        _ => None,
    };
    Ok(listing(
        &TagList {
            name: format!("{ns}/{name}"),
            tags,
        },
        next,
    ))
}

#[derive(Serialize)]
struct CatalogList {
    repositories: Vec<String>,
}

/// Brings the catalog up to the latest checkpoint: new package logs among the leaves since
/// the last scan, named by the store.
async fn refresh_catalog(oci: &Oci) -> Result<(), OciError> {
    let (from, to, new) = {
        let state = oci.app.state.read().expect("state lock poisoned");
        let catalog = oci.catalog.lock().expect("catalog poisoned");
        let to = served_length(&state);
        let from = catalog.scanned;
        let operator = LogId::operator_log();
        let mut new = BTreeSet::new();
        for index in from..to {
            if let Some((log_id, _)) = state.leaf(index) {
                if *log_id != operator && !catalog.seen.contains(log_id) {
                    new.insert(*log_id);
                }
            }
        }
        (from, to, new)
    };
    let mut named = Vec::new();
    for log_id in &new {
        if let Some(Some(name)) = oci
            .app
            .store
            .log_name(log_id)
            .await
            .map_err(OciError::internal)?
        {
            if let Ok(package) = name.parse::<PackageName>() {
                named.push(format!("{}/{}", package.namespace(), package.name()));
            }
        }
    }
    let mut catalog = oci.catalog.lock().expect("catalog poisoned");
    if catalog.scanned == from {
        catalog.scanned = to;
        catalog.seen.extend(new);
        catalog.repositories.extend(named);
    }
    Ok(())
}

async fn catalog(
    State(oci): State<Oci>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let (n, last) = page_params(&query)?;
    refresh_catalog(&oci).await?;
    let scratch = push::repositories(&oci).await?;
    let all: Vec<String> = {
        let catalog = oci.catalog.lock().expect("catalog poisoned");
        let mut all = catalog.repositories.clone();
        all.extend(scratch);
        all.into_iter().collect()
    };
    let (repositories, more) = page(all, n, last);
    let next = match (more, repositories.last()) {
        (true, Some(last)) => Some(format!("/v2/_catalog?n={}&last={last}", repositories.len())),
        _ => None,
    };
    Ok(listing(&CatalogList { repositories }, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        let at = |seconds, nanos| Timestamp { seconds, nanos }.to_rfc3339();
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_767_225_599, 5), "2025-12-31T23:59:59.000000005Z");
    }

    #[test]
    fn the_empty_config_digest_is_the_digest_of_an_empty_object() {
        assert_eq!(sha256_text(EMPTY_JSON), EMPTY_DIGEST);
    }

    #[test]
    fn repository_name_components_follow_the_distribution_grammar() {
        for good in ["a", "example", "my-pkg", "a--b", "a.b", "a_b", "a__b", "x9"] {
            assert!(is_name_component(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a___b", "a..b", "a/b", "a_"] {
            assert!(!is_name_component(bad), "{bad}");
        }
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        assert!(is_tag("1.0.0"));
        assert!(is_tag("1.0.0-rc.1"));
        assert!(!is_tag("1.0.0+build.5"));
        assert!(!is_tag(".1"));
        assert!(!is_tag(&"1".repeat(129)));
    }

    #[test]
    fn the_target_world_follows_the_wasi_export() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            target_world(&names(&["wasi:http/incoming-handler@0.2.0"])).as_deref(),
            Some("wasi:http/proxy@0.2.0")
        );
        assert_eq!(
            target_world(&names(&["fac", "wasi:cli/run@0.2.3"])).as_deref(),
            Some("wasi:cli/command@0.2.3")
        );
        assert_eq!(
            target_world(&names(&["wasi:cli/run"])).as_deref(),
            Some("wasi:cli/command")
        );
        assert_eq!(
            target_world(&names(&["fac", "wasi:cli/runner@1.0.0"])),
            None
        );
        assert_eq!(target_world(&[]), None);
    }

    #[test]
    fn malformed_digests_are_invalid_and_sha512_is_known() {
        assert!(matches!(
            parse_digest(&format!("sha256:{}", "ab".repeat(32))),
            Ok(OciDigest::Sha256(_))
        ));
        assert!(matches!(
            parse_digest(&format!("sha512:{}", "ab".repeat(64))),
            Ok(OciDigest::Sha512(_))
        ));
        for bad in [
            "sha256:xyz",
            "sha256",
            "md5:00",
            &format!("sha256:{}", "AB".repeat(32)),
        ] {
            let error = parse_digest(bad).err().expect(bad);
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert_eq!(error.code, "DIGEST_INVALID");
        }
    }
}
