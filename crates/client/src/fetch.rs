//! Fetching a release: resolve a semver requirement against the verified package log, then
//! download the content and check it against the digest the release signs.
//!
//! From a registry with cairn's split extension the client reads the content's manifest,
//! downloads only the blobs its [`FragmentCache`](crate::FragmentCache) lacks (in parallel,
//! each checked against its digest before it is cached), joins the file from the cache and
//! checks the file's SHA-256. From any other registry it downloads the whole file from the
//! sources `GET /v1/content/{digest}` names, checks its SHA-256, and caches its blobs so
//! later split downloads can use them. The manifest is never trusted: only the final
//! SHA-256 against the signed release decides.

use cairn_protocol::api::{ContentSource, ContentSourcesResponse};
use cairn_protocol::{Digest, PackageName, ReleaseState};
use cairn_split::{BlobEntry, BlobId, JoinError, Manifest};
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::Method;
use semver::{Version, VersionReq};

use crate::cache::FragmentCache;
use crate::error::{ClientError, SecurityError};
use crate::http::{read_body, BodyError};
use crate::progress::Transfer;
use crate::Client;

/// What a download moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownloadStats {
    /// Content bytes received: blobs as sent (compressed, or as patches), or the whole file.
    pub content_bytes: u64,
    /// Bytes of the split manifest (0 for a whole-file download).
    pub manifest_bytes: u64,
    /// Blobs downloaded.
    pub blobs_downloaded: u64,
    /// Blobs found in the fragment cache.
    pub blobs_cached: u64,
    /// Blobs received as patches against blobs of earlier releases held in the cache.
    pub blobs_patched: u64,
    /// Whether the whole file was downloaded (the registry has no split extension).
    pub whole_file: bool,
}

impl DownloadStats {
    /// Every byte downloaded for the content.
    pub fn bytes_downloaded(&self) -> u64 {
        self.content_bytes + self.manifest_bytes
    }
}

/// Whether a fetch may take a yanked release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yanked {
    /// Only releases that are not yanked (the default).
    Skipped,
    /// Yanked releases too, when nothing else matches.
    Allowed,
}

/// A fetched release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The package.
    pub name: PackageName,
    /// The version chosen.
    pub version: Version,
    /// The content digest the release signs.
    pub digest: Digest,
    /// The file, verified against `digest`.
    pub bytes: Vec<u8>,
    /// What the download moved.
    pub stats: DownloadStats,
}

impl Client {
    /// Updates `name` (following it), picks its highest release that matches `requirement`
    /// and is not yanked, and downloads and verifies its content.
    pub async fn fetch(
        &mut self,
        name: &PackageName,
        requirement: &VersionReq,
    ) -> Result<Fetched, ClientError> {
        self.fetch_allowing(name, requirement, Yanked::Skipped)
            .await
    }

    /// [`Client::fetch`], which with [`Yanked::Allowed`] also takes a yanked release (whose
    /// content the log still names).
    pub async fn fetch_allowing(
        &mut self,
        name: &PackageName,
        requirement: &VersionReq,
        yanked: Yanked,
    ) -> Result<Fetched, ClientError> {
        self.update_packages(std::slice::from_ref(name)).await?;
        let (version, digest) = self.resolve_allowing(name, requirement, yanked)?;
        let what = format!("{name}@{version}");
        let earlier = self.other_releases(name, &version, &digest);
        let (bytes, stats) = self.download_after(&digest, &what, &earlier).await?;
        Ok(Fetched {
            name: name.clone(),
            version,
            digest,
            bytes,
            stats,
        })
    }

    /// The highest release of a followed package matching `requirement` that is not yanked,
    /// from the trusted state (no network).
    pub fn resolve(
        &self,
        name: &PackageName,
        requirement: &VersionReq,
    ) -> Result<(Version, Digest), ClientError> {
        self.resolve_allowing(name, requirement, Yanked::Skipped)
    }

