//! The push side of package repositories: an OCI push of a Wasm artifact by a publisher
//! account becomes a release in the package's warg log, a delete becomes a yank, and
//! artifacts that refer to a release (signatures, SBOMs, attestations) are kept beside it.
//!
//! * A release is pushed under one tag, its version. Its manifest must have the Wasm config
//!   (`application/vnd.wasm.config.v0+json`) and one `application/wasm` layer, the component
//!   file, whose SHA-256 becomes the release's content digest. The registry signs the record
//!   with the account's key (`crate::release`), and answers only once the log has published
//!   it, or with the log's reason. Then the manifest is kept byte for byte and served under
//!   the tag and by its digest; the layer is stored split like every release.
//! * Versions never change: the same manifest pushed again is accepted as it is, another one
//!   for a released (or yanked) version is refused.
//! * Blobs pushed to a package repository wait staged, outside the content store, until a
//!   manifest uses them; the layer enters the content store only split, once its record is
//!   accepted.
//! * Referrers (a manifest with a `subject`) are kept like scratch repositories' manifests,
//!   by digest and under tags that are not versions (`oras` pushes them under `latest`,
//!   `cosign` under `sha256-<hex>.sig`); they and their tags are not entries of the log.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_protocol::{Digest, PackageName, ReleaseState};
use cairn_store::{OciManifestRow, Publisher};
use semver::Version;

use super::manifest::PushedManifest;
use super::*;
use super::{header_value, is_tag, Oci, OciError, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use crate::release::{self, Change, ChangeError};

/// A manifest pushed to a package repository, as read by the push side.
pub(super) struct Pushed {
    pub repository: String,
    /// The tags it is pushed under (the reference, and any `?tag=`).
    pub tags: Vec<String>,
    /// Whether it was pushed by digest.
    pub by_digest: bool,
    /// Its digest.
    pub digest: String,
    /// Its bytes.
    pub body: Vec<u8>,
    pub manifest: PushedManifest,
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    OciError::new(status, code, message).into_response()
}

/// `PUT /v2/{ns}/{name}/manifests/{reference}` in a package repository.
pub(super) async fn put_manifest(
    oci: &Oci,
    settings: &PushSettings,
    publisher: &Publisher,
    package: &PackageName,
    pushed: Pushed,
) -> Answer {
    let config_type = pushed
        .manifest
        .config
        .as_ref()
        .map(|config| config.media_type.as_str());
    if config_type == Some(WASM_CONFIG_MEDIA_TYPE) {
        return put_release(oci, settings, publisher, package, pushed).await;
    }
    if pushed.manifest.subject.is_some() {
        return put_referrer(oci, settings, pushed).await;
    }
    Err(refuse(
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        format!(
            "`{}` is a package repository: it takes WebAssembly releases (a manifest whose \
             config is {WASM_CONFIG_MEDIA_TYPE} with one {WASM_LAYER_MEDIA_TYPE} layer) and \
             artifacts that refer to one (with a `subject`); this manifest's config is {}",
            pushed.repository,
            config_type.unwrap_or("missing"),
        ),
    ))
}

/// 201 for a manifest stored at `digest`.
fn created(repository: &str, digest: &str, tag: Option<&str>, subject: Option<&str>) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(&format!("/v2/{repository}/manifests/{digest}")),
    );
    headers.insert("docker-content-digest", header_value(digest));
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    if let Some(tag) = tag {
        headers.insert("oci-tag", header_value(tag));
    }
    if let Some(subject) = subject.filter(|s| super::parse_digest(s).is_ok()) {
        headers.insert("oci-subject", header_value(subject));
    }
    response
}

