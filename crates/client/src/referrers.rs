//! Referrers of a release: the signatures, SBOMs and attestations published beside it over
//! OCI (and cairn's own split manifest), as the registry's OCI referrers API lists them.
//!
//! Referrers are not entries of the log: the registry could hide or add one, and nothing here
//! can tell. What this module does check is that the manifest they refer to is the release's:
//! its digest is computed from the bytes received, and its layer must be the content digest the
//! trusted log records for the version.

use cairn_protocol::{PackageName, ReleaseState};
use reqwest::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ClientError;
use crate::http::is_not_found;
use crate::Client;

/// An artifact whose OCI `subject` is a release's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// What it is (`application/spdx+json`, `application/vnd.dev.cosign.artifact.sig.v1+json`).
    pub artifact_type: Option<String>,
    /// Its manifest's digest.
    pub digest: String,
    /// Its manifest's size in bytes.
    pub size: u64,
}

/// The referrers of one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseReferrers {
    /// The digest of the release's OCI manifest, which the referrers name as their subject.
    pub manifest: String,
    /// The referrers, as the registry lists them.
    pub referrers: Vec<Referrer>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
}

const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

impl Client {
    /// The referrers of `version` of `package`, a release the client trusts.
    ///
    /// `Ok(None)` when the registry has no OCI manifest for it (the reference `warg-server`
    /// speaks no OCI; a yanked version has none).
    pub async fn referrers(
        &self,
        package: &PackageName,
        version: &semver::Version,
    ) -> Result<Option<ReleaseReferrers>, ClientError> {
        let Some(content) = self.state.package(package).and_then(|log| {
            log.state()
                .releases()
                .get(version)
                .and_then(|release| match &release.state {
                    ReleaseState::Released { content } => Some(content.to_string()),
                    ReleaseState::Yanked { .. } => None,
                })
        }) else {
            return Ok(None);
        };
        let repository = format!("{}/{}", package.namespace(), package.name());
        let what = format!("the OCI manifest of {package}@{version}");
        let url = self
            .http
            .url(&format!("v2/{repository}/manifests/{version}"))?;
        let response = self
            .http
            .send_with_header(Method::GET, url, reqwest::header::ACCEPT, MANIFEST_ACCEPT)
            .await?;
        let bytes = match self
            .http
            .success_body(response, self.http.limits.json_bytes, &what)
            .await
        {
            Ok(bytes) => bytes,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        if !manifest.layers.iter().any(|layer| layer.digest == content) {
            return Err(ClientError::BadResponse {
                what,
                reason: format!(
                    "it does not carry the release's content {content}, which the log records"
                ),
            });
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let index: Index = self
            .http
            .get_json(
                &format!("v2/{repository}/referrers/{digest}"),
                &format!("the referrers of {package}@{version}"),
            )
            .await?;
        Ok(Some(ReleaseReferrers {
            manifest: digest,
            referrers: index
                .manifests
                .into_iter()
                .map(|d| Referrer {
                    artifact_type: d.artifact_type,
                    digest: d.digest,
                    size: d.size,
                })
                .collect(),
        }))
    }
}