    /// [`Client::resolve`], taking yanked releases too when `yanked` allows them. When only
    /// yanked releases match and they are skipped, the error says so.
    pub fn resolve_allowing(
        &self,
        name: &PackageName,
        requirement: &VersionReq,
        yanked: Yanked,
    ) -> Result<(Version, Digest), ClientError> {
        let package = self
            .state
            .package(name)
            .ok_or_else(|| ClientError::PackageNotFound(name.clone()))?;
        let releases = package.state().releases();
        let mut matching = releases
            .iter()
            .rev()
            .filter(|(version, _)| requirement.matches(version));
        let released = matching
            .clone()
            .find_map(|(version, release)| match &release.state {
                ReleaseState::Released { content } => Some((version.clone(), *content)),
                ReleaseState::Yanked { .. } => None,
            });
        if let Some(found) = released {
            return Ok(found);
        }
        match matching.next() {
            None => Err(ClientError::NoMatchingRelease {
                name: name.clone(),
                requirement: requirement.to_string(),
            }),
            Some((version, _)) if yanked == Yanked::Skipped => Err(ClientError::Yanked {
                name: name.clone(),
                version: version.clone(),
            }),
            Some((version, _)) => {
                let content = package.released_content(version).ok_or_else(|| {
                    ClientError::NoMatchingRelease {
                        name: name.clone(),
                        requirement: requirement.to_string(),
                    }
                })?;
                Ok((version.clone(), content))
            }
        }
    }

    /// The content of `name`'s releases other than `version` (yanked ones too), nearest first:
    /// the releases below it from the highest down, then those above it from the lowest up.
    fn other_releases(
        &self,
        name: &PackageName,
        version: &Version,
        digest: &Digest,
    ) -> Vec<Digest> {
        let Some(package) = self.state.package(name) else {
            return Vec::new();
        };
        let versions: Vec<&Version> = package.state().releases().keys().collect();
        let below = versions.iter().rev().filter(|v| **v < version);
        let above = versions.iter().filter(|v| **v > version);
        below
            .chain(above)
            .filter_map(|v| package.released_content(v))
            .filter(|content| content != digest)
            .collect()
    }

    /// Downloads the content whose SHA-256 is `digest` and verifies it; `what` names it in
    /// errors (`ns:name@1.0.0`).
    pub async fn download(
        &self,
        digest: &Digest,
        what: &str,
    ) -> Result<(Vec<u8>, DownloadStats), ClientError> {
        self.download_after(digest, what, &[]).await
    }

    /// [`Client::download`], where `earlier` names content (other releases of the same
    /// package, nearest first) whose cached blobs may serve as bases: a blob that grew from
    /// one of them is asked for as a patch against it.
    pub async fn download_after(
        &self,
        digest: &Digest,
        what: &str,
        earlier: &[Digest],
    ) -> Result<(Vec<u8>, DownloadStats), ClientError> {
        let manifest_request = format!("the split manifest of {what}");
        let response = self
            .http
            .send(
                Method::GET,
                self.http
                    .url(&format!("v1/cairn/content/{digest}/manifest"))?,
                None,
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return self.download_whole(digest, what).await;
        }
        let json = self
            .http
            .success_body(response, self.http.limits.json_bytes, &manifest_request)
            .await?;
        let manifest = Manifest::from_json(&json).map_err(|e| SecurityError::TamperedContent {
            what: what.to_owned(),
            expected: digest.to_string(),
            reason: format!("its split manifest is invalid: {e}"),
        })?;
        // Distinct blobs add up to about the joined size (skeletons are small); twice the
        // content limit leaves room for any honest manifest and bounds what a lying one costs.
        let listed: u64 = manifest
            .blobs()
            .iter()
            .fold(0u64, |sum, blob| sum.saturating_add(blob.size));
        if manifest.size() > self.http.limits.content_bytes
            || listed > self.http.limits.content_bytes.saturating_mul(2)
        {
            return Err(SecurityError::OversizedResponse {
                what: manifest_request,
                limit: self.http.limits.content_bytes,
            }
            .into());
        }
        let mut stats = DownloadStats {
            manifest_bytes: json.len() as u64,
            ..DownloadStats::default()
        };
        let missing: Vec<BlobEntry> = manifest
            .blobs()
            .iter()
            .filter(|blob| !self.cache.contains(&blob.digest))
            .copied()
            .collect();
        stats.blobs_cached = (manifest.blobs().len() - missing.len()) as u64;
        let progress = &self.config.progress;
        progress.start(
            Transfer::Download,
            what,
            missing.iter().map(|b| b.size).sum(),
        );
        // The manifests of up to three earlier releases this client fetched.
        let earlier: Vec<Manifest> = earlier
            .iter()
            .filter_map(|content| self.cache.manifest(content))
            .take(3)
            .collect();
        let downloads = missing.iter().map(|entry| {
            let bases = crate::patch_bases::bases_for(entry, &manifest, &earlier, &self.cache);
            async move { self.download_blob(entry, what, &bases).await }
        });
        let received: Result<Vec<Received>, ClientError> = futures_util::stream::iter(downloads)
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect()
            .await;
        progress.finish();
        let received = received?;
        stats.blobs_downloaded = received.len() as u64;
        stats.blobs_patched = received.iter().filter(|r| r.patched).count() as u64;
        stats.content_bytes = received.iter().map(|r| r.wire_bytes).sum();

        let cache = self.cache.clone();
        let joined = tokio::task::spawn_blocking(move || {
            join_from_cache(&cache, &manifest).map(|bytes| (bytes, manifest))
        })
        .await
        .map_err(|e| ClientError::Io {
            what: "join",
            path: self.cache.dir().to_owned(),
            source: std::io::Error::other(e),
        })?;
        let (bytes, manifest) = match joined {
            Ok(joined) => joined,
            Err(error) => return Err(self.join_failed(error, digest, what)),
        };
        check_digest(&bytes, digest, what)?;
        // Kept only for choosing bases later; failing to keep it loses nothing else.
        let _ = self.cache.put_manifest(digest, &manifest);
        Ok((bytes, stats))
    }