/// A release: the checks, the signed record, and the manifest kept once it is published.
async fn put_release(
    oci: &Oci,
    settings: &PushSettings,
    publisher: &Publisher,
    package: &PackageName,
    pushed: Pushed,
) -> Answer {
    let repository = &pushed.repository;
    let [tag] = pushed.tags.as_slice() else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!(
                "a release is pushed under one tag, its version (such as \
                 {repository}:1.2.0){}",
                if pushed.by_digest {
                    ", not by digest alone"
                } else {
                    ""
                }
            ),
        ));
    };
    let Some(version) = Version::parse(tag).ok().filter(|v| v.to_string() == *tag) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!(
                "tag `{tag}` is not a version: in a package repository every tag is a \
                 release's version (such as 1.2.0), and a version never moves to another \
                 manifest once released"
            ),
        ));
    };
    let layer = match pushed.manifest.layers.as_slice() {
        [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => layer.clone(),
        layers => {
            let types: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!(
                    "a release has exactly one layer, of media type {WASM_LAYER_MEDIA_TYPE} \
                     (the component file); this manifest has {} layer(s): [{}]",
                    layers.len(),
                    types.join(", ")
                ),
            ));
        }
    };
    let Ok(content) = layer.digest.parse::<Digest>() else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            format!(
                "the layer's digest `{}` is not a sha256 digest; a release is named by the \
                 SHA-256 of its file",
                layer.digest
            ),
        ));
    };
    let max = oci.app.settings.max_content_size;
    if layer.size > max {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!(
                "the layer is {} bytes; this registry takes files of at most {max} bytes",
                layer.size
            ),
        ));
    }
    let config = pushed
        .manifest
        .config
        .clone()
        .expect("a release has a config");
    // One release of a package at a time, so that each is signed on the head the one
    // before it made.
    let _turn = settings
        .locks
        .lock(&format!("release {}", package.log_id()))
        .await;
    let existing = {
        let state = oci.app.state.read().expect("state lock poisoned");
        state
            .package(&package.log_id())
            .and_then(|log| log.release(&version))
            .map(|release| release.state.clone())
    };
    match existing {
        Some(ReleaseState::Released { content: released }) => {
            let stored = oci
                .app
                .store
                .oci_tag(repository, tag)
                .await
                .map_err(internal)?;
            if stored.as_deref() == Some(pushed.digest.as_str()) {
                // The same push again.
                return Ok(created(repository, &pushed.digest, Some(tag), None));
            }
            if stored.is_none() && released == content {
                // Published, but its manifest was not kept (the push stopped between the
                // two): kept now.
                adopt_blob(oci, settings, repository, &config.digest).await?;
                keep_release_manifest(oci, package, &version, &pushed).await?;
                return Ok(created(repository, &pushed.digest, Some(tag), None));
            }
            return Err(refuse(
                StatusCode::CONFLICT,
                "DENIED",
                format!(
                    "version {version} of `{package}` is already released{}; a released \
                     version never changes: push this one as a new version",
                    stored
                        .map(|digest| format!(" (manifest {digest})"))
                        .unwrap_or_default()
                ),
            ));
        }
        Some(ReleaseState::Yanked { .. }) => {
            return Err(refuse(
                StatusCode::CONFLICT,
                "DENIED",
                format!(
                    "version {version} of `{package}` was released and then yanked; a \
                     version is never released twice: push this one as a new version"
                ),
            ));
        }
        None => {}
    }
    adopt_blob(oci, settings, repository, &config.digest).await?;
    let layer_blob = push_digest(&layer.digest).map_err(|e| e.into_response())?;
    let staged = settings.staged_blob(repository, &layer_blob);
    let file = match tokio::fs::metadata(&staged).await {
        Ok(meta) if meta.len() != layer.size => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!(
                    "the layer's descriptor says {} bytes, but the blob {} has {}",
                    layer.size,
                    layer.digest,
                    meta.len()
                ),
            ));
        }
        Ok(_) => Some(staged.clone()),
        Err(_) => {
            let stored = crate::app::content_is_stored(&oci.app, &content)
                .await
                .map_err(|e| change_refused(ChangeError::Api(e)))?;
            if !stored {
                return Err(super::push::blob_missing(&layer.digest));
            }
            None
        }
    };
    let change = Change::Release {
        version: version.clone(),
        content,
        file,
    };
    let published = release::make(&oci.app, publisher, package, &change)
        .await
        .map_err(change_refused)?;
    tracing::info!(
        package = %package,
        %version,
        publisher = %publisher.name,
        record = %published.record_id,
        registry_index = published.registry_index,
        "published a release pushed over OCI"
    );
    keep_release_manifest(oci, package, &version, &pushed).await?;
    let _ = tokio::fs::remove_file(&staged).await;
    Ok(created(repository, &pushed.digest, Some(tag), None))
}

