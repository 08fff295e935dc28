//! Black-box conformance of `cairn serve` to the OCI distribution spec v1.1, group by group
//! as the official conformance suite (`opencontainers/distribution-spec/conformance`, spec
//! `oci-wasm.md` section 4.2) tests it: ping; blob pushes of every kind, sha256 and sha512;
//! mounts; ranges; manifests of every shape (image, index, nested index, artifact, subject,
//! custom fields, data field, no layers, empty blob, large, non-distributable layers);
//! tags and paging; referrers; deletes; invalid digests; out-of-order chunks; sessions
//! across a restart. The official suite needs Go modules no registry here serves, so these
//! tests mirror it over real HTTP on loopback.

mod support;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest as _;
use support::*;

const TOKEN: &str = "conformance";
const REPO: &str = "conformance/repo1";
const REPO2: &str = "conformance/repo2";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex(&sha2::Sha512::digest(bytes)))
}

/// A registry with pushes enabled, and requests against it.
struct Registry {
    server: TestServer,
    http: reqwest::blocking::Client,
}

impl Registry {
    fn start(name: &str) -> Registry {
        let data = temp_dir(name);
        Registry::at(&data)
    }

    fn at(data: &std::path::Path) -> Registry {
        let server =
            TestServer::start(data, &["--namespace", "example", "--oci-push-token", TOKEN]);
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Registry { server, http }
    }

    /// A request with the push credential; `path` is absolute or server-relative.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.server.url)
        };
        self.http.request(method, url).bearer_auth(TOKEN)
    }

    fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().unwrap()
    }

    fn head(&self, path: &str) -> Response {
        self.request(Method::HEAD, path).send().unwrap()
    }

    fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().unwrap()
    }

    /// Starts an upload session; its location.
    fn start_upload(&self, repo: &str) -> String {
        let response = self
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("content-length", "0")
            .send()
            .unwrap();
        assert_eq!(response.status(), 202);
        header(&response, "location")
    }

    /// POST then PUT with the whole blob.
    fn push_post_put(&self, repo: &str, digest: &str, bytes: &[u8]) -> Response {
        let location = self.start_upload(repo);
        self.request(Method::PUT, &location)
            .query(&[("digest", digest)])
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap()
    }

    /// One POST with `?digest=` and the blob.
    fn push_single_post(&self, repo: &str, digest: &str, bytes: &[u8]) -> Response {
        self.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .query(&[("digest", digest)])
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .unwrap()
    }

    /// PATCH of `bytes` at `start`, with a `Content-Range`.
    fn patch(&self, location: &str, start: usize, bytes: &[u8]) -> Response {
        self.request(Method::PATCH, location)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{start}-{}", start + bytes.len() - 1),
            )
            .body(bytes.to_vec())
            .send()
            .unwrap()
    }

    fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        assert_eq!(self.push_post_put(repo, &digest, bytes).status(), 201);
        digest
    }

    fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .unwrap()
    }

    /// Checks that `repo` serves `bytes` as the blob `digest`, by GET and HEAD.
    fn assert_blob(&self, repo: &str, digest: &str, bytes: &[u8]) {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = self.get(&path);
        assert_eq!(response.status(), 200, "GET {path}");
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert_eq!(header(&response, "content-length"), bytes.len().to_string());
        assert_eq!(response.bytes().unwrap().to_vec(), bytes, "GET {path}");
        let response = self.head(&path);
        assert_eq!(response.status(), 200, "HEAD {path}");
        assert_eq!(header(&response, "content-length"), bytes.len().to_string());
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert!(response.bytes().unwrap().is_empty());
    }
}

/// An image manifest over a config and layers, with optional extra top-level fields.
fn image_manifest(config: (&str, &[u8]), layers: &[(&str, &[u8])], extra: Value) -> Vec<u8> {
    let descriptor = |media_type: &str, bytes: &[u8]| json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() });
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(config.0, config.1),
        "layers": layers.iter().map(|(t, b)| descriptor(t, b)).collect::<Vec<_>>(),
    });
    if let Value::Object(extra) = extra {
        manifest.as_object_mut().unwrap().extend(extra);
    }
    serde_json::to_vec(&manifest).unwrap()
}

/// A pushed image: config and one layer in `repo`, manifest by `tag`. Its manifest bytes.
fn push_image(registry: &Registry, repo: &str, tag: &str, layer: &[u8]) -> Vec<u8> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    registry.push_blob(repo, config);
    registry.push_blob(repo, layer);
    let manifest = image_manifest(
        ("application/vnd.oci.image.config.v1+json", config),
        &[("application/vnd.oci.image.layer.v1.tar", layer)],
        json!({}),
    );
    assert_eq!(
        registry
            .put_manifest(repo, tag, MANIFEST_TYPE, &manifest)
            .status(),
        201
    );
    manifest
}