    /// Downloads one blob (as a patch against one of `bases` when the registry can make one),
    /// checks its size and digest, and caches it.
    async fn download_blob(
        &self,
        entry: &BlobEntry,
        what: &str,
        bases: &[BlobId],
    ) -> Result<Received, ClientError> {
        let tampered = |reason: String| SecurityError::TamperedContent {
            what: format!("{} {} of {what}", entry.kind.as_str(), entry.digest),
            expected: entry.digest.to_string(),
            reason,
        };
        let url = if bases.is_empty() {
            self.http.url(&format!("v1/cairn/blobs/{}", entry.digest))?
        } else {
            let offered: Vec<String> = bases.iter().map(ToString::to_string).collect();
            self.http.url(&format!(
                "v1/cairn/blobs/{}/patch?from={}",
                entry.digest,
                offered.join(",")
            ))?
        };
        let response = self
            .http
            .send_with_header(
                Method::GET,
                url.clone(),
                reqwest::header::ACCEPT_ENCODING,
                "zstd",
            )
            .await?;
        if !response.status().is_success() {
            return Err(
                crate::http::registry_error(response, &format!("blob {}", entry.digest)).await,
            );
        }
        let encoding = match patch_base(&response, bases).map_err(tampered)? {
            Some(base) => Encoding::Patch(base),
            None if response
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"zstd")) =>
            {
                Encoding::Zstd
            }
            None => Encoding::Identity,
        };
        // A compressed blob or a patch is smaller than the blob (the registry stores and
        // sends them only then).
        let body = read_body(response, entry.size, Some(&self.config.progress))
            .await
            .map_err(|e| match e {
                BodyError::TooLong => ClientError::from(tampered(format!(
                    "it is longer than its {} bytes",
                    entry.size
                ))),
                BodyError::Network(reason) => ClientError::Network {
                    url: url.to_string(),
                    reason,
                },
            })?;
        let wire_bytes = body.len() as u64;
        let bytes = match encoding {
            Encoding::Identity => body,
            Encoding::Zstd => decode_zstd(&body, entry.size).map_err(tampered)?,
            Encoding::Patch(base) => {
                let cache = self.cache.clone();
                let base_bytes = tokio::task::spawn_blocking(move || cache.read_verified(&base))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(ClientError::io("cache", &self.cache.path(&base)))?;
                decode_patch(&body, &base_bytes, entry.size).map_err(tampered)?
            }
        };
        // The bar counts the blob's bytes.
        self.config
            .progress
            .advance((bytes.len() as u64).saturating_sub(wire_bytes));
        if bytes.len() as u64 != entry.size {
            return Err(tampered(format!(
                "it has {} bytes instead of {}",
                bytes.len(),
                entry.size
            ))
            .into());
        }
        let actual = cairn_split::BlobId::of(&bytes);
        if actual != entry.digest {
            return Err(tampered(format!("its bytes hash to {actual}")).into());
        }
        let cache = self.cache.clone();
        let digest = entry.digest;
        tokio::task::spawn_blocking(move || cache.put(&digest, &bytes))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(ClientError::io("cache", &self.cache.path(&entry.digest)))?;
        Ok(Received {
            wire_bytes,
            patched: matches!(encoding, Encoding::Patch(_)),
        })
    }

    /// A failed join from the cache: a damaged cache file is removed (the next fetch
    /// downloads it again), and the failure is reported.
    fn join_failed(&self, error: JoinError, digest: &Digest, what: &str) -> ClientError {
        match &error {
            JoinError::DigestMismatch { expected, .. } => self.cache.remove(expected),
            JoinError::SizeMismatch { digest, .. } => self.cache.remove(digest),
            _ => {}
        }
        SecurityError::TamperedContent {
            what: what.to_owned(),
            expected: digest.to_string(),
            reason: format!("its blobs do not join: {error}"),
        }
        .into()
    }

    /// Downloads the whole file from the registry's content sources.
    async fn download_whole(
        &self,
        digest: &Digest,
        what: &str,
    ) -> Result<(Vec<u8>, DownloadStats), ClientError> {
        let sources: ContentSourcesResponse = self
            .http
            .get_json(
                &format!("v1/content/{digest}"),
                &format!("the content sources of {what}"),
            )
            .await?;
        let urls: Vec<&String> = sources
            .content_sources
            .get(digest)
            .into_iter()
            .flatten()
            .map(|source| match source {
                ContentSource::HttpGet { url, .. } => url,
            })
            .collect();
        let mut last_error = None;
        for url in urls {
            let url = self.http.url(url)?;
            let response = match self.http.send(Method::GET, url, None).await {
                Ok(response) => response,
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            self.config.progress.start(
                Transfer::Download,
                what,
                response
                    .content_length()
                    .unwrap_or(0)
                    .min(self.http.limits.content_bytes),
            );
            let body = self
                .http
                .success_body_counted(
                    response,
                    self.http.limits.content_bytes,
                    &format!("the content of {what}"),
                    Some(&self.config.progress),
                )
                .await;
            self.config.progress.finish();
            let bytes = match body {
                Ok(bytes) => bytes,
                Err(error @ ClientError::Security(_)) => return Err(error),
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            check_digest(&bytes, digest, what)?;
            let stats = DownloadStats {
                content_bytes: bytes.len() as u64,
                whole_file: true,
                ..DownloadStats::default()
            };
            let cache = self.cache.clone();
            let digest = *digest;
            let bytes = tokio::task::spawn_blocking(move || {
                cache_blobs_of(&cache, &digest, &bytes);
                bytes
            })
            .await
            .map_err(|e| ClientError::Io {
                what: "cache",
                path: self.cache.dir().to_owned(),
                source: std::io::Error::other(e),
            })?;
            return Ok((bytes, stats));
        }
        Err(last_error.unwrap_or_else(|| ClientError::BadResponse {
            what: format!("the content sources of {what}"),
            reason: "the registry names no source".into(),
        }))
    }
}

/// What one blob's download moved.
struct Received {
    /// Bytes of the body as sent.
    wire_bytes: u64,
    /// Whether it came as a patch.
    patched: bool,
}

/// How a blob's body is encoded.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Identity,
    Zstd,
    /// A zstd patch against this cached blob.
    Patch(BlobId),
}