/// Keeps the manifest of a published release under its version, and drops what the pull
/// side derived for the release before.
async fn keep_release_manifest(
    oci: &Oci,
    package: &PackageName,
    version: &Version,
    pushed: &Pushed,
) -> Result<(), Response> {
    let row = OciManifestRow {
        repository: pushed.repository.clone(),
        digest: pushed.digest.clone(),
        media_type: pushed.manifest.media_type.clone(),
        bytes: pushed.body.clone(),
        subject: None,
        artifact_type: pushed.manifest.artifact_type.clone(),
    };
    let tag = version.to_string();
    oci.app
        .store
        .oci_put_manifest(&row, &[tag.as_str()])
        .await
        .map_err(internal)?;
    oci.artifacts
        .lock()
        .expect("cache poisoned")
        .remove(&(package.log_id(), tag));
    Ok(())
}

/// Makes the blob `digest` one the repository holds: it holds it already, or it waits
/// staged and enters the content store now. Otherwise `MANIFEST_BLOB_UNKNOWN`.
async fn adopt_blob(
    oci: &Oci,
    settings: &PushSettings,
    repository: &str,
    digest: &str,
) -> Result<(), Response> {
    let held = oci
        .app
        .store
        .oci_has_blob(repository, digest)
        .await
        .map_err(internal)?;
    if held {
        return Ok(());
    }
    let Ok(blob) = push_digest(digest) else {
        return Err(super::push::blob_missing(digest));
    };
    let staged = settings.staged_blob(repository, &blob);
    if !tokio::fs::try_exists(&staged).await.unwrap_or(false) {
        // The empty config every package repository serves (clients that find it there
        // do not push it).
        if digest != super::EMPTY_DIGEST {
            return Err(super::push::blob_missing(digest));
        }
        let blobs = oci.app.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.put(&blob, super::EMPTY_JSON))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        return oci
            .app
            .store
            .oci_add_blob(repository, digest)
            .await
            .map_err(internal);
    }
    // Not while abandoned content is being withdrawn (see `store_received`).
    let _turn = oci.app.ingests.acquire().await.map_err(internal)?;
    let blobs = oci.app.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.put_file(&blob, &staged))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    oci.app
        .store
        .oci_add_blob(repository, digest)
        .await
        .map_err(internal)
}

/// A referrer: kept, by digest, once its blobs are held.
async fn put_referrer(oci: &Oci, settings: &PushSettings, pushed: Pushed) -> Answer {
    let repository = &pushed.repository;
    if let Some(version) = pushed.tags.iter().find(|tag| Version::parse(tag).is_ok()) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!(
                "tag `{version}` is a version, and in package repository `{repository}` \
                 versions name releases only; push an artifact that refers to a release by \
                 digest, or under a tag that is not a version"
            ),
        ));
    }
    for child in &pushed.manifest.manifests {
        let found = oci
            .app
            .store
            .oci_manifest(repository, child)
            .await
            .map_err(internal)?;
        if found.is_none() {
            return Err(super::push::blob_missing(child));
        }
    }
    for blob in &pushed.manifest.blobs {
        adopt_blob(oci, settings, repository, blob).await?;
    }
    let row = OciManifestRow {
        repository: repository.clone(),
        digest: pushed.digest.clone(),
        media_type: pushed.manifest.media_type.clone(),
        bytes: pushed.body,
        subject: pushed.manifest.subject.clone(),
        artifact_type: pushed.manifest.artifact_type.clone(),
    };
    let tags: Vec<&str> = pushed.tags.iter().map(String::as_str).collect();
    oci.app
        .store
        .oci_put_manifest(&row, &tags)
        .await
        .map_err(internal)?;
    Ok(created(
        repository,
        &pushed.digest,
        tags.first().copied(),
        pushed.manifest.subject.as_deref(),
    ))
}

