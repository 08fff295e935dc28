//! Publishing package records: sign, post, upload the content the registry asks for, wait
//! until the record is published or rejected, then update the package so the local state
//! holds the verified record.
//!
//! Content goes up split when the registry speaks cairn's extension: the client asks which
//! blobs the registry lacks (`POST /v1/cairn/blobs/missing`), uploads only those, then sends
//! the manifest, so a component sharing modules with published ones moves only what is new.
//! Other registries (the reference `warg-server`) get the whole file at the upload URL.

use std::collections::BTreeMap;

use cairn_protocol::api::{
    EnvelopeBody, MissingContent, PackageRecordResponse, PublishRecordRequest, RecordState,
    UploadEndpoint,
};
use cairn_protocol::{
    Digest, Envelope, HashAlgorithm, KeyId, NamespaceState, PackageEntry, PackageName,
    PackagePermission, PrivateKey, PublicKey, Record, RecordId, Timestamp,
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::Method;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::http::is_not_found;
use crate::progress::Transfer;
use crate::update::CheckpointAge;
use crate::Client;

/// One entry of a record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishEntry {
    /// Creates the package, owned by the signing key.
    Init,
    /// Releases `version` with these bytes (the record signs their SHA-256).
    Release {
        /// The version.
        version: Version,
        /// The file's bytes.
        content: Vec<u8>,
    },
    /// Yanks a released version.
    Yank {
        /// The version.
        version: Version,
    },
    /// Grants permissions to a key.
    Grant {
        /// The key.
        key: PublicKey,
        /// The permissions.
        permissions: Vec<PackagePermission>,
    },
    /// Revokes permissions from a key.
    Revoke {
        /// The key's id.
        key_id: KeyId,
        /// The permissions.
        permissions: Vec<PackagePermission>,
    },
}

/// A published record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The record's id.
    pub record_id: RecordId,
    /// Its leaf index in the registry log.
    pub registry_index: u64,
    /// Content bytes uploaded (blobs or whole files).
    pub bytes_uploaded: u64,
    /// Blobs the registry already held and that were not uploaded.
    pub blobs_skipped: u64,
}

#[derive(Serialize)]
struct MissingBlobsRequest<'a> {
    digests: &'a [cairn_split::BlobId],
}

#[derive(Deserialize)]
struct MissingBlobsResponse {
    missing: Vec<cairn_split::BlobId>,
}

/// What an upload moved.
#[derive(Default)]
struct UploadStats {
    bytes: u64,
    skipped: u64,
}

impl Client {
    /// Signs a record of `entries` with `key`, publishes it and waits until the registry
    /// publishes it; then updates the package so it is followed and the record is verified.
    ///
    /// A record that starts with [`PublishEntry::Init`] is the package's first; any other
    /// links to the package's current head, which is fetched first.
    pub async fn publish(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        entries: Vec<PublishEntry>,
    ) -> Result<Published, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidPublish {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        if entries.is_empty() {
            return Err(invalid("a record needs at least one entry"));
        }
        let (prev, earliest) = self.prepare(name, key, &entries).await?;

        // Each content with the name its progress bar shows (`package@version`).
        let mut contents: BTreeMap<Digest, (Vec<u8>, String)> = BTreeMap::new();
        let entries = entries
            .into_iter()
            .map(|entry| match entry {
                PublishEntry::Init => PackageEntry::Init {
                    key: key.public_key().clone(),
                    hash_algorithm: HashAlgorithm::Sha256,
                },
                PublishEntry::Release { version, content } => {
                    let digest = Digest::of(&content);
                    contents
                        .entry(digest)
                        .or_insert_with(|| (content, format!("{name}@{version}")));
                    PackageEntry::Release {
                        version,
                        content: digest,
                    }
                }
                PublishEntry::Yank { version } => PackageEntry::Yank { version },
                PublishEntry::Grant { key, permissions } => {
                    PackageEntry::Grant { key, permissions }
                }
                PublishEntry::Revoke {
                    key_id,
                    permissions,
                } => PackageEntry::Revoke {
                    key_id,
                    permissions,
                },
            })
            .collect();
        // A record's time may not be lower than its predecessor's, whatever the clocks say.
        let time = earliest.map_or_else(Timestamp::now, |t| t.max(Timestamp::now()));
        let record = Record {
            prev,
            version: 0,
            time,
            entries,
        };
        let envelope = Envelope::signed(record, key);
        let record_id = *envelope.record_id();
        let log_id = name.log_id();
        let response: PackageRecordResponse = self
            .http
            .post_json(
                &format!("v1/package/{log_id}/record"),
                &PublishRecordRequest {
                    package_name: name.clone(),
                    record: EnvelopeBody::from(&envelope),
                    content_sources: BTreeMap::new(),
                },
                &format!("the record for `{name}`"),
            )
            .await?;
        let mut stats = UploadStats::default();
        if let RecordState::Sourcing { missing_content } = &response.state {
            for (digest, missing) in missing_content {
                let (bytes, label) =
                    contents
                        .get(digest)
                        .ok_or_else(|| ClientError::BadResponse {
                            what: format!("the record for `{name}`"),
                            reason: format!(
                                "the registry asks for content {digest} it does not sign"
                            ),
                        })?;
                let uploaded = self
                    .upload(name, &record_id, digest, bytes, label, missing)
                    .await?;
                stats.bytes += uploaded.bytes;
                stats.skipped += uploaded.skipped;
            }
        }
        let registry_index = self.wait_published(name, &record_id, response).await?;
        self.update_packages(std::slice::from_ref(name)).await?;
        Ok(Published {
            record_id,
            registry_index,
            bytes_uploaded: stats.bytes,
            blobs_skipped: stats.skipped,
        })
    }

