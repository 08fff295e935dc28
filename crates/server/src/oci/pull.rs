//! Pulls: the manifest, config and layer of every release, derived from the signed release
//! record and the joined file (nothing stored), and the blobs of scratch repositories, with
//! ranges.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_protocol::{Digest, PackageEntry, PackageName, RecordId, Timestamp};
use cairn_split::Manifest;
use cairn_store::BlobDigest;
use serde::Serialize;

use super::*;
use crate::content::{self, ByteRange};
use crate::state::DecodedRecord;

/// The package a repository `<ns>/<name>` names, if its log is published.
pub(super) fn package_of(oci: &Oci, ns: &str, name: &str) -> Result<PackageName, OciError> {
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
    let length = state.served_length();
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

/// A release as OCI sees it.
#[derive(Debug, Clone)]
pub(super) struct ReleaseView {
    pub(super) version: String,
    pub(super) record_id: RecordId,
    pub(super) timestamp: Timestamp,
    /// The released file; `None` once yanked (the state forgets it, the record does not).
    pub(super) content: Option<Digest>,
}

impl ReleaseView {
    /// Whether the release has a tag: not yanked, and a version OCI can spell (a tag cannot
    /// hold the `+` of semver build metadata).
    pub(super) fn tagged(&self) -> bool {
        self.content.is_some() && is_tag(&self.version)
    }
}

/// Every release of `package` in the latest checkpoint, yanked ones included.
pub(super) fn releases(oci: &Oci, package: &PackageName) -> Vec<ReleaseView> {
    let state = oci.app.state.read().expect("state lock poisoned");
    let length = state.served_length();
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
pub(super) async fn release_content(oci: &Oci, release: &ReleaseView) -> Result<Digest, OciError> {
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
    let DecodedRecord::Package(envelope) =
        DecodedRecord::decode(&row).map_err(OciError::internal)?
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

/// The OCI form of one release: image manifest, config, and the split-manifest referrer.
#[derive(Debug)]
pub(super) struct Artifact {
    pub(super) manifest: Bytes,
    pub(super) manifest_digest: String,
    /// The manifest's media type.
    pub(super) media_type: String,
    pub(super) config: Bytes,
    pub(super) config_digest: String,
    pub(super) referrer: Referrer,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImageManifest<'a> {
    pub(super) schema_version: u32,
    pub(super) media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) artifact_type: Option<&'a str>,
    pub(super) config: Descriptor<'a>,
    pub(super) layers: [Descriptor<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) subject: Option<Descriptor<'a>>,
    pub(super) annotations: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor<'a> {
    pub(super) media_type: &'a str,
    pub(super) digest: String,
    pub(super) size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) artifact_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) annotations: Option<BTreeMap<&'a str, String>>,
}

/// An image index: what the referrers API answers.
/// `application/vnd.wasm.config.v0+json`, fields in the order `oci-wasm` writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WasmConfig<'a> {
    pub(super) created: String,
    pub(super) architecture: &'a str,
    pub(super) os: &'a str,
    pub(super) layer_digests: [String; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) component: Option<ComponentSection>,
}

#[derive(Serialize)]
pub(super) struct ComponentSection {
    pub(super) exports: Vec<String>,
    pub(super) imports: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) target: Option<String>,
}

/// The standard world a component targets, as far as its binary tells. A component does not
/// carry its world's name, but the WASI worlds that runtimes dispatch on are known by their
/// export: `wasi:http/incoming-handler` makes a `wasi:http/proxy`, `wasi:cli/run` a
/// `wasi:cli/command`, at the export's version.
pub(super) fn target_world(exports: &[String]) -> Option<String> {
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
pub(super) struct WasmShape {
    pub(super) component: bool,
    /// Top-level import names of a component, in binary order.
    pub(super) imports: Vec<String>,
    /// Top-level export names of a component, in binary order.
    pub(super) exports: Vec<String>,
}

/// Reads whether `bytes` is a component and its top-level import and export names (full
/// names, version suffixes applied). Nested modules and components are skipped.
pub(super) fn wasm_shape(bytes: &[u8]) -> Result<WasmShape, wasmparser::BinaryReaderError> {
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
pub(super) fn build_artifact(
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

/// The split manifest of stored content.
pub(super) async fn split_manifest(oci: &Oci, digest: &Digest) -> Result<Manifest, OciError> {
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
pub(super) async fn artifact(
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
pub(super) async fn pushed_artifact(
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

pub(super) async fn manifest(
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

pub(super) async fn blob(
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
pub(super) fn requested_range(
    headers: &HeaderMap,
    size: u64,
) -> Result<Option<ByteRange>, Unsatisfiable> {
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
pub(super) struct Unsatisfiable {
    pub(super) size: u64,
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
pub(super) fn blob_headers(
    response: &mut Response,
    digest: &str,
    size: u64,
    range: Option<ByteRange>,
) {
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

pub(super) fn layer_response(
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
    // A client that asks for zstd gets the modules' stored frames, with no range (a range is
    // of the layer's bytes). Only zstd: Go's HTTP clients (skopeo, oras) ask for gzip by
    // themselves, and making it would cost the CPU that serving stored frames saves.
    let zstd =
        method == Method::GET && range.is_none() && content::accepts_encoding(headers, "zstd");
    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else if zstd {
        let rx = content::stream_join_zstd(oci.app.blobs.clone(), manifest);
        Response::new(content::body_of(rx))
    } else {
        let rx = content::stream_join(oci.app.blobs.clone(), manifest, range);
        Response::new(content::body_of(rx))
    };
    let digest = digest.to_string();
    blob_headers(&mut response, &digest, size, range);
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if zstd {
        // Another representation: its own entity tag, and a length known once sent.
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        headers.insert(header::ETAG, header_value(&format!("\"{digest}+zstd\"")));
    }
    response
}

/// A blob read from the content store as it is sent (a blob of a scratch repository).
pub(super) fn stored_blob_response(
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
        Response::new(content::body_of(rx))
    };
    blob_headers(&mut response, &digest.to_string(), size, range);
    response
}

/// A blob held in memory (a config, the empty config, a split manifest).
pub(super) fn small_blob_response(
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