/// `DELETE /v2/{ns}/{name}/manifests/{reference}` in a package repository: a release's
/// version (its tag, or its manifest's digest) is yanked by a signed record; a referrer is
/// removed.
pub(super) async fn delete_manifest(
    oci: &Oci,
    publisher: &Publisher,
    package: &PackageName,
    repository: &str,
    reference: &str,
) -> Answer {
    let version = if reference.contains(':') {
        super::parse_digest(reference).map_err(IntoResponse::into_response)?;
        let stored = oci
            .app
            .store
            .oci_manifest(repository, reference)
            .await
            .map_err(internal)?;
        if stored.is_some_and(|row| row.subject.is_some()) {
            oci.app
                .store
                .oci_delete_manifest(repository, reference)
                .await
                .map_err(internal)?;
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        let mut found = None;
        for release in super::releases(oci, package) {
            let artifact = super::artifact(oci, package, &release)
                .await
                .map_err(IntoResponse::into_response)?;
            if artifact.manifest_digest == reference {
                found = Some(release.version.clone());
                break;
            }
        }
        found.ok_or_else(|| OciError::manifest_unknown(reference).into_response())?
    } else if is_tag(reference) {
        if Version::parse(reference).is_err() {
            // A referrer's tag: it goes, the referrer stays.
            let deleted = oci
                .app
                .store
                .oci_delete_tag(repository, reference)
                .await
                .map_err(internal)?;
            if !deleted {
                return Err(OciError::manifest_unknown(reference).into_response());
            }
            return Ok(StatusCode::ACCEPTED.into_response());
        }
        reference.to_owned()
    } else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            format!("`{reference}` is not a tag or a digest"),
        ));
    };
    let Ok(version) = Version::parse(&version) else {
        return Err(OciError::manifest_unknown(reference).into_response());
    };
    let state = {
        let state = oci.app.state.read().expect("state lock poisoned");
        state
            .package(&package.log_id())
            .and_then(|log| log.release(&version))
            .map(|release| release.state.clone())
    };
    match state {
        None => return Err(OciError::manifest_unknown(reference).into_response()),
        // Yanked already: the tag is gone, as asked.
        Some(ReleaseState::Yanked { .. }) => return Ok(StatusCode::ACCEPTED.into_response()),
        Some(ReleaseState::Released { .. }) => {}
    }
    let published = release::make(
        &oci.app,
        publisher,
        package,
        &Change::Yank {
            version: version.clone(),
        },
    )
    .await
    .map_err(change_refused)?;
    tracing::info!(
        package = %package,
        %version,
        publisher = %publisher.name,
        record = %published.record_id,
        "yanked a release for a delete over OCI"
    );
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The OCI answer for a change the registry did not make.
fn change_refused(error: ChangeError) -> Response {
    let message = error.to_string();
    match error {
        ChangeError::NotGranted { .. } => refuse(StatusCode::FORBIDDEN, "DENIED", message),
        ChangeError::NoPackage(_) => refuse(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", message),
        ChangeError::InvalidWasm(_) => refuse(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message),
        ChangeError::Rejected(_) => refuse(StatusCode::CONFLICT, "DENIED", message),
        ChangeError::StillPending(_) => {
            refuse(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
        }
        ChangeError::Api(crate::error::ApiError::Message(status, message)) => {
            refuse(status, "UNKNOWN", message)
        }
        ChangeError::Api(other) => internal(format!("{other:?}")),
    }
}