    /// Learns from the registry what a record of `entries` links to (`prev` and the earliest
    /// time it may carry), refusing before anything is signed what the log would refuse: an
    /// init of a package that exists, a namespace the registry does not host, a key without
    /// the permission an entry needs.
    async fn prepare(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        entries: &[PublishEntry],
    ) -> Result<(Option<RecordId>, Option<Timestamp>), ClientError> {
        let invalid = |reason: &str| ClientError::InvalidPublish {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        // The registry, not the local state, says whether the package exists.
        let found = match self
            .update_with(std::slice::from_ref(name), CheckpointAge::NotChecked)
            .await
        {
            Ok(_) => self
                .state
                .package(name)
                .and_then(|p| p.state().head().copied()),
            Err(ClientError::PackageNotFound(_)) => {
                // Still learn the operator log (its namespaces) from the registry.
                self.update_with(&[], CheckpointAge::NotChecked).await?;
                None
            }
            Err(error) => return Err(error),
        };
        let init = entries[0] == PublishEntry::Init;
        if init && found.is_some() {
            return Err(invalid("the package is already initialised"));
        }
        let operator = self.state.operator.state();
        if operator.namespace(name.namespace()).is_none() {
            return Err(ClientError::UnknownNamespace {
                namespace: name.namespace().to_owned(),
                hosted: operator
                    .namespaces()
                    .iter()
                    .filter(|(_, state)| matches!(state, NamespaceState::Defined))
                    .map(|(namespace, _)| namespace.to_string())
                    .collect(),
            });
        }
        if init {
            return Ok((None, None));
        }
        let head = found.ok_or_else(|| {
            invalid("the package does not exist yet: `cairn publish init` creates it")
        })?;
        let package = self.state.package(name).expect("followed by the update");
        let key_id = key.public_key().fingerprint();
        let held = package.state().permissions(&key_id);
        for entry in entries {
            let needed = match entry {
                PublishEntry::Release { .. } => PackagePermission::Release,
                PublishEntry::Yank { .. } => PackagePermission::Yank,
                _ => continue,
            };
            if !held.contains(&needed) {
                return Err(ClientError::NotPermitted {
                    name: name.clone(),
                    key_id,
                    public_key: key.public_key().to_string(),
                    permission: needed,
                });
            }
        }
        Ok((Some(head.record_id), Some(head.timestamp)))
    }

    /// Publishes the first record of `name`, owned by `key`.
    pub async fn publish_init(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
    ) -> Result<Published, ClientError> {
        self.publish(name, key, vec![PublishEntry::Init]).await
    }

    /// Publishes a release of `content` as `version` of `name`.
    pub async fn publish_release(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        version: Version,
        content: Vec<u8>,
    ) -> Result<Published, ClientError> {
        self.publish(name, key, vec![PublishEntry::Release { version, content }])
            .await
    }

    /// Yanks `version` of `name`.
    pub async fn yank(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        version: Version,
    ) -> Result<Published, ClientError> {
        self.publish(name, key, vec![PublishEntry::Yank { version }])
            .await
    }

    /// Grants `permissions` on `name` to `grantee`.
    pub async fn grant(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        grantee: PublicKey,
        permissions: Vec<PackagePermission>,
    ) -> Result<Published, ClientError> {
        let entry = PublishEntry::Grant {
            key: grantee,
            permissions,
        };
        self.publish(name, key, vec![entry]).await
    }

    /// Revokes `permissions` on `name` from the key `key_id`.
    pub async fn revoke(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        key_id: KeyId,
        permissions: Vec<PackagePermission>,
    ) -> Result<Published, ClientError> {
        let entry = PublishEntry::Revoke {
            key_id,
            permissions,
        };
        self.publish(name, key, vec![entry]).await
    }

    /// Uploads one content: split if the registry can take blobs, whole otherwise.
    async fn upload(
        &self,
        name: &PackageName,
        record_id: &RecordId,
        digest: &Digest,
        bytes: &[u8],
        label: &str,
        missing: &MissingContent,
    ) -> Result<UploadStats, ClientError> {
        if let Some(stats) = self
            .upload_split(name, record_id, digest, bytes, label)
            .await?
        {
            return Ok(stats);
        }
        let Some(UploadEndpoint::Http {
            method,
            url,
            headers,
        }) = missing.upload.first()
        else {
            return Err(ClientError::BadResponse {
                what: format!("the record for `{name}`"),
                reason: format!("no way to upload content {digest} was offered"),
            });
        };
        let method = match method.to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            other => {
                return Err(ClientError::BadResponse {
                    what: format!("the record for `{name}`"),
                    reason: format!("upload method {other} is not POST or PUT"),
                })
            }
        };
        let url = self.http.url(url)?;
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
            .unwrap_or("application/wasm");
        let progress = &self.config.progress;
        progress.start(Transfer::Upload, label, bytes.len() as u64);
        let response = self
            .http
            .send_counted(method, url, bytes.to_vec(), content_type, progress)
            .await;
        progress.finish();
        let what = format!("the upload of {digest}");
        self.http.success_body(response?, 1 << 16, &what).await?;
        Ok(UploadStats {
            bytes: bytes.len() as u64,
            skipped: 0,
        })
    }