#[test]
fn ping() {
    let registry = Registry::start("conf-ping");
    let response = registry.get("/v2/");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let anonymous = registry
        .http
        .get(format!("{}/v2/", registry.server.url))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(header(&anonymous, "www-authenticate").starts_with("Bearer realm="));
}

#[test]
fn blobs_are_pushed_with_post_and_put_in_sha256_and_sha512() {
    let registry = Registry::start("conf-post-put");
    for (bytes, digest) in [
        (b"sha256 blob".to_vec(), sha256(b"sha256 blob")),
        (b"sha512 blob".to_vec(), sha512(b"sha512 blob")),
    ] {
        let response = registry.push_post_put(REPO, &digest, &bytes);
        assert_eq!(response.status(), 201);
        assert_eq!(
            header(&response, "location"),
            format!("/v2/{REPO}/blobs/{digest}")
        );
        assert_eq!(header(&response, "docker-content-digest"), digest);
        registry.assert_blob(REPO, &digest, &bytes);
    }
    // The same bytes under the other algorithm are another blob.
    let digest = sha512(b"sha256 blob");
    assert_error(
        registry.get(&format!("/v2/{REPO}/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
}

#[test]
fn blobs_are_pushed_in_a_single_post() {
    let registry = Registry::start("conf-single-post");
    for (bytes, digest) in [
        (b"single post".to_vec(), sha256(b"single post")),
        (b"single post 512".to_vec(), sha512(b"single post 512")),
    ] {
        let response = registry.push_single_post(REPO, &digest, &bytes);
        assert_eq!(response.status(), 201);
        assert_eq!(header(&response, "docker-content-digest"), digest);
        registry.assert_blob(REPO, &digest, &bytes);
    }
}

#[test]
fn empty_blobs_are_pushed_and_served() {
    let registry = Registry::start("conf-empty-blob");
    let digest = sha256(b"");
    assert_eq!(registry.push_post_put(REPO, &digest, b"").status(), 201);
    registry.assert_blob(REPO, &digest, b"");
    // The empty JSON descriptor's blob, `{}`.
    let digest = registry.push_blob(REPO, b"{}");
    registry.assert_blob(REPO, &digest, b"{}");
}

#[test]
fn blobs_are_pushed_in_chunks() {
    let registry = Registry::start("conf-chunks");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();

    // One chunk, then PUT without a body.
    let location = registry.start_upload(REPO);
    let response = registry.patch(&location, 0, &bytes);
    assert_eq!(response.status(), 202);
    assert_eq!(header(&response, "range"), format!("0-{}", bytes.len() - 1));
    let location = header(&response, "location");
    let digest = sha256(&bytes);
    let done = registry
        .request(Method::PUT, &location)
        .query(&[("digest", &digest)])
        .send()
        .unwrap();
    assert_eq!(done.status(), 201);
    registry.assert_blob(REPO, &digest, &bytes);

    // Several chunks, the last one in the PUT; the status reports progress.
    let bytes512: Vec<u8> = bytes.iter().rev().copied().collect();
    let mut location = registry.start_upload(REPO2);
    for (i, chunk) in bytes512[..250_000].chunks(100_000).enumerate() {
        let response = registry.patch(&location, i * 100_000, chunk);
        assert_eq!(response.status(), 202);
        location = header(&response, "location");
    }
    let status = registry.get(&location);
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-249999");
    let digest = sha512(&bytes512);
    let done = registry
        .request(Method::PUT, &location)
        .query(&[("digest", &digest)])
        .header("content-type", "application/octet-stream")
        .body(bytes512[250_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(done.status(), 201);
    registry.assert_blob(REPO2, &digest, &bytes512);
}

#[test]
fn streamed_patches_without_a_content_range_append() {
    let registry = Registry::start("conf-stream");
    let location = registry.start_upload(REPO);
    let first = registry
        .request(Method::PATCH, &location)
        .header("content-type", "application/octet-stream")
        .body(b"streamed ".to_vec())
        .send()
        .unwrap();
    assert_eq!(first.status(), 202);
    let second = registry
        .request(Method::PATCH, &header(&first, "location"))
        .header("content-type", "application/octet-stream")
        .body(b"upload".to_vec())
        .send()
        .unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(header(&second, "range"), "0-14");
    let digest = sha256(b"streamed upload");
    let done = registry
        .request(Method::PUT, &header(&second, "location"))
        .query(&[("digest", &digest)])
        .send()
        .unwrap();
    assert_eq!(done.status(), 201);
    registry.assert_blob(REPO, &digest, b"streamed upload");
}

#[test]
fn an_out_of_order_chunk_is_416_and_the_upload_goes_on() {
    let registry = Registry::start("conf-416");
    let location = registry.start_upload(REPO);
    assert_eq!(registry.patch(&location, 0, b"first ").status(), 202);
    // A gap, an overlap, a repeat of the start: all 416, each reporting what is held.
    for start in [10, 3, 0] {
        let response = registry.patch(&location, start, b"second");
        assert_eq!(header(&response, "range"), "0-5");
        assert_error(response, 416, "BLOB_UPLOAD_INVALID");
    }
    assert_eq!(registry.patch(&location, 6, b"second").status(), 202);
    let digest = sha256(b"first second");
    // The closing PUT may carry the last chunk; out of order, it is 416 too, and the
    // upload goes on.
    let response = registry
        .request(Method::PUT, &location)
        .query(&[("digest", &digest)])
        .header("content-type", "application/octet-stream")
        .header("content-range", "20-25")
        .body(b"third!".to_vec())
        .send()
        .unwrap();
    assert_eq!(header(&response, "range"), "0-11");
    assert_error(response, 416, "BLOB_UPLOAD_INVALID");
    let done = registry
        .request(Method::PUT, &location)
        .query(&[("digest", &digest)])
        .send()
        .unwrap();
    assert_eq!(done.status(), 201);
    registry.assert_blob(REPO, &digest, b"first second");
}

#[test]
fn upload_sessions_are_cancelled_and_survive_a_restart() {
    let data = temp_dir("conf-sessions");
    let registry = Registry::at(&data);
    let cancelled = registry.start_upload(REPO);
    assert_eq!(registry.delete(&cancelled).status(), 204);
    assert_error(registry.get(&cancelled), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_error(
        registry.patch(&cancelled, 0, b"x"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    // A session belongs to its repository.
    let location = registry.start_upload(REPO);
    let elsewhere = location.replace(REPO, REPO2);
    assert_error(registry.get(&elsewhere), 404, "BLOB_UPLOAD_UNKNOWN");
    // Ids that are not ids are unknown, never a path.
    assert_error(
        registry.get(&format!("/v2/{REPO}/blobs/uploads/..%2F..%2Fcairn.db")),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    assert_eq!(
        registry.patch(&location, 0, b"before restart, ").status(),
        202
    );
    assert!(registry.server.stop().success());

    let registry = Registry::at(&data);
    let status = registry.get(&location);
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-15");
    assert_eq!(registry.patch(&location, 16, b"after").status(), 202);
    let bytes = b"before restart, after";
    let digest = sha256(bytes);
    let done = registry
        .request(Method::PUT, &location)
        .query(&[("digest", &digest)])
        .send()
        .unwrap();
    assert_eq!(done.status(), 201);
    registry.assert_blob(REPO, &digest, bytes);
}

#[test]
fn blobs_are_mounted_across_repositories() {
    let registry = Registry::start("conf-mount");
    let digest = registry.push_blob(REPO, b"mounted blob");
    registry.push_blob(REPO2, b"other blob");
    assert_error(
        registry.get(&format!("/v2/{REPO2}/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    // From a named repository.
    let response = registry
        .request(Method::POST, &format!("/v2/{REPO2}/blobs/uploads/"))
        .query(&[("mount", digest.as_str()), ("from", REPO)])
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        header(&response, "location"),
        format!("/v2/{REPO2}/blobs/{digest}")
    );
    registry.assert_blob(REPO2, &digest, b"mounted blob");
    // Anonymous: no `from`.
    let response = registry
        .request(Method::POST, "/v2/conformance/repo3/blobs/uploads/")
        .query(&[("mount", digest.as_str())])
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    registry.assert_blob("conformance/repo3", &digest, b"mounted blob");
    // A blob the source does not have: an ordinary session instead.
    let missing = sha256(b"nowhere");
    let response = registry
        .request(Method::POST, &format!("/v2/{REPO2}/blobs/uploads/"))
        .query(&[("mount", missing.as_str()), ("from", REPO)])
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = header(&response, "location");
    let done = registry
        .request(Method::PUT, &location)
        .query(&[("digest", &missing)])
        .body(b"nowhere".to_vec())
        .send()
        .unwrap();
    assert_eq!(done.status(), 201);
}

#[test]
fn blobs_are_read_in_ranges() {
    let registry = Registry::start("conf-ranges");
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let digest = registry.push_blob(REPO, &bytes);
    let path = format!("/v2/{REPO}/blobs/{digest}");
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=500000-700001", 500_000, 700_001),
        ("bytes=999990-", 999_990, 999_999),
        ("bytes=-5", 999_995, 999_999),
        ("bytes=10-5000000", 10, 999_999),
    ] {
        let response = registry
            .request(Method::GET, &path)
            .header("range", range)
            .send()
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            header(&response, "content-range"),
            format!("bytes {start}-{end}/1000000"),
            "{range}"
        );
        assert_eq!(
            header(&response, "content-length"),
            (end - start + 1).to_string()
        );
        assert_eq!(
            response.bytes().unwrap().to_vec(),
            bytes[start..=end],
            "{range}"
        );
    }
    for range in ["bytes=1000000-", "bytes=2000000-3000000"] {
        let response = registry
            .request(Method::GET, &path)
            .header("range", range)
            .send()
            .unwrap();
        assert_eq!(response.status(), 416, "{range}");
        assert_eq!(header(&response, "content-range"), "bytes */1000000");
    }
}

#[test]
fn blobs_are_deleted() {
    let registry = Registry::start("conf-blob-delete");
    let digest = registry.push_blob(REPO, b"to delete");
    let path = format!("/v2/{REPO}/blobs/{digest}");
    registry.push_blob(REPO, b"stays");
    assert_eq!(registry.delete(&path).status(), 202);
    assert_error(registry.get(&path), 404, "BLOB_UNKNOWN");
    assert_eq!(registry.head(&path).status(), 404);
    assert_error(registry.delete(&path), 404, "BLOB_UNKNOWN");
    registry.assert_blob(REPO, &sha256(b"stays"), b"stays");
}

#[test]
fn invalid_and_mismatched_digests_are_400() {
    let registry = Registry::start("conf-digests");
    for bad in [
        "sha256:abc",
        "sha256:ZZ",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256",
        &format!("sha256:{}", "A".repeat(64)),
        &format!("sha512:{}", "0".repeat(64)),
    ] {
        assert_error(
            registry.get(&format!("/v2/{REPO}/blobs/{bad}")),
            400,
            "DIGEST_INVALID",
        );
        assert_error(
            registry.push_single_post(REPO, bad, b"bytes"),
            400,
            "DIGEST_INVALID",
        );
    }
    // Well formed, of other bytes: in every kind of push.
    let wrong = sha256(b"other bytes");
    assert_error(
        registry.push_post_put(REPO, &wrong, b"bytes"),
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        registry.push_single_post(REPO, &wrong, b"bytes"),
        400,
        "DIGEST_INVALID",
    );
    let location = registry.start_upload(REPO);
    assert_eq!(registry.patch(&location, 0, b"bytes").status(), 202);
    assert_error(
        registry
            .request(Method::PUT, &location)
            .query(&[("digest", &wrong)])
            .send()
            .unwrap(),
        400,
        "DIGEST_INVALID",
    );
    // A manifest pushed by a digest it does not have.
    let manifest = image_manifest((EMPTY_TYPE, b"{}"), &[], json!({}));
    registry.push_blob(REPO, b"{}");
    assert_error(
        registry.put_manifest(REPO, &wrong, MANIFEST_TYPE, &manifest),
        400,
        "DIGEST_INVALID",
    );
}

#[test]
fn manifests_are_pulled_by_tag_and_digest() {
    let registry = Registry::start("conf-manifests");
    let manifest = push_image(&registry, REPO, "v1", b"layer one");
    let digest = sha256(&manifest);
    for reference in ["v1", digest.as_str()] {
        let path = format!("/v2/{REPO}/manifests/{reference}");
        let response = registry.get(&path);
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), MANIFEST_TYPE);
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert_eq!(
            header(&response, "content-length"),
            manifest.len().to_string()
        );
        assert_eq!(response.bytes().unwrap().to_vec(), manifest);
        let response = registry.head(&path);
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert_eq!(
            header(&response, "content-length"),
            manifest.len().to_string()
        );
    }
    assert_error(
        registry.get(&format!("/v2/{REPO}/manifests/v2")),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        registry.get(&format!("/v2/{REPO}/manifests/{}", sha256(b"none"))),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        registry.get("/v2/conformance/nothing/manifests/v1"),
        404,
        "NAME_UNKNOWN",
    );
    // Pushing the same manifest under another tag and again is the same digest.
    let response = registry.put_manifest(REPO, "v1-again", MANIFEST_TYPE, &manifest);
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(
        header(&response, "location"),
        format!("/v2/{REPO}/manifests/{digest}")
    );
}

#[test]
fn manifests_are_pushed_by_digest_with_tag_parameters_and_in_sha512() {
    let registry = Registry::start("conf-tag-params");
    registry.push_blob(REPO, b"{}");
    let manifest = image_manifest((EMPTY_TYPE, b"{}"), &[], json!({}));
    let digest = sha256(&manifest);
    let response = registry
        .request(Method::PUT, &format!("/v2/{REPO}/manifests/{digest}"))
        .query(&[("tag", "a"), ("tag", "b")])
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let tags: Vec<_> = response
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags, ["a", "b"]);
    for tag in ["a", "b"] {
        let response = registry.get(&format!("/v2/{REPO}/manifests/{tag}"));
        assert_eq!(header(&response, "docker-content-digest"), digest);
    }
    // An invalid tag parameter is refused, and nothing is stored.
    let other = image_manifest((EMPTY_TYPE, b"{}"), &[], json!({"annotations": {"x": "y"}}));
    let response = registry
        .request(
            Method::PUT,
            &format!("/v2/{REPO}/manifests/{}", sha256(&other)),
        )
        .query(&[("tag", "-bad")])
        .header("content-type", MANIFEST_TYPE)
        .body(other.clone())
        .send()
        .unwrap();
    assert_error(response, 400, "TAG_INVALID");
    assert_error(
        registry.get(&format!("/v2/{REPO}/manifests/{}", sha256(&other))),
        404,
        "MANIFEST_UNKNOWN",
    );
    // By a sha512 digest.
    let digest512 = sha512(&other);
    let response = registry.put_manifest(REPO, &digest512, MANIFEST_TYPE, &other);
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "docker-content-digest"), digest512);
    let response = registry.get(&format!("/v2/{REPO}/manifests/{digest512}"));
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap().to_vec(), other);
}

#[test]
fn manifests_of_every_shape_are_stored_byte_for_byte() {
    let registry = Registry::start("conf-shapes");
    registry.push_blob(REPO, b"{}");
    let layer = b"artifact layer".to_vec();
    registry.push_blob(REPO, &layer);
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        // An artifact: artifactType, the empty config with its data field.
        (
            "artifact",
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "artifactType": "application/vnd.example.thing",
                "config": {"mediaType": EMPTY_TYPE, "digest": sha256(b"{}"), "size": 2, "data": "e30="},
                "layers": [{"mediaType": "application/vnd.example.layer", "digest": sha256(&layer), "size": layer.len()}],
            }))
            .unwrap(),
        ),
        // No layers at all.
        (
            "no-layers",
            image_manifest((EMPTY_TYPE, b"{}"), &[], json!({"artifactType": "application/vnd.example.empty"})),
        ),
        // Fields the spec does not know, and unusual whitespace: kept as sent.
        (
            "custom-fields",
            format!(
                "{{ \"schemaVersion\" : 2,\n \"mediaType\": \"{MANIFEST_TYPE}\", \"config\": {{\"mediaType\": \"{EMPTY_TYPE}\", \"digest\": \"{}\", \"size\": 2}}, \"layers\": [], \"org.example.custom\": {{\"nested\": [1, 2, 3]}} }}",
                sha256(b"{}")
            )
            .into_bytes(),
        ),
        // A layer that lives elsewhere: the registry need not hold it.
        (
            "non-distributable",
            image_manifest(
                (EMPTY_TYPE, b"{}"),
                &[("application/vnd.oci.image.layer.nondistributable.v1.tar", b"not here")],
                json!({}),
            ),
        ),
    ];
    for (tag, manifest) in &shapes {
        let response = registry.put_manifest(REPO, tag, MANIFEST_TYPE, manifest);
        assert_eq!(response.status(), 201, "{tag}");
        let response = registry.get(&format!("/v2/{REPO}/manifests/{tag}"));
        assert_eq!(
            header(&response, "docker-content-digest"),
            sha256(manifest),
            "{tag}"
        );
        assert_eq!(&response.bytes().unwrap().to_vec(), manifest, "{tag}");
    }
    // A layer that must be here and is not.
    let missing = image_manifest(
        (EMPTY_TYPE, b"{}"),
        &[("application/vnd.oci.image.layer.v1.tar", b"not here")],
        json!({}),
    );
    assert_error(
        registry.put_manifest(REPO, "missing", MANIFEST_TYPE, &missing),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    // Not JSON.
    assert_error(
        registry.put_manifest(REPO, "junk", MANIFEST_TYPE, b"{not json"),
        400,
        "MANIFEST_INVALID",
    );
}

