//! The OCI push side, for scratch repositories: repositories `ns/name` whose `ns:name` is not
//! a warg package (warg releases are only made by signed records). Blobs (`sha256:` or
//! `sha512:`) go to the content store, repository membership, manifests and tags to SQL.
//! This file keeps their manifests and tags; uploads are in `uploads`, credentials in `auth`.
//!
//! What this module must never do: read a request body before the credential is checked
//! (bodies are streamed to disk, never buffered whole, except manifests, at most 4 MiB);
//! let two requests write to one session at once (a lock per session is held from finding
//! the session to storing its blob); leave a failed request's bytes in a session; let a
//! manifest make a blob readable that no scratch repository holds (such as a fragment of an
//! unpublished warg record); hand out the credential itself as a token.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_store::OciManifestRow;

use super::*;
use super::{bytes_response, header_value, is_tag, parse_digest, sha256_text, Oci, OciError};

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