    /// Uploads the blobs the registry lacks and the manifest; `None` if the registry does
    /// not speak the split extension or the content cannot be split.
    async fn upload_split(
        &self,
        name: &PackageName,
        record_id: &RecordId,
        digest: &Digest,
        bytes: &[u8],
        label: &str,
    ) -> Result<Option<UploadStats>, ClientError> {
        let Ok(split) = cairn_split::split(bytes) else {
            return Ok(None);
        };
        let digests: Vec<cairn_split::BlobId> = split.blobs().iter().map(|b| b.digest).collect();
        let missing: MissingBlobsResponse = match self
            .http
            .post_json(
                "v1/cairn/blobs/missing",
                &MissingBlobsRequest { digests: &digests },
                "the missing-blobs request",
            )
            .await
        {
            Ok(missing) => missing,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        let log_id = name.log_id();
        let mut stats = UploadStats {
            bytes: 0,
            skipped: (digests.len() - missing.missing.len()) as u64,
        };
        let progress = &self.config.progress;
        let total: u64 = missing
            .missing
            .iter()
            .filter_map(|d| split.blob(d))
            .map(|b| b.bytes.len() as u64)
            .sum();
        progress.start(Transfer::Upload, label, total);
        let uploads = missing.missing.iter().map(|blob_digest| {
            let blob = split.blob(blob_digest);
            let log_id = &log_id;
            async move {
                let blob = blob.ok_or_else(|| ClientError::BadResponse {
                    what: "the missing-blobs request".into(),
                    reason: format!("the registry lists blob {blob_digest}, which is not ours"),
                })?;
                let url = self.http.url(&format!(
                    "v1/package/{log_id}/record/{record_id}/blobs/{blob_digest}"
                ))?;
                let response = self
                    .http
                    .send_counted(
                        Method::PUT,
                        url,
                        blob.bytes.to_vec(),
                        "application/octet-stream",
                        progress,
                    )
                    .await?;
                let what = format!("the upload of blob {blob_digest}");
                self.http.success_body(response, 1 << 16, &what).await?;
                Ok::<u64, ClientError>(blob.bytes.len() as u64)
            }
        });
        let sizes: Result<Vec<u64>, ClientError> = futures_util::stream::iter(uploads)
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect()
            .await;
        progress.finish();
        let sizes = sizes?;
        stats.bytes = sizes.iter().sum();
        let url = self.http.url(&format!(
            "v1/package/{log_id}/record/{record_id}/content/{digest}/manifest"
        ))?;
        let manifest = split.manifest().to_json().into_bytes();
        stats.bytes += manifest.len() as u64;
        let response = self
            .http
            .send(
                Method::POST,
                url,
                Some((manifest, cairn_split::manifest::MANIFEST_MEDIA_TYPE)),
            )
            .await?;
        let what = format!("the manifest of {digest}");
        self.http.success_body(response, 1 << 16, &what).await?;
        Ok(Some(stats))
    }

    /// Polls the record until it is published (its registry index) or rejected (an error).
    async fn wait_published(
        &self,
        name: &PackageName,
        record_id: &RecordId,
        mut response: PackageRecordResponse,
    ) -> Result<u64, ClientError> {
        let deadline = tokio::time::Instant::now() + self.config.publish_timeout;
        let path = format!("v1/package/{}/record/{record_id}", name.log_id());
        loop {
            match response.state {
                RecordState::Published { registry_index } => return Ok(registry_index),
                RecordState::Rejected { reason } => {
                    return Err(ClientError::Rejected {
                        name: name.clone(),
                        record: *record_id,
                        reason,
                    })
                }
                RecordState::Sourcing { .. } | RecordState::Processing => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::PublishTimeout {
                    name: name.clone(),
                    record: *record_id,
                    seconds: self.config.publish_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.config.poll_interval).await;
            response = self
                .http
                .get_json(&path, &format!("the state of record {record_id}"))
                .await?;
        }
    }
}