#[test]
fn indexes_and_nested_indexes_refer_to_manifests() {
    let registry = Registry::start("conf-index");
    let amd64 = push_image(&registry, REPO, "amd64", b"amd64 layer");
    let arm64 = push_image(&registry, REPO, "arm64", b"arm64 layer");
    let entry = |bytes: &[u8], arch: &str| {
        json!({"mediaType": MANIFEST_TYPE, "digest": sha256(bytes), "size": bytes.len(),
               "platform": {"architecture": arch, "os": "linux"}})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [entry(&amd64, "amd64"), entry(&arm64, "arm64")],
    }))
    .unwrap();
    let response = registry.put_manifest(REPO, "multi", INDEX_TYPE, &index);
    assert_eq!(response.status(), 201);
    let response = registry.get(&format!("/v2/{REPO}/manifests/multi"));
    assert_eq!(header(&response, "content-type"), INDEX_TYPE);
    assert_eq!(response.bytes().unwrap().to_vec(), index);
    // An index of indexes.
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{"mediaType": INDEX_TYPE, "digest": sha256(&index), "size": index.len()}],
    }))
    .unwrap();
    assert_eq!(
        registry
            .put_manifest(REPO, "nested", INDEX_TYPE, &nested)
            .status(),
        201
    );
    let response = registry.get(&format!("/v2/{REPO}/manifests/nested"));
    assert_eq!(response.bytes().unwrap().to_vec(), nested);
    // An index naming a manifest this repository does not have.
    let sparse = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [entry(b"absent manifest", "riscv64")],
    }))
    .unwrap();
    assert_error(
        registry.put_manifest(REPO, "sparse", INDEX_TYPE, &sparse),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
}