/// The base a patch answer names (`Cairn-Patch-From`), which must be one the client offered.
fn patch_base(response: &reqwest::Response, offered: &[BlobId]) -> Result<Option<BlobId>, String> {
    let Some(value) = response.headers().get(PATCH_FROM_HEADER) else {
        return Ok(None);
    };
    let base = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<BlobId>().ok())
        .filter(|base| offered.contains(base))
        .ok_or_else(|| {
            format!(
                "the registry sent a patch against {}, a blob this client did not offer",
                String::from_utf8_lossy(value.as_bytes())
            )
        })?;
    Ok(Some(base))
}

/// The header naming the base of a patch.
const PATCH_FROM_HEADER: &str = "cairn-patch-from";

/// The largest window a patch may use: 2^27 bytes covers the largest blobs the registry
/// patches; a frame asking for more is refused before anything is allocated for it.
const PATCH_WINDOW_LOG_MAX: u32 = 27;

/// Applies a zstd patch made against `base`, which must produce at most `size` bytes.
fn decode_patch(body: &[u8], base: &[u8], size: u64) -> Result<Vec<u8>, String> {
    let undecodable = |e: std::io::Error| format!("its patch does not decode: {e}");
    let mut decoder =
        zstd::stream::read::Decoder::with_ref_prefix(body, base).map_err(undecodable)?;
    decoder
        .window_log_max(PATCH_WINDOW_LOG_MAX)
        .map_err(undecodable)?;
    read_at_most(decoder, size, "patch")
}

