//! The OCI distribution API v1.1: every released version of package `ns:name` is served as
//! `<ns>/<name>:<version>` in the CNCF Wasm artifact layout, so `skopeo`, `oras`, `wkg` and
//! other OCI clients can pull from cairn, and publishers push releases with them.
//!
//! The wing, one concern a file: this module (the routes, names, tags and digests),
//! `pull` (manifests, configs and layers of releases; blobs with ranges), `referrers`,
//! `listing` (tags and the catalog), `auth` (who may push; the token endpoint), `uploads`
//! (blob upload sessions), `push` (manifests and tags of scratch repositories), `publish`
//! (a push to a package repository made a signed release), `manifest` (parsing pushed
//! manifests), `errors` (the spec's error bodies).
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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use cairn_protocol::{Digest, LogId};
use cairn_store::BlobDigest;
use sha2::{Digest as _, Sha256};

use crate::app::AppState;

mod auth;
mod errors;
mod listing;
pub mod manifest;
mod publish;
mod pull;
mod push;
mod referrers;
mod uploads;

// The files of the wing share their items through this module: each concern in its file,
// every other file reaching it by name here.
use auth::*;
use errors::*;
use listing::*;
use pull::*;
use referrers::*;
use uploads::*;

pub use auth::PushSettings;
pub(crate) use errors::generic_error;

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
        .route("/v2/token", get(token).fallback(method_not_allowed))
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
                .delete(delete_blob)
                .fallback(method_not_allowed),
        )
        .route("/v2/{ns}/{name}/blobs/uploads/", any(start_upload))
        .route("/v2/{ns}/{name}/blobs/uploads/{upload}", any(upload))
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

// ---------------------------------------------------------------------------------------
// The artifact.

// ---------------------------------------------------------------------------------------
// Handlers.

/// `GET /v2/`. Where pushes are configured, a request without credentials gets 401 with the
/// token challenge, as registries with authentication answer: clients learn the scheme here
/// (skopeo sends credentials only to a registry whose ping asked for them). Anonymous clients
/// then get a pull-only token from the realm, so pulls stay anonymous.
async fn ping(State(oci): State<Oci>, push: Push, headers: HeaderMap) -> Response {
    let allowed =
        anonymous_token(&headers) || matches!(writer(&oci, &push, &headers).await, Ok(Some(_)));
    // With publisher accounts, clients must learn that the registry takes credentials; an
    // account cannot be added without the operator, so a failed read counts as "some".
    let accounts = oci
        .app
        .accounts
        .store()
        .any_active_publisher()
        .await
        .unwrap_or(true);
    if (requires_credentials(&push) || accounts) && !allowed {
        let mut response = OciError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header_value(&challenge(&oci, None)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_protocol::Timestamp;

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