#[test]
fn a_manifest_larger_than_4_mib_is_413() {
    let registry = Registry::start("conf-large");
    registry.push_blob(REPO, b"{}");
    // Just under the limit is accepted.
    let padding = |size: usize| {
        let base = image_manifest(
            (EMPTY_TYPE, b"{}"),
            &[],
            json!({"annotations": {"pad": ""}}),
        );
        let fill = "x".repeat(size - base.len());
        image_manifest(
            (EMPTY_TYPE, b"{}"),
            &[],
            json!({"annotations": {"pad": fill}}),
        )
    };
    let large = padding(4 * 1024 * 1024);
    assert_eq!(large.len(), 4 * 1024 * 1024);
    assert_eq!(
        registry
            .put_manifest(REPO, "large", MANIFEST_TYPE, &large)
            .status(),
        201
    );
    let response = registry.get(&format!("/v2/{REPO}/manifests/large"));
    assert_eq!(response.bytes().unwrap().len(), large.len());
    let too_large = padding(4 * 1024 * 1024 + 1);
    let response = registry.put_manifest(REPO, "too-large", MANIFEST_TYPE, &too_large);
    assert_eq!(response.status(), 413);
    assert_eq!(header(&response, "content-type"), "application/json");
}

#[test]
fn subjects_make_referrers_filtered_by_artifact_type() {
    let registry = Registry::start("conf-referrers");
    let subject = push_image(&registry, REPO, "v1", b"subject layer");
    registry.push_blob(REPO, b"{}");
    let subject_digest = sha256(&subject);
    let descriptor =
        json!({"mediaType": MANIFEST_TYPE, "digest": subject_digest, "size": subject.len()});
    let referrer = |artifact_type: &str, note: &str| {
        image_manifest(
            (EMPTY_TYPE, b"{}"),
            &[],
            json!({"artifactType": artifact_type, "subject": descriptor.clone(),
                   "annotations": {"note": note}}),
        )
    };
    let signature = referrer("application/vnd.example.signature", "sig");
    let sbom = referrer("application/vnd.example.sbom", "sbom");
    for manifest in [&signature, &sbom] {
        let response = registry.put_manifest(REPO, &sha256(manifest), MANIFEST_TYPE, manifest);
        assert_eq!(response.status(), 201);
        assert_eq!(header(&response, "oci-subject"), subject_digest);
    }
    let path = format!("/v2/{REPO}/referrers/{subject_digest}");
    let response = registry.get(&path);
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), INDEX_TYPE);
    let index: Value = response.json().unwrap();
    let mut listed: Vec<(String, String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_owned(),
                d["artifactType"].as_str().unwrap().to_owned(),
                d["annotations"]["note"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            sha256(&signature),
            "application/vnd.example.signature".to_owned(),
            "sig".to_owned(),
        ),
        (
            sha256(&sbom),
            "application/vnd.example.sbom".to_owned(),
            "sbom".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    // Filtered.
    let response = registry
        .request(Method::GET, &path)
        .query(&[("artifactType", "application/vnd.example.sbom")])
        .send()
        .unwrap();
    assert_eq!(header(&response, "oci-filters-applied"), "artifactType");
    let index: Value = response.json().unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sha256(&sbom));
    // A subject that is not (yet) there: the push is accepted and listed under it.
    let absent = sha256(b"absent subject");
    let orphan = image_manifest(
        (EMPTY_TYPE, b"{}"),
        &[],
        json!({"artifactType": "application/vnd.example.signature",
               "subject": {"mediaType": MANIFEST_TYPE, "digest": absent, "size": 10}}),
    );
    let response = registry.put_manifest(REPO, &sha256(&orphan), MANIFEST_TYPE, &orphan);
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "oci-subject"), absent);
    let index: Value = registry
        .get(&format!("/v2/{REPO}/referrers/{absent}"))
        .json()
        .unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&orphan));
    // A repository that does not exist yet has no referrers either: an empty index.
    let response = registry.get(&format!("/v2/conformance/nowhere/referrers/{absent}"));
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), INDEX_TYPE);
    let index: Value = response.json().unwrap();
    assert_eq!(index["manifests"], json!([]));
    // No referrers: an empty index, never a 404; a malformed digest: 400.
    let response = registry.get(&format!("/v2/{REPO}/referrers/{}", sha256(b"lonely")));
    assert_eq!(response.status(), 200);
    let index: Value = response.json().unwrap();
    assert_eq!(index["manifests"], json!([]));
    assert_error(
        registry.get(&format!("/v2/{REPO}/referrers/sha256:nothex")),
        400,
        "DIGEST_INVALID",
    );
    // Deleting a referrer removes it from the listing.
    assert_eq!(
        registry
            .delete(&format!("/v2/{REPO}/manifests/{}", sha256(&sbom)))
            .status(),
        202
    );
    let index: Value = registry.get(&path).json().unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn tags_are_listed_with_paging_and_deleted() {
    let registry = Registry::start("conf-tags");
    registry.push_blob(REPO, b"{}");
    let manifest = image_manifest((EMPTY_TYPE, b"{}"), &[], json!({}));
    let mut tags: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
    tags.extend(["latest".to_owned(), "A".to_owned(), "v1.0.0".to_owned()]);
    for tag in &tags {
        assert_eq!(
            registry
                .put_manifest(REPO, tag, MANIFEST_TYPE, &manifest)
                .status(),
            201
        );
    }
    tags.sort();
    let list = |query: &[(&str, &str)]| -> (Vec<String>, Option<String>) {
        let response = registry
            .request(Method::GET, &format!("/v2/{REPO}/tags/list"))
            .query(query)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let link = response
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().unwrap();
        assert_eq!(body["name"], REPO);
        let listed = body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        (listed, link)
    };
    assert_eq!(list(&[]).0, tags);
    // Pages of 4, following `last`.
    let mut seen = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let mut query = vec![("n", "4")];
        if let Some(last) = &last {
            query.push(("last", last.as_str()));
        }
        let (page, link) = list(&query);
        assert!(page.len() <= 4);
        seen.extend(page.clone());
        match link {
            Some(link) => {
                assert!(link.contains("rel=\"next\""), "{link}");
                last = page.last().cloned();
            }
            None => break,
        }
    }
    assert_eq!(seen, tags);
    assert_eq!(list(&[("n", "0")]).0, Vec::<String>::new());
    assert_eq!(
        list(&[("last", "t05")]).0,
        tags[tags.iter().position(|t| t == "t05").unwrap() + 1..]
    );
    // Deleting a tag.
    assert_eq!(
        registry
            .delete(&format!("/v2/{REPO}/manifests/latest"))
            .status(),
        202
    );
    assert!(!list(&[]).0.contains(&"latest".to_owned()));
    assert_error(
        registry.delete(&format!("/v2/{REPO}/manifests/latest")),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        registry.get("/v2/conformance/none/tags/list"),
        404,
        "NAME_UNKNOWN",
    );
}