/// Checks a whole file against the digest its release signs.
fn check_digest(bytes: &[u8], digest: &Digest, what: &str) -> Result<(), SecurityError> {
    let actual = Digest::of(bytes);
    if actual != *digest {
        return Err(SecurityError::TamperedContent {
            what: what.to_owned(),
            expected: digest.to_string(),
            reason: format!("the file's SHA-256 is {actual}"),
        });
    }
    Ok(())
}

fn join_from_cache(cache: &FragmentCache, manifest: &Manifest) -> Result<Vec<u8>, JoinError> {
    let mut out = Vec::with_capacity(manifest.size() as usize);
    let mut source = cache;
    cairn_split::join(manifest, &mut source, &mut out)?;
    Ok(out)
}

/// Caches the blobs of a verified whole file, so later split downloads skip them. Content
/// that does not split (not WebAssembly) is simply not cached.
fn cache_blobs_of(cache: &FragmentCache, digest: &Digest, bytes: &[u8]) {
    if let Ok(split) = cairn_split::split(bytes) {
        for blob in split.blobs() {
            let _ = cache.put(&blob.digest, &blob.bytes);
        }
        let _ = cache.put_manifest(digest, split.manifest());
    }
}

/// Decompresses a blob sent in zstd, which must decompress to at most `size` bytes.
fn decode_zstd(body: &[u8], size: u64) -> Result<Vec<u8>, String> {
    let decoder = zstd::stream::read::Decoder::new(body)
        .map_err(|e| format!("its zstd encoding does not decode: {e}"))?;
    read_at_most(decoder, size, "zstd encoding")
}

/// Reads what `decoder` decodes, which must be at most `size` bytes: a body that expands past
/// the blob's declared size (a decompression bomb) is refused once it has produced one byte too
/// many, never decompressed whole. `what` names the encoding in errors.
fn read_at_most(decoder: impl std::io::Read, size: u64, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut bytes = Vec::with_capacity(size.min(64 << 20) as usize);
    decoder
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("its {what} does not decode: {e}"))?;
    if bytes.len() as u64 > size {
        return Err(format!("its {what} expands past its {size} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod zstd_tests {
    use super::decode_zstd;

    #[test]
    fn a_zstd_body_decodes_to_the_blob() {
        let blob = vec![3u8; 10_000];
        let body = zstd::encode_all(&blob[..], 3).unwrap();
        assert_eq!(decode_zstd(&body, 10_000).unwrap(), blob);
    }

    #[test]
    fn a_body_that_expands_past_the_declared_size_is_refused() {
        // A small body that expands to 256 MiB: refused after the declared size plus a byte.
        let bomb = zstd::encode_all(std::io::Read::take(std::io::repeat(0), 256 << 20), 3).unwrap();
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let error = decode_zstd(&bomb, 4096).unwrap_err();
        assert!(error.contains("expands past its 4096 bytes"), "{error}");
        assert!(decode_zstd(b"not zstd", 100)
            .unwrap_err()
            .contains("does not decode"));
    }
}
