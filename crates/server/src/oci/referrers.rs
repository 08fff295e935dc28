//! The referrers API: artifacts whose `subject` is a manifest, listed by
//! `GET /v2/<name>/referrers/<digest>` (filtered by `artifactType`) and found by tag; each
//! release's split manifest is one, derived like the release's own manifest.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use cairn_protocol::PackageName;
use cairn_split::Manifest;

use super::*;

/// The split-manifest referrer of a release.
#[derive(Debug)]
pub(super) struct Referrer {
    /// The artifact manifest, whose `subject` is the release's manifest.
    pub(super) manifest: Bytes,
    pub(super) manifest_digest: String,
    /// The artifact manifest's annotations, repeated in its referrers-API descriptor.
    pub(super) annotations: BTreeMap<&'static str, String>,
    /// The one layer: the split manifest JSON, as `GET /v1/cairn/content/{digest}/manifest`
    /// serves it.
    pub(super) split: Bytes,
    pub(super) split_digest: String,
}

/// Builds the split-manifest referrer of a release whose image manifest is `subject`.
pub(super) fn build_referrer(
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
    pub(super) fn descriptor(&self) -> Descriptor<'static> {
        Descriptor {
            media_type: IMAGE_MANIFEST_MEDIA_TYPE,
            digest: self.manifest_digest.clone(),
            size: self.manifest.len() as u64,
            artifact_type: Some(SPLIT_ARTIFACT_TYPE),
            annotations: Some(self.annotations.clone()),
        }
    }
}

/// The manifest a referrer tag of a package repository names: `(bytes, digest, media type)`.
pub(super) async fn referrer_by_tag(
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

/// `GET /v2/{ns}/{name}/referrers/{digest}`: an image index of the manifests whose subject is
/// `digest` (a release's split-manifest referrer), filtered by `artifactType` if asked. A
/// manifest without referrers, or an unknown one, gets an empty index, never a 404.
pub(super) async fn referrers(
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