#[test]
fn manifests_are_deleted_with_their_tags() {
    let registry = Registry::start("conf-manifest-delete");
    let manifest = push_image(&registry, REPO, "v1", b"layer");
    let digest = sha256(&manifest);
    assert_eq!(
        registry
            .put_manifest(REPO, "v2", MANIFEST_TYPE, &manifest)
            .status(),
        201
    );
    assert_eq!(
        registry
            .delete(&format!("/v2/{REPO}/manifests/{digest}"))
            .status(),
        202
    );
    for reference in ["v1", "v2", digest.as_str()] {
        assert_error(
            registry.get(&format!("/v2/{REPO}/manifests/{reference}")),
            404,
            "MANIFEST_UNKNOWN",
        );
    }
    assert_error(
        registry.delete(&format!("/v2/{REPO}/manifests/{digest}")),
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        registry.delete(&format!("/v2/{REPO}/manifests/sha256:bad")),
        400,
        "DIGEST_INVALID",
    );
    // The blobs stay until deleted themselves.
    registry.assert_blob(REPO, &sha256(b"layer"), b"layer");
}

#[test]
fn the_catalog_lists_scratch_repositories() {
    let registry = Registry::start("conf-catalog");
    registry.push_blob(REPO, b"a");
    registry.push_blob(REPO2, b"b");
    let catalog: Value = registry.get("/v2/_catalog").json().unwrap();
    let repositories = catalog["repositories"].as_array().unwrap();
    assert!(repositories.contains(&json!(REPO)));
    assert!(repositories.contains(&json!(REPO2)));
}

#[test]
fn names_and_paths_that_are_not_the_api_get_json_errors() {
    let registry = Registry::start("conf-names");
    for (path, status, code) in [
        ("/v2/Upper/case/tags/list", 400, "NAME_INVALID"),
        ("/v2/a/b/c/tags/list", 404, "NAME_UNKNOWN"),
        ("/v2/nothing-here", 404, "NAME_UNKNOWN"),
        (
            "/v2/conformance/repo1/unknown/endpoint",
            404,
            "NAME_UNKNOWN",
        ),
    ] {
        let response = registry.get(path);
        assert_eq!(
            header(&response, "content-type"),
            "application/json",
            "{path}"
        );
        assert_error(response, status, code);
    }
    assert_error(
        registry.put_manifest(REPO, "bad%20tag", MANIFEST_TYPE, b"{}"),
        400,
        "TAG_INVALID",
    );
}

#[test]
fn descriptor_sizes_must_be_non_negative_int64s() {
    let registry = Registry::start("conf-sizes");
    let config = registry.push_blob(REPO, b"{}");
    for size in [
        json!(-2),
        json!(18446744073709551616u128 as f64),
        json!("2"),
        json!(1.5),
    ] {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": EMPTY_TYPE, "digest": config, "size": size},
            "layers": [],
        }))
        .unwrap();
        let response = registry.put_manifest(REPO, "sizes", MANIFEST_TYPE, &manifest);
        assert_error(response, 400, "MANIFEST_INVALID");
    }
    let response = registry.put_manifest(
        REPO,
        "sizes",
        MANIFEST_TYPE,
        r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"DIGEST","size":18446744073709551616},"layers":[]}"#
            .replace("DIGEST", &config)
            .as_bytes(),
    );
    assert_error(response, 400, "MANIFEST_INVALID");
    assert_eq!(
        registry
            .get(&format!("/v2/{REPO}/manifests/sizes"))
            .status(),
        404
    );
}

#[test]
fn a_refused_manifest_changes_nothing() {
    let registry = Registry::start("conf-refused");
    // A blob held by another repository, named by a manifest that is refused for another
    // reason (an index entry this repository lacks): the blob does not join the repository.
    let digest = registry.push_blob(REPO2, b"held elsewhere");
    registry.push_blob(REPO, b"{}");
    let refused = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": 14}],
        "manifests": [{"mediaType": MANIFEST_TYPE, "digest": sha256(b"absent"), "size": 6}],
    }))
    .unwrap();
    assert_error(
        registry.put_manifest(REPO, "refused", MANIFEST_TYPE, &refused),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    assert_error(
        registry.get(&format!("/v2/{REPO}/blobs/{digest}")),
        404,
        "BLOB_UNKNOWN",
    );
    // A media type that is not one (it would become the Content-Type of every pull).
    for bad in ["a\nb", "no-slash", "text/é", "/x", "x/"] {
        let manifest = image_manifest((EMPTY_TYPE, b"{}"), &[], json!({ "mediaType": bad }));
        let response = registry
            .request(Method::PUT, &format!("/v2/{REPO}/manifests/bad"))
            .header("content-type", "application/json")
            .body(manifest)
            .send()
            .unwrap();
        assert_error(response, 400, "MANIFEST_INVALID");
    }
    assert_error(
        registry.get(&format!("/v2/{REPO}/manifests/bad")),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn methods_a_path_does_not_take_are_405_with_a_json_body() {
    let registry = Registry::start("conf-methods");
    let digest = registry.push_blob(REPO, b"x");
    for (method, path) in [
        (Method::PUT, format!("/v2/{REPO}/blobs/{digest}")),
        (Method::POST, format!("/v2/{REPO}/tags/list")),
        (Method::DELETE, "/v2/_catalog".to_owned()),
        (Method::PATCH, format!("/v2/{REPO}/manifests/v1")),
        (Method::POST, format!("/v2/{REPO}/referrers/{digest}")),
    ] {
        let response = registry.request(method.clone(), &path).send().unwrap();
        assert_eq!(
            header(&response, "content-type"),
            "application/json",
            "{method} {path}"
        );
        assert_error(response, 405, "UNSUPPORTED");
    }
}
